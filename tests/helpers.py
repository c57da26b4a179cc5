import contextlib

import numpy as np

import fastrnn
from fastrnn._kernels import _stack

TOL = {np.float32: 2e-5, np.float64: 1e-12}


def make_model(mode, input_size, hidden_size, seed=0, scale=0.6, **kwargs):
    """A fastrnn model of `mode` ('LSTM', 'GRU', 'RNN_TANH', 'RNN_RELU') with
    seeded weights from U(-scale, scale), returned with its torch-named state dict."""
    if mode.startswith("RNN"):
        kwargs["nonlinearity"] = "relu" if mode == "RNN_RELU" else "tanh"
        model = fastrnn.RNN(input_size, hidden_size, **kwargs)
    else:
        model = getattr(fastrnn, mode)(input_size, hidden_size, **kwargs)
    rng = np.random.default_rng(seed)
    sd = {k: rng.uniform(-scale, scale, v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(sd)
    return model, sd


def family(mode):
    return "RNN" if mode.startswith("RNN") else mode


@contextlib.contextmanager
def kernel_settings():
    """The kernels' dispatch settings (threads and split threshold, fused-path batch
    limits) restored after the block, whatever it sets; yields the module that sets
    them."""
    threads = _stack.get_kernel_threads()
    fused = _stack.get_fused_max_batch(), _stack.get_fused_x_min_batch()
    try:
        yield _stack
    finally:
        _stack.set_kernel_threads(*threads)
        _stack.set_fused_max_batch(fused[0])
        _stack.set_fused_x_min_batch(fused[1])
