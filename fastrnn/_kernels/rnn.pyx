# Elman RNN (tanh or relu): one time step of the recurrence for the m sequences
# still running.
from fastrnn._kernels._blas cimport matmul_bt
from fastrnn._kernels._cell cimport CellParams, fr_select_isa, rnn_rows

fr_select_isa()


cdef void rnn_step(const CellParams* p, int m, floating* gates, floating* h,
                   floating* c, floating* scratch) noexcept nogil:
    """gates (m, H) hold W_ih x of this step; h (m, H) advances in place."""
    cdef int H = p.hidden_size
    matmul_bt(m, H, H, h, H, <const floating*>p.w_hh, 1, gates, H)
    rnn_rows(m, H, gates, H, <const floating*>p.bias, p.relu, h)
