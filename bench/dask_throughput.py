"""Sequences per second of fastrnn.dask.score on a LocalCluster: 2 workers x 1 thread
against 1 worker x 1 thread, on short variable-length sequences.

    python bench/dask_throughput.py                      # 100k sequences, LSTM H=64
    python bench/dask_throughput.py --sequences 200000 --hidden 128 --json out.json

The input is made and persisted on the workers first (a seeded dask.random array, its
chunks spread over the workers) so that the timed part is scoring only: score(...)
persisted and waited for, best of --repeat rounds, with the machine's load average
before and after each configuration (the figures are only as quiet as the machine), and
the CPU time the workers spent (which other processes on the machine do not inflate).
Writes bench/results/dask-throughput.md and .json.
"""
import argparse
import json
import os
import time

import numpy as np

from fastrnn._kernels.profile import cpu_model

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(workers, args, model, lengths):
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import fastrnn.dask as fdask

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster) as client:
        x = da.random.default_rng(0).standard_normal(
            (args.sequences, args.max_len, args.input_size), dtype=np.float32,
            chunks=(args.partition, -1, -1))
        x = client.persist(x)
        wait(x)
        load_before = os.getloadavg()[0]
        times, cpu = [], []
        for _ in range(args.repeat):
            cpu0 = client.run(time.process_time)
            start = time.perf_counter()
            out = client.persist(fdask.score(model, x, lengths=lengths,
                                             batch_size=args.batch_size))
            wait(out)
            times.append(time.perf_counter() - start)
            cpu1 = client.run(time.process_time)
            cpu.append(sum(cpu1[w] - cpu0[w] for w in cpu1))
            del out
        load_after = os.getloadavg()[0]
    return {"workers": workers, "threads_per_worker": 1, "seconds": times,
            "sequences_per_s": args.sequences / min(times), "worker_cpu_seconds": cpu,
            "sequences_per_cpu_s": args.sequences / min(cpu),
            "load_before": load_before, "load_after": load_after}


def main():
    import fastrnn

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sequences", type=int, default=100_000)
    p.add_argument("--mode", choices=["LSTM", "GRU"], default="LSTM")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--input-size", type=int, default=16)
    p.add_argument("--max-len", type=int, default=20, help="lengths uniform in [2, max-len]")
    p.add_argument("--partition", type=int, default=5000, help="sequences per partition")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=os.path.join(HERE, "results", "dask-throughput.json"))
    args = p.parse_args()

    model = getattr(fastrnn, args.mode)(args.input_size, args.hidden)
    lengths = np.random.default_rng(1).integers(2, args.max_len + 1, args.sequences)
    rows = [measure(w, args, model, lengths) for w in (1, 2)]
    ratio = rows[1]["sequences_per_s"] / rows[0]["sequences_per_s"]
    env = {"cpu": cpu_model(), "cores": os.cpu_count(), "fastrnn": fastrnn.__version__,
           "model": repr(model), "sequences": args.sequences, "max_len": args.max_len,
           "partition": args.partition, "batch_size": args.batch_size}
    lines = [f"# fastrnn.dask.score throughput - {env['cpu']}, {env['cores']} cores; "
             f"{env['model']}, {args.sequences:,} sequences of 2-{args.max_len} steps, "
             f"partitions of {args.partition}, batch {args.batch_size}",
             "", "| workers x threads | sequences/s | best of (s) | sequences per worker "
             "CPU-second | load avg before/after |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workers']} x 1 | {r['sequences_per_s']:,.0f} | "
                     + ", ".join(f"{t:.2f}" for t in r["seconds"])
                     + f" | {r['sequences_per_cpu_s']:,.0f} "
                     + f"| {r['load_before']:.1f} / {r['load_after']:.1f} |")
    cpu_ratio = rows[1]["sequences_per_cpu_s"] / rows[0]["sequences_per_cpu_s"]
    lines += ["", f"2 workers / 1 worker: {ratio:.2f}x in sequences/s; {cpu_ratio:.2f}x in "
              "sequences per worker CPU-second (1.0: no work added by splitting; the wall-clock "
              "ratio can reach 2 only on 2 idle cores)"]
    text = "\n".join(lines)
    print(text)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"env": env, "rows": rows, "ratio": ratio, "cpu_ratio": cpu_ratio}, f,
                      indent=1)
        with open(os.path.splitext(args.json)[0] + ".md", "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
