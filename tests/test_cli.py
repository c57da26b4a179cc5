"""`fastrnn bench` end to end on a tiny sweep, through the entry point and python -m."""
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))  # run outside the source tree


def _run(args, entry_point=False):
    cmd = ([shutil.which("fastrnn")] if entry_point else [sys.executable, "-m", "fastrnn"]) + args
    return subprocess.run(cmd, capture_output=True, text=True, cwd=HERE, timeout=600)


def test_bench_quick_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    res = _run(["bench", "--quick", "--mode", "lstm,gru", "--batch", "1,3", "--seq-len", "5",
                "--repeat", "2", "--peers", "numpy", "--json", str(path)])
    assert res.returncode == 0, res.stderr
    assert "fastrnn" in res.stdout and "numpy" in res.stdout
    data = json.loads(path.read_text())
    recs = data["records"]
    assert len(recs) == 2 * 2 * 2  # mode x batch x engine
    for r in recs:
        assert r["median_s"] > 0 and r["us_per_step"] > 0
        assert r["max_abs_err"] < 1e-4 and r["agrees"]
    assert {r["engine"] for r in recs} == {"fastrnn", "numpy"}
    assert data["environment"]["threads"] == 1


@pytest.mark.skipif(shutil.which("fastrnn") is None, reason="entry point not on PATH (not installed)")
def test_bench_entry_point_streaming():
    res = _run(["bench", "--quick", "--streaming", "--peers", "numpy", "--repeat", "1",
                "--mode", "gru"], entry_point=True)
    assert res.returncode == 0, res.stderr
    assert "step" in res.stdout
    assert "skipped numpy: no streaming baseline" in res.stdout


def test_bench_all_peers_reported(tmp_path):
    """Every peer gives a row: measured when importable, 'skipped' with a reason if not."""
    path = tmp_path / "b.json"
    res = _run(["bench", "--quick", "--mode", "rnn", "--layers", "2", "--bidirectional",
                "--repeat", "1", "--json", str(path)])
    assert res.returncode == 0, res.stderr
    recs = json.loads(path.read_text())["records"]
    engines = {r["engine"] for r in recs}
    assert engines == {"fastrnn", "numpy", "torch", "onnxruntime"}
    for r in recs:
        assert "skipped" in r or r["agrees"], r


@pytest.mark.parametrize("args,msg", [
    (["bench", "--hidden", "0"], "expected integers >= 1"),
    (["bench", "--hidden", "abc"], "expected comma-separated integers"),
    (["bench", "--mode", "transformer"], "expected a comma-separated list of LSTM, GRU, RNN"),
    (["bench", "--peers", "tensorflow"], "numpy, torch, onnxruntime"),
    (["bench", "--dtype", "int8"], "invalid choice"),
    (["bench", "--repeat", "0"], "--repeat must be >= 1"),
    (["bench", "--streaming", "--bidirectional"], "--streaming needs a unidirectional"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_options_are_usage_errors(args, msg):
    res = _run(args)
    assert res.returncode == 2
    assert msg in res.stderr


def test_no_command_prints_help():
    res = _run([])
    assert res.returncode == 2
    assert "bench" in res.stdout
