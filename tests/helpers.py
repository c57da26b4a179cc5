import contextlib
import os
import subprocess
import sys

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
    changes.setdefault("streamed_max_batch", None)   # a profile's: not in a test's way
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


def helper_threads_started(code):
    """Run `code` in a fresh interpreter (FASTRNN_PROFILE=off, from tests/, where it
    cannot import this module) and check what it prints: the threads started by its
    last call, which must be 1 (the split's helper) where this process may use two
    CPUs."""
    env = dict(os.environ, FASTRNN_PROFILE="off")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, cwd=os.path.dirname(__file__)).stdout
    if len(os.sched_getaffinity(0)) > 1:
        assert out.strip() == "1"
