"""Parity with outputs written by torch 2.13 (tests/data/make_golden.py), without torch."""
import glob
import json
import os

import numpy as np
import pytest

import fastrnn

DATA = os.path.join(os.path.dirname(__file__), "data")
CASES = sorted(glob.glob(os.path.join(DATA, "*.npz")))
TOL = {"float32": 3e-6, "float64": 1e-12}


def test_golden_files_present():
    assert len(CASES) >= 7


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-4])
def test_matches_torch_golden(path):
    with np.load(path) as f:
        data = dict(f)
    cfg = json.loads(str(data["config"]))
    sd = {k[3:]: v for k, v in data.items() if k.startswith("sd/")}
    kwargs = {k: cfg[k] for k in ("num_layers", "bias", "batch_first", "bidirectional",
                                  "proj_size", "nonlinearity") if k in cfg}
    kwargs["dtype"] = cfg.get("dtype", "float32")
    model = getattr(fastrnn, cfg["mode"])(cfg["input_size"], cfg["hidden_size"], **kwargs)
    model.load_state_dict(sd)
    hx = None
    if "h0" in data:
        hx = (data["h0"], data["c0"]) if cfg["mode"] == "LSTM" else data["h0"]
    out, state = model(data["x"], hx, data.get("lengths"))
    states = state if isinstance(state, tuple) else (state,)
    tol = TOL[kwargs["dtype"]]
    assert out.shape == data["out"].shape
    np.testing.assert_allclose(out, data["out"], rtol=0, atol=tol)
    np.testing.assert_allclose(states[0], data["h_n"], rtol=0, atol=tol)
    if "c_n" in data:
        np.testing.assert_allclose(states[1], data["c_n"], rtol=0, atol=tol)
