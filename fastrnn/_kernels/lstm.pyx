# LSTM: one time step of the recurrence for the m sequences still running.
from fastrnn._kernels._blas cimport matmul_bt
from fastrnn._kernels._cell cimport CellParams, fr_select_isa, lstm_rows

fr_select_isa()


cdef void lstm_step(const CellParams* p, int m, floating* gates, floating* h,
                    floating* c, floating* scratch) noexcept nogil:
    """gates (m, 4H) hold W_ih x of this step; h (m, P) and c (m, H) advance in place.

    scratch is (m, H): o * tanh(c) before the projection, when there is one.
    """
    cdef int H = p.hidden_size
    cdef int P = p.proj_size
    cdef int G = p.gate_rows
    cdef const floating* bias = <const floating*>p.bias
    cdef const floating* w_hr = <const floating*>p.w_hr
    cdef floating* h_cell = scratch if w_hr != NULL else h
    matmul_bt(m, G, P, h, P, <const floating*>p.w_hh, 1, gates, G)
    lstm_rows(m, H, gates, G, bias, c, h_cell)
    if w_hr != NULL:
        matmul_bt(m, P, H, h_cell, H, w_hr, 0, h, P)
