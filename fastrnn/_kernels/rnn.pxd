# Elman RNN (tanh or relu): one time step of the recurrence for the m sequences
# still running. Inline, compiled into _stack (see lstm.pxd).
from cython cimport floating
from fastrnn._kernels._blas cimport project
from fastrnn._kernels._cell cimport CellParams, rnn_cells


cdef inline void rnn_step(const CellParams* p, bint fm, int m, floating* gates, int ldg,
                          floating* h, floating* c, int ldb,
                          floating* scratch) noexcept nogil:
    """gates hold W_ih x of this step; h advances in place. Layouts as in lstm_step."""
    cdef int H = p.hidden_size
    project(fm, H, m, H, <const floating*>p.w_hh, h, ldb if fm else H, 1, gates, ldg)
    rnn_cells(p.fns, fm, m, H, gates, ldg, <const floating*>p.bias, p.relu, h,
              ldb if fm else H)


cdef inline void rnn_fused(const CellParams* p, int p0, int p1, bint rev, int m,
                           const float* gin, const float* x, const float* h, float* c,
                           float* h_out, float* scratch) noexcept nogil:
    """m sequences, fused kernel: input part from gin = W_ih x (panel order, as for the
    LSTM) or, when gin is NULL, W_ih's panels times x; h -> h_out (not in place)."""
    p.fns.rnn_fused_f32(p0, p1, rev, m, p.panel_dtype, p.hidden_size, p.input_size,
                        p.w_ih_panels if gin == NULL else NULL, x, p.w_hh_panels,
                        <const float*>p.bias_panels, gin, p.relu, h, h_out)
