"""fastrnn.load: a checkpoint (or a mapping, or an ONNX model) -> the recurrent model it
holds. The small piece above fastrnn.io (files -> arrays and a configuration) and the
layers."""
import os
from collections import OrderedDict
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np

from fastrnn import io as fio
from fastrnn._checks import to_numpy
from fastrnn.layers import GRU, LSTM, MODELS, RNN

# What the weights cannot say, and may be given: (name, default)
_FREE = {"batch_first": False, "dropout": 0.0, "dtype": None, "nonlinearity": "tanh",
         "weight_dtype": None, "reset_after": None}


def _tensors(source):
    """(flat {name: array}, where it came from, from a file?)."""
    if isinstance(source, (str, bytes, os.PathLike)):
        return fio.flatten(fio.load_checkpoint(source)), os.fspath(source), True
    if hasattr(source, "read"):
        return (fio.flatten(fio.load_checkpoint(source)), getattr(source, "name", "the file"),
                True)
    if hasattr(source, "items"):
        flat = fio.flatten({k: to_numpy(v, f"[{k!r}]") if hasattr(v, "detach") else v
                            for k, v in source.items()})
        return flat, "the mapping", False
    raise TypeError(
        f"load takes a checkpoint path or a state-dict mapping, got {type(source).__name__}")


def rename_tensors(tensors, rename):
    """{new name: array}: `rename` maps the file's (dotted) names to torch's, as a mapping
    (names it does not list keep theirs) or a function (returning None drops a tensor)."""
    if rename is None:
        return tensors
    if hasattr(rename, "items"):
        bad = [(k, v) for k, v in rename.items() if not isinstance(v, str)]
        if bad:
            raise TypeError(f"rename must map names to str, got {bad[0][0]!r} -> "
                            f"{type(bad[0][1]).__name__}")
        missing = [k for k in rename if k not in tensors]
        if missing:
            raise ValueError(
                f"rename names {missing} which the checkpoint does not hold; its tensors are "
                f"{list(tensors)[:20]}{' ...' if len(tensors) > 20 else ''}")
        new_name = lambda key: rename.get(key, key)  # noqa: E731
    elif callable(rename):
        new_name = rename
    else:
        raise TypeError(f"rename must be a mapping or a function of a name, got "
                        f"{type(rename).__name__}")
    out, origin = OrderedDict(), {}
    for key, value in tensors.items():
        new = new_name(key)
        if new is None:
            continue
        if not isinstance(new, str):
            raise TypeError(f"rename({key!r}) must return a str or None, got "
                            f"{type(new).__name__}")
        if new in out:
            raise ValueError(f"rename gives two tensors the name {new!r}: {origin[new]!r} "
                             f"and {key!r}")
        out[new], origin[new] = value, key
    return out


def _pick(found, prefix, where, tensors, from_file=False):
    """The configuration of the recurrent module to load; a file that holds none, or
    several without a prefix to choose, is a CheckpointError (a mapping's a ValueError)."""
    content_error = fio.CheckpointError if from_file else ValueError
    if prefix is not None:
        want = prefix if prefix == "" or prefix.endswith(".") else prefix + "."
        if want in found:
            return found[want]
        # prefix="rnn" also finds "model.rnn." (a training checkpoint) when only one does
        nested = [p for p in found if want and p.endswith("." + want)]
        if len(nested) == 1:
            return found[nested[0]]
        if nested:
            raise ValueError(f"prefix {prefix!r} is ambiguous in {where}: it ends "
                             f"{[p.rstrip('.') for p in nested]}; give the whole prefix")
        raise ValueError(
            f"no recurrent weights under prefix {prefix!r} in {where}; found "
            f"{[p.rstrip('.') for p in found] or 'none'}")
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        names = list(tensors)[:20]
        raise content_error(
            f"no LSTM / GRU / RNN weights (weight_ih_l0, weight_hh_l0, ...) in {where}; its "
            f"tensors are {names}{' ...' if len(tensors) > 20 else ''}")
    raise content_error(
        f"{where} holds {len(found)} recurrent modules; pick one with prefix=: "
        + ", ".join(f"{p.rstrip('.')!r} ({c.describe()})" for p, c in found.items()))


