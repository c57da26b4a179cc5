"""ONNX models: the recurrent nodes (LSTM, GRU, RNN) of a graph -> torch-named weights
and the layer configuration they define, exactly as the ONNX operators do.

ONNX stacks a direction's gates in another order than torch (LSTM i, o, f, c against
torch's i, f, g, o; GRU z, r, h against r, z, n) and keeps both biases in one B =
[Wb, Rb]; both are mapped here. Weights are initializers or constant subgraphs of a few
shape ops, evaluated with numpy; nothing of the graph is run. External data is read
only from the model's own directory. Needs the `onnx` package (fastrnn[onnx]).
"""
import os
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from fastrnn.io.errors import CheckpointError

RECURRENT = ("LSTM", "GRU", "RNN")
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
# torch's gate blocks, as indices of ONNX's: LSTM iofc -> ifgo, GRU zrh -> rzn
TORCH_ORDER = {"LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2), "RNN": (0,)}
DEFAULT_ACTIVATIONS = {"LSTM": ("sigmoid", "tanh", "tanh"), "GRU": ("sigmoid", "tanh"),
                       "RNN": ("tanh",)}
# ops whose output is a function of their inputs' values only, evaluated on constants
CONSTANT_OPS = ("Constant", "Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape",
                "Transpose", "Concat", "Slice", "Split", "Gather")
# ops that may join one recurrent node's Y to the next one's X
JOIN_OPS = ("Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze")
MAX_ELEMENTS = 1 << 31


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ImportError(
            "reading ONNX models needs the onnx package: pip install 'fastrnn[onnx]' "
            "(or pip install onnx)") from None
    return onnx, numpy_helper


def _parse(path, buffer):
    onnx, _ = _onnx()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(bytes(buffer))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise CheckpointError(f"{path}: not a readable ONNX model ({type(exc).__name__}: "
                              f"{exc})") from None
    if not model.HasField("graph"):
        raise CheckpointError(f"{path}: an ONNX model without a graph")
    return model


class _Scope:
    """One graph's names: initializers, graph inputs, and which node makes each output;
    subgraphs (If / Loop / Scan bodies) see their parent's names too."""

    def __init__(self, graph, parent=None, path=None):
        self.graph, self.parent = graph, parent
        self.path = path if path is not None else parent.path
        self.initializers = {t.name: t for t in graph.initializer}
        self.inputs = {i.name for i in graph.input} - set(self.initializers)
        self.producers = {}
        for node in graph.node:
            for k, out in enumerate(node.output):
                if out:
                    self.producers[out] = (node, k)
        self.values = {}

    def lookup(self, name):
        scope = self
        while scope is not None:
            if name in scope.initializers or name in scope.producers or name in scope.inputs:
                return scope
            scope = scope.parent
        return None


def _tensor(scope, tensor, what):
    """An initializer or Constant's tensor as a numpy array; external data only from
    the model's directory, sized as its dims say."""
    onnx, numpy_helper = _onnx()
    count = 1
    for d in tensor.dims:
        if d < 0:
            raise CheckpointError(
                f"{scope.path}: {what} has a negative dimension {list(tensor.dims)}")
        count *= d
    if count > MAX_ELEMENTS:
        raise CheckpointError(f"{scope.path}: {what} declares {count} elements")
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        try:
            return np.array(numpy_helper.to_array(tensor))
        except Exception as exc:
            raise CheckpointError(f"{scope.path}: {what} is unreadable ({type(exc).__name__}: "
                                  f"{exc})") from None
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    parts = location.replace("\\", "/").split("/")
    if (not location or os.path.isabs(location) or location.startswith(("/", "\\"))
            or ".." in parts or ":" in parts[0]):
        raise CheckpointError(
            f"{scope.path}: {what} names external data at {location!r}: fastrnn reads external "
            "data only from files in the model's own directory")
    base = os.path.dirname(os.path.abspath(scope.path))
    target = os.path.realpath(os.path.join(base, location))
    if os.path.commonpath([os.path.realpath(base), target]) != os.path.realpath(base):
        raise CheckpointError(
            f"{scope.path}: {what}'s external data {location!r} leads out of the model's "
            "directory (a link?)")
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).newbyteorder("<")
    try:
        offset = int(info.get("offset", 0))
        length = int(info.get("length", count * dtype.itemsize))
    except ValueError:
        raise CheckpointError(f"{scope.path}: {what}'s external offset / length are not "
                              "integers") from None
    if length != count * dtype.itemsize or offset < 0:
        raise CheckpointError(
            f"{scope.path}: {what} needs {count * dtype.itemsize} bytes of external data, its "
            f"entry says {length} at offset {offset}")
    try:
        with open(target, "rb") as f:
            f.seek(offset)
            data = f.read(length)
    except OSError as exc:
        raise CheckpointError(f"{scope.path}: {what}'s external data: {exc}") from None
    if len(data) != length:
        raise CheckpointError(f"{scope.path}: {what}'s external data {location!r} ends before "
                              f"offset {offset} + {length} bytes")
    return np.frombuffer(data, dtype, count).reshape(tuple(tensor.dims)).astype(
        dtype.newbyteorder("="))


