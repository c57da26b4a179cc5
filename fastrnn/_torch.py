"""Building fastrnn models from live torch modules (torch is the caller's, never
imported here)."""
from typing import Any, Optional, Union

from fastrnn.layers import GRU, LSTM, RNN

_CELLS = {"LSTMCell": LSTM, "GRUCell": GRU, "RNNCell": RNN}


def _dtypes(weight, weight_dtype):
    """(dtype, weight_dtype) for a module whose weights are `weight`'s dtype: float16 and
    bfloat16 modules compute in float32 and keep their storage, as fastrnn.load does."""
    name = str(weight.dtype).replace("torch.", "")
    if name in ("float16", "bfloat16"):
        return "float32", name if weight_dtype is None else weight_dtype
    return name, weight_dtype


def from_torch(module: Any, weight_dtype: Optional[str] = None) -> Union[LSTM, GRU, RNN]:
    """A fastrnn model with the weights and configuration of a torch module.

    torch is the caller's: fastrnn never imports it.

    Parameters
    ----------
    module : torch.nn.Module
        ``nn.LSTM``, ``nn.GRU``, ``nn.RNN``, or ``nn.LSTMCell`` / ``GRUCell`` /
        ``RNNCell``, which become one-layer models (use ``step`` for the cell's
        one-step call).
    weight_dtype : {None, "float16", "bfloat16"}, optional
        Storage of a float32 model's weights (rounded once, computed in float32).

    Returns
    -------
    LSTM, GRU or RNN
        float32 and float64 modules keep their dtype; float16 and bfloat16 modules
        become float32 models that store their weights in that type.

    Raises
    ------
    TypeError
        Any other module.

    Examples
    --------
    >>> import torch
    >>> lstm = torch.nn.LSTM(3, 4, batch_first=True)
    >>> m = fastrnn.from_torch(lstm)
    >>> m
    LSTM(3, 4, batch_first=True)
    >>> x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    >>> out, _ = m(x)
    >>> bool(np.allclose(out, lstm(torch.from_numpy(x))[0].detach().numpy(), atol=1e-5))
    True
    """
    kind = type(module).__name__
    mode = getattr(module, "mode", None)
    if kind not in _CELLS and mode not in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"):
        raise TypeError(
            "from_torch takes an nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell or "
            f"nn.RNNCell, got {kind}"
        )
    state = module.state_dict()
    if kind in _CELLS:
        dtype, weight_dtype = _dtypes(module.weight_ih, weight_dtype)
        cls = _CELLS[kind]
        kwargs = dict(bias=module.bias, dtype=dtype, weight_dtype=weight_dtype)
        if cls is RNN:
            kwargs["nonlinearity"] = module.nonlinearity
        model = cls(module.input_size, module.hidden_size, **kwargs)
        return model.load_state_dict({f"{k}_l0": v for k, v in state.items()})
    dtype, weight_dtype = _dtypes(module.weight_ih_l0, weight_dtype)
    kwargs = dict(num_layers=module.num_layers, bias=module.bias,
                  batch_first=module.batch_first, dropout=module.dropout,
                  bidirectional=module.bidirectional, dtype=dtype, weight_dtype=weight_dtype)
    if mode == "LSTM":
        model = LSTM(module.input_size, module.hidden_size,
                     proj_size=module.proj_size, **kwargs)
    elif mode == "GRU":
        model = GRU(module.input_size, module.hidden_size, **kwargs)
    else:
        model = RNN(module.input_size, module.hidden_size,
                    nonlinearity="relu" if mode == "RNN_RELU" else "tanh", **kwargs)
    return model.load_state_dict(state)
