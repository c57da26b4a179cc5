"""One engine per process: every engine measured alone on the cores.

With two threads on two cores, engines measured in turn in one process disturb each
other: one engine's idle workers (ONNX Runtime's spinning pool, OpenBLAS's, OpenMP's)
keep spinning on the core the next engine is measured on. Here each round starts one
fresh process per engine and case (the order rotating every round), which builds the
engine from the same seeded weights and input (build_model, runner._input), times a few
samples, prints them as JSON and exits, taking its threads with it. Each engine runs
with its own defaults, as it would alone in production: ONNX Runtime's pool spins, no
OMP_WAIT_POLICY is imposed. The round's value is the median of its samples; records
carry the median over rounds, as the in-process tables do. Outputs are checked across
processes: each engine's first process saves its output to a temporary .npy, compared
with fastrnn's.

    python -m fastrnn.benchmark.isolated --case '{"mode": "LSTM", ...}' --engine torch \\
        --threads 2 --samples 3 [--save out.npy]      # one engine, one case: JSON out
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

from fastrnn.benchmark import timing
from fastrnn.benchmark.cases import Case


def _measure(case, engine, threads, samples, save=None):
    """In the child: build `engine` for `case`, save its output, time `samples` samples."""
    from threadpoolctl import threadpool_limits

    import fastrnn
    from fastrnn.benchmark import engines as eng
    from fastrnn.benchmark.runner import _input

    model = eng.build_model(case)
    x = _input(case)
    threadpool_limits(limits=threads)  # numpy's BLAS, OpenMP; left so until exit
    # fastrnn as runner.run_case sets it: BLAS at one thread where its own steps run
    fastrnn.set_num_threads(threads, 1 if case.batch <= model.kernel.fused_max_batch
                            else threads)
    eng.OnnxRuntime.spinning = True
    cls = eng.FastRNN if engine == "fastrnn" else eng.ENGINES[engine]
    try:
        call = cls(case, model, threads, x)
    except eng.Unavailable as exc:
        return {"skipped": str(exc)}
    out = call()
    if save:
        np.save(save, np.asarray(out))
    seconds = timing.interleaved({engine: call}, rounds=samples)[engine]
    return {"seconds": seconds}


def _spawn(case, engine, threads, samples, save=None):
    cmd = [sys.executable, "-m", "fastrnn.benchmark.isolated", "--case",
           json.dumps(case.as_dict()), "--engine", engine, "--threads", str(threads),
           "--samples", str(samples)]
    if save:
        cmd += ["--save", save]
    res = subprocess.run(cmd, capture_output=True, text=True)
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"the {engine} process for {case.label()} failed (exit "
                           f"{res.returncode}): {res.stderr.strip()[-2000:]}")
    return json.loads(lines[-1])


def run_case(case, peers, threads=1, rounds=5, samples=3):
    """Records for fastrnn and each peer on `case`, each in its own processes."""
    from fastrnn.benchmark.runner import records_of

    names = ["fastrnn"] + [p for p in peers if p != "fastrnn"]
    per_round = {name: [] for name in names}
    skipped, saved = {}, {}
    with tempfile.TemporaryDirectory(prefix="fastrnn-isolated-") as tmp:
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                if name in skipped:
                    continue
                save = None
                if name not in saved:
                    save = saved[name] = os.path.join(tmp, f"{name}.npy")
                res = _spawn(case, name, threads, samples, save)
                if "skipped" in res:
                    skipped[name] = res["skipped"]
                    continue
                per_round[name].append(statistics.median(res["seconds"]))
        want = np.load(saved["fastrnn"]).astype(np.float64)
        errors = {}
        for name in names:
            if name in skipped:
                continue
            got = np.load(saved[name]).astype(np.float64)
            errors[name] = (float(np.max(np.abs(got - want))) if got.shape == want.shape
                            else float("inf"))
    samples_by_engine = {n: per_round[n] for n in names if n not in skipped}
    return records_of(case, threads, samples_by_engine, errors, skipped, isolated=True)


def run(cases, peers, threads=1, rounds=5, samples=3, progress=None):
    """All cases, one process per engine, case and round; `progress(case)` before each."""
    records = []
    for case in cases:
        if progress is not None:
            progress(case)
        records.extend(run_case(case, peers, threads, rounds, samples))
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(description="Time one engine on one case (a child process "
                                             "of fastrnn.benchmark.isolated.run).")
    ap.add_argument("--case", required=True, help="the Case's fields as JSON")
    ap.add_argument("--engine", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--save", help="write the engine's output here (.npy)")
    args = ap.parse_args(argv)
    from fastrnn.benchmark.engines import ENGINES

    if args.engine != "fastrnn" and args.engine not in ENGINES:
        ap.error(f"--engine must be fastrnn or one of {', '.join(ENGINES)}, got "
                 f"{args.engine!r}")
    if args.threads < 1 or args.samples < 1:
        ap.error("--threads and --samples must be >= 1")
    try:
        case = Case(**json.loads(args.case))
    except (ValueError, TypeError) as exc:
        ap.error(f"--case: {exc}")
    print(json.dumps(_measure(case, args.engine, args.threads, args.samples, args.save)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
