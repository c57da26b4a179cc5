import os

import numpy as np
import pytest

# Tests see the per-ISA defaults, not a profile `fastrnn tune` left in the user's cache
# (test_tune.py points FASTRNN_PROFILE at its own files); subprocesses inherit this.
os.environ["FASTRNN_PROFILE"] = "off"
# Subprocesses (`python -c`, `python -m fastrnn`) import the fastrnn this process imports,
# not a source tree in their working directory: in a clean clone tested against the
# installed package, the checkout's fastrnn/ has no compiled kernels. (Python >= 3.11;
# PYTHONPATH, as a development checkout uses it, still applies.)
os.environ["PYTHONSAFEPATH"] = "1"


def _torch():
    """torch, or a skip; FASTRNN_REQUIRE_TORCH=1 (set by .ci/run) turns the skip into a
    failure so that CI can never pass with the live-torch tests silently skipped."""
    try:
        import torch
    except ImportError:
        if os.environ.get("FASTRNN_REQUIRE_TORCH") == "1":
            pytest.fail("torch is required here (FASTRNN_REQUIRE_TORCH=1) but not importable")
        pytest.skip("torch is not installed")
    torch.set_num_threads(1)
    return torch


@pytest.fixture
def torch():
    return _torch()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