def load(path_or_state_dict: Any, prefix: Optional[str] = None,
         rename: Union[Mapping[str, str], Callable[[str], Optional[str]], None] = None,
         node: Optional[str] = None, **overrides: Any) -> Union[LSTM, GRU, RNN]:
    """The fastrnn model whose weights a checkpoint holds, without torch.

    The checkpoint may be a bare state_dict, a training checkpoint (``{"model": ...,
    "optimizer": ..., "epoch": ...}``), a whole model's state_dict (embedding, head), a
    TorchScript archive, a pickle of numpy arrays, or an ONNX model: the recurrent
    weights are found by their torch names at any depth, and the architecture is read
    from their names and shapes (LSTM / GRU / RNN, sizes, num_layers, bidirectional,
    proj_size, bias).

    Parameters
    ----------
    path_or_state_dict : str, os.PathLike, binary file or mapping
        A file (torch ``.pt`` zip or legacy, safetensors, ``.npz``, numpy pickle,
        TorchScript, ONNX; recognised by content) or a mapping of names to arrays or
        tensors.
    prefix : str, optional
        Picks one module where several are present, e.g. ``prefix="encoder.rnn"`` (or
        ``"rnn"`` when only one module's prefix ends so).
    rename : mapping or callable, optional
        Maps the file's names to torch's: ``{"enc_w_ih": "encoder.weight_ih_l0"}`` or
        a function of a name (returning None drops the tensor).
    node : str, optional
        For an ONNX graph: the recurrent model holding the node of that name.
    **overrides
        What weights cannot tell: ``nonlinearity`` ("tanh", the default, or "relu")
        for an RNN, ``reset_after`` for a GRU (True, torch's form, the default; False:
        the textbook GRU, which an ONNX ``linear_before_reset=0`` node asks for itself),
        ``batch_first`` (False), ``dropout``, ``dtype`` (float32, or
        float64 for float64 weights), ``weight_dtype`` ("float16" or "bfloat16";
        weights saved in half precision keep that storage by default, losing nothing).

    Returns
    -------
    LSTM, GRU or RNN
        The model, with the checkpoint's weights.

    Raises
    ------
    CheckpointError
        The file is unreadable, corrupt, asks to run code, holds no recurrent weights,
        or several without a `prefix` to choose (the message lists them).
    ValueError
        The same problems in a mapping, or an ambiguous `prefix`.
    TypeError
        An unknown override, or arguments of the wrong kind.

    See Also
    --------
    load_checkpoint : the file's whole content as numpy arrays.

    Examples
    --------
    >>> trained = fastrnn.GRU(3, 4, num_layers=2)
    >>> sd = {"encoder." + k: v for k, v in trained.state_dict().items()}
    >>> fastrnn.load(sd)
    GRU(3, 4, num_layers=2)
    >>> np.savez(tmp / "ckpt.npz", **sd)
    >>> fastrnn.load(tmp / "ckpt.npz", batch_first=True)
    GRU(3, 4, num_layers=2, batch_first=True)
    """
    if isinstance(path_or_state_dict, (str, os.PathLike)) and fio.is_onnx(path_or_state_dict):
        if prefix is not None or rename is not None:
            raise TypeError("prefix= and rename= apply to state-dict checkpoints; pick an "
                            "ONNX graph's recurrent node with node=")
        return _load_onnx(path_or_state_dict, node, overrides)
    if node is not None:
        raise TypeError("node= picks a node of an ONNX graph; this source is not one")
    tensors, where, from_file = _tensors(path_or_state_dict)
    tensors = rename_tensors(tensors, rename)
    try:
        found = fio.find_recurrent(tensors)
    except fio.CheckpointError as exc:
        if not from_file:
            raise
        raise fio.CheckpointError(f"{where}: {exc}") from None
    config = _pick(found, prefix, where, tensors, from_file)
    return _build(config, {}, overrides, where=where if from_file else None)


