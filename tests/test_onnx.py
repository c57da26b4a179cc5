"""ONNX models: recurrent nodes read as fastrnn models, against onnxruntime running the
same file. Files are written into tmp_path by torch.onnx.export or onnx.helper."""
import os
import pickle
import subprocess
import sys

import numpy as np
import onnx  # the test extras install onnx, onnxruntime and onnxscript
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import fastrnn
from fastrnn.io import CheckpointError

TOL = 3e-5
T, B, I, H = 7, 3, 5, 4
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _run_ort(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _node_file(path, op, dirs=1, layout=0, bias=True, initial=False, seq_lens=False,
               weights_as=None, seed=0, **attrs):
    """One recurrent node with random initializers; returns (path, X)."""
    rng = np.random.default_rng(seed)
    g = GATES[op]
    w = rng.uniform(-0.6, 0.6, (dirs, g * H, I)).astype(np.float32)
    r = rng.uniform(-0.6, 0.6, (dirs, g * H, H)).astype(np.float32)
    b = rng.uniform(-0.6, 0.6, (dirs, 2 * g * H)).astype(np.float32)
    inits = [numpy_helper.from_array(r, "R")]
    nodes = []
    if weights_as is None:
        inits.append(numpy_helper.from_array(w, "W"))
    else:
        nodes += weights_as(w)
    inputs = ["X", "W", "R", "B" if bias else "", "seq" if seq_lens else ""]
    if bias:
        inits.append(numpy_helper.from_array(b, "B"))
    if initial:
        for name in ("h0", "c0") if op == "LSTM" else ("h0",):
            state = rng.uniform(-1, 1, (dirs, B, H)).astype(np.float32)
            state = np.ascontiguousarray(state.transpose(1, 0, 2)) if layout else state
            inits.append(numpy_helper.from_array(state, name))
            inputs.append(name)
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    direction = {1: "forward", 2: "bidirectional"}[dirs] if "direction" not in attrs else attrs.pop("direction")
    nodes.append(helper.make_node(op, inputs, outputs, name="rnn", hidden_size=H,
                                  direction=direction, layout=layout, **attrs))
    x_shape = (T, B, I)
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    if seq_lens:
        graph_inputs.append(helper.make_tensor_value_info("seq", TensorProto.INT32, (B,)))
    graph = helper.make_graph(nodes, "g", graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, str(path))
    x = rng.standard_normal(x_shape).astype(np.float32)
    if layout:
        # onnxruntime runs layout 0 only: its reference is the same node in layout 0
        _node_file(str(path) + ".layout0", op, dirs, 0, bias, initial, seq_lens, weights_as,
                   seed, direction=direction, **attrs)
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
        graph.input[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape))
        onnx.save(model, str(path))
    return path, x


def _torch_shaped_y(out, dirs, layout):
    """The docs' mapping from fastrnn's output to ONNX's Y."""
    if layout:
        return out.reshape(out.shape[0], out.shape[1], dirs, H)            # [B, T, D, H]
    return out.reshape(out.shape[0], out.shape[1], dirs, H).transpose(0, 2, 1, 3)  # [T, D, B, H]


