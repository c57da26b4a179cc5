"""The textbook GRU (reset_after=False, Cho et al. 2014; ONNX linear_before_reset=0):
every kernel path against the NumPy reference written from its equations
(tests/reference.py, gru_textbook_cell), against onnxruntime running a
linear_before_reset=0 node, and one core against two, bitwise."""
import pickle

import numpy as np
import onnx  # the test extras install onnx and onnxruntime
import onnxruntime as ort
import pytest
import reference
from helpers import TOL, kernel_threads, with_plan
from onnx import TensorProto, helper, numpy_helper

import fastrnn
from fastrnn import apps
from fastrnn._kernels import families, packing
from fastrnn._kernels._stack import ISA_NAMES, cpu_isa
from fastrnn.blocks import Linear, one_hot

ONNX_TOL = 3e-5


def _model(input_size, hidden_size, seed=0, **kwargs):
    """A textbook GRU with seeded weights of U(-1/sqrt(H), 1/sqrt(H)) * 2."""
    model = fastrnn.GRU(input_size, hidden_size, reset_after=False, **kwargs)
    rng = np.random.default_rng(seed)
    scale = 2 / np.sqrt(hidden_size)
    model.load_state_dict({k: rng.uniform(-scale, scale, v.shape)
                           for k, v in model.state_dict().items()})
    return model


def _want(model, x, lengths=None, h0=None):
    """The reference's (out, h_n) for a time-major x, from the model's own (rounded)
    weights."""
    out, h_n, _ = reference.forward("GRU", model.state_dict(), x, model.num_layers,
                                    model.bidirectional, model.hidden_size, h0=h0,
                                    lengths=lengths, reset_after=False)
    return out, h_n


def _check(model, x, lengths=None, h0=None, tol=None):
    out, h_n = model(x, hx=h0, lengths=lengths)
    want_out, want_h = _want(model, x, lengths, h0)
    tol = TOL[model.dtype.type] if tol is None else tol
    np.testing.assert_allclose(out, want_out, atol=tol, rtol=0)
    np.testing.assert_allclose(h_n, want_h, atol=tol, rtol=0)
    return out, h_n


# -- the reference itself ------------------------------------------------------------

def test_reference_is_the_textbook_form_not_torchs(rng):
    """The two forms differ (b_hn inside or outside r, W_hn of h or of r * h), and the
    textbook cell matches its equations written out by hand for one unit."""
    p = {"w_ih": rng.standard_normal((3, 1)), "w_hh": rng.standard_normal((3, 1)),
         "b_ih": rng.standard_normal(3), "b_hh": rng.standard_normal(3)}
    x, h = np.array([0.7]), np.array([-0.4])
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    (wr, wz, wn), (ur, uz, un) = p["w_ih"][:, 0], p["w_hh"][:, 0]
    (br, bz, bn), (cr, cz, cn) = p["b_ih"], p["b_hh"]
    r = sig(wr * 0.7 + br + ur * -0.4 + cr)
    z = sig(wz * 0.7 + bz + uz * -0.4 + cz)
    n = np.tanh(wn * 0.7 + bn + un * (r * -0.4) + cn)
    got, _ = reference.gru_textbook_cell(x, h, None, p)
    np.testing.assert_allclose(got, [(1 - z) * n + z * -0.4], rtol=1e-14)
    torch_form, _ = reference.gru_cell(x, h, None, p)
    assert abs(torch_form[0] - got[0]) > 1e-3


# -- every path against the reference --------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("path", ["fused", "blas"])
@pytest.mark.parametrize("hidden,batch,layers,bidirectional", [
    (5, 1, 1, False), (40, 3, 2, True), (33, 20, 1, False), (17, 2, 3, True)])
def test_matches_reference(dtype, path, hidden, batch, layers, bidirectional, rng):
    """Sequences of every batch shape, layers, directions, lengths and an initial
    state; the fused kernel (float32; batch 20 takes W_ih x inside its steps) and
    BLAS with the cell loops."""
    model = _model(6, hidden, num_layers=layers, bidirectional=bidirectional, dtype=dtype)
    if path == "fused":
        with_plan(model, fused_max_batch=64)
    else:
        with_plan(model, fused=False)
    x = rng.standard_normal((11, batch, 6)).astype(dtype)
    lengths = rng.integers(1, 12, size=batch)
    h0 = rng.uniform(-1, 1, model.state_shapes(batch)[0]).astype(dtype)
    _check(model, x)
    _check(model, x, lengths=lengths, h0=h0)
    assert model.kernel.fused_max_batch == (64 if path == "fused" and dtype == "float32"
                                           else 0)


