# GRU: one time step of the recurrence for the m sequences still running.
from fastrnn._kernels._blas cimport matmul_bt
from fastrnn._kernels._cell cimport CellParams, fr_select_isa, gru_rows

fr_select_isa()


cdef void gru_step(const CellParams* p, int m, floating* gates, floating* h,
                   floating* c, floating* scratch) noexcept nogil:
    """gates (m, 3H) hold W_ih x of this step; h (m, H) advances in place; c unused.

    W_hh h goes to scratch (m, 3H), not into the gate rows: its n part must be
    multiplied by r (with b_hn) before it meets W_in x.
    """
    cdef int H = p.hidden_size
    cdef int G = p.gate_rows
    matmul_bt(m, G, H, h, H, <const floating*>p.w_hh, 0, scratch, G)
    gru_rows(m, H, gates, G, scratch, <const floating*>p.bias, <const floating*>p.b_hn, h)
