"""Building fastrnn models from live torch modules (torch is the caller's, never
imported here)."""
from fastrnn.layers import GRU, LSTM, RNN

_CELLS = {"LSTMCell": LSTM, "GRUCell": GRU, "RNNCell": RNN}


def from_torch(module):
    """A fastrnn model with the weights and configuration of a torch module.

    Accepts nn.LSTM, nn.GRU, nn.RNN, and nn.LSTMCell / GRUCell / RNNCell, which become
    one-layer models (use `.step` for the cell's one-step call).
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
        dtype = str(module.weight_ih.dtype).replace("torch.", "")
        cls = _CELLS[kind]
        kwargs = dict(bias=module.bias, dtype=dtype)
        if cls is RNN:
            kwargs["nonlinearity"] = module.nonlinearity
        model = cls(module.input_size, module.hidden_size, **kwargs)
        return model.load_state_dict({f"{k}_l0": v for k, v in state.items()})
    dtype = str(module.weight_ih_l0.dtype).replace("torch.", "")
    kwargs = dict(num_layers=module.num_layers, bias=module.bias,
                  batch_first=module.batch_first, dropout=module.dropout,
                  bidirectional=module.bidirectional, dtype=dtype)
    if mode == "LSTM":
        model = LSTM(module.input_size, module.hidden_size,
                     proj_size=module.proj_size, **kwargs)
    elif mode == "GRU":
        model = GRU(module.input_size, module.hidden_size, **kwargs)
    else:
        model = RNN(module.input_size, module.hidden_size,
                    nonlinearity="relu" if mode == "RNN_RELU" else "tanh", **kwargs)
    return model.load_state_dict(state)