def test_differs_from_torchs_form_with_the_same_weights(rng):
    textbook = _model(4, 9)
    torch_form = fastrnn.GRU(4, 9).load_state_dict(textbook.state_dict())
    x = rng.standard_normal((6, 2, 4)).astype(np.float32)
    assert np.abs(textbook(x)[0] - torch_form(x)[0]).max() > 1e-2


@pytest.mark.parametrize("weight_dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("batch", [1, 2, 7])
def test_half_precision_storage(weight_dtype, batch, rng):
    """Weights stored as float16 / bfloat16 are the reference's weights rounded
    (state_dict gives them back rounded): float32 accuracy from there, every column
    count of the batched products (1, 2, 7 = 6 + 1) and an odd K for bfloat16 pairs."""
    model = with_plan(_model(5, 37, weight_dtype=weight_dtype, num_layers=2),
                      fused_max_batch=64)
    assert model.kernel.records[0].panel_dtype == weight_dtype
    x = rng.standard_normal((9, batch, 5)).astype(np.float32)
    _check(model, x, lengths=rng.integers(1, 10, size=batch))


def test_batches_above_64_run_in_groups(rng):
    """A batch larger than one fused call runs as groups of at most 64."""
    model = with_plan(_model(4, 20), fused_max_batch=64)
    assert model.kernel.batch_groups(70) is not None
    x = rng.standard_normal((6, 70, 4)).astype(np.float32)
    _check(model, x, lengths=rng.integers(1, 7, size=70))
    s = model.stream(batch=70)
    steps = np.stack([s.step(x[t]) for t in range(6)])
    np.testing.assert_allclose(steps, _want(model, x)[0], atol=TOL[np.float32], rtol=0)


@pytest.mark.parametrize("name", [n for n in ISA_NAMES
                                  if ISA_NAMES.index(n) <= ISA_NAMES.index(cpu_isa())])
@pytest.mark.parametrize("batch", [1, 3, 20])
def test_each_isa(name, batch, rng):
    """Every instruction set's table (the plan's isa) runs the textbook step."""
    model = with_plan(_model(6, 40, num_layers=2), isa=name, fused_max_batch=64)
    assert model.kernel.isa == name
    x = rng.standard_normal((8, batch, 6)).astype(np.float32)
    _check(model, x, lengths=rng.integers(1, 9, size=batch))


# -- streams ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 5])
def test_stream_step_and_run(dtype, batch, rng):
    """stream.step (W_ih x inside the step), stream.run (a chunk's projection hoisted)
    and model.step all follow the reference; run continues where steps left off."""
    model = with_plan(_model(6, 24, num_layers=2, dtype=dtype), fused_max_batch=64)
    x = rng.standard_normal((10, batch, 6)).astype(dtype)
    want, want_h = _want(model, x)
    tol = TOL[np.dtype(dtype).type]
    s = model.stream(batch=batch)
    first = np.stack([s.step(x[t]) for t in range(4)])
    rest = s.run(x[4:])
    np.testing.assert_allclose(np.concatenate([first, rest]), want[:, :, -24:], atol=tol,
                               rtol=0)
    np.testing.assert_allclose(s.state, want_h, atol=tol, rtol=0)
    y, h = model.step(x[0])
    np.testing.assert_allclose(y, want[0], atol=tol, rtol=0)


# -- two cores ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, {"weight_dtype": "bfloat16"},
                                    {"weight_dtype": "float16"}])
@pytest.mark.parametrize("batch", [1, 4, 20])
def test_two_cores_bitwise_equal_one(kwargs, batch, rng):
    """A step split by panels meets the helper between its phases: the same arithmetic
    as one core, so bitwise the same (sequences with lengths, streams, run)."""
    # cache_bytes=0: the panel split (small layers' batches otherwise go as two halves)
    model = with_plan(_model(6, 40, num_layers=2, **kwargs), fused_max_batch=64,
                      split_min_hidden=0, cache_bytes=0)
    x = rng.standard_normal((15, batch, 6)).astype(np.float32)
    lengths = rng.integers(1, 16, size=batch)
    runs = []
    for threads in (1, 2):
        with kernel_threads(threads):
            out, h_n = model(x, lengths=lengths)
            s = model.stream(batch=batch)
            steps = np.stack([s.step(x[t]) for t in range(5)])
            runs.append((out, h_n, steps, s.run(x[5:])))
    for one, two in zip(*runs):
        np.testing.assert_array_equal(one, two)
    _check(model, x, lengths=lengths)


