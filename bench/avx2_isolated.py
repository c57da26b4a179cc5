"""Engines one per process, interleaved, on a few cases: the AVX2 table's driver.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTRNN_PROFILE=off FASTRNN_ISA=avx2 \
        ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell \
        python bench/avx2_isolated.py fastrnn,onnxruntime,torch 1 3 \
        '{"mode": "LSTM", "hidden": 128, "batch": 16}' ...

Arguments: engines, threads, rounds, then each case's fields as JSON (T=100). Every
round starts one fresh process per engine (fastrnn.benchmark.isolated), the order
rotating; a line per case gives each engine's median us/step over rounds and the
range [min-max] of the rounds, so that a shared machine's noise shows.
"""
import argparse
import dataclasses
import json
import statistics

from fastrnn.benchmark import isolated
from fastrnn.benchmark.cases import MODES, Case, choice_list
from fastrnn.benchmark.engines import PEERS


def _case(text):
    """One case's fields as JSON (T=100 unless given), checked as Case takes them."""
    try:
        fields = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r} ({exc})") from None
    names = {f.name for f in dataclasses.fields(Case)}
    if not isinstance(fields, dict) or not set(fields) <= names:
        raise argparse.ArgumentTypeError(
            f"expected an object of Case fields ({', '.join(sorted(names))}), got {text!r}")
    if isinstance(fields.get("mode"), str):
        fields["mode"] = fields["mode"].upper()   # as --modes elsewhere: 'lstm' is LSTM
    case = Case(**{"seq_len": 100, **fields})
    if case.mode not in MODES:
        raise argparse.ArgumentTypeError(f"mode must be one of {', '.join(MODES)}, got "
                                         f"{case.mode!r}")
    for name, least in (("hidden", 1), ("batch", 1), ("seq_len", 1), ("layers", 1),
                        ("input_size", 0)):   # input_size 0: equal to hidden
        value = getattr(case, name)
        if type(value) is not int or value < least:
            raise argparse.ArgumentTypeError(
                f"{name} must be an integer >= {least}, got {value!r}")
    return case


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("engines", type=choice_list(("fastrnn",) + PEERS))
    ap.add_argument("threads", type=int)
    ap.add_argument("rounds", type=int)
    ap.add_argument("cases", type=_case, nargs="+", metavar="CASE")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.rounds < 1:
        ap.error("threads and rounds must be at least 1")
    for case in args.cases:
        res = {e: [] for e in args.engines}
        for r in range(args.rounds):
            order = args.engines[r % len(args.engines):] + args.engines[:r % len(args.engines)]
            for e in order:
                out = isolated._spawn(case, e, args.threads, 3)
                res[e].append(statistics.median(out["seconds"]) / case.seq_len * 1e6)
        line = f"{case.label():40s}" + "  ".join(
            f"{e}={statistics.median(v):8.2f} [{min(v):.1f}-{max(v):.1f}]"
            for e, v in res.items())
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