def _compare(path, op, x, dirs, layout, lengths=None):
    model = fastrnn.load(path)
    feeds = {"X": x.transpose(1, 0, 2) if layout else x}
    if lengths is not None:
        feeds["seq"] = np.asarray(lengths, np.int32)
    want = _run_ort(str(path) + ".layout0" if layout else path, feeds)
    if layout:  # to layout 1: Y [B, T, D, H], Y_h / Y_c [B, D, H]
        want = [want[0].transpose(2, 0, 1, 3)] + [w.transpose(1, 0, 2) for w in want[1:]]
    # no hx: the graph's constant initial state, if it has one, as ONNX Runtime runs it
    out, state = model(x, lengths=lengths)
    h_n, c_n = state if op == "LSTM" else (state, None)
    np.testing.assert_allclose(_torch_shaped_y(out, dirs, layout), want[0], atol=TOL, rtol=0)
    to_onnx_state = (lambda s: s.transpose(1, 0, 2)) if layout else (lambda s: s)
    np.testing.assert_allclose(to_onnx_state(h_n), want[1], atol=TOL, rtol=0)
    if op == "LSTM":
        np.testing.assert_allclose(to_onnx_state(c_n), want[2], atol=TOL, rtol=0)
    return model


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("dirs,direction", [(1, "forward"), (1, "reverse"), (2, "bidirectional")])
@pytest.mark.parametrize("layout", [0, 1])
def test_single_nodes_against_onnxruntime(tmp_path, op, dirs, direction, layout):
    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    path, x = _node_file(tmp_path / "m.onnx", op, dirs=dirs, layout=layout, direction=direction,
                         **extra)
    model = _compare(path, op, x, dirs, layout)
    assert model.batch_first == bool(layout)
    assert isinstance(model, getattr(fastrnn, op)) and model.default_state is None
    assert (type(model).__name__ == "Reversed" + op) == (direction == "reverse")


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("layout", [0, 1])
def test_initial_state_and_no_bias(tmp_path, op, layout):
    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    path, x = _node_file(tmp_path / "m.onnx", op, dirs=2, layout=layout, initial=True,
                         bias=False, **extra)
    model = _compare(path, op, x, 2, layout)
    assert not model.bias
    h0 = model.default_state[0] if op == "LSTM" else model.default_state
    assert h0.shape == (2, B, H)  # torch's (layers * directions, batch, hidden)
    # the default is the state it names: passing it gives the same bits, zeros do not
    want = model(x)
    same = model(x, hx=model.default_state)
    np.testing.assert_array_equal(same[0], want[0])
    def zeros(batch):
        h = np.zeros((2, batch, H), np.float32)
        return (h, h) if op == "LSTM" else h

    assert np.abs(model(x, hx=zeros(B))[0] - want[0]).max() > 1e-3
    # pickled with the model
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again(x)[0], want[0])
    # another batch size must bring its own state
    other = x[:, :2] if not layout else x[:2]
    with pytest.raises(ValueError, match=f"default_state is for a batch of {B} sequences"):
        model(other)
    assert model(other, hx=zeros(2))[0].shape == _torch_shaped_out_shape(other, layout)


def _torch_shaped_out_shape(x, layout):
    return x.shape[:2] + (2 * H,)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_initial_state_starts_steps_and_streams(tmp_path, op):
    """A one-direction graph with a constant initial state: step and stream start from
    it too, and agree with the whole-sequence call, which agrees with ONNX Runtime."""
    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    path, x = _node_file(tmp_path / "m.onnx", op, dirs=1, initial=True, **extra)
    model = _compare(path, op, x, 1, 0)
    want = model(x)[0]
    s = model.stream(batch=B)
    steps = np.stack([s.step(x_t).copy() for x_t in x])
    np.testing.assert_allclose(steps, want, atol=TOL, rtol=0)
    y, hx = model.step(x[0])
    np.testing.assert_allclose(y, want[0], atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="default_state is for a batch of"):
        model.stream(batch=B + 1)
    model.default_state = None      # zeros again
    np.testing.assert_allclose(model.stream(batch=B + 1).step(np.zeros((B + 1, I),
                                                                       np.float32)),
                               model(np.zeros((1, B + 1, I), np.float32))[0][0])


@pytest.mark.parametrize("direction,dirs", [("reverse", 1), ("bidirectional", 2)])
def test_sequence_lens_are_lengths(tmp_path, direction, dirs):
    path, x = _node_file(tmp_path / "m.onnx", "LSTM", dirs=dirs, direction=direction,
                         seq_lens=True)
    _compare(path, "LSTM", x, dirs, 0, lengths=[7, 2, 5])


def test_relu_rnn(tmp_path):
    path, x = _node_file(tmp_path / "m.onnx", "RNN", dirs=2, activations=["Relu", "Relu"])
    model = _compare(path, "RNN", x, 2, 0)
    assert model.nonlinearity == "relu"


@pytest.mark.parametrize("dirs", [1, 2])
def test_gru_linear_before_reset_0(tmp_path, dirs):
    path, x = _node_file(tmp_path / "m.onnx", "GRU", dirs=dirs, linear_before_reset=0)
    model = _compare(path, "GRU", x, dirs, 0)
    assert model.reset_after is False


def test_linear_before_reset_0_asks_for_the_textbook_gru(tmp_path):
    from fastrnn.io import read_onnx
    path, _ = _node_file(tmp_path / "m.onnx", "GRU")   # the ONNX default: 0
    assert read_onnx(path).kwargs == {"batch_first": False, "reset_after": False}
    path, _ = _node_file(tmp_path / "m1.onnx", "GRU", linear_before_reset=1)
    assert read_onnx(path).kwargs == {"batch_first": False}


