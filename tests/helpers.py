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


def with_plan(model, **changes):
    """`model` with its dispatch plan changed (the fused kernels on, up to their largest
    batch, even under FASTRNN_KERNEL=blas or FASTRNN_ISA=generic, whose default runs no
    batch fused, unless `fused` or `fused_max_batch` is given); it repacks on its next
    call."""
    changes.setdefault("fused", True)
    changes.setdefault("fused_max_batch", _stack.FUSED_BATCH_LIMIT)
    model.plan = fastrnn.Plan.default().replace(**changes)
    return model


@contextlib.contextmanager
def kernel_threads(n):
    """The kernels may split a call across n (1 or 2) cores inside the block."""
    before = _stack.get_kernel_threads()
    _stack.set_kernel_threads(n)
    try:
        yield
    finally:
        _stack.set_kernel_threads(before)
