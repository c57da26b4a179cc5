"""fastrnn against live torch (CI installs torch 2.13; FASTRNN_REQUIRE_TORCH=1 there
makes a missing torch a failure, not a skip)."""
import numpy as np
import pytest

import fastrnn

TOL = {"float32": 3e-5, "float64": 1e-9}


def _torch_run(torch, module, x, hx, lengths):
    with torch.no_grad():
        xt = torch.from_numpy(x)
        if hx is not None:
            hx = tuple(torch.from_numpy(h) for h in hx) if isinstance(hx, tuple) \
                else torch.from_numpy(hx)
        if lengths is None:
            out, state = module(xt, hx)
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                xt, torch.as_tensor(lengths), batch_first=module.batch_first,
                enforce_sorted=False)
            out, state = module(packed, hx)
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(
                out, batch_first=module.batch_first, total_length=x.shape[1 if module.batch_first else 0])
    states = state if isinstance(state, tuple) else (state,)
    return out.numpy(), [s.numpy() for s in states]


def _random_config(r):
    mode = r.choice(["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
    hidden = int(r.integers(1, 48))
    cfg = dict(
        mode=mode,
        input_size=int(r.integers(1, 40)),
        hidden_size=hidden,
        num_layers=int(r.integers(1, 4)),
        bias=bool(r.random() < 0.8),
        batch_first=bool(r.random() < 0.5),
        bidirectional=bool(r.random() < 0.5),
        proj_size=int(r.integers(1, hidden)) if mode == "LSTM" and hidden > 1 and r.random() < 0.3 else 0,
        dtype=str(r.choice(["float32", "float64"])),
        T=int(r.choice([1, 2, int(r.integers(3, 60)), int(r.integers(60, 1001))])),
        B=int(r.choice([1, int(r.integers(2, 9)), 64])),
        lengths=bool(r.random() < 0.4),
        hx=bool(r.random() < 0.5),
    )
    return cfg


def _torch_module(torch, cfg):
    kw = dict(num_layers=cfg["num_layers"], bias=cfg["bias"], batch_first=cfg["batch_first"],
              bidirectional=cfg["bidirectional"], dtype=getattr(torch, cfg["dtype"]))
    mode = cfg["mode"]
    if mode == "LSTM":
        return torch.nn.LSTM(cfg["input_size"], cfg["hidden_size"], proj_size=cfg["proj_size"], **kw)
    if mode == "GRU":
        return torch.nn.GRU(cfg["input_size"], cfg["hidden_size"], **kw)
    return torch.nn.RNN(cfg["input_size"], cfg["hidden_size"],
                        nonlinearity="relu" if mode == "RNN_RELU" else "tanh", **kw)


@pytest.mark.parametrize("seed", range(40))
def test_random_configurations_match_torch(torch, seed):
    r = np.random.default_rng(seed)
    cfg = _random_config(r)
    torch.manual_seed(seed)
    module = _torch_module(torch, cfg).eval()
    model = fastrnn.from_torch(module)
    T, B, I = cfg["T"], cfg["B"], cfg["input_size"]
    dt = np.dtype(cfg["dtype"])
    x = r.standard_normal((B, T, I) if cfg["batch_first"] else (T, B, I)).astype(dt)
    D = 2 if cfg["bidirectional"] else 1
    P = cfg["proj_size"] or cfg["hidden_size"]
    hx = None
    if cfg["hx"]:
        h0 = r.standard_normal((cfg["num_layers"] * D, B, P)).astype(dt)
        c0 = r.standard_normal((cfg["num_layers"] * D, B, cfg["hidden_size"])).astype(dt)
        hx = (h0, c0) if cfg["mode"] == "LSTM" else h0
    lengths = r.integers(1, T + 1, size=B) if cfg["lengths"] else None
    if lengths is not None:
        lengths[r.integers(B)] = T  # torch pads to the longest: keep one full-length
    want_out, want_states = _torch_run(torch, module, x, hx, lengths)
    out, state = model(x, hx, lengths)
    states = state if isinstance(state, tuple) else (state,)
    tol = TOL[cfg["dtype"]]
    assert out.dtype == dt and out.shape == want_out.shape, cfg
    np.testing.assert_allclose(out, want_out, rtol=0, atol=tol, err_msg=str(cfg))
    for s, w in zip(states, want_states):
        assert s.shape == w.shape
        np.testing.assert_allclose(s, w, rtol=0, atol=tol, err_msg=str(cfg))


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("batch", [1, 64, 100])
def test_long_sequences_float32(torch, mode, batch):
    """T = 1000 at hidden 128: float32 drift stays within 3e-5 of torch (batch 100:
    two groups of 50 through the fused kernel where its limit is 64)."""
    torch.manual_seed(0)
    module = getattr(torch.nn, mode)(64, 128, num_layers=2)
    model = fastrnn.from_torch(module)
    x = np.random.default_rng(0).standard_normal((1000, batch, 64)).astype(np.float32)
    want_out, want_states = _torch_run(torch, module, x, None, None)
    out, state = model(x)
    states = state if isinstance(state, tuple) else (state,)
    np.testing.assert_allclose(out, want_out, rtol=0, atol=3e-5)
    for s, w in zip(states, want_states):
        np.testing.assert_allclose(s, w, rtol=0, atol=3e-5)


@pytest.mark.parametrize("cell", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("bias", [True, False])
def test_from_torch_cells(torch, cell, bias):
    torch.manual_seed(1)
    kw = {"nonlinearity": "relu"} if cell == "RNNCell" else {}
    module = getattr(torch.nn, cell)(6, 9, bias=bias, **kw)
    model = fastrnn.from_torch(module)
    assert model.num_layers == 1 and model.hidden_size == 9
    x = np.random.default_rng(1).standard_normal((5, 3, 6)).astype(np.float32)
    with torch.no_grad():
        hx = None
        for t in range(5):
            hx = module(torch.from_numpy(x[t]), hx)
    want = hx[0] if cell == "LSTMCell" else hx
    _, state = model(x)
    h_n = state[0] if cell == "LSTMCell" else state
    np.testing.assert_allclose(h_n[0], want.numpy(), atol=3e-6)


def test_load_state_dict_takes_torch_tensors(torch):
    torch.manual_seed(2)
    module = torch.nn.GRU(4, 5, num_layers=2).to(torch.bfloat16)
    model = fastrnn.GRU(4, 5, num_layers=2)
    model.load_state_dict(module.state_dict())  # bfloat16 tensors: widened exactly
    for k, v in module.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k], v.float().numpy())


def test_from_torch_float64(torch):
    module = torch.nn.LSTM(3, 4, dtype=torch.float64)
    model = fastrnn.from_torch(module)
    assert model.dtype == np.float64


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("kind", ["LSTM", "GRUCell"])
def test_from_torch_half_precision_module_keeps_its_storage(torch, half, kind):
    """A float16 / bfloat16 module becomes a float32 model storing the same values in
    that type; it matches the module's weights run in float32 by torch."""
    torch.manual_seed(3)
    module = getattr(torch.nn, kind)(6, 20).to(getattr(torch, half))
    model = fastrnn.from_torch(module)
    assert model.dtype == np.float32 and model.weight_dtype == half
    for k, v in module.state_dict().items():
        name = k if kind == "LSTM" else f"{k}_l0"
        np.testing.assert_array_equal(model.state_dict()[name], v.float().numpy())
    x = np.random.default_rng(3).standard_normal((30, 1, 6)).astype(np.float32)
    wide = module.float()
    with torch.no_grad():
        if kind == "LSTM":
            want = wide(torch.from_numpy(x))[0].numpy()
            got = model(x)[0]
        else:
            hx, rows = None, []
            for t in range(30):
                hx = wide(torch.from_numpy(x[t]), hx)
                rows.append(hx.numpy())
            want = np.stack(rows)
            s = model.stream()
            got = np.stack([s.step(x[t]) for t in range(30)])
    np.testing.assert_allclose(got, want, atol=3e-6)


def test_from_torch_weight_dtype_rounds_a_float32_module(torch):
    torch.manual_seed(4)
    module = torch.nn.GRU(5, 24, num_layers=2)
    model = fastrnn.from_torch(module, weight_dtype="bfloat16")
    assert model.weight_dtype == "bfloat16"
    w = model.state_dict()["weight_hh_l1"]
    assert not (w.view(np.uint32) & 0xFFFF).any()   # bfloat16 values
    np.testing.assert_allclose(w, module.weight_hh_l1.detach().numpy(), rtol=2 ** -8)
    with pytest.raises(ValueError, match="weight_dtype"):
        fastrnn.from_torch(module, weight_dtype="int8")
    with pytest.raises(ValueError, match="weight_dtype"):
        fastrnn.from_torch(module.double(), weight_dtype="float16")
