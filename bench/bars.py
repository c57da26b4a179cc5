"""fastrnn against its best peer on the grid of the AVX2 issue's bars, engines one per
process: the ratio fastrnn / best peer per case and whether it meets its bar.

    python bench/bars.py --threads 1 --rounds 3 [--peers onnxruntime,torch]
        [--modes LSTM,GRU] [--hidden 64,128,256,512] [--batch 1,8,16,64]
        [--weight-dtype bfloat16] [--json PATH]

Bars (float32, T=100, input = hidden): with 1 thread, batch 1 at most 0.6x the best
peer's time at hidden 64-256 and 0.8x at 512, batches 8-64 at most 0.85x; with 2
threads, batch 1 at most 0.7x and batches 8-64 at most 0.9x; bfloat16 weights at batch 1,
1 thread, at most 0.5x (the peers in float32). Every round starts one
fresh process per engine and case (fastrnn.benchmark.isolated), the order rotating,
so that no engine's idle workers spin on the core another is measured on; each figure
is the median over rounds of each process's median sample, and every engine's output
is checked against fastrnn's. The last columns hold each case to the machine's
ceiling (fastrnn.benchmark.roofline, measured here with as many BLAS threads): the
least time a step can take, the share of it the best peer reaches, and the share the
bar asks of fastrnn. For batches it is the step's FLOPs at the sgemm peak: a bar asking
100% or more there asks for more than this machine's sgemm does. At batch 1 it is a
model (W_hh's bytes at the read bandwidth of the cache they fit in, plus the input
projection's FLOPs at the peak) that weights kept in cache from step to step can beat,
as the table then says. The CPU model, ISA and FASTRNN_ISA
go in the header: measure the AVX2 path on an AVX-512 machine with FASTRNN_ISA=avx2 (and
the peers capped where they can be: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 for
torch; ONNX Runtime cannot be).
"""
import argparse
import json
import os
import sys

from fastrnn._kernels.profile import cpu_model
from fastrnn.benchmark import isolated, roofline
from fastrnn.benchmark.cases import MODES, Case, choice_list, int_list
from fastrnn.benchmark.engines import PEERS


def bar(threads, batch, hidden, weight_dtype="float32"):
    if weight_dtype == "bfloat16" and threads == 1 and batch == 1:
        return 0.5
    if threads == 1:
        if batch == 1:
            return 0.6 if hidden <= 256 else 0.8
        return 0.85
    return 0.7 if batch == 1 else 0.9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, choices=(1, 2))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--peers", type=choice_list(list(PEERS)), default=["onnxruntime", "torch"])
    ap.add_argument("--modes", type=choice_list(MODES, upper=True), default=["LSTM", "GRU"])
    ap.add_argument("--hidden", type=int_list, default=[64, 128, 256, 512])
    ap.add_argument("--batch", type=int_list, default=[1, 8, 16, 64])
    ap.add_argument("--weight-dtype", default="float32",
                    choices=("float32", "float16", "bfloat16"),
                    help="fastrnn's weight storage (the peers run float32 with the same "
                         "rounded values); bfloat16's bar at batch 1, 1 thread: 0.5x")
    ap.add_argument("--json", help="write the records here too")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.samples < 1:
        ap.error("--rounds and --samples must be at least 1")
    import fastrnn

    peers = args.peers
    isa = fastrnn.Plan.default().isa
    print(f"# {cpu_model()}; fastrnn {fastrnn.__version__} on {isa} "
          f"(FASTRNN_ISA={os.environ.get('FASTRNN_ISA', 'unset')}); {args.threads} "
          f"thread(s); T=100, input = hidden, float32 with {args.weight_dtype} weights, us "
          f"per step; {args.rounds} "
          f"rounds of one process per engine", flush=True)
    peak, bandwidth_of = roofline.ceilings(args.threads)
    print(f"# ceiling: sgemm peak {peak:.1f} GFLOP/s ({args.threads} thread(s))", flush=True)
    print("| case | fastrnn | " + " | ".join(peers) + " | fastrnn / best | bar | met | "
          "ceiling | best at | bar asks |")
    print("|---|---|" + "---|" * len(peers) + "---|---|---|---|---|---|", flush=True)
    records, met = [], 0
    for mode in args.modes:
        for hidden in args.hidden:
            for batch in args.batch:
                case = Case(mode=mode, hidden=hidden, batch=batch, seq_len=100,
                            weight_dtype=args.weight_dtype)
                recs = isolated.run_case(case, peers, threads=args.threads,
                                         rounds=args.rounds, samples=args.samples)
                recs = {r["engine"]: r for r in recs if "us_per_step" in r}
                if "fastrnn" not in recs:
                    print(f"| {mode} H={hidden} B={batch} | failed |" + " |" * (len(peers) + 6),
                          flush=True)
                    continue
                us = {e: r["us_per_step"] for e, r in recs.items()}
                wrong = [e for e, r in recs.items() if not r["agrees"]]
                present = [p for p in peers if p in us]
                best = min((us[p] for p in present), default=None)
                ratio = us["fastrnn"] / best if best else None
                limit = bar(args.threads, batch, hidden, args.weight_dtype)
                ok = ratio is not None and ratio <= limit and not wrong
                met += ok
                floor, best_at, asks = roofline.shares(case, limit, best, peak,
                                                       bandwidth_of)
                # at batch 1 the floor is a model that weights kept in cache can beat
                beaten = " (beats the model)" if us["fastrnn"] < floor else ""
                cells = [f"{us[p]:.2f}" if p in us else "-" for p in peers]
                shown = f"{ratio:.2f}" if ratio is not None else "-"
                print(f"| {mode} H={hidden} B={batch} | {us['fastrnn']:.2f} | "
                      + " | ".join(cells) + f" | {shown} | {limit} | "
                      + ("yes" if ok else "no") + (f" (outputs differ: {wrong})" if wrong
                                                   else "") + f" | {floor:.2f}{beaten} | "
                      + (f"{best_at:.0%} | {asks:.0%}" if best else "- | -") + " |",
                      flush=True)
                records.append(dict(mode=mode, hidden=hidden, batch=batch,
                                    threads=args.threads, weight_dtype=args.weight_dtype,
                                    us=us, ratio=ratio, bar=limit, met=ok,
                                    floor_us=floor, best_at=best_at, bar_asks=asks))
    print(f"\n{met} of {len(records)} cases meet their bar", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu=cpu_model(), isa=isa, threads=args.threads,
                           sgemm_peak_gflops=peak, records=records), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
