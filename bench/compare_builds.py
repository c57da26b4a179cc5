"""fastrnn against fastrnn: two builds (checkouts built in place) side by side on the
cases of `bench/run.py`'s suites, each build in its own process, alternating, several
rounds; the median per case and the ratio.

    python bench/compare_builds.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 3] [--repeat 5]
        [--suites core,batches,streaming,half] [--modes LSTM,GRU --hidden 64,512 --batch 1,16]
        [--json PATH]

It measures fastrnn only (the peers are the same on both sides). Each process imports
the fastrnn of its checkout (PYTHONPATH) and times the cases with that checkout's own
harness (fastrnn.benchmark.run), so it works across versions of the harness.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from fastrnn.benchmark.cases import MODES, choice_list, int_list


def _grid(modes=("LSTM", "GRU"), hiddens=(64, 128, 256, 512), batches=(8, 16, 64)):
    """Every case of modes x hiddens x batches as T=100, float32, one layer (bench/bars.py's
    grid); the defaults are the batches suite."""
    return [(m, h, b, 100, False, "float32", 1, False)
            for m in modes for h in hiddens for b in batches]


# (mode, hidden, batch, seq_len, streaming, weight_dtype, layers, bidirectional)
SUITES = {
    "core": _grid(batches=(1, 8, 64)),
    "batches": _grid(),
    "streaming": [(m, h, 1, 1, True, "float32", 1, False)
                  for m in ("LSTM", "GRU") for h in (64, 128, 256, 512)],
    "half": [(m, h, 1, t, t == 1, wd, 1, False)
             for wd in ("float16", "bfloat16") for m in ("LSTM", "GRU")
             for h in (64, 128, 256, 512) for t in (100, 1)],
    "layers": [(m, h, b, 100, False, "float32", 2, True)
               for m in ("LSTM", "GRU") for h in (64, 256) for b in (1, 8)],
}

CHILD = r"""
import json, sys
from fastrnn import benchmark
cases = [benchmark.Case(mode=m, hidden=h, batch=b, seq_len=t, streaming=s, weight_dtype=wd,
                        layers=l, bidirectional=bi)
         for m, h, b, t, s, wd, l, bi in json.loads(sys.argv[1])]
records = benchmark.run(cases, [], threads=1, rounds=int(sys.argv[2]))
json.dump([r["us_per_step"] for r in records if r["engine"] == "fastrnn"],
          open(sys.argv[3], "w"))
"""


def _run(checkout, cases, repeat):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE",
                                                            "OPENBLAS_L2_SIZE")}
    env.update(PYTHONPATH=os.path.abspath(checkout), OMP_NUM_THREADS="1",
               FASTRNN_PROFILE="off")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.json")
        subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases), str(repeat), path],
                       env=env, check=True, cwd=tmp)
        with open(path) as f:
            return json.load(f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=3, help="processes per build (alternating)")
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds inside a process")
    ap.add_argument("--suites", default=",".join(SUITES))
    ap.add_argument("--modes", type=choice_list(MODES, upper=True),
                    help="with --hidden and --batch: their grid instead of the suites "
                         "(T=100, float32, one layer)")
    ap.add_argument("--hidden", type=int_list)
    ap.add_argument("--batch", type=int_list)
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args(argv)
    grid = dict(modes=args.modes, hiddens=args.hidden, batches=args.batch)
    if any(grid.values()):   # a list not given keeps the batches suite's
        cases = _grid(**{k: v for k, v in grid.items() if v})
    else:
        unknown = sorted(set(args.suites.split(",")) - set(SUITES))
        if unknown:
            ap.error(f"--suites: no suite {', '.join(unknown)} (there are {', '.join(SUITES)})")
        cases = [c for name in args.suites.split(",") for c in SUITES[name]]
    times = {"old": [], "new": []}
    for r in range(args.rounds):
        for side in (("old", "new") if r % 2 == 0 else ("new", "old")):
            print(f"round {r + 1}: {side}", file=sys.stderr, flush=True)
            times[side].append(_run(getattr(args, side), cases, args.repeat))
    old = np.median(np.array(times["old"]), axis=0)
    new = np.median(np.array(times["new"]), axis=0)
    print("| case | old µs/step | new µs/step | new / old |\n|---|---|---|---|")
    for c, o, n in zip(cases, old, new):
        m, h, b, t, s, wd, l, bi = c
        label = (f"{m} H={h} B={b} T={t}" + (f" L={l}" if l > 1 else "")
                 + (" bidir" if bi else "") + (f" w:{wd}" if wd != "float32" else "")
                 + (" step" if s else ""))
        print(f"| {label} | {o:.2f} | {n:.2f} | {n / o:.2f} |")
    ratio = new / old
    print(f"\ngeometric mean new / old: {np.exp(np.mean(np.log(ratio))):.3f}; "
          f"range {ratio.min():.2f}-{ratio.max():.2f} over {len(cases)} cases")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cases": cases, "old": times["old"], "new": times["new"]}, f)


if __name__ == "__main__":
    main()