def _build(config, graph_kwargs, overrides, classes=MODELS, where=None):
    """The model of `config`; where: the file the weights came from, whose weights'
    problems are then CheckpointErrors (None: the caller's own mapping)."""
    unknown = set(overrides) - set(_FREE)
    if unknown:
        raise TypeError(
            f"load() got unexpected override(s) {sorted(unknown)}; the weights fix the "
            f"architecture, only {sorted(_FREE)} may be given")
    kwargs = config.kwargs()
    kwargs.update(graph_kwargs)
    for name, value in overrides.items():
        if name == "nonlinearity" and config.mode != "RNN":
            raise ValueError(f"nonlinearity applies to an RNN; these weights are an {config.mode}")
        if name == "nonlinearity" and "nonlinearity" in graph_kwargs \
                and value not in (None, graph_kwargs["nonlinearity"]):
            raise ValueError(f"nonlinearity={value!r}: the ONNX node computes "
                             f"{graph_kwargs['nonlinearity']!r}")
        if name == "reset_after" and value is not None and config.mode != "GRU":
            raise ValueError(f"reset_after applies to a GRU; these weights are an {config.mode}")
        if name == "reset_after" and "reset_after" in graph_kwargs \
                and value not in (None, graph_kwargs["reset_after"]):
            raise ValueError(
                f"reset_after={value!r}: the ONNX node computes linear_before_reset="
                f"{int(graph_kwargs['reset_after'])} (reset_after="
                f"{graph_kwargs['reset_after']!r})")
        if value is not None:
            kwargs[name] = value
    if config.mode != "RNN":
        kwargs.pop("nonlinearity", None)
    if (overrides.get("weight_dtype") is None and kwargs["dtype"] == "float32"
            and config.storage in ("float16", "bfloat16")):
        # weights saved in half precision keep it: the same values, half the bytes to
        # stream per step
        kwargs["weight_dtype"] = config.storage
    model = classes[config.mode](config.input_size, config.hidden_size, **kwargs)
    if where is None:
        return model.load_state_dict(config.state_dict)
    try:
        return model.load_state_dict(config.state_dict)
    except (TypeError, ValueError) as exc:  # the weights, not the caller: the file's fault
        raise fio.CheckpointError(f"{where}: {exc}") from None


class _TimeReversed:
    """A model whose every layer reads time backwards (ONNX direction="reverse"): each
    sequence is reversed within its own length, run forwards, and its outputs reversed
    back, which is what the reverse direction of a bidirectional layer computes."""

    def __call__(self, x, hx=None, lengths=None):
        x = np.asarray(x)
        if x.ndim not in (2, 3):
            return super().__call__(x, hx, lengths)  # the layer's own message
        time_axis = 1 if x.ndim == 3 and self.batch_first else 0
        index = _reversal(x, time_axis, lengths)
        out, state = super().__call__(np.take_along_axis(x, index, time_axis), hx, lengths)
        return np.take_along_axis(out, index, time_axis), state

    def step(self, x_t, hx=None):
        raise ValueError(f"a {type(self).__name__} reads each sequence from its end (ONNX "
                         "direction='reverse'): it has no step-by-step form")

    def stream(self, batch=1, hx=None):
        self.step(None)


def _reversal(x, time_axis, lengths):
    """Indices along time that reverse each sequence within its length."""
    steps = x.shape[time_axis]
    batch = x.shape[1 - time_axis] if x.ndim == 3 else 1
    t = np.arange(steps)[:, None]
    if lengths is None:
        ends = np.full(batch, steps)
    else:
        ends = np.asarray(lengths)
        if ends.shape != (batch,) or ends.dtype.kind not in "iu" \
                or (ends < 1).any() or (ends > steps).any():
            raise ValueError(f"lengths must be {batch} integers in [1, {steps}], got "
                             f"{np.asarray(lengths).tolist()!r}")
    index = np.where(t < ends[None, :], ends[None, :] - 1 - t, t)     # (T, B)
    if x.ndim == 2:
        index = index[:, :1]
    elif time_axis == 1:
        index = index.T
    return index[..., None]  # broadcast over features by take_along_axis


class ReversedLSTM(_TimeReversed, LSTM):
    """An LSTM reading time backwards (an ONNX LSTM with direction="reverse")."""


class ReversedGRU(_TimeReversed, GRU):
    """A GRU reading time backwards (an ONNX GRU with direction="reverse")."""


class ReversedRNN(_TimeReversed, RNN):
    """An RNN reading time backwards (an ONNX RNN with direction="reverse")."""


_REVERSED = {"LSTM": ReversedLSTM, "GRU": ReversedGRU, "RNN": ReversedRNN}


def _load_onnx(path, node, overrides):
    graph = fio.read_onnx(path, node)
    config = fio.find_recurrent(graph.state_dict)[""]
    kwargs = dict(graph.kwargs)
    if config.mode == "GRU":  # the node says which form: an override may not contradict it
        kwargs.setdefault("reset_after", True)
    model = _build(config, kwargs, overrides,
                   _REVERSED if graph.reverse else MODELS, where=os.fspath(path))
    # the graph's constant initial_h / initial_c (torch-shaped), None when it has none:
    # calls without hx start from it, as ONNX Runtime's runs of the graph do
    model.default_state = graph.initial_state
    return model
