"""From state-dict names and shapes to the configuration of the recurrent modules in a
checkpoint. Knows torch's naming, nothing of the math."""
import re
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from fastrnn.io.errors import CheckpointError

_LAYER_KEY = re.compile(r"^(?P<prefix>.*?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
                        r"_l(?P<layer>\d+)(?P<reverse>_reverse)?$")
_CELL_KEY = re.compile(r"^(?P<prefix>.*?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh)$")
MAX_DEPTH = 64


def flatten(obj, max_depth=MAX_DEPTH):
    """{dotted key: array} for every array in nested dicts / lists / tuples, in order;
    cycles and excessive depth are refused, not followed."""
    out = OrderedDict()
    stack = [("", obj, 0)]
    active = set()
    while stack:
        prefix, node, depth = stack.pop()
        if isinstance(node, np.ndarray):
            out[prefix[:-1]] = node
            continue
        if isinstance(node, dict):
            items = list(node.items())
        elif isinstance(node, (list, tuple)):
            items = list(enumerate(node))
        else:
            continue
        if depth >= max_depth:
            raise CheckpointError(f"the checkpoint nests deeper than {max_depth} levels")
        if id(node) in active:
            raise CheckpointError("the checkpoint contains itself (a cycle)")
        active.add(id(node))
        for key, value in reversed(items):
            stack.append((f"{prefix}{key}.", value, depth + 1))
    return out


@dataclass
class RecurrentConfig:
    """A recurrent module found in a checkpoint: its key prefix, what its weights say
    of it, and its torch-named weights (prefix stripped)."""
    prefix: str
    mode: str                 # LSTM, GRU, RNN
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    bias: bool
    proj_size: int
    dtype: str
    cell: bool                # an nn.*Cell (names without _l0)
    storage: str              # how the weights are stored: float16 / bfloat16 / float32 / float64
    state_dict: OrderedDict = field(repr=False)

    def kwargs(self):
        kw = dict(num_layers=self.num_layers, bias=self.bias, bidirectional=self.bidirectional,
                  dtype=self.dtype)
        if self.mode == "LSTM":
            kw["proj_size"] = self.proj_size
        return kw

    def describe(self):
        parts = [f"{self.mode}(input_size={self.input_size}, hidden_size={self.hidden_size}"]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        if not self.bias:
            parts.append("bias=False")
        if self.proj_size:
            parts.append(f"proj_size={self.proj_size}")
        return ", ".join(parts) + f") [{self.dtype}{', a cell' if self.cell else ''}]"


def find_recurrent(tensors):
    """Every recurrent module among {dotted key: array}, by prefix, in order."""
    groups = OrderedDict()
    cells = OrderedDict()
    for key, value in tensors.items():
        m = _LAYER_KEY.match(key)
        if m:
            groups.setdefault(m["prefix"], OrderedDict())[key[len(m["prefix"]):]] = value
            continue
        m = _CELL_KEY.match(key)
        if m:
            cells.setdefault(m["prefix"], OrderedDict())[m["kind"] + "_l0"] = value
    found = OrderedDict()
    for prefix, sd in groups.items():
        found[prefix] = _configure(prefix, sd, cell=False)
    for prefix, sd in cells.items():
        if prefix not in found and "weight_ih_l0" in sd and "weight_hh_l0" in sd:
            found[prefix] = _configure(prefix, sd, cell=True)
    return found


def _configure(prefix, sd, cell):
    where = f"the recurrent weights under {prefix!r}" if prefix else "the recurrent weights"
    for key in ("weight_ih_l0", "weight_hh_l0"):
        if key not in sd:
            raise CheckpointError(f"{where}: {key} is missing (found {list(sd)})")
    layers = sorted({int(_LAYER_KEY.match(k)["layer"]) for k in sd})
    num_layers = layers[-1] + 1
    if num_layers != len(layers):  # not range(num_layers), which a layer 2**32 would fill
        raise CheckpointError(f"{where}: layers {layers[:8]}{' ...' if len(layers) > 8 else ''} "
                              f"are not 0..{num_layers - 1}")
    for key, value in sd.items():
        if value.dtype.kind != "f":
            raise CheckpointError(
                f"{where}: {prefix}{key} holds {value.dtype} values; recurrent weights are "
                "floating point (float16, bfloat16, float32 or float64)")
    w_ih, w_hh = sd["weight_ih_l0"], sd["weight_hh_l0"]
    if w_ih.ndim != 2 or w_hh.ndim != 2:
        raise CheckpointError(f"{where}: weight_ih_l0 and weight_hh_l0 must be 2-D, got "
                              f"{w_ih.shape} and {w_hh.shape}")
    rows = w_ih.shape[0]
    if "weight_hr_l0" in sd:
        if sd["weight_hr_l0"].ndim != 2:
            raise CheckpointError(
                f"{where}: {prefix}weight_hr_l0 must be 2-D, got {sd['weight_hr_l0'].shape}")
        proj_size, hidden = sd["weight_hr_l0"].shape
        if not 0 < proj_size < hidden:
            raise CheckpointError(
                f"{where}: {prefix}weight_hr_l0 of shape {(proj_size, hidden)} projects to "
                f"{proj_size}, which must lie in [1, hidden size {hidden})")
    else:
        proj_size, hidden = 0, w_hh.shape[1]
    if hidden <= 0 or rows % hidden:
        raise CheckpointError(f"{where}: {rows} gate rows for hidden size {hidden}")
    if w_ih.shape[1] == 0:
        raise CheckpointError(f"{where}: {prefix}weight_ih_l0 has shape {w_ih.shape}: no inputs")
    mode = {4: "LSTM", 3: "GRU", 1: "RNN"}.get(rows // hidden)
    if mode is None:
        raise CheckpointError(
            f"{where}: {rows // hidden} gates per hidden unit (4: LSTM, 3: GRU, 1: RNN)")
    dtype = "float64" if w_ih.dtype == np.float64 else "float32"
    return RecurrentConfig(storage=_storage(sd),
        prefix=prefix, mode=mode, input_size=int(w_ih.shape[1]), hidden_size=int(hidden),
        num_layers=num_layers, bidirectional=any(k.endswith("_reverse") for k in sd),
        bias="bias_ih_l0" in sd, proj_size=int(proj_size), dtype=dtype, cell=cell,
        state_dict=OrderedDict(sd))


def _storage(sd):
    """float16 when every weight is stored as float16; bfloat16 when every weight is a
    float32 whose low 16 bits are zero (what the reader makes of bfloat16 tensors);
    else the dtype itself."""
    arrays = list(sd.values())
    if all(a.dtype == np.float16 for a in arrays):
        return "float16"
    if all(a.dtype == np.float32 for a in arrays) and not any(
            (a.view(np.uint32) & 0xFFFF).any() for a in arrays) and any(a.any() for a in arrays):
        return "bfloat16"
    return "float64" if arrays[0].dtype == np.float64 else "float32"
