"""Produce the tables in README.md with the harness behind `fastrnn bench`.

    python bench/run.py core        # issue-2 grid: LSTM/GRU, H 64-512, B 1 and 64, T=100
    python bench/run.py streaming   # step-call latency, B=1, H 64-512
    python bench/run.py generate    # bundled char model vs a torch loop, 500 characters
    python bench/run.py all

Each suite writes bench/results/<suite>-<threads>t.json (every record and the
environment) and .md (the table as it appears in README). Run it with OPENBLAS_CORETYPE
and OPENBLAS_L2_SIZE unset if your machine sets them (they slow current OpenBLAS
builds), e.g. `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py all`.
"""
import argparse
import os
import sys

from fastrnn import benchmark
from fastrnn.benchmark import report

HERE = os.path.dirname(os.path.abspath(__file__))

def _generation(threads, repeat):
    from fastrnn import apps
    from fastrnn.benchmark.generation import run_generation

    lm, meta = apps.bundled_char_model()
    return run_generation(lm, meta["prompt"], n=500, threads=threads, rounds=repeat)


SUITES = {
    "core": lambda: benchmark.grid(["LSTM", "GRU"], [64, 128, 256, 512], [1, 64], [100]),
    "streaming": lambda: benchmark.grid(["LSTM", "GRU"], [64, 128, 256, 512], [1], [1],
                                        streaming=True),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", choices=list(SUITES) + ["generate", "all"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args(argv)
    for name in (list(SUITES) + ["generate"] if args.suite == "all" else [args.suite]):
        env = benchmark.describe(args.threads)
        if name == "generate":
            records = _generation(args.threads, args.repeat)
            stem = os.path.join(HERE, "results", f"generate-{args.threads}t")
            report.write_json(stem + ".json", records, env)
            lines = [f"`python bench/run.py generate --threads {args.threads}` "
                     f"({env['cpu']}, {env['date'][:10]}): greedy, 500 characters, bundled model",
                     "", "| engine | µs per character | fastrnn × | same text |", "|---|---|---|---|"]
            for r in records:
                if "skipped" in r:
                    lines.append(f"| {r['engine']} | skipped: {r['skipped']} | | |")
                else:
                    lines.append(f"| {r['engine']} | {r['us_per_token']:.1f} | "
                                 f"{r['speedup']:.1f} | {r['same_text']} |")
            with open(stem + ".md", "w") as f:
                f.write("\n".join(lines) + "\n")
            print("\n".join(lines))
            continue
        cases = SUITES[name]()
        records = benchmark.run(cases, list(benchmark.PEERS), threads=args.threads,
                                rounds=args.repeat,
                                progress=lambda c: print(c.label(), file=sys.stderr))
        stem = os.path.join(HERE, "results", f"{name}-{args.threads}t")
        report.write_json(stem + ".json", records, env)
        table = report.markdown(records)
        header = (f"{env['cpu']}, {env['cores']} cores, {args.threads} thread(s), "
                  f"{env['date'][:10]}; fastrnn {env['fastrnn']} ({env['fastrnn_isa']}), "
                  f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, "
                  f"BLAS {'; '.join(env['blas'])}; OPENBLAS_CORETYPE="
                  f"{env['OPENBLAS_CORETYPE'] or 'unset'}\n\n"
                  f"`python bench/run.py {name} --threads {args.threads}`\n\n")
        with open(stem + ".md", "w") as f:
            f.write(header + table + "\n")
        print(header + table)


if __name__ == "__main__":
    main()
