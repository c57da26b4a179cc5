"""fastrnn: fast CPU inference for PyTorch-trained LSTM, GRU and RNN models."""
from fastrnn import _threads
from fastrnn._info import show_config
from fastrnn._kernels.plan import Plan
from fastrnn._load import load
from fastrnn._threads import get_num_threads, num_threads, set_num_threads
from fastrnn._torch import from_torch
from fastrnn._version import __version__
from fastrnn.io import CheckpointError, load_checkpoint
from fastrnn.layers import GRU, LSTM, RNN, Stream

__all__ = ["LSTM", "GRU", "RNN", "Stream", "from_torch", "load", "load_checkpoint",
           "CheckpointError", "Plan", "set_num_threads", "get_num_threads", "num_threads",
           "show_config", "__version__"]

_threads._set_default()