def _split_w(w):
    """W computed by constant ops: Split of a Transposed constant, Concat, Slice, Gather."""
    t = np.ascontiguousarray(w.transpose(0, 2, 1))
    return [
        helper.make_node("Constant", [], ["wt"], value=numpy_helper.from_array(t)),
        helper.make_node("Transpose", ["wt"], ["w0"], perm=[0, 2, 1]),
        helper.make_node("Constant", [], ["sizes"], value=numpy_helper.from_array(np.array([6, w.shape[1] - 6], np.int64))),
        helper.make_node("Split", ["w0", "sizes"], ["a", "b"], axis=1),
        helper.make_node("Concat", ["a", "b"], ["w1"], axis=1),
        helper.make_node("Constant", [], ["idx"], value=numpy_helper.from_array(np.array([0], np.int64))),
        helper.make_node("Gather", ["w1", "idx"], ["w2"], axis=0),
        helper.make_node("Squeeze", ["w2", "idx"], ["w3"]),
        helper.make_node("Unsqueeze", ["w3", "idx"], ["w4"]),
        helper.make_node("Cast", ["w4"], ["w5"], to=TensorProto.FLOAT),
        helper.make_node("Identity", ["w5"], ["w6"]),
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array(w.shape, np.int64))),
        helper.make_node("Reshape", ["w6", "shape"], ["w7"]),
        helper.make_node("Constant", [], ["s0"], value=numpy_helper.from_array(np.array([0], np.int64))),
        helper.make_node("Constant", [], ["s1"], value=numpy_helper.from_array(np.array([1000], np.int64))),
        helper.make_node("Slice", ["w7", "s0", "s1"], ["W"]),
    ]


def test_weights_from_constant_subgraphs(tmp_path):
    path, x = _node_file(tmp_path / "m.onnx", "LSTM", weights_as=_split_w)
    _compare(path, "LSTM", x, 1, 0)


def test_weights_from_other_ops_are_refused_naming_the_op(tmp_path):
    def added(w):
        return [helper.make_node("Constant", [], ["w0"], value=numpy_helper.from_array(w)),
                helper.make_node("Add", ["w0", "w0"], ["W"], name="the_add")]
    path, _ = _node_file(tmp_path / "m.onnx", "GRU", weights_as=added, linear_before_reset=1)
    with pytest.raises(CheckpointError, match=r"W \('W'\) is computed by a Add node \('the_add'\)"):
        fastrnn.load(path)


@pytest.mark.parametrize("attrs,match", [
    (dict(clip=3.0), "clip"),
    (dict(input_forget=1), "input_forget"),
    (dict(activations=["Sigmoid", "Tanh", "Relu"]), "activations"),
    (dict(activations=["HardSigmoid", "Tanh", "Tanh"], activation_alpha=[0.2]), "activation_alpha"),
])
def test_unsupported_attributes_are_named(tmp_path, attrs, match):
    path, _ = _node_file(tmp_path / "m.onnx", "LSTM", **attrs)
    with pytest.raises(CheckpointError, match=match):
        fastrnn.load(path)


def test_peepholes_are_refused_unless_zero(tmp_path):
    path, x = _node_file(tmp_path / "m.onnx", "LSTM")
    model = onnx.load(str(path))
    node = model.graph.node[0]
    node.input.extend(["", "", "P"])
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((1, 3 * H), np.float32), "P"))
    onnx.save(model, str(path))
    fastrnn.load(path)
    model.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.ones((1, 3 * H), np.float32), "P"))
    onnx.save(model, str(path))
    with pytest.raises(CheckpointError, match="peephole.*'P'"):
        fastrnn.load(path)


def _external(tmp_path, location):
    path, x = _node_file(tmp_path / "m.onnx", "RNN")
    model = onnx.load(str(path))
    w = [t for t in model.graph.initializer if t.name == "W"][0]
    data = numpy_helper.to_array(w).tobytes()
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(len(data)))):
        w.external_data.add(key=k, value=v)
    onnx.save(model, str(path))
    return path, x, data


