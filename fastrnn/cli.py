"""The `fastrnn` command: bench, inspect, generate, score, tune, info."""
import argparse
import dataclasses
import os
import sys

from fastrnn.benchmark.cases import MODES, choice_list, int_list


def _bench_parser(sub):
    from fastrnn.benchmark import DEFAULT_GRID, PEERS
    from fastrnn.benchmark.cases import describe_grid

    # grid arguments default to None: --quick fills what was not given, then the
    # default grid the rest
    p = sub.add_parser(
        "bench", help="time fastrnn against NumPy, torch and onnxruntime on your shapes",
        description="Time fastrnn against its peers, side by side in one process, and check "
                    "each peer's output against fastrnn's. Lists are comma-separated; every "
                    f"combination is run. Default: {describe_grid(DEFAULT_GRID)}, 1 thread.")
    p.add_argument("--mode", type=choice_list(MODES, upper=True),
                   help="LSTM,GRU,RNN (default LSTM,GRU)")
    p.add_argument("--hidden", type=int_list, help="hidden sizes")
    p.add_argument("--input-size", type=int_list, default=None,
                   help="input sizes (default: equal to hidden)")
    p.add_argument("--layers", type=int_list, default=[1], help="numbers of layers (default 1)")
    p.add_argument("--bidirectional", action="store_true", help="bidirectional models")
    p.add_argument("--batch", type=int_list, help="batch sizes (default 1,64)")
    p.add_argument("--seq-len", type=int_list, help="sequence lengths (default 100)")
    p.add_argument("--threads", type=int_list, default=[1],
                   help="thread counts for every engine (default 1)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--weight-dtype", choices=["float32", "float16", "bfloat16"],
                   default="float32",
                   help="fastrnn's weight storage (float32 models); peers run the same "
                        "rounded weights in float32")
    p.add_argument("--gru-form", choices=["torch", "textbook", "both"], default="torch",
                   help="which GRU to time: torch's (reset_after=True, the default), the "
                        "textbook GRU (reset_after=False: peers NumPy and onnxruntime's "
                        "linear_before_reset=0 node; torch has none), or both")
    p.add_argument("--peers", type=choice_list(list(PEERS)), default=list(PEERS),
                   help="peers to compare with: numpy,torch,onnxruntime (default all)")
    p.add_argument("--model", metavar="PATH",
                   help="benchmark a real checkpoint (its architecture, with --batch and "
                        "--seq-len)")
    p.add_argument("--streaming", action="store_true",
                   help="add step-call latency rows (one time step per call, state carried)")
    p.add_argument("--repeat", type=int, help="timed rounds per engine (default 7)")
    p.add_argument("--quick", action="store_true",
                   help="a fast smoke run: 3 rounds, hidden 64, batch 1, T=20 unless given")
    p.add_argument("--isolate", action="store_true",
                   help="run each engine in its own process per case and round, so that no "
                        "engine's idle threads spin on the cores another is measured on "
                        "(slower: a process start per measurement)")
    p.add_argument("--json", metavar="PATH", help="write every measurement and the environment")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of µs/step against hidden size")
    p.set_defaults(func=_bench)
    return p


def _bench(args, parser):
    from fastrnn import benchmark
    from fastrnn.benchmark import report

    if max(args.threads) > 1 and not args.isolate:  # alone, engines keep their defaults
        benchmark.quiet_spinning()

    fill = [benchmark.QUICK_GRID] if args.quick else []
    for grid_args in fill + [benchmark.DEFAULT_GRID, {"repeat": 7}]:
        for name, value in grid_args.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    models = {}
    if args.model and args.isolate:
        parser.error("--isolate runs the benchmark's own seeded models, not --model")
    if args.model:
        cases, models = _model_cases(args, parser)
    else:
        if args.weight_dtype != "float32" and args.dtype != "float32":
            parser.error("--weight-dtype float16/bfloat16 needs --dtype float32")
        cases = benchmark.grid(args.mode, args.hidden, args.batch, args.seq_len,
                               input_sizes=args.input_size or [0], layers=args.layers,
                               bidirectional=[args.bidirectional], dtype=args.dtype,
                               weight_dtype=args.weight_dtype,
                               gru_forms=(benchmark.GRU_FORMS if args.gru_form == "both"
                                          else (args.gru_form,)))
    if args.streaming:
        streamable = [c for c in cases if not c.bidirectional]
        if not streamable:
            parser.error("--streaming needs a unidirectional model")
        seen = []
        for c in streamable:
            s = dataclasses.replace(c, bidirectional=False, seq_len=1, streaming=True)
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
        if args.isolate:
            from fastrnn.benchmark import isolated

            recs = isolated.run(cases, args.peers, threads=threads, rounds=args.repeat,
                                progress=progress)
        else:
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
                               model.bidirectional, b, t, model.dtype.name,
                               gru_form="textbook" if getattr(model, "reset_after", True)
                               is False else "torch")
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
        description="Read a checkpoint (torch.save zip or legacy, TorchScript, safetensors, "
                    ".npz, a pickle of numpy arrays, ONNX) without torch and print its "
                    "tensors, the LSTM / GRU / RNN models found in it with their inferred "
                    "configuration (for ONNX: the recurrent nodes), and the rest of its "
                    "structure.")
    p.add_argument("path", help="the checkpoint file")
    p.set_defaults(func=_inspect)
    return p


