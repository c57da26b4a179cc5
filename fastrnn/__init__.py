"""fastrnn: fast CPU inference for PyTorch-trained LSTM, GRU and RNN models."""
from fastrnn.layers import GRU, LSTM, RNN
from fastrnn._torch import from_torch

__version__ = "0.1.0"
__all__ = ["LSTM", "GRU", "RNN", "from_torch", "__version__"]
