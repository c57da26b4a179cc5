"""The engines a benchmark compares: fastrnn and its peers. Each is built from the same
torch-named weights and called on the same input; a peer that cannot be built says why
(`Unavailable`), it never stops the run."""
import importlib
import io
import warnings

import numpy as np

import fastrnn
from fastrnn.benchmark.numpy_peer import NumPyRNN

PEERS = ("numpy", "torch", "onnxruntime")


class Unavailable(Exception):
    """A peer that cannot run here (not installed, or not able to express the case)."""


def _import(name):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Unavailable(f"{name} is not installed ({exc})") from None


def build_model(case, seed=0):
    """A fastrnn model for the case with seeded, torch-initialised weights."""
    cls = {"LSTM": fastrnn.LSTM, "GRU": fastrnn.GRU, "RNN": fastrnn.RNN}[case.mode]
    weight_dtype = None if case.weight_dtype == case.dtype else case.weight_dtype
    extra = {"reset_after": case.gru_form == "torch"} if case.mode == "GRU" else {}
    model = cls(case.inputs, case.hidden, num_layers=case.layers,
                bidirectional=case.bidirectional, dtype=case.dtype, weight_dtype=weight_dtype,
                **extra)
    model._init_weights(seed)
    return model


class Engine:
    name = "?"

    def __init__(self, case, model, threads):
        self.case, self.model, self.threads = case, model, threads

    def __call__(self):
        """One timed call; returns the output for the accuracy check."""
        raise NotImplementedError


class FastRNN(Engine):
    name = "fastrnn"

    def __init__(self, case, model, threads, x):
        super().__init__(case, model, threads)
        self.x = x
        if case.streaming:
            self.stream = model.stream(batch=case.batch)
            self.out = np.empty((case.batch, case.directions * case.hidden), case.dtype)
            self.x_t = np.ascontiguousarray(x[0])

    def __call__(self):
        if self.case.streaming:
            return self.stream.step(self.x_t, out=self.out)
        return self.model(self.x)[0]


class NumPyLoop(Engine):
    name = "numpy"

    def __init__(self, case, model, threads, x):
        super().__init__(case, model, threads)
        if case.streaming:
            raise Unavailable("no streaming baseline in NumPy")
        self.x = x
        self.net = NumPyRNN(case.mode, model.state_dict(), case.layers, case.bidirectional,
                            case.hidden, model.nonlinearity, np.dtype(case.dtype),
                            reset_after=_textbook(case) is False)

    def __call__(self):
        return self.net(self.x)


class Torch(Engine):
    name = "torch"

    def __init__(self, case, model, threads, x):
        super().__init__(case, model, threads)
        if _textbook(case):
            raise Unavailable("torch has no textbook GRU (reset_after=False)")
        torch = self.torch = _import("torch")
        torch.set_num_threads(threads)
        dtype = getattr(torch, case.dtype)
        if case.streaming and case.bidirectional:
            raise Unavailable("a bidirectional model cannot stream")
        if case.streaming and case.layers == 1:
            # what a torch user streams with: the cell, its state fed back each call
            cell = getattr(torch.nn, case.mode + "Cell")(case.inputs, case.hidden, dtype=dtype)
            sd = model.state_dict()
            cell.load_state_dict({k[:-3]: torch.from_numpy(v) for k, v in sd.items()})
            self.module = cell.eval()
            self.x = torch.from_numpy(np.ascontiguousarray(x[0]))
            zeros = torch.zeros(case.batch, case.hidden, dtype=dtype)
            self.hx = (zeros, zeros.clone()) if case.mode == "LSTM" else zeros
        else:
            module = getattr(torch.nn, case.mode)(case.inputs, case.hidden, num_layers=case.layers,
                                                  bidirectional=case.bidirectional, dtype=dtype)
            module.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
            self.module = module.eval()
            self.x = torch.from_numpy(np.ascontiguousarray(x[:1]) if case.streaming else x)
            self.hx = None

    def __call__(self):
        with self.torch.inference_mode():
            if not self.case.streaming:
                return self.module(self.x)[0].numpy()
            if self.case.layers == 1:
                self.hx = self.module(self.x, self.hx)
                return (self.hx[0] if isinstance(self.hx, tuple) else self.hx).numpy()
            out, self.hx = self.module(self.x, self.hx)  # a T = 1 call, state carried
            return out[0].numpy()


class OnnxRuntime(Engine):
    name = "onnxruntime"
    # idle pool threads spin (ONNX Runtime's default) only where the engine has the
    # cores to itself (benchmark.isolated): engines measured in turn share them
    spinning = False

    def __init__(self, case, model, threads, x):
        super().__init__(case, model, threads)
        ort = _import("onnxruntime")
        if case.dtype != "float32":
            raise Unavailable("the ONNX Runtime peer is float32 only")
        feed_x = np.ascontiguousarray(x[:1]) if case.streaming else x
        proto = onnx_model(case, model, feed_x)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning",
                                      "1" if self.spinning else "0")
        self.session = ort.InferenceSession(proto, opts, providers=["CPUExecutionProvider"])
        self.feed = {"x": feed_x}
        if case.streaming:
            # the T = 1 model with state inputs, as a production stream would run it
            n = case.layers * case.directions
            self.feed["h0"] = np.zeros((n, case.batch, case.hidden), np.float32)
            if case.mode == "LSTM":
                self.feed["c0"] = np.zeros((n, case.batch, case.hidden), np.float32)

    def __call__(self):
        out = self.session.run(["y"], self.feed)[0]
        return out[0] if self.case.streaming else out


