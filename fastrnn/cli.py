"""The `fastrnn` command: bench, inspect, generate."""
import argparse
import sys


def _ints(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _choices(allowed, upper=False):
    def parse(text):
        values = [v.strip().upper() if upper else v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(allowed)}; got {text!r}")
        return values
    return parse


def _bench_parser(sub):
    from fastrnn.benchmark import PEERS

    p = sub.add_parser(
        "bench", help="time fastrnn against NumPy, torch and onnxruntime on your shapes",
        description="Time fastrnn against its peers, side by side in one process, and check "
                    "each peer's output against fastrnn's. Lists are comma-separated; every "
                    "combination is run. Default: LSTM and GRU, hidden 64,256,512, batch 1,64, "
                    "T=100, 1 thread.")
    p.add_argument("--mode", type=_choices(["LSTM", "GRU", "RNN"], upper=True),
                   default=["LSTM", "GRU"], help="LSTM,GRU,RNN (default LSTM,GRU)")
    p.add_argument("--hidden", type=_ints, default=[64, 256, 512], help="hidden sizes")
    p.add_argument("--input-size", type=_ints, default=None,
                   help="input sizes (default: equal to hidden)")
    p.add_argument("--layers", type=_ints, default=[1], help="numbers of layers (default 1)")
    p.add_argument("--bidirectional", action="store_true", help="bidirectional models")
    p.add_argument("--batch", type=_ints, default=[1, 64], help="batch sizes (default 1,64)")
    p.add_argument("--seq-len", type=_ints, default=[100], help="sequence lengths (default 100)")
    p.add_argument("--threads", type=_ints, default=[1],
                   help="thread counts for every engine (default 1)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--weight-dtype", choices=["float32", "float16", "bfloat16"],
                   default="float32",
                   help="fastrnn's weight storage (float32 models); peers run the same "
                        "rounded weights in float32")
    p.add_argument("--peers", type=_choices(list(PEERS)), default=list(PEERS),
                   help="peers to compare with: numpy,torch,onnxruntime (default all)")
    p.add_argument("--model", metavar="PATH",
                   help="benchmark a real checkpoint (its architecture, with --batch and --seq-len)")
    p.add_argument("--streaming", action="store_true",
                   help="add step-call latency rows (one time step per call, state carried)")
    p.add_argument("--repeat", type=int, default=7, help="timed rounds per engine (default 7)")
    p.add_argument("--quick", action="store_true",
                   help="a fast smoke run: 3 rounds, hidden 64, batch 1, T=20 unless given")
    p.add_argument("--json", metavar="PATH", help="write every measurement and the environment")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of µs/step against hidden size")
    p.set_defaults(func=_bench)
    return p


def _bench(args, parser):
    from fastrnn import benchmark
    from fastrnn.benchmark import report

    if max(args.threads) > 1:
        benchmark.quiet_spinning()

    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    given = {a.dest for a in parser._actions if f"--{a.dest.replace('_', '-')}" in sys.argv}
    if args.quick:
        args.repeat = 3 if "repeat" not in given else args.repeat
        args.hidden = [64] if "hidden" not in given else args.hidden
        args.batch = [1] if "batch" not in given else args.batch
        args.seq_len = [20] if "seq_len" not in given else args.seq_len
    models = {}
    if args.model:
        cases, models = _model_cases(args, parser)
    else:
        if args.weight_dtype != "float32" and args.dtype != "float32":
            parser.error("--weight-dtype float16/bfloat16 needs --dtype float32")
        cases = benchmark.grid(args.mode, args.hidden, args.batch, args.seq_len,
                               input_sizes=args.input_size or [0], layers=args.layers,
                               bidirectional=[args.bidirectional], dtype=args.dtype,
                               weight_dtype=args.weight_dtype)
    if args.streaming:
        streamable = [c for c in cases if not c.bidirectional]
        if not streamable:
            parser.error("--streaming needs a unidirectional model")
        seen = []
        for c in streamable:
            s = benchmark.Case(c.mode, c.input_size, c.hidden, c.layers, False, c.batch, 1,
                               c.dtype, True, c.weight_dtype)
            if s not in seen:
                seen.append(s)
                if c in models:
                    models[s] = models[c]
        cases += seen
    records = []
    for threads in args.threads:
        env = benchmark.describe(threads)
        print(f"# fastrnn bench — {env['cpu']}, {threads} thread(s); fastrnn {env['fastrnn']} "
              f"({env['fastrnn_isa']}), numpy {env['numpy']}, scipy {env['scipy']}, "
              f"torch {env['torch'] or '-'}, onnxruntime {env['onnxruntime'] or '-'}; "
              f"BLAS {'; '.join(env['blas'])}", flush=True)
        progress = _progress(len(cases))
        recs = benchmark.run(cases, args.peers, threads=threads, rounds=args.repeat,
                             progress=progress, models=models)
        progress.close()
        records += recs
    print(report.table(records))
    note = report.skipped_note(records)
    if note:
        print(note)
    print("fastrnn × = the engine's time / fastrnn's time (above 1: fastrnn is faster); "
          "max |err| = the engine's largest difference from fastrnn's output.")
    env = benchmark.describe(args.threads[-1])
    if args.json:
        report.write_json(args.json, records, env)
        print(f"wrote {args.json}")
    if args.plot:
        try:
            report.plot(args.plot, records, env)
        except RuntimeError as exc:
            print(f"fastrnn bench: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.plot}")
    mismatches = [r for r in records if "skipped" not in r and not r["agrees"]]
    if mismatches:
        print(f"fastrnn bench: {len(mismatches)} row(s) disagree with fastrnn beyond tolerance",
              file=sys.stderr)
        return 1
    return 0


def _model_cases(args, parser):
    """Cases for a real checkpoint: its architecture at each batch / sequence length."""
    import fastrnn
    from fastrnn import benchmark

    try:
        model = fastrnn.load(args.model)
    except (OSError, ValueError) as exc:
        parser.error(f"--model {args.model}: {exc}")
    mode = type(model).__name__
    cases, models = [], {}
    for b in args.batch:
        for t in args.seq_len:
            c = benchmark.Case(mode, model.input_size, model.hidden_size, model.num_layers,
                               model.bidirectional, b, t, model.dtype.name)
            cases.append(c)
            models[c] = model
    return cases, models


class _progress:
    """A progress bar on stderr when it is a terminal (tqdm if installed), else quiet."""

    def __init__(self, total):
        self.bar = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, file=sys.stderr, unit="case", leave=False)
            except ImportError:
                self.bar = None
        self.total, self.done = total, 0

    def __call__(self, case):
        if self.bar is not None:
            if self.done:
                self.bar.update(1)
            self.bar.set_description(case.label())
        elif sys.stderr.isatty():
            print(f"\r[{self.done + 1}/{self.total}] {case.label():<40}", end="", file=sys.stderr,
                  flush=True)
        self.done += 1

    def close(self):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.close()
        elif sys.stderr.isatty():
            print("\r" + " " * 60 + "\r", end="", file=sys.stderr, flush=True)


