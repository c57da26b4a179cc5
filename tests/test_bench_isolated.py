"""One engine per process (fastrnn.benchmark.isolated, `fastrnn bench --isolate`,
`bench/run.py --isolate`): the parent's bookkeeping with stand-in processes, and a
real run end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastrnn.benchmark import Case, isolated

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def test_rounds_rotate_outputs_compared_and_skips(monkeypatch):
    """Stand-in processes: each engine's first process saves its output; the order of
    engines rotates every round; a peer off by 1e-2 is a mismatch; a skipped peer is
    spawned once and reported."""
    calls = []
    good = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 2, 3)

    def spawn(case, engine, threads, samples, save=None):
        calls.append((engine, save is not None))
        if engine == "onnxruntime":
            return {"skipped": "not here"}
        if save:
            np.save(save, good + (1e-2 if engine == "numpy" else 0))
        return {"seconds": [{"fastrnn": 1e-3, "numpy": 4e-3, "torch": 2e-3}[engine]] * samples}

    monkeypatch.setattr(isolated, "_spawn", spawn)
    case = Case("LSTM", 0, 3, 1, False, 2, 4)
    recs = isolated.run_case(case, ["numpy", "torch", "onnxruntime"], threads=2, rounds=3,
                             samples=2)
    by = {r["engine"]: r for r in recs}
    assert by["onnxruntime"]["skipped"] == "not here"
    assert by["fastrnn"]["agrees"] and by["torch"]["agrees"]
    assert by["torch"]["max_abs_err"] == 0
    assert not by["numpy"]["agrees"] and by["numpy"]["max_abs_err"] == pytest.approx(1e-2)
    assert by["numpy"]["speedup"] == pytest.approx(4) and by["torch"]["speedup"] == pytest.approx(2)
    assert all(r["isolated"] and r["threads"] == 2 for r in recs)
    assert by["fastrnn"]["rounds"] == 3
    engines = [e for e, _ in calls]
    assert engines[:4] == ["fastrnn", "numpy", "torch", "onnxruntime"]
    assert engines[4:7] == ["numpy", "torch", "fastrnn"]  # round 2 starts one later
    assert engines.count("onnxruntime") == 1
    assert [e for e, saved in calls if saved] == ["fastrnn", "numpy", "torch", "onnxruntime"]


def test_a_failing_process_is_an_error():
    with pytest.raises(RuntimeError, match="(?s)the sse process for LSTM .* failed .*--engine must "
                                           "be fastrnn or one of"):
        isolated._spawn(Case("LSTM", 0, 3, 1, False, 1, 2), "sse", 1, 1)


def test_bench_isolate_end_to_end(tmp_path):
    path = tmp_path / "iso.json"
    res = subprocess.run(
        [sys.executable, "-m", "fastrnn", "bench", "--isolate", "--quick", "--streaming",
         "--mode", "gru", "--peers", "numpy", "--repeat", "2", "--json", str(path)],
        capture_output=True, text=True, cwd=HERE, timeout=300)
    assert res.returncode == 0, res.stderr
    recs = json.loads(path.read_text())["records"]
    measured = [r for r in recs if "skipped" not in r]
    assert {(r["engine"], r["streaming"]) for r in measured} == {
        ("fastrnn", False), ("numpy", False), ("fastrnn", True)}
    for r in measured:
        assert r["isolated"] and r["rounds"] == 2 and r["median_s"] > 0 and r["agrees"]
    numpy_row = next(r for r in measured if r["engine"] == "numpy")
    assert 0 < numpy_row["max_abs_err"] < 1e-4  # compared across processes, not skipped
    assert [r["skipped"] for r in recs if "skipped" in r] == ["no streaming baseline in NumPy"]


@pytest.mark.parametrize("args,msg", [
    (["split", "--isolate"], "--isolate applies to core, streaming, half, not split"),
    (["core", "--samples", "0"], "--repeat and --samples must be >= 1"),
])
def test_bench_run_isolate_arguments(args, msg):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py")] + args,
                         capture_output=True, text=True, cwd=HERE, timeout=120)
    assert res.returncode == 2 and msg in res.stderr, res.stderr


@pytest.mark.parametrize("script,args,msg", [
    ("bars.py", ["--modes", "lstm,gruu"], "--modes: expected a comma-separated list of LSTM"),
    ("bars.py", ["--hidden", "0"], "--hidden: expected integers >= 1"),
    ("bars.py", ["--batch", "8,x"], "--batch: expected comma-separated integers"),
    ("bars.py", ["--peers", "onnx"], "--peers: expected a comma-separated list of numpy"),
    ("compare_builds.py", ["old", "new", "--modes", "rnn,x"], "--modes: expected a comma"),
    ("compare_builds.py", ["old", "new", "--batch", "-1"], "--batch: expected integers >= 1"),
    ("compare_builds.py", ["old", "new", "--suites", "core,nope"], "no suite nope"),
    ("avx2_isolated.py", ["fastrnn,onnx", "1", "1", "{}"], "engines: expected a comma"),
    ("avx2_isolated.py", ["fastrnn", "1", "1", '{"hiden": 3}'], "CASE: expected an object"),
    ("avx2_isolated.py", ["fastrnn", "0", "1", "{}"], "threads and rounds must be at least"),
    ("avx2_isolated.py", ["fastrnn", "1", "1", '{"mode": "gru", "hidden": "64"}'],
     "CASE: hidden must be an integer >= 1, got '64'"),
    ("avx2_isolated.py", ["fastrnn", "1", "1", '{"mode": "tcn"}'], "CASE: mode must be one"),
])
def test_bench_script_grid_arguments(script, args, msg):
    """The bench scripts' grids are checked where they are parsed (a lower-case mode
    had reached the measuring process as a KeyError)."""
    res = subprocess.run([sys.executable, os.path.join(ROOT, "bench", script)] + args,
                         capture_output=True, text=True, cwd=HERE, timeout=120)
    assert res.returncode == 2 and msg in res.stderr, res.stderr