def _textbook(case):
    """Whether the case is a textbook GRU (reset_after=False)."""
    return case.mode == "GRU" and case.gru_form == "textbook"


def onnx_model(case, model, x):
    """The serialized ONNX model of `model`: exported by torch (dynamo=False) when torch
    is installed, else written with the onnx helper (always for a textbook GRU, which
    torch cannot express: a linear_before_reset=0 node)."""
    if _textbook(case):
        return _onnx_by_helper(case, model)
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return _onnx_by_helper(case, model)
    dtype = getattr(torch, case.dtype)
    module = getattr(torch.nn, case.mode)(case.inputs, case.hidden, num_layers=case.layers,
                                          bidirectional=case.bidirectional, dtype=dtype)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    n = case.layers * case.directions
    h0 = torch.zeros(n, x.shape[1], case.hidden, dtype=dtype)
    args = (torch.from_numpy(x), (h0, h0.clone()) if case.mode == "LSTM" else h0)
    names = ["x", "h0", "c0"] if case.mode == "LSTM" else ["x", "h0"]
    if not case.streaming:
        names, args = ["x"], args[:1]

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = module

        def forward(self, x, *state):
            if not state:
                return self.rnn(x)[0]
            hx = tuple(state) if case.mode == "LSTM" else state[0]
            return self.rnn(x, hx)[0]

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = (args[0], *args[1]) if case.mode == "LSTM" and len(args) > 1 else tuple(args)
        torch.onnx.export(Wrapped().eval(), flat, buf, dynamo=False, input_names=names,
                          output_names=["y"])
    return buf.getvalue()


def _onnx_by_helper(case, model):
    """The same network written with onnx.helper: one ONNX LSTM/GRU/RNN node a layer,
    gates reordered from torch's (i f g o -> i o f c; r z n -> z r h)."""
    _import("onnx")  # Unavailable, with the reason, when it is not installed
    from onnx import TensorProto, helper, numpy_helper

    H, D = case.hidden, case.directions
    order = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}[case.mode]
    sd = model.state_dict()
    op = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "RNN"}[case.mode]
    nodes, inits = [], []
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", case.inputs])]
    n = case.layers * D
    if case.streaming:
        inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, [n, "B", H]))
        if case.mode == "LSTM":
            inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, [n, "B", H]))

    def reorder(w):
        return np.concatenate([w[k * H:(k + 1) * H] for k in order])

    seq = "x"
    for layer in range(case.layers):
        Ws, Rs, Bs = [], [], []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            Ws.append(reorder(sd["weight_ih" + sfx]))
            Rs.append(reorder(sd["weight_hh" + sfx]))
            Bs.append(np.concatenate([reorder(sd["bias_ih" + sfx]), reorder(sd["bias_hh" + sfx])]))
        for name, arr in (("W", Ws), ("R", Rs), ("B", Bs)):
            inits.append(numpy_helper.from_array(np.stack(arr).astype(np.float32),
                                                 f"{name}{layer}"))
        ins = [seq, f"W{layer}", f"R{layer}", f"B{layer}"]
        if case.streaming:
            for s in (["h0", "c0"] if case.mode == "LSTM" else ["h0"]):
                # this layer's (D, B, H) slice of the (L*D, B, H) state input
                for suffix, value in (("s", layer * D), ("e", (layer + 1) * D), ("ax", 0)):
                    inits.append(numpy_helper.from_array(np.array([value]),
                                                         f"{s}_{layer}_{suffix}"))
                nodes.append(helper.make_node(
                    "Slice", [s, f"{s}_{layer}_s", f"{s}_{layer}_e", f"{s}_{layer}_ax"],
                    [f"{s}_{layer}"]))
            ins += ["", f"h0_{layer}"] + ([f"c0_{layer}"] if case.mode == "LSTM" else [])
        attrs = dict(hidden_size=H, direction="bidirectional" if D == 2 else "forward")
        if case.mode == "GRU":
            attrs["linear_before_reset"] = 0 if _textbook(case) else 1
        if case.mode == "RNN":
            attrs["activations"] = ["Relu" if model.nonlinearity == "relu" else "Tanh"] * D
        nodes.append(helper.make_node(op, ins, [f"Y{layer}"], **attrs))
        # Y is (T, D, B, H): to (T, B, D*H) for the next layer and the output
        nodes.append(helper.make_node("Transpose", [f"Y{layer}"], [f"Yt{layer}"],
                                      perm=[0, 2, 1, 3]))
        inits.append(numpy_helper.from_array(np.array([0, 0, D * H]), f"shape{layer}"))
        seq = "y" if layer == case.layers - 1 else f"seq{layer}"
        nodes.append(helper.make_node("Reshape", [f"Yt{layer}", f"shape{layer}"], [seq]))
    graph = helper.make_graph(nodes, "fastrnn_peer", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return proto.SerializeToString()


ENGINES = {"numpy": NumPyLoop, "torch": Torch, "onnxruntime": OnnxRuntime}
