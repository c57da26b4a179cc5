"""Produce the tables in README.md with the harness behind `fastrnn bench`.

    python bench/run.py core        # issue-2 grid: LSTM/GRU, H 64-512, B 1 and 64, T=100
    python bench/run.py streaming   # step-call latency, B=1, H 64-512
    python bench/run.py half        # float16 and bfloat16 storage, B=1, sequences, steps
    python bench/run.py generate    # bundled char model vs a torch loop, 500 characters
    python bench/run.py split       # one core against two (batch 1, 4; bidirectional)
    python bench/run.py padding     # a padded batch against the same sequences unpadded
    python bench/run.py all
    python bench/run.py core --threads 2 --isolate   # each engine in its own processes

Each suite writes bench/results/<suite>-<threads>t.json (every record and the
environment) and .md (the table as it appears in README). Run it with OPENBLAS_CORETYPE
and OPENBLAS_L2_SIZE unset if your machine sets them (they slow current OpenBLAS
builds), e.g. `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py all`.

--isolate (core, streaming, half) runs every engine in a fresh process per case and
round (fastrnn.benchmark.isolated): with two threads on two cores, an engine measured in
the same process as another loses the second core to the other's idle spinning workers.
It writes <suite>-<threads>t-isolated.json / .md.
"""
import argparse
import os
import sys

from fastrnn import benchmark
from fastrnn.benchmark import isolated, report, roofline

HERE = os.path.dirname(os.path.abspath(__file__))

def _generation(threads, repeat):
    from fastrnn import apps
    from fastrnn.benchmark.generation import run_generation

    lm, meta = apps.bundled_char_model()
    return run_generation(lm, meta["prompt"], n=500, threads=threads, rounds=repeat)


SUITES = {
    "core": lambda: benchmark.grid(["LSTM", "GRU"], [64, 128, 256, 512], [1, 8, 64], [100]),
    "streaming": lambda: benchmark.grid(["LSTM", "GRU"], [64, 128, 256, 512], [1], [1],
                                        streaming=True),
    "half": lambda: [case for wd in ("float16", "bfloat16") for case in (
        benchmark.grid(["LSTM", "GRU"], [64, 128, 256, 512], [1], [100], weight_dtype=wd)
        + benchmark.grid(["LSTM", "GRU"], [64, 128, 256, 512], [1], [1], streaming=True,
                         weight_dtype=wd))],
}


def _save(stem, records, env, text):
    """bench/results/<stem>.json (every record and the environment) and .md (text)."""
    stem = os.path.join(HERE, "results", stem)
    report.write_json(stem + ".json", records, env)
    with open(stem + ".md", "w") as f:
        f.write(text + "\n")
    print(text)
    return stem


def _split_suite(args, env):
    cases = (benchmark.grid(["LSTM", "GRU"], [256, 512], [1], [100])
             + benchmark.grid(["LSTM", "GRU"], [256, 512], [1], [1], streaming=True)
             + benchmark.grid(["LSTM", "GRU"], [64, 128], [4], [100])
             + benchmark.grid(["LSTM", "GRU"], [64, 128, 256], [1], [100], layers=(2,),
                              bidirectional=(True,)))
    records = benchmark.runner.run_split(cases, rounds=args.repeat)
    lines = [f"`python bench/run.py split` ({env['cpu']}, {env['date'][:10]}): fastrnn "
             "on one core against two (BLAS at one thread, the library's own rules for "
             "splitting), interleaved", "",
             "| case | 1 thread µs/step | 2 threads µs/step | speedup |", "|---|---|---|---|"]
    for one, two in zip(records[::2], records[1::2]):
        case = benchmark.Case(**{k: one[k] for k in benchmark.Case.__dataclass_fields__})
        lines.append(f"| {case.label()} | {one['us_per_step']:.2f} | "
                     f"{two['us_per_step']:.2f} | {two['speedup_over_1_thread']:.2f}× |")
    _save("split", records, env, "\n".join(lines))


def _padding_suite(args, env):
    """A batch of 100 sequences of lengths 3-121 (most 3-40, one 121: a tagger's
    sentences) in one padded call with lengths=, against the same sequences run with no
    padding at all: one call per distinct length, its sequences together."""
    import numpy as np

    import fastrnn
    from fastrnn.benchmark import timing

    rng = np.random.default_rng(0)
    B, T, I, H = 100, 121, 64, 128
    lengths = rng.integers(3, 41, size=B)
    lengths[7] = T
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    lines = [f"`python bench/run.py padding` ({env['cpu']}, {args.threads} thread(s), "
             f"{env['date'][:10]}): batch {B}, lengths 3-40 and one {T}, input {I}, "
             "bidirectional", "",
             "| model | padded, lengths= (ms) | unpadded, by length (ms) | padded / unpadded |",
             "|---|---|---|---|"]
    records = []
    with benchmark.runner.thread_limits(args.threads):
        for mode in ("LSTM", "GRU"):
            model = getattr(fastrnn, mode)(I, H, bidirectional=True)
            parts = [(np.ascontiguousarray(x[:n, lengths == n])) for n in np.unique(lengths)]
            samples = timing.interleaved({
                "padded": lambda: model(x, lengths=lengths),  # noqa: B023 (run here)
                "unpadded": lambda: [model(part) for part in parts]},  # noqa: B023
                rounds=args.repeat)
            stats = {k: timing.summarize(v)["median_s"] for k, v in samples.items()}
            records.append(dict(mode=mode, hidden=H, batch=B, **stats))
            lines.append(f"| {mode} H={H} bidir | {stats['padded'] * 1e3:.2f} | "
                         f"{stats['unpadded'] * 1e3:.2f} | "
                         f"{stats['padded'] / stats['unpadded']:.2f}× |")
    _save(f"padding-{args.threads}t", records, env, "\n".join(lines))


