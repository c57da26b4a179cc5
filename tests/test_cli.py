"""`fastrnn bench` end to end on a tiny sweep, through the entry point and python -m."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastrnn

HERE = os.path.dirname(os.path.abspath(__file__))  # run outside the source tree
# the bundled model of the fastrnn under test (the installed wheel's, in .ci/wheel.sh)
DATA = os.path.join(os.path.dirname(fastrnn.__file__), "data")


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


CKPT = os.path.join(HERE, "data", "checkpoints")


def test_inspect_lists_tensors_models_and_the_rest():
    res = _run(["inspect", os.path.join(CKPT, "training_checkpoint.pt")])
    assert res.returncode == 0, res.stderr
    assert "model.weight_ih_l0" in res.stdout and "float32  (24, 5)" in res.stdout
    assert "'model': LSTM(input_size=5, hidden_size=6, num_layers=2, bidirectional=True)" in res.stdout
    assert "epoch: 3" in res.stdout and "note: 'adam'" in res.stdout


# a pickle that would call os.system if anything from it were called
HOSTILE = b"cposix\nsystem\n(S'echo hostile'\ntR."


def test_inspect_refuses_hostile_files_with_exit_1(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02" + HOSTILE)
    res = _run(["inspect", str(path)])
    assert res.returncode == 1
    assert "refusing the global posix.system" in res.stderr and "Traceback" not in res.stderr
    assert "hostile" not in res.stdout


def test_bench_model_checkpoint(tmp_path):
    path = tmp_path / "m.json"
    res = _run(["bench", "--model", os.path.join(CKPT, "whole_model.pt"), "--batch", "2",
                "--seq-len", "6", "--repeat", "1", "--peers", "numpy", "--json", str(path)])
    assert res.returncode == 0, res.stderr
    recs = json.loads(path.read_text())["records"]
    assert {(r["mode"], r["hidden"], r["layers"], r["bidirectional"]) for r in recs} == {("GRU", 8, 2, True)}
    assert all(r["agrees"] for r in recs)


def test_bench_model_unreadable_is_a_usage_error(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02" + HOSTILE)
    res = _run(["bench", "--model", str(path)])
    assert res.returncode == 2 and "refusing the global posix.system" in res.stderr


def test_generate_bundled_model_greedy():
    res = _run(["generate", "-n", "60", "--temperature", "0"])
    assert res.returncode == 0, res.stderr
    golden = np.load(os.path.join(HERE, "data", "apps", "apps_charlm.npz"))
    assert res.stdout.startswith(str(golden["prompt"]) + str(golden["text"])[:60])
    assert "µs per character" in res.stderr


def test_generate_own_model_and_errors(tmp_path):
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"vocab": json.load(open(os.path.join(
        DATA, "charlm.json")))["vocab"]}))
    model = os.path.join(DATA, "charlm.pt")
    res = _run(["generate", "--model", model, "--vocab", str(vocab), "--prompt", "def ",
                "-n", "20", "--seed", "1", "--top-k", "5"])
    assert res.returncode == 0, res.stderr and res.stdout.startswith("def ")
    assert _run(["generate", "--model", model]).returncode == 2
    res = _run(["generate", "--prompt", "caf\u00e9"])
    assert res.returncode == 2 and "outside the vocabulary" in res.stderr
    assert _run(["generate", "-n", "-1"]).returncode == 2


def test_bench_plot_or_a_clear_message(tmp_path):
    """--plot writes a PNG with matplotlib, or says how to get it (exit 1) without."""
    import importlib.util
    path = tmp_path / "p.png"
    res = _run(["bench", "--quick", "--peers", "numpy", "--repeat", "1", "--plot", str(path)])
    if importlib.util.find_spec("matplotlib") is not None:
        assert res.returncode == 0, res.stderr
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert res.returncode == 1
        assert "--plot needs matplotlib: pip install matplotlib" in res.stderr


def test_quick_fills_only_what_main_argv_did_not_give(tmp_path, capsys):
    """--quick shrinks the grid from main(argv)'s own arguments (not the process's)."""
    from fastrnn import cli
    path = tmp_path / "q.json"
    assert cli.main(["bench", "--quick", "--mode", "gru", "--batch", "2", "--peers", "numpy",
                     "--json", str(path)]) == 0
    recs = json.loads(path.read_text())["records"]
    assert {(r["hidden"], r["batch"], r["seq_len"]) for r in recs} == {(64, 2, 20)}
