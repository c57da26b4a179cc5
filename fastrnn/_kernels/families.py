"""The recurrent cell families, each described once.

A family spec says everything that differs between LSTM, GRU and RNN outside the
cell's lane math: how many gate rows per hidden unit, whether there is a cell state,
which recurrent biases fold into the input bias, what the state looks like and which
constructor options apply. Layers, packing, the kernels' dispatch, the loader and the
applications read these fields; nothing else tests a family by name. A new family or
variant is a new spec here plus its cell epilogue in the kernels.
"""
from dataclasses import dataclass

import numpy as np

__all__ = ["FamilySpec", "LSTM", "GRU", "GRU_TEXTBOOK", "RNN", "FAMILIES", "by_gates"]


@dataclass(frozen=True)
class FamilySpec:
    name: str               # torch's class name
    kernel_id: int          # the kernels' Family enum (_stack.pyx)
    gates: int              # gate rows per hidden unit, in torch's stacked order
    gate_names: tuple       # that order
    has_cell: bool          # a cell state c beside h (LSTM)
    # Recurrent bias rows that cannot fold into the input bias: the GRU's b_hn sits
    # inside r * (W_hn h + b_hn). (first row, last row) in units of hidden_size.
    unfolded_bias: tuple = None
    projects: bool = False  # proj_size allowed (LSTM)
    nonlinearities: tuple = ("tanh",)
    # GRU forms (the `reset_after` keyword): True, torch's r * (W_hn h + b_hn); False,
    # the textbook W_hn (r * h) (Cho et al. 2014), whose step has two dependent
    # products and whose packed W_hh keeps the n rows in panels of their own
    # (packing.py). None: the family has no such choice.
    reset_after: bool = None

    def fold_biases(self, b_ih, b_hh, hidden_size):
        """(bias, b_hn): b_ih + b_hh where the equations allow, and the rows that stay
        apart (None when the family has none)."""
        bias = b_ih + b_hh
        if self.unfolded_bias is None:
            return bias, None
        lo, hi = (k * hidden_size for k in self.unfolded_bias)
        bias[lo:hi] = b_ih[lo:hi]
        return bias, np.ascontiguousarray(b_hh[lo:hi])

    def state_shapes(self, lead, batch, h_size, hidden_size):
        """(h shape, c shape or None); batch None for unbatched states."""
        mid = () if batch is None else (batch,)
        h = (lead, *mid, h_size)
        return h, ((lead, *mid, hidden_size) if self.has_cell else None)


LSTM = FamilySpec("LSTM", 0, 4, ("i", "f", "g", "o"), has_cell=True, projects=True)
GRU = FamilySpec("GRU", 1, 3, ("r", "z", "n"), has_cell=False, unfolded_bias=(2, 3),
                reset_after=True)
# The textbook GRU: b_hn sits outside r, so every recurrent bias folds.
GRU_TEXTBOOK = FamilySpec("GRU", 3, 3, ("r", "z", "n"), has_cell=False, reset_after=False)
RNN = FamilySpec("RNN", 2, 1, ("h",), has_cell=False, nonlinearities=("tanh", "relu"))

FAMILIES = {spec.name: spec for spec in (LSTM, GRU, RNN)}   # the default form of each


def gru_form(reset_after):
    """The GRU spec of a `reset_after` keyword (True: torch's form)."""
    if not isinstance(reset_after, (bool, np.bool_)):
        raise TypeError(f"reset_after must be True (torch's GRU) or False (the textbook "
                        f"GRU), got {reset_after!r}")
    return GRU if reset_after else GRU_TEXTBOOK


def by_gates(gates):
    """The family with `gates` gate rows per hidden unit, or None."""
    return next((s for s in FAMILIES.values() if s.gates == gates), None)