def _inspect_parser(sub):
    p = sub.add_parser(
        "inspect", help="list a checkpoint's tensors and the recurrent models in it",
        description="Read a checkpoint (torch.save zip or legacy, safetensors, .npz) without "
                    "torch and print its tensors, the LSTM / GRU / RNN models found in it with "
                    "their inferred configuration, and the rest of its structure.")
    p.add_argument("path", help="the checkpoint file")
    p.set_defaults(func=_inspect)
    return p


def _inspect(args, parser):
    from fastrnn import io as fio

    try:
        obj = fio.load_checkpoint(args.path)
        tensors = fio.flatten(obj)
        found = fio.find_recurrent(tensors)
    except (OSError, fio.CheckpointError) as exc:
        print(f"fastrnn inspect: {exc}", file=sys.stderr)
        return 1
    total = sum(int(t.size) for t in tensors.values())
    print(f"{args.path}: {len(tensors)} tensors, {total:,} values")
    width = max((len(k) for k in tensors), default=4)
    for key, t in tensors.items():
        print(f"  {key:<{width}}  {str(t.dtype):<8} {tuple(t.shape)}")
    print(f"recurrent models: {len(found) or 'none'}")
    for prefix, cfg in found.items():
        name = repr(prefix.rstrip(".")) if prefix else "(no prefix)"
        print(f"  {name}: {cfg.describe()}")
        print(f"      fastrnn.load(path{', prefix=' + name if len(found) > 1 else ''})")
    others = []
    _other_values(obj, "", others)
    if others:
        print("other entries:")
        for key, text in others[:50]:
            print(f"  {key}: {text}")
        if len(others) > 50:
            print(f"  ... and {len(others) - 50} more")
    return 0