@pytest.mark.parametrize("hidden", [24, 256])
def test_two_cores_bidirectional(hidden, rng):
    """Directions side by side (hidden 24) or each step split (hidden 256): bitwise."""
    model = with_plan(_model(5, hidden, num_layers=2, bidirectional=True),
                      fused_max_batch=64)
    x = rng.standard_normal((30 if hidden < 100 else 6, 2, 5)).astype(np.float32)
    lengths = np.array([x.shape[0], x.shape[0] // 2])
    runs = []
    for threads in (1, 2):
        with kernel_threads(threads):
            runs.append(model(x, lengths=lengths))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    _check(model, x, lengths=lengths)


# -- the packed layout -----------------------------------------------------------------

def test_packed_w_hh_keeps_the_n_rows_apart():
    """r, z rows' panels (npan, K, 2, 16), then the n rows' (npan, K, 1, 16)."""
    hidden, k = 20, 20
    w = np.arange(3 * hidden * k, dtype=np.float32).reshape(3 * hidden, k)
    flat = packing.textbook_panels(w, hidden, "float32")
    rz = flat[:2 * 2 * k * 16].reshape(2, k, 2, 16)
    n = flat[2 * 2 * k * 16:].reshape(2, k, 1, 16)
    assert rz[1, 3, 1, 2] == w[hidden + 18, 3]     # z row of unit 18, k = 3
    assert n[0, 5, 0, 7] == w[2 * hidden + 7, 5]   # n row of unit 7
    assert n[1, 0, 0, 4] == 0                      # unit 20: padding
    model = _model(3, hidden)
    record = model.kernel.records[0]
    assert record.b_hn is None                     # every bias folds
    np.testing.assert_array_equal(
        record.bias, model.state_dict()["bias_ih_l0"] + model.state_dict()["bias_hh_l0"])


# -- the model's protocol and the loader -----------------------------------------------

def test_repr_config_pickle(rng):
    model = _model(3, 7, bidirectional=True)
    assert repr(model) == "GRU(3, 7, bidirectional=True, reset_after=False)"
    assert repr(fastrnn.GRU(3, 7)) == "GRU(3, 7)"
    assert model.reset_after is False and fastrnn.GRU(3, 7).reset_after is True
    assert model._config()["reset_after"] is False
    again = pickle.loads(pickle.dumps(model))
    assert again.reset_after is False
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(again(x)[0], model(x)[0])


@pytest.mark.parametrize("bad", ["no", None, 0])
def test_reset_after_must_be_a_bool(bad):
    with pytest.raises(TypeError, match="reset_after must be True .* got"):
        fastrnn.GRU(3, 4, reset_after=bad)


def test_only_grus_take_reset_after():
    with pytest.raises(TypeError):
        fastrnn.LSTM(3, 4, reset_after=False)


def test_load_reset_after_override(rng):
    model = _model(3, 6, num_layers=2)
    sd = model.state_dict()
    loaded = fastrnn.load(sd, reset_after=False)
    assert loaded.reset_after is False
    assert fastrnn.load(sd).reset_after is True
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x)[0], model(x)[0])
    lstm = fastrnn.LSTM(3, 6).state_dict()
    with pytest.raises(ValueError, match="reset_after applies to a GRU; these weights are an LSTM"):
        fastrnn.load(lstm, reset_after=False)


def test_language_model_takes_a_textbook_gru():
    rnn = _model(4, 8)
    head = Linear(8, 4)
    lm = apps.LanguageModel(rnn, head, vocab=list("abcd"))
    assert len(lm.generate("abca", 6, temperature=0)) == 6
    want = head(rnn(one_hot(lm.encode("abca"), 4))[0][-1])
    np.testing.assert_allclose(lm.logits("abca")[-1], want, atol=1e-6)


# -- against onnxruntime ---------------------------------------------------------------