def _generate_suite(args, env):
    records = _generation(args.threads, args.repeat)
    lines = [f"`python bench/run.py generate --threads {args.threads}` "
             f"({env['cpu']}, {env['date'][:10]}): greedy, 500 characters, bundled model",
             "", "| engine | µs per character | fastrnn × | same text |", "|---|---|---|---|"]
    for r in records:
        if "skipped" in r:
            lines.append(f"| {r['engine']} | skipped: {r['skipped']} | | |")
        else:
            lines.append(f"| {r['engine']} | {r['us_per_token']:.1f} | "
                         f"{r['speedup']:.1f} | {r['same_text']} |")
    from fastrnn import apps
    from fastrnn.benchmark.generation import run_generation_parts, run_seq2seq
    lm, meta = apps.bundled_char_model()
    parts = run_generation_parts(lm, meta["prompt"], threads=args.threads, rounds=args.repeat)
    records.append(parts)
    lines += ["", "The compiled decode loop against its parts measured alone (µs per character):",
              "", "| generate | stream step alone + head GEMV alone | ratio (bar <= 1.25) | "
              "Python loop (before) | same text |", "|---|---|---|---|---|",
              f"| {parts['us_generate']:.1f} | {parts['us_stream_step_alone']:.1f} + "
              f"{parts['us_head_GEMV_alone']:.1f} = {parts['us_parts']:.1f} | "
              f"{parts['generate_over_parts']:.2f} | {parts['us_python_loop']:.1f} | "
              f"{parts['same_text']} |"]
    s2s = run_seq2seq(threads=args.threads, rounds=args.repeat)
    records += s2s
    by = {r["engine"]: r["us_per_word"] for r in s2s}
    lines += ["", "Seq2Seq greedy, a GRU encoder-decoder H=256 (random weights, 20 steps per "
              "word), µs per word:", "", "| words per call | compiled loop | Python loop "
              "(before) | speed-up | same ids |", "|---|---|---|---|---|"]
    for n in ("one word", "100 words"):
        fast, slow = by[f"greedy, {n} per call"], by[f"python loop, {n} per call"]
        lines.append(f"| {n} | {fast:.0f} | {slow:.0f} | {slow / fast:.1f}× | "
                     f"{s2s[0]['same_ids']} |")
    _save(f"generate-{args.threads}t", records, env, "\n".join(lines))


def _peer_suite(name, args, env):
    def progress(case):
        print(case.label(), file=sys.stderr)

    if args.isolate:
        records = isolated.run(SUITES[name](), list(benchmark.PEERS), threads=args.threads,
                               rounds=args.repeat, samples=args.samples, progress=progress)
    else:
        records = benchmark.run(SUITES[name](), list(benchmark.PEERS), threads=args.threads,
                                rounds=args.repeat, progress=progress)
    with benchmark.runner.thread_limits(args.threads):
        roofline.annotate(records, lambda r: benchmark.Case(
            **{k: r[k] for k in benchmark.Case.__dataclass_fields__}))
    header = (f"{env['cpu']}, {env['cores']} cores, {args.threads} thread(s), "
              f"{env['date'][:10]}; fastrnn {env['fastrnn']} ({env['fastrnn_isa']}), "
              f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, "
              f"BLAS {'; '.join(env['blas'])}; OPENBLAS_CORETYPE="
              f"{env['OPENBLAS_CORETYPE'] or 'unset'}\n\n"
              f"`python bench/run.py {name} --threads {args.threads}"
              f"{' --isolate' if args.isolate else ''}`"
              + (f": each engine in its own process, {args.repeat} rounds of "
                 f"{args.samples} samples (median of each process's samples, median over "
                 "rounds)" if args.isolate else "") + "\n\n"
              "floor: the least time a step can take here (weights over the measured "
              "cache read bandwidth at batch 1, FLOPs over the measured sgemm peak at "
              "large batch; fastrnn.benchmark.roofline)\n\n")
    stem = _save(f"{name}-{args.threads}t" + ("-isolated" if args.isolate else ""), records,
                 env, header + report.markdown(records))
    if name == "core":
        try:
            report.plot(stem + ".png", records, env)
        except RuntimeError as exc:  # matplotlib missing: the tables still stand
            print(f"no plot: {exc}", file=sys.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", choices=list(SUITES) + ["generate", "split", "padding", "all"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=9,
                    help="timed rounds (with --isolate: processes per engine and case)")
    ap.add_argument("--isolate", action="store_true",
                    help="core, streaming, half: each engine in its own process per case "
                         "and round")
    ap.add_argument("--samples", type=int, default=3,
                    help="with --isolate: timed samples in each process (default 3)")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.samples < 1:
        ap.error("--repeat and --samples must be >= 1")
    if args.isolate and args.suite not in SUITES:
        ap.error(f"--isolate applies to {', '.join(SUITES)}, not {args.suite}")
    if args.threads > 1 and not args.isolate:  # alone, each engine keeps its defaults
        benchmark.quiet_spinning()
    names = (list(SUITES) + ["generate", "split", "padding"] if args.suite == "all"
             else [args.suite])
    for name in names:
        env = benchmark.describe(args.threads)
        if name == "split":
            _split_suite(args, env)
        elif name == "generate":
            _generate_suite(args, env)
        elif name == "padding":
            _padding_suite(args, env)
        else:
            _peer_suite(name, args, env)


if __name__ == "__main__":
    main()
