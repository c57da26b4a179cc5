"""fastrnn.load: a checkpoint (or a mapping) -> the recurrent model it holds. The small
piece above fastrnn.io (files -> arrays and a configuration) and the layers."""
import os

from fastrnn import io as fio
from fastrnn._checks import to_numpy
from fastrnn.layers import GRU, LSTM, RNN

_CLASSES = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
# What the weights cannot say, and may be given: (name, default)
_FREE = {"batch_first": False, "dropout": 0.0, "dtype": None, "nonlinearity": "tanh",
         "weight_dtype": None}


def _tensors(source):
    if isinstance(source, (str, bytes, os.PathLike)):
        return fio.flatten(fio.load_checkpoint(source)), os.fspath(source), True
    if hasattr(source, "read"):
        return fio.flatten(fio.load_checkpoint(source)), getattr(source, "name", "the file"), True
    if hasattr(source, "items"):
        flat = fio.flatten({k: to_numpy(v, f"[{k!r}]") if hasattr(v, "detach") else v
                            for k, v in source.items()})
        return flat, "the mapping", False
    raise TypeError(
        f"load takes a checkpoint path or a state-dict mapping, got {type(source).__name__}")


def load(path_or_state_dict, prefix=None, **overrides):
    """The fastrnn model whose weights a checkpoint holds.

    The checkpoint may be a bare state_dict, a training checkpoint ({"model": ...,
    "optimizer": ..., "epoch": ...}) or a whole model's state_dict (embedding, head):
    the recurrent weights are found by their torch names at any depth, and the
    architecture is read from their names and shapes (LSTM / GRU / RNN, sizes,
    num_layers, bidirectional, proj_size, bias). What weights cannot tell comes from
    `overrides`: nonlinearity ("tanh", the default, or "relu") for an RNN, batch_first
    (False), dtype (float32, or float64 for float64 weights), weight_dtype ("float16" or
    "bfloat16" to store the weights in half the memory; weights saved in float16 or
    bfloat16 keep that storage by default, losing nothing). `prefix` picks one
    module where several are present, e.g. prefix="encoder.rnn".
    """
    tensors, where, from_file = _tensors(path_or_state_dict)
    try:
        found = fio.find_recurrent(tensors)
    except fio.CheckpointError as exc:
        if not from_file:
            raise
        raise fio.CheckpointError(f"{where}: {exc}") from None
    if prefix is not None:
        want = prefix if prefix == "" or prefix.endswith(".") else prefix + "."
        if want not in found:
            raise ValueError(
                f"no recurrent weights under prefix {prefix!r} in {where}; found "
                f"{[p.rstrip('.') for p in found] or 'none'}")
        config = found[want]
    elif len(found) == 1:
        config = next(iter(found.values()))
    elif not found:
        names = list(tensors)[:20]
        raise (fio.CheckpointError if from_file else ValueError)(
            f"no LSTM / GRU / RNN weights (weight_ih_l0, weight_hh_l0, ...) in {where}; its "
            f"tensors are {names}{' ...' if len(tensors) > 20 else ''}")
    else:
        raise (fio.CheckpointError if from_file else ValueError)(
            f"{where} holds {len(found)} recurrent modules; pick one with prefix=: "
            + ", ".join(f"{p.rstrip('.')!r} ({c.describe()})" for p, c in found.items()))
    unknown = set(overrides) - set(_FREE)
    if unknown:
        raise TypeError(
            f"load() got unexpected override(s) {sorted(unknown)}; the weights fix the "
            f"architecture, only {sorted(_FREE)} may be given")
    kwargs = config.kwargs()
    for name, value in overrides.items():
        if name == "nonlinearity" and config.mode != "RNN":
            raise ValueError(f"nonlinearity applies to an RNN; these weights are an {config.mode}")
        if value is not None:
            kwargs[name] = value
    if config.mode != "RNN":
        kwargs.pop("nonlinearity", None)
    if (overrides.get("weight_dtype") is None and kwargs["dtype"] == "float32"
            and config.storage in ("float16", "bfloat16")):
        # weights saved in half precision keep it: the same values, half the bytes to
        # stream per step
        kwargs["weight_dtype"] = config.storage
    model = _CLASSES[config.mode](config.input_size, config.hidden_size, **kwargs)
    if not from_file:
        return model.load_state_dict(config.state_dict)
    try:
        return model.load_state_dict(config.state_dict)
    except (TypeError, ValueError) as exc:  # the weights, not the caller: the file's fault
        raise fio.CheckpointError(f"{where}: {exc}") from None