def _attrs(node):
    onnx, _ = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _ints(value, what):
    value = np.asarray(value)
    if value.dtype.kind not in "iu":
        raise CheckpointError(f"{what} must be integers, got {value.dtype}")
    return [int(v) for v in value.reshape(-1)]


def value(scope, name, what, depth=0):
    """The constant `name` as a numpy array: an initializer or a Constant, or computed from
    those by CONSTANT_OPS. Anything else feeding it is named in a CheckpointError."""
    where = scope.lookup(name)
    if where is None:
        raise CheckpointError(
            f"{scope.path}: {what} ({name!r}) is produced by nothing in the graph")
    if name in where.values:
        return where.values[name]
    if depth > 200:
        raise CheckpointError(f"{scope.path}: {what} is computed by a chain of more than 200 ops")
    if name in where.initializers:
        result = _tensor(where, where.initializers[name], f"{what} ({name!r})")
    elif name in where.inputs:
        raise CheckpointError(
            f"{scope.path}: {what} ({name!r}) is a graph input, not a constant: fastrnn reads "
            "weights stored in the model")
    else:
        node, k = where.producers[name]
        if node.op_type not in CONSTANT_OPS or node.domain not in ("", "ai.onnx"):
            raise CheckpointError(
                f"{scope.path}: {what} ({name!r}) is computed by a {node.op_type} node "
                f"({node.name!r}); fastrnn evaluates only {', '.join(CONSTANT_OPS)} on "
                "constants")
        inputs = [value(scope, i, what, depth + 1) if i else None for i in node.input]
        try:
            result = _evaluate(where, node, inputs, _attrs(node))[k]
        except CheckpointError:
            raise
        except Exception as exc:  # numpy's shape errors on a malformed graph
            raise CheckpointError(
                f"{scope.path}: {what}: its {node.op_type} node {node.name!r} fails on its "
                f"constants ({type(exc).__name__}: {exc})") from None
    where.values[name] = result
    return result