def test_external_data_in_the_model_directory(tmp_path):
    path, x, data = _external(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").write_bytes(data)
    _compare(path, "RNN", x, 1, 0)


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_path_escape_is_refused(tmp_path, location, monkeypatch):
    secret = tmp_path.parent / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    path, _, _ = _external(tmp_path, location)
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    with pytest.raises(CheckpointError, match="external data"):
        fastrnn.load(path)
    assert not [f for f in opened if "secret" in f or f == "/etc/passwd"], opened


def test_external_data_through_a_link_out_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(b"\0" * 4096)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.symlink(outside / "w.bin", model_dir / "w.bin")
    path, _, _ = _external(model_dir, "w.bin")
    with pytest.raises(CheckpointError, match="leads out of the model's directory"):
        fastrnn.load(path)


def _two_unrelated(tmp_path):
    rng = np.random.default_rng(1)
    inits, nodes = [], []
    for name, op, g in (("encoder", "LSTM", 4), ("decoder", "GRU", 3)):
        inits += [numpy_helper.from_array(rng.uniform(-.5, .5, (1, g * H, I)).astype(np.float32), name + "_W"),
                  numpy_helper.from_array(rng.uniform(-.5, .5, (1, g * H, H)).astype(np.float32), name + "_R")]
        extra = {"linear_before_reset": 1} if op == "GRU" else {}
        nodes.append(helper.make_node(op, ["X", name + "_W", name + "_R"], [name + "_Y", name + "_h"],
                                      name=name, hidden_size=H, **extra))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, (T, B, I))],
                              [helper.make_tensor_value_info(n + "_h", TensorProto.FLOAT, None)
                               for n in ("encoder", "decoder")], initializer=inits)
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    return path


def test_unrelated_nodes_are_listed_and_picked_by_name(tmp_path):
    path = _two_unrelated(tmp_path)
    with pytest.raises(ValueError, match=r"2 unrelated recurrent models; pick one with node=.*"
                                         r"\['encoder'\].*\['decoder'\]"):
        fastrnn.load(path)
    assert isinstance(fastrnn.load(path, node="encoder"), fastrnn.LSTM)
    assert isinstance(fastrnn.load(path, node="decoder"), fastrnn.GRU)
    with pytest.raises(ValueError, match="node='nope'.*'encoder', 'decoder'"):
        fastrnn.load(path, node="nope")