def _gru_node_file(path, hidden, inputs, dirs, batch, lbr=0, seed=0):
    """One GRU node (linear_before_reset=lbr), with sequence_lens and initial_h."""
    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(hidden)
    inits = [numpy_helper.from_array(rng.uniform(-2 * s, 2 * s, shape).astype(np.float32), n)
             for n, shape in (("W", (dirs, 3 * hidden, inputs)), ("R", (dirs, 3 * hidden, hidden)),
                              ("B", (dirs, 6 * hidden)), ("h0", (dirs, batch, hidden)))]
    node = helper.make_node("GRU", ["X", "W", "R", "B", "seq", "h0"], ["Y", "Y_h"],
                            hidden_size=hidden, linear_before_reset=lbr,
                            direction="bidirectional" if dirs == 2 else "forward")
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("seq", TensorProto.INT32, (batch,))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("Y", "Y_h")],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("dirs,batch,hidden", [(1, 1, 70), (2, 3, 37), (1, 20, 33)])
def test_against_onnxruntime(tmp_path, dirs, batch, hidden, rng):
    """fastrnn.load of a linear_before_reset=0 node gives the textbook GRU, within
    3e-5 of onnxruntime running the same file (lengths, initial state, directions)."""
    path = _gru_node_file(tmp_path / "m.onnx", hidden, 6, dirs, batch)
    x = rng.standard_normal((9, batch, 6)).astype(np.float32)
    lengths = rng.integers(1, 10, size=batch).astype(np.int32)
    lengths[0] = 9
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y, y_h = sess.run(None, {"X": x, "seq": lengths})
    model = fastrnn.load(path)
    assert model.reset_after is False
    out, h_n = model(x, hx=model.default_state, lengths=lengths)
    got = out.reshape(9, batch, dirs, hidden).transpose(0, 2, 1, 3)  # ONNX's Y [T, D, B, H]
    for t in range(9):   # ONNX leaves Y past a sequence's length 0, as fastrnn
        np.testing.assert_allclose(got[t], y[t], atol=ONNX_TOL, rtol=0)
    np.testing.assert_allclose(h_n, y_h, atol=ONNX_TOL, rtol=0)


def test_onnx_form_cannot_be_overridden(tmp_path):
    textbook = _gru_node_file(tmp_path / "a.onnx", 8, 3, 1, 2, lbr=0)
    torch_form = _gru_node_file(tmp_path / "b.onnx", 8, 3, 1, 2, lbr=1)
    assert fastrnn.load(textbook, reset_after=False).reset_after is False
    assert fastrnn.load(torch_form).reset_after is True
    with pytest.raises(ValueError, match="linear_before_reset=0"):
        fastrnn.load(textbook, reset_after=True)
    with pytest.raises(ValueError, match="linear_before_reset=1"):
        fastrnn.load(torch_form, reset_after=False)


def test_spec_fields():
    assert families.GRU_TEXTBOOK.unfolded_bias is None
    assert families.GRU_TEXTBOOK.kernel_id not in {s.kernel_id for s in families.FAMILIES.values()}
    assert families.gru_form(False) is families.GRU_TEXTBOOK


# -- the benchmark -----------------------------------------------------------------------

def test_bench_gru_form_both(tmp_path):
    """`fastrnn bench --gru-form both`: the textbook rows are timed against NumPy's
    textbook step and onnxruntime's linear_before_reset=0 node, which agree with
    fastrnn; torch, which has no such cell, is skipped with the reason."""
    import json
    import os
    import subprocess
    import sys
    path = tmp_path / "b.json"
    res = subprocess.run(
        [sys.executable, "-m", "fastrnn", "bench", "--quick", "--mode", "gru", "--layers", "2",
         "--bidirectional", "--gru-form", "both", "--repeat", "1", "--json", str(path)],
        capture_output=True, text=True, timeout=600, cwd=os.path.dirname(__file__))
    assert res.returncode == 0, res.stderr
    assert "textbook" in res.stdout
    recs = json.loads(path.read_text())["records"]
    textbook = {r["engine"]: r for r in recs if r["gru_form"] == "textbook"}
    assert set(textbook) == {"fastrnn", "numpy", "torch", "onnxruntime"}
    assert "no textbook GRU" in textbook["torch"]["skipped"]
    for name in ("numpy", "onnxruntime"):
        assert textbook[name]["agrees"] and textbook[name]["max_abs_err"] < 1e-4
    assert {r["engine"] for r in recs if r["gru_form"] == "torch"} == set(textbook)