def _evaluate(scope, node, x, attrs):
    """The outputs of one op of CONSTANT_OPS (or JOIN_OPS) on numpy arrays."""
    onnx, _ = _onnx()
    op = node.op_type
    if op == "Constant":
        if "value" in attrs:
            return [_tensor(scope, attrs["value"], f"Constant {node.name!r}")]
        for key in ("value_float", "value_floats", "value_int", "value_ints"):
            if key in attrs:
                return [np.array(attrs[key], np.float32 if "float" in key else np.int64)]
        raise CheckpointError(f"{scope.path}: Constant {node.name!r}: attributes "
                              f"{sorted(attrs)} are not a numeric tensor")
    if op == "Identity":
        return [x[0]]
    if op == "Cast":
        return [x[0].astype(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))]
    if op in ("Unsqueeze", "Squeeze"):
        axes = _ints(x[1], f"{op} axes") if len(x) > 1 and x[1] is not None else \
            list(attrs.get("axes", []))
        if op == "Squeeze":
            return [np.squeeze(x[0], axis=tuple(axes) if axes else None)]
        out = x[0]
        rank = out.ndim + len(axes)
        for a in sorted(a % rank for a in axes):
            out = np.expand_dims(out, a)
        return [out]
    if op == "Reshape":
        shape = _ints(x[1], "Reshape shape")
        if not attrs.get("allowzero", 0):
            shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return [x[0].reshape(shape)]
    if op == "Transpose":
        perm = attrs.get("perm")
        return [np.transpose(x[0], list(perm) if perm else None)]
    if op == "Concat":
        return [np.concatenate([a for a in x if a is not None], axis=attrs["axis"])]
    if op == "Slice":
        data = x[0]
        if len(x) > 1:
            starts, ends = _ints(x[1], "Slice starts"), _ints(x[2], "Slice ends")
            axes = _ints(x[3], "Slice axes") if len(x) > 3 and x[3] is not None \
                else list(range(len(starts)))
            steps = _ints(x[4], "Slice steps") if len(x) > 4 and x[4] is not None \
                else [1] * len(starts)
        else:
            starts, ends = list(attrs["starts"]), list(attrs["ends"])
            axes = list(attrs.get("axes", range(len(starts))))
            steps = [1] * len(starts)
        index = [slice(None)] * data.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            index[a] = slice(s, e, st)  # numpy clamps as ONNX does
        return [data[tuple(index)]]
    if op == "Split":
        axis = attrs.get("axis", 0)
        if len(x) > 1 and x[1] is not None:
            sizes = _ints(x[1], "Split sizes")
        elif "split" in attrs:
            sizes = list(attrs["split"])
        else:
            n = attrs.get("num_outputs", len(node.output))
            size = -(-x[0].shape[axis] // n)
            sizes = [min(size, x[0].shape[axis] - i * size) for i in range(n)]
        return np.split(x[0], np.cumsum(sizes)[:-1], axis=axis)
    if op == "Gather":
        return [np.take(x[0], x[1].astype(np.int64), axis=attrs.get("axis", 0))]
    raise CheckpointError(f"{scope.path}: cannot evaluate a {op} node")


@dataclass
class Node:
    """One recurrent node, read and checked: torch-named weights of one layer."""
    name: str
    mode: str
    direction: str            # forward, reverse, bidirectional
    layout: int
    hidden_size: int
    input_size: int
    reset_after: bool         # GRU: linear_before_reset != 0 (torch's form)
    nonlinearity: str         # RNN: tanh or relu
    x: str                    # input names
    y: str
    weights: OrderedDict = field(repr=False)   # torch names, layer index 0
    initial_h: object = field(default=None, repr=False)   # (D, B, H) or None
    initial_c: object = field(default=None, repr=False)
    scope: object = field(default=None, repr=False)

    @property
    def directions(self):
        return 2 if self.direction == "bidirectional" else 1

    def describe(self):
        parts = [f"{self.mode}(input_size={self.input_size}, hidden_size={self.hidden_size}",
                 f"direction={self.direction}"]
        if self.layout:
            parts.append("layout=1")
        if self.mode == "GRU":
            parts.append(f"linear_before_reset={int(self.reset_after)}")
        if self.mode == "RNN":
            parts.append(f"nonlinearity={self.nonlinearity}")
        if self.initial_h is not None:
            parts.append("initial state")
        return ", ".join(parts) + ")"


def _read_node(scope, node, name):
    path = scope.path
    label = f"{node.op_type} node {name!r}"
    attrs = _attrs(node)
    mode = node.op_type
    ins = list(node.input) + [""] * (8 - len(node.input))
    if "clip" in attrs:
        raise CheckpointError(f"{path}: {label} sets clip={attrs['clip']}: fastrnn's kernels do "
                              "not clip the cell input (attribute 'clip' is unsupported)")
    if attrs.get("input_forget", 0):
        raise CheckpointError(f"{path}: {label} sets input_forget=1 (coupled input and forget "
                              "gates): attribute 'input_forget' is unsupported")
    for key in ("activation_alpha", "activation_beta"):
        if attrs.get(key):
            raise CheckpointError(f"{path}: {label} sets {key}: attribute {key!r} is unsupported")
    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else str(direction)
    if direction not in ("forward", "reverse", "bidirectional"):
        raise CheckpointError(f"{path}: {label}: unknown direction {direction!r}")
    dirs = 2 if direction == "bidirectional" else 1
    layout = int(attrs.get("layout", 0))
    if layout not in (0, 1):
        raise CheckpointError(f"{path}: {label}: layout must be 0 or 1, got {layout}")
    default = DEFAULT_ACTIVATIONS[mode]
    acts = [a.decode() if isinstance(a, bytes) else str(a) for a in attrs.get("activations", [])]
    acts = [a.lower() for a in acts] or list(default) * dirs
    nonlinearity = "tanh"
    if mode == "RNN" and acts == ["relu"] * dirs:
        nonlinearity = "relu"
    elif acts != list(default) * dirs:
        raise CheckpointError(
            f"{path}: {label}: activations {acts} are unsupported (attribute 'activations'); "
            f"fastrnn runs the defaults {list(default)}" + (" or Relu" if mode == "RNN" else ""))
    if mode == "LSTM" and ins[7]:
        peep = value(scope, ins[7], f"{label}'s peepholes P")
        if peep.any():
            raise CheckpointError(f"{path}: {label} has peephole weights (input 'P'): "
                                  "unsupported")
    w = value(scope, ins[1], f"{label}'s W")
    r = value(scope, ins[2], f"{label}'s R")
    gates = GATES[mode]
    if w.ndim != 3 or r.ndim != 3 or w.shape[0] != dirs or r.shape[0] != dirs \
            or r.shape[1] != w.shape[1] or r.shape[1] != gates * r.shape[2]:
        raise CheckpointError(
            f"{path}: {label}: W {w.shape} and R {r.shape} are not [{dirs}, {gates}*hidden, "
            "input] and [{dirs}, {gates}*hidden, hidden]".replace("{dirs}", str(dirs)))
    hidden = r.shape[2]
    if "hidden_size" in attrs and attrs["hidden_size"] != hidden:
        raise CheckpointError(f"{path}: {label}: hidden_size={attrs['hidden_size']} but R is "
                              f"{r.shape}")
    b = value(scope, ins[3], f"{label}'s B") if ins[3] else None
    if b is not None and b.shape != (dirs, 2 * gates * hidden):
        raise CheckpointError(f"{path}: {label}: B is {b.shape}, expected "
                              f"{(dirs, 2 * gates * hidden)}")
    for arr, what in ((w, "W"), (r, "R"), (b, "B")):
        if arr is not None and arr.dtype.kind != "f":
            raise CheckpointError(f"{path}: {label}: {what} is {arr.dtype}, not floating point")
    order = TORCH_ORDER[mode]

    def torch_rows(a):
        blocks = np.split(a, gates, axis=0)
        return np.ascontiguousarray(np.concatenate([blocks[i] for i in order], axis=0))

    weights = OrderedDict()
    for d in range(dirs):
        sfx = "_l0" + ("_reverse" if d else "")
        weights["weight_ih" + sfx] = torch_rows(w[d])
        weights["weight_hh" + sfx] = torch_rows(r[d])
        if b is not None:
            weights["bias_ih" + sfx] = torch_rows(b[d, :gates * hidden])
            weights["bias_hh" + sfx] = torch_rows(b[d, gates * hidden:])
    init = [_initial_state(scope, ins[k], f"{label}'s {name}", dirs, hidden, layout)
            for k, name in ((5, "initial_h"), (6, "initial_c"))]
    return Node(name=name, mode=mode, direction=direction, layout=layout,
                hidden_size=int(hidden), input_size=int(w.shape[2]),
                reset_after=bool(attrs.get("linear_before_reset", 0)),
                nonlinearity=nonlinearity, x=ins[0], y=node.output[0] if node.output else "",
                weights=weights, initial_h=init[0], initial_c=init[1], scope=scope)


def _initial_state(scope, name, what, dirs, hidden, layout):
    """A constant initial state as (D, B, H), or None: absent, a graph input (the caller's
    state at run time), or zeros (what the exporters write, often expanded to the batch
    the graph is given, which is zeros of any batch)."""
    if not name:
        return None
    where = scope.lookup(name)
    if where is not None and name in where.inputs:
        return None
    if where is not None and name in where.producers:
        node, _ = where.producers[name]
        if node.op_type == "Expand":
            data = value(scope, node.input[0], what)
            if not data.any():
                return None
            raise CheckpointError(f"{scope.path}: {what} is a non-zero constant expanded to a "
                                  "shape computed in the graph: unsupported")
    state = value(scope, name, what)
    if not state.any():
        return None
    if layout == 1 and state.ndim == 3:
        state = state.transpose(1, 0, 2)
    if state.ndim != 3 or state.shape[0] != dirs or state.shape[2] != hidden:
        raise CheckpointError(f"{scope.path}: {what} is {state.shape}, expected "
                              f"({dirs}, batch, {hidden}) (layout 0)")
    return np.ascontiguousarray(state)


def _walk(graph, scope, out):
    """Every recurrent node of a graph and its subgraphs, in order, with its scope."""
    onnx, _ = _onnx()
    for node in graph.node:
        if node.op_type in RECURRENT and node.domain in ("", "ai.onnx"):
            out.append((scope, node))
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else \
                list(attr.graphs) if attr.type == onnx.AttributeProto.GRAPHS else []
            for sub in subs:
                _walk(sub, _Scope(sub, scope), out)
    return out


def _previous(nodes, node):
    """The recurrent node whose Y reaches `node`'s X through JOIN_OPS only, and the ops
    on the way (last first); (None, ops) when X comes from elsewhere."""
    by_y = {n.y: n for n in nodes if n.y and n.scope is node.scope}
    name, ops = node.x, []
    for _ in range(64):
        if name in by_y:
            return by_y[name], ops
        producer = node.scope.producers.get(name)
        if producer is None or producer[0].op_type not in JOIN_OPS:
            return None, ops
        ops.append(producer[0])
        name = producer[0].input[0]
    return None, ops


def _check_join(path, prev, node, ops):
    """The ops between two nodes must turn prev's Y into node's X with torch's feature
    order (direction-major, as torch's output concatenates the directions): checked by
    running them on a marker array whose every element is its own index, at a small
    (steps, batch) and at those a Reshape fixes (the dynamo exporter writes static ones)."""
    consts = [[value(node.scope, i, f"the {op.op_type} joining {prev.name!r} and "
                                    f"{node.name!r}") if i else None for i in op.input[1:]]
              for op in reversed(ops)]
    sizes = [(3, 2)]
    for op, extra in zip(reversed(ops), consts):
        if op.op_type == "Reshape" and extra and extra[0] is not None and extra[0].size == 3:
            a, b = (int(v) for v in extra[0][:2])
            if a > 0 and b > 0:
                sizes.append((b, a) if node.layout else (a, b))
    for steps, batch in sizes:
        if _joins(prev, node, ops, consts, steps, batch):
            return
    raise CheckpointError(
        f"{path}: {node.name!r} reads {prev.name!r}'s output through "
        f"{[op.op_type for op in reversed(ops)]}, which is not the layer stacking "
        "torch exports; load one of them with node=")


def _joins(prev, node, ops, consts, steps, batch):
    shape = (batch, steps, prev.directions, prev.hidden_size) if prev.layout else \
        (steps, prev.directions, batch, prev.hidden_size)
    y = np.arange(int(np.prod(shape))).reshape(shape)
    torch_like = y.transpose(1, 0, 2, 3) if prev.layout else y.transpose(0, 2, 1, 3)
    torch_like = torch_like.reshape(steps, batch, -1)           # (T, B, D*H)
    want = torch_like.transpose(1, 0, 2) if node.layout else torch_like
    got = y
    try:
        for op, extra in zip(reversed(ops), consts):
            got = _evaluate(node.scope, op, [got] + extra, _attrs(op))[0]
    except Exception:  # the ops do not even fit these shapes
        return False
    return got.shape == want.shape and np.array_equal(got, want)


def _stacks(path, nodes):
    """Chains of nodes, each fed by the previous one's Y: the layers of one model."""
    prev_of = {}
    for node in nodes:
        prev, ops = _previous(nodes, node)
        if prev is not None:
            _check_join(path, prev, node, ops)
            if prev.name in {p.name for p in prev_of.values()}:
                raise CheckpointError(f"{path}: {prev.name!r}'s output feeds two recurrent "
                                      "nodes; load one with node=")
            prev_of[node.name] = prev
    stacks = []
    for node in nodes:
        if node.name not in prev_of:
            chain = [node]
            nexts = {p.name: n for n, p in ((n, prev_of.get(n.name)) for n in nodes) if p}
            while chain[-1].name in nexts:
                chain.append(nexts[chain[-1].name])
            stacks.append(chain)
    return stacks


@dataclass
class OnnxModel:
    """A stack of recurrent nodes as one torch-named model."""
    nodes: list
    state_dict: OrderedDict = field(repr=False)
    mode: str
    kwargs: dict              # reset_after, nonlinearity, batch_first, as the graph says
    reverse: bool             # every layer reads time backwards (direction=reverse)
    initial_state: object = field(repr=False)   # torch-shaped h0 (GRU/RNN), (h0, c0) LSTM

    def describe(self):
        return " -> ".join(n.describe() for n in self.nodes)


def _combine(path, chain, batch_first_input):
    first = chain[0]
    for node in chain[1:]:
        for key in ("mode", "direction", "layout", "reset_after", "nonlinearity"):
            if getattr(node, key) != getattr(first, key):
                raise CheckpointError(
                    f"{path}: {first.name!r} and {node.name!r} are stacked but differ in {key} "
                    f"({getattr(first, key)!r} vs {getattr(node, key)!r}); load one with node=")
        if node.hidden_size != first.hidden_size:
            raise CheckpointError(f"{path}: stacked nodes {first.name!r} and {node.name!r} "
                                  "differ in hidden_size")
    sd = OrderedDict()
    for layer, node in enumerate(chain):
        for key, w in node.weights.items():
            sd[key.replace("_l0", f"_l{layer}")] = w
    if any(n.initial_h is not None or n.initial_c is not None for n in chain):
        batch = {n.initial_h.shape[1] for n in chain if n.initial_h is not None} | \
            {n.initial_c.shape[1] for n in chain if n.initial_c is not None}
        if len(batch) > 1:
            raise CheckpointError(f"{path}: the stacked nodes' initial states disagree in batch")
        batch = batch.pop()
        dtype = first.weights["weight_hh_l0"].dtype

        def state(which):
            return np.concatenate([
                getattr(n, which) if getattr(n, which) is not None else
                np.zeros((n.directions, batch, n.hidden_size), dtype) for n in chain])
        initial = (state("initial_h"), state("initial_c")) if first.mode == "LSTM" \
            else state("initial_h")
    else:
        initial = None
    kwargs = {"batch_first": (first.layout == 1) != batch_first_input}
    if first.mode == "GRU" and not first.reset_after:
        kwargs["reset_after"] = False
    if first.mode == "RNN":
        kwargs["nonlinearity"] = first.nonlinearity
    return OnnxModel(nodes=chain, state_dict=sd, mode=first.mode, kwargs=kwargs,
                     reverse=first.direction == "reverse", initial_state=initial)


def _transposed_input(node):
    """True when the node's X is Transpose(perm=[1, 0, 2]) of a graph input: what
    torch.onnx.export writes for a batch_first module."""
    producer = node.scope.producers.get(node.x)
    if producer is None or producer[0].op_type != "Transpose":
        return False
    op = producer[0]
    perm = _attrs(op).get("perm")
    return list(perm or []) == [1, 0, 2] and op.input[0] in node.scope.inputs


def _open_model(path):
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not an ONNX model") from None
    return _parse(path, data)


def recurrent_stacks(path, model=None):
    """Every model (a stack of recurrent nodes) in an ONNX file, in graph order."""
    model = model if model is not None else _open_model(path)
    scope = _Scope(model.graph, path=os.fspath(path))
    found = _walk(model.graph, scope, [])
    # unnamed nodes (onnx.helper's default) are called by their op and position
    names = [n.name or f"{n.op_type}#{i}" for i, (_, n) in enumerate(found)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CheckpointError(f"{path}: recurrent nodes share the names {dupes}")
    nodes = [_read_node(s, n, name) for (s, n), name in zip(found, names)]
    return [_combine(os.fspath(path), chain, _transposed_input(chain[0]))
            for chain in _stacks(os.fspath(path), nodes)]


def read(path, node=None):
    """The one recurrent model of an ONNX file (or the stack holding the node named
    `node`), as an OnnxModel: torch-named weights and what the graph says of the layer."""
    path = os.fspath(path)
    stacks = recurrent_stacks(path)
    if node is not None:
        chosen = [s for s in stacks if node in [n.name for n in s.nodes]]
        if not chosen:
            raise ValueError(
                f"node={node!r}: no recurrent node of that name in {path}; its recurrent "
                f"nodes are {[n.name for s in stacks for n in s.nodes]}")
        return chosen[0]
    if len(stacks) == 1:
        return stacks[0]
    if not stacks:
        ops = sorted({n.op_type for n in _open_model(path).graph.node})[:12]
        raise CheckpointError(
            f"{path}: the ONNX graph has no LSTM, GRU or RNN node (its ops: {ops}); torch's "
            "dynamo exporter writes nn.RNN unrolled into MatMul / Add steps: export it with "
            "torch.onnx.export(..., dynamo=False), or load its state_dict")
    raise ValueError(
        f"{path} holds {len(stacks)} unrelated recurrent models; pick one with node=: "
        + "; ".join(f"{[n.name for n in s.nodes]} ({s.describe()})" for s in stacks))


def initializers(path, buffer):
    """load_checkpoint of an ONNX file: its initializers by name (external data read
    only from the model's directory)."""
    model = _parse(path, buffer)
    scope = _Scope(model.graph, path=os.fspath(path))
    return OrderedDict((t.name, _tensor(scope, t, f"initializer {t.name!r}"))
                       for t in model.graph.initializer)