def _other_values(obj, prefix, out, depth=0):
    """(key, short repr) of every non-tensor leaf, cycle- and depth-safe enough to print."""
    import numpy as np

    if depth > 32 or len(out) > 1000:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _other_values(v, f"{prefix}{k}.", out, depth + 1)
    elif isinstance(obj, (list, tuple)) and not all(isinstance(v, (int, float, str, bool, type(None)))
                                                    for v in obj):
        for i, v in enumerate(obj):
            _other_values(v, f"{prefix}{i}.", out, depth + 1)
    elif not isinstance(obj, np.ndarray):
        text = repr(obj)
        out.append((prefix[:-1] or "(root)", text if len(text) <= 80 else text[:77] + "..."))


def _generate_parser(sub):
    p = sub.add_parser(
        "generate", help="generate text with a character-level model (the bundled one by default)",
        description="Generate text with a character (or token) language model: the prompt "
                    "runs through the sequence kernel, then one streaming step per character. "
                    "With no arguments: the bundled 2-layer LSTM trained on docstrings of "
                    "Python's standard library.")
    p.add_argument("--prompt", default=None, help="text to continue (default: the model's)")
    p.add_argument("-n", type=int, default=300, help="characters to generate (default 300)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature; 0 is greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    p.add_argument("--model", metavar="PATH", help="your own checkpoint (needs --vocab)")
    p.add_argument("--vocab", metavar="JSON",
                   help="the vocabulary: a JSON list of tokens, or an object with 'vocab' and "
                        "optionally the prefixes 'embedding', 'rnn', 'head' (defaults "
                        "embedding., rnn., fc.; embedding null for one-hot input)")
    p.set_defaults(func=_generate)
    return p


def _generate(args, parser):
    import json
    import time

    from fastrnn import apps

    if args.n < 0:
        parser.error(f"-n must be >= 0, got {args.n}")
    if not args.temperature >= 0 or args.temperature == float("inf"):  # NaN fails >= too
        parser.error(f"--temperature must be >= 0 and finite, got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        parser.error(f"--top-k must be >= 1, got {args.top_k}")
    if args.model:
        if not args.vocab:
            parser.error("--model needs --vocab (the tokens, in the order of the model's ids)")
        try:
            with open(args.vocab) as f:
                meta = json.load(f)
        except (OSError, ValueError) as exc:
            parser.error(f"--vocab {args.vocab}: {exc}")
        meta = {"vocab": meta} if isinstance(meta, list) else meta
        if not isinstance(meta, dict) or not isinstance(meta.get("vocab"), list):
            parser.error(f"--vocab {args.vocab}: expected a JSON list of tokens or an object "
                         f"with a 'vocab' list, got {str(meta)[:60]}")
        try:
            lm = apps.LanguageModel.from_checkpoint(
                args.model, vocab=meta["vocab"], rnn=meta.get("rnn", "rnn."),
                head=meta.get("head", "fc."), embedding=meta.get("embedding", "embedding."))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            parser.error(f"--model {args.model}: {exc}")
    else:
        lm, meta = apps.bundled_char_model()
    prompt = args.prompt if args.prompt is not None else meta.get("prompt", "")
    try:
        start = time.perf_counter()
        text = lm.generate(prompt, args.n, temperature=args.temperature, top_k=args.top_k,
                           seed=args.seed)
        elapsed = time.perf_counter() - start
    except ValueError as exc:
        parser.error(str(exc))
    print(prompt + (text if isinstance(text, str) else " ".join(map(str, text))))
    per = elapsed / max(args.n, 1) * 1e6
    print(f"\n[{args.n} characters in {elapsed * 1e3:.1f} ms: {per:.1f} µs per character, "
          f"{fastrnn_threads()} thread(s)]", file=sys.stderr)
    return 0


def fastrnn_threads():
    import fastrnn
    return fastrnn.get_num_threads()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fastrnn", description="Fast CPU inference for PyTorch-trained LSTM / GRU / RNN models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {"bench": _bench_parser(sub), "inspect": _inspect_parser(sub),
                  "generate": _generate_parser(sub)}
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args, subparsers[args.command])


if __name__ == "__main__":
    sys.exit(main())