def test_inspect_lists_the_recurrent_nodes(tmp_path):
    path = _two_unrelated(tmp_path)
    res = subprocess.run([sys.executable, "-m", "fastrnn", "inspect", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "2 recurrent nodes, 2 models" in res.stdout
    assert "'encoder': LSTM(input_size=5, hidden_size=4, direction=forward)" in res.stdout
    assert "'decoder': GRU(input_size=5, hidden_size=4, direction=forward, linear_before_reset=1)" in res.stdout
    assert "node='decoder'" in res.stdout


def test_load_checkpoint_of_onnx_gives_the_initializers(tmp_path):
    path, _ = _node_file(tmp_path / "m.onnx", "GRU")
    got = fastrnn.load_checkpoint(path)
    assert list(got) == ["R", "W", "B"] and got["W"].shape == (1, 3 * H, I)


def test_missing_onnx_names_the_extra(tmp_path):
    path, _ = _node_file(tmp_path / "m.onnx", "GRU")
    code = ("import sys; sys.modules['onnx'] = None\n"
            "import fastrnn\n"
            f"fastrnn.load({str(path)!r})\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "ImportError" in res.stderr
    assert "pip install 'fastrnn[onnx]'" in res.stderr


def test_truncated_or_corrupt_onnx_is_a_checkpoint_error(tmp_path):
    path, _ = _node_file(tmp_path / "m.onnx", "LSTM")
    data = path.read_bytes()
    for cut in (len(data) // 2, 7):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            fastrnn.load(path)


def test_onnx_takes_neither_prefix_nor_rename(tmp_path):
    path, _ = _node_file(tmp_path / "m.onnx", "LSTM")
    with pytest.raises(TypeError, match="node="):
        fastrnn.load(path, prefix="rnn")


def test_reversed_models_refuse_steps_and_pickle(tmp_path):
    import pickle
    path, x = _node_file(tmp_path / "m.onnx", "GRU", direction="reverse", linear_before_reset=1)
    model = fastrnn.load(path)
    with pytest.raises(ValueError, match="no step-by-step form"):
        model.step(x[0])
    with pytest.raises(ValueError, match="no step-by-step form"):
        model.stream()
    with pytest.raises(ValueError, match="lengths must be 3 integers in"):
        model(x, lengths=[8, 1, 1])
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again(x)[0], model(x)[0])


# --- files written by torch.onnx.export ------------------------------------------------

def _export(torch, module, x, path, dynamo):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(module, (x,), str(path), dynamo=True, verbose=False)
        else:
            torch.onnx.export(module, (x,), str(path), dynamo=False)


CASES = [  # (class, kwargs)
    ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("GRU", dict(num_layers=3)),
    ("RNN", dict(num_layers=2, bidirectional=True, nonlinearity="relu")),
    ("LSTM", dict(num_layers=1, batch_first=True, bias=False)),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("RNN", dict(num_layers=1)),
]


# the dynamo exporter takes seconds per model: LSTM and GRU cases cover it (it writes
# nn.RNN unrolled, see the test below)
@pytest.mark.parametrize("dynamo,kind,kwargs",
                         [(False,) + c for c in CASES] + [(True,) + c for c in CASES[:2]],
                         ids=lambda c: str(c))
def test_torch_onnx_export(torch, tmp_path, dynamo, kind, kwargs):
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(I, H, **kwargs).eval()
    x = torch.randn(B, T, I) if kwargs.get("batch_first") else torch.randn(T, B, I)
    path = tmp_path / "m.onnx"
    _export(torch, module, x, path, dynamo)
    model = fastrnn.load(path)
    assert model.batch_first == kwargs.get("batch_first", False)
    assert model.num_layers == kwargs.get("num_layers", 1)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    out, state = model(x.numpy())
    np.testing.assert_allclose(out, want[0], atol=TOL, rtol=0)
    h_n = state[0] if kind == "LSTM" else state
    np.testing.assert_allclose(h_n, want[1], atol=TOL, rtol=0)
    with torch.no_grad():
        np.testing.assert_allclose(out, module(x)[0].numpy(), atol=TOL, rtol=0)


def test_dynamo_exported_rnn_is_unrolled_and_refused_clearly(torch, tmp_path):
    module = torch.nn.RNN(I, H).eval()
    path = tmp_path / "m.onnx"
    _export(torch, module, torch.randn(T, B, I), path, dynamo=True)
    with pytest.raises(CheckpointError, match=r"no LSTM, GRU or RNN node.*'MatMul'.*dynamo=False"):
        fastrnn.load(path)


def test_fuzzed_onnx_and_numpy_pickles_raise_only_checkpoint_errors(tmp_path):
    import pickle

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    path, _ = _node_file(tmp_path / "src.onnx", "LSTM", dirs=2, initial=True)
    sources = [path.read_bytes(),
               pickle.dumps({"w": np.ones((2, 3), np.float32), "n": np.int64(2)}, protocol=2),
               pickle.dumps({"w": np.ones((2, 3), np.float32)}, protocol=5)]

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(sources) - 1),
           st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=3),
           st.booleans())
    def check(which, flips, cut):
        data = bytearray(sources[which])
        for where, value in flips:
            data[min(int(where * len(data)), len(data) - 1)] ^= value
        if cut:
            data = data[:len(data) // 2]
        target = tmp_path / "fuzz"
        target.write_bytes(bytes(data))
        for call in (fastrnn.load_checkpoint, fastrnn.load):
            try:
                call(target)
            except ValueError as exc:  # CheckpointError, or "no recurrent weights"
                assert "internal error" not in str(exc), str(exc)

    check()


def test_nodes_inside_if_branches_are_listed_and_picked(tmp_path):
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.uniform(-.5, .5, (1, 3 * H, I)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.uniform(-.5, .5, (1, 3 * H, H)).astype(np.float32), "R")]

    def branch(name):
        node = helper.make_node("GRU", ["X", "W", "R"], [name + "_Y", name + "_h"], name=name,
                                hidden_size=H, linear_before_reset=1)
        return helper.make_graph([node], name, [], [
            helper.make_tensor_value_info(name + "_h", TensorProto.FLOAT, None)])

    cond = numpy_helper.from_array(np.array(True), "cond")
    node = helper.make_node("If", ["cond"], ["h"], then_branch=branch("then_gru"),
                            else_branch=branch("else_gru"))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, (T, B, I))],
                              [helper.make_tensor_value_info("h", TensorProto.FLOAT, None)],
                              initializer=inits + [cond])
    path = tmp_path / "if.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    with pytest.raises(ValueError, match=r"2 unrelated recurrent models") as info:
        fastrnn.load(path)
    assert "['then_gru']" in str(info.value) and "['else_gru']" in str(info.value)
    model = fastrnn.load(path, node="else_gru")
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    want = _run_ort(path, {"X": x})[0]
    np.testing.assert_allclose(model(x)[1], want, atol=TOL, rtol=0)
