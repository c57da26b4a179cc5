"""What a benchmark measures: one model shape and call shape per Case."""
import argparse
import itertools
from dataclasses import asdict, dataclass

from fastrnn._kernels.families import FAMILIES


@dataclass(frozen=True)
class Case:
    mode: str = "LSTM"          # LSTM, GRU, RNN
    input_size: int = 0         # 0: equal to hidden
    hidden: int = 128
    layers: int = 1
    bidirectional: bool = False
    batch: int = 1
    seq_len: int = 100
    dtype: str = "float32"
    streaming: bool = False     # one step call per time step, state carried
    weight_dtype: str = "float32"  # fastrnn's weight storage (peers get the same values)
    gru_form: str = "torch"     # GRU only: "torch" (reset_after=True) or "textbook"

    @property
    def inputs(self):
        return self.input_size or self.hidden

    @property
    def directions(self):
        return 2 if self.bidirectional else 1

    def flops_per_step(self):
        """Multiply-adds x 2 of one time step over the batch: input and recurrent
        products of every layer and direction (elementwise work not counted)."""
        rows = FAMILIES[self.mode].gates * self.hidden
        total = 0
        for layer in range(self.layers):
            width = self.inputs if layer == 0 else self.directions * self.hidden
            total += self.directions * 2 * self.batch * rows * (width + self.hidden)
        return total

    def input_flops_per_step(self):
        """The input projections' share of flops_per_step (a hoisted GEMM for
        sequences)."""
        rows = FAMILIES[self.mode].gates * self.hidden
        return sum(self.directions * 2 * self.batch * rows *
                   (self.inputs if layer == 0 else self.directions * self.hidden)
                   for layer in range(self.layers))

    def weight_bytes(self):
        """Bytes of weights one time step has to read at batch 1: W_hh of every layer
        and direction, and W_ih too when streaming single steps."""
        rows = FAMILIES[self.mode].gates * self.hidden
        itemsize = {"float32": 4, "float64": 8}[self.dtype]
        if self.weight_dtype in ("float16", "bfloat16"):
            itemsize = 2
        total = 0
        for layer in range(self.layers):
            width = self.inputs if layer == 0 else self.directions * self.hidden
            read = (width if self.streaming else 0) + self.hidden
            total += self.directions * rows * read * itemsize
        return total

    def label(self):
        parts = [self.mode, f"H={self.hidden}"]
        if self.input_size and self.input_size != self.hidden:
            parts.append(f"I={self.input_size}")
        if self.layers != 1:
            parts.append(f"L={self.layers}")
        if self.bidirectional:
            parts.append("bidir")
        parts += [f"B={self.batch}", f"T={self.seq_len}"]
        if self.dtype != "float32":
            parts.append(self.dtype)
        if self.weight_dtype != "float32":
            parts.append(f"w:{self.weight_dtype}")
        if self.streaming:
            parts.append("step")
        if self.mode == "GRU" and self.gru_form != "torch":
            parts.append(self.gru_form)
        return " ".join(parts)

    def as_dict(self):
        return asdict(self)


GRU_FORMS = ("torch", "textbook")
MODES = tuple(FAMILIES)   # LSTM, GRU, RNN


def int_list(text):
    """'64,128' -> [64, 128], for argparse's type=: integers >= 1, at least one."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def choice_list(allowed, upper=False):
    """An argparse type for a comma-separated list of `allowed` values (upper: taken in
    any case, as 'lstm,gru' for LSTM, GRU)."""
    def parse(text):
        values = [v.strip().upper() if upper else v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(allowed)}; got {text!r}")
        return values
    return parse


def grid(modes, hiddens, batches, seq_lens, input_sizes=(0,), layers=(1,),
         bidirectional=(False,), dtype="float32", streaming=False, weight_dtype="float32",
         gru_forms=("torch",)):
    """Every combination, in a stable order; GRU cases once per form in gru_forms."""
    return [
        Case(mode, inp, hid, lay, bi, b, t, dtype, streaming, weight_dtype, form)
        for mode, hid, b, t, inp, lay, bi in itertools.product(
            modes, hiddens, batches, seq_lens, input_sizes, layers, bidirectional)
        for form in (gru_forms if mode == "GRU" else ("torch",))
    ]


# `fastrnn bench` with no grid arguments, and what --quick shrinks it to (with 3 rounds)
DEFAULT_GRID = dict(mode=["LSTM", "GRU"], hidden=[64, 256, 512], batch=[1, 64], seq_len=[100])
QUICK_GRID = dict(hidden=[64], batch=[1], seq_len=[20], repeat=3)


def describe_grid(grid_args):
    """'LSTM,GRU, hidden 64,256,512, batch 1,64, T=100' for a help text."""
    def join(v):
        return ",".join(map(str, v))
    return (f"{join(grid_args['mode'])}, hidden {join(grid_args['hidden'])}, batch "
            f"{join(grid_args['batch'])}, T={join(grid_args['seq_len'])}")
