"""Fuzz fastrnn's checkpoint readers.

    python -m tests.fuzz --inputs 5000              # the bounded run CI makes
    python -m tests.fuzz --minutes 60 --seed 7 --out fuzz-failures   # a long campaign
    python -m tests.fuzz --replay fuzz-failures/*   # the verdict for saved inputs

Every input must load (and run) or raise CheckpointError; another exception, a crash,
a hang (--timeout seconds) or memory beyond the worker's limit (--headroom MB above
what it uses after import) is a failure, printed and saved under --out. Exit status 1
on any failure.
"""
import argparse
import sys
import time

from . import runner


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", type=int, default=None, help="stop after this many inputs")
    p.add_argument("--minutes", type=float, default=None, help="stop after this long")
    p.add_argument("--seed", type=int, default=0, help="campaign seed (input i of seed s is "
                                                       "reproducible)")
    p.add_argument("--out", default="fuzz-failures", help="where failing inputs are saved")
    p.add_argument("--timeout", type=float, default=runner.TIMEOUT, help="seconds per input")
    p.add_argument("--headroom", type=int, default=runner.HEADROOM >> 20,
                   help="MB of address space above the worker's after warm-up")
    p.add_argument("--replay", nargs="+", metavar="FILE", help="check saved inputs and exit")
    args = p.parse_args(argv)
    if args.replay:
        bad = 0
        for path, verdict in runner.replay(args.replay, args.headroom << 20, args.timeout):
            print(f"{path}: {verdict}")
            bad += verdict.startswith("FAIL")
        return 1 if bad else 0
    if args.inputs is None and args.minutes is None:
        p.error("give --inputs or --minutes")
    start = time.monotonic()
    counts, failures = runner.run(args.inputs, args.minutes, args.seed, args.out,
                                  args.headroom << 20, args.timeout,
                                  log=lambda m: print(m, file=sys.stderr, flush=True))
    total = sum(counts.values())
    print(f"fuzz: {total} inputs in {time.monotonic() - start:.0f} s (seed {args.seed}): "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if failures:
        print(f"fuzz: {len(failures)} failure(s); inputs saved under {args.out}/ "
              f"(python -m tests.fuzz --replay {args.out}/*)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