def _inspect(args, parser):
    from fastrnn import io as fio

    if fio.is_onnx(args.path):
        return _inspect_onnx(args.path)
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


def _inspect_onnx(path):
    from fastrnn import io as fio

    try:
        models = fio.onnx_models(path)
    except (OSError, ImportError, ValueError) as exc:  # CheckpointError is a ValueError
        print(f"fastrnn inspect: {exc}", file=sys.stderr)
        return 1
    nodes = sum(len(m.nodes) for m in models)
    print(f"{path}: ONNX, {nodes} recurrent node{'s' if nodes != 1 else ''}, "
          f"{len(models)} model{'s' if len(models) != 1 else ''}")
    for m in models:
        layers = f"{len(m.nodes)} layer{'s' if len(m.nodes) != 1 else ''}"
        print(f"  {m.mode}, {layers}, batch_first={m.kwargs['batch_first']}"
              + (", reads time backwards" if m.reverse else "")
              + (", initial state in the graph" if m.initial_state is not None else ""))
        for n in m.nodes:
            print(f"    {n.name!r}: {n.describe()}")
        pick = f", node={m.nodes[0].name!r}" if len(models) > 1 else ""
        print(f"      fastrnn.load(path{pick})")
    return 0


def _other_values(obj, prefix, out, depth=0):
    """(key, short repr) of every non-tensor leaf, cycle- and depth-safe enough to print."""
    import numpy as np

    if depth > 32 or len(out) > 1000:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _other_values(v, f"{prefix}{k}.", out, depth + 1)
    elif isinstance(obj, (list, tuple)) and not all(
            isinstance(v, (int, float, str, bool, type(None))) for v in obj):
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


def _score_parser(sub):
    p = sub.add_parser(
        "score", help="score a file of sequences on a Dask cluster (local processes by default)",
        description="Run a model over every sequence of INPUT on Dask and write one row per "
                    "sequence to --output: .npy (N, T, input_size) -> .npy; .npz with x and "
                    "lengths -> .npz with output and lengths; Parquet with a list column -> a "
                    "Parquet directory with the other columns and output. Partitions are "
                    "written as they finish; --resume re-runs only the missing ones. "
                    "Needs pip install 'fastrnn[dask]'.")
    p.add_argument("model", help="the checkpoint (anything fastrnn.load reads)")
    p.add_argument("input", help=".npy, .npz or Parquet (a file or a directory of files)")
    p.add_argument("--output", "-o", required=True, metavar="OUT",
                   help="the output: .npy, .npz, or a directory for Parquet")
    p.add_argument("--output-kind", choices=["last", "all"], default="last",
                   help="last: each sequence's final top-layer hidden state, both directions "
                        "(default); all: the outputs at every step")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="worker processes of a local cluster (default: the CPU count)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="an existing cluster's scheduler, e.g. tcp://host:8786 (its workers "
                            "must see INPUT and OUT)")
    p.add_argument("--threads-per-worker", type=int, default=1,
                   help="fastrnn threads in each worker process (default 1)")
    p.add_argument("--batch-size", type=int, default=256,
                   help="sequences per model call, sorted by length within a partition "
                        "(default 256)")
    p.add_argument("--partition-size", type=int, default=10000,
                   help=".npy / .npz: sequences per partition (default 10000); Parquet: one "
                        "partition per row group")
    p.add_argument("--column", help="Parquet: the list column of sequences (default: the only "
                                    "list column)")
    p.add_argument("--prefix", help="the model's prefix in the checkpoint (as fastrnn.load)")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted job: only partitions without a file are run")
    p.set_defaults(func=_score)
    return p


