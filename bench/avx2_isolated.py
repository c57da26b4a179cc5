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
import json
import statistics
import sys

from fastrnn.benchmark import isolated
from fastrnn.benchmark.cases import Case

engines = sys.argv[1].split(",")
threads = int(sys.argv[2])
rounds = int(sys.argv[3])
cases = [json.loads(c) for c in sys.argv[4:]]
for cd in cases:
    case = Case(seq_len=100, **cd)
    res = {e: [] for e in engines}
    for r in range(rounds):
        order = engines[r % len(engines):] + engines[:r % len(engines)]
        for e in order:
            out = isolated._spawn(case, e, threads, 3)
            res[e].append(statistics.median(out["seconds"]) / case.seq_len * 1e6)
    line = f"{case.label():40s}" + "  ".join(
        f"{e}={statistics.median(v):8.2f} [{min(v):.1f}-{max(v):.1f}]" for e, v in res.items())
    print(line, flush=True)