def _score(args, parser):
    import fastrnn

    for name in ("workers", "threads_per_worker", "batch_size", "partition_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    try:
        from distributed import Client, LocalCluster, progress

        from fastrnn import _score_files as files
        from fastrnn import dask as fdask
    except ImportError as exc:
        print(f"fastrnn score needs Dask: pip install 'fastrnn[dask]' ({exc})", file=sys.stderr)
        return 1
    try:
        model = fastrnn.load(args.model, prefix=args.prefix)
    except (OSError, ValueError) as exc:
        parser.error(f"model {args.model}: {exc}")
    try:
        job = fdask._job(model, args.output_kind, args.batch_size, args.threads_per_worker)
        spec = files.plan(args.model, args.input, args.output, column=args.column,
                          partition_size=args.partition_size, output_kind=args.output_kind,
                          model=model)
        todo = files.prepare(spec, args.resume)
    except (OSError, ValueError) as exc:
        print(f"fastrnn score: {exc}", file=sys.stderr)
        return 1
    total = len(spec["parts"])
    cluster = None
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers or os.cpu_count() or 1,
                               threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        print(f"fastrnn score: {total - len(todo)} of {total} partition(s) already written, "
              f"{len(todo)} to run on {len(client.scheduler_info()['workers'])} worker(s)",
              file=sys.stderr)
        if todo:
            ref = fdask._ship(job, client)
            futures = [client.submit(files.run_part, ref, spec, i, pure=False) for i in todo]
            if sys.stdout.isatty():
                progress(futures)
            client.gather(futures)
        files.assemble(spec)
    except (OSError, ValueError) as exc:
        print(f"fastrnn score: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _tune_parser(sub):
    from fastrnn._tune import DEFAULT_BUDGET

    p = sub.add_parser(
        "tune", help="measure the kernel thresholds on this machine and save them as a profile",
        description="Measure, on this machine, where the fused kernels stop beating BLAS "
                    "(for weights that fit a core's L2 and, per family, for those that "
                    "stream from beyond it), from which batch they read W_ih's panels at "
                    "every step, and from which hidden size a batch-1 step pays to split "
                    "across two cores; write the result as a profile that models then use "
                    "(see `fastrnn info`). Each measurement interleaves the two "
                    "alternatives, and a threshold leaves its default only where two "
                    "measurements agree; a phase that runs out of budget keeps the default "
                    "where it did not measure. Run it on an idle machine: other load makes "
                    "the result conservative.")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                   help=f"time to spend measuring (default {DEFAULT_BUDGET:.0f})")
    p.add_argument("--output", "-o", metavar="PATH",
                   help="where to write the profile (default: FASTRNN_PROFILE, else the "
                        "user cache directory)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the profile that would be written, write nothing")
    p.set_defaults(func=_tune)
    return p


def _tune(args, parser):
    import json

    from fastrnn import _tune
    from fastrnn._kernels import profile

    if not args.budget > 0 or args.budget > 86400:
        parser.error(f"--budget must be seconds in (0, 86400], got {args.budget}")
    path = args.output or profile.default_path()
    if path is None and not args.dry_run:
        parser.error("FASTRNN_PROFILE=off: give --output PATH (or --dry-run)")
    if path is not None and os.path.isdir(path):
        parser.error(f"--output must be a file path, got the directory {path}")
    print(f"fastrnn tune: measuring for about {args.budget:.0f} s ...", file=sys.stderr)
    data = _tune.tune(args.budget, progress=True)
    plan, defaults = data["plan"], data["defaults"]
    print(f"fastrnn tune: {data['cpu']}, {data['isa']}, {data['elapsed_s']:.0f} s, "
          f"{len(data['measurements'])} measurements", file=sys.stderr)
    for name in data["notes"]:   # a phase's note whose value matches fused_max_batch's
        if name not in plan:
            print(f"  {name}: {data['notes'][name]}", file=sys.stderr)
    for name, value in plan.items():
        note = data["notes"].get(name)
        default = defaults.get(name, "fused_max_batch")   # streamed_max_batch: none of its own
        print(f"  {name} = {value} (default {default})" + (f": {note}" if note else ""),
              file=sys.stderr)
    if args.dry_run:
        print(json.dumps(data, indent=1))
        return 0
    try:
        profile.write(path, data)
    except OSError as exc:
        print(f"fastrnn tune: cannot write {path}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def _info_parser(sub):
    p = sub.add_parser(
        "info", help="show the ISA, BLAS, threads and kernel plan in force, and the profile",
        description="Print fastrnn's version, the CPU and the instruction set in force "
                    "(and the best available), the BLAS library and its threads, fastrnn's "
                    "threads, the default kernel plan and where it came from (defaults, a "
                    "profile written by `fastrnn tune`, the environment), and the profile's "
                    "path and state. Same as fastrnn.show_config().")
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(func=_info)
    return p


def _info(args, parser):
    import json

    from fastrnn import _info

    cfg = _info.config()
    print(json.dumps(cfg, indent=1) if args.json else _info.render(cfg))
    return 0


def fastrnn_threads():
    import fastrnn
    return fastrnn.get_num_threads()


def _version():
    from fastrnn._version import __version__
    return __version__


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fastrnn",
        description="Fast CPU inference for PyTorch-trained LSTM / GRU / RNN models.")
    parser.add_argument("--version", action="version", version=f"fastrnn {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {"bench": _bench_parser(sub), "inspect": _inspect_parser(sub),
                  "generate": _generate_parser(sub), "score": _score_parser(sub),
                  "tune": _tune_parser(sub), "info": _info_parser(sub)}
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args, subparsers[args.command])


if __name__ == "__main__":
    sys.exit(main())
