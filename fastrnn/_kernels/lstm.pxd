# LSTM: one time step of the recurrence for the m sequences still running.
# Inline, so that the one extension module that links the C kernels (_stack) compiles
# these into itself: no module of their own, no second copy of the kernels.
from cython cimport floating
from fastrnn._kernels._blas cimport project
from fastrnn._kernels._cell cimport CellParams, lstm_cells


cdef inline void lstm_step(const CellParams* p, bint fm, int m, floating* gates, int ldg,
                           floating* h, floating* c, int ldb,
                           floating* scratch) noexcept nogil:
    """gates hold W_ih x + 0 of this step; h and c advance in place.

    Feature-major (fm): gates (4H, m) with row stride ldg, h (P, m), c (H, m) with row
    stride ldb. Batch-major (one sequence): gates (4H,), h (P,), c (H,).
    scratch holds o * tanh(c) before the projection, when there is one.
    """
    cdef int H = p.hidden_size
    cdef int P = p.proj_size
    cdef const floating* w_hr = <const floating*>p.w_hr
    cdef floating* h_cell = scratch if w_hr != NULL else h
    project(fm, p.gate_rows, m, P, <const floating*>p.w_hh, h, ldb if fm else P, 1,
            gates, ldg)
    lstm_cells(p.fns, fm, m, H, gates, ldg, <const floating*>p.bias, c, h_cell,
               ldb if fm else H)
    if w_hr != NULL:
        project(fm, P, m, H, w_hr, h_cell, ldb if fm else H, 0, h, ldb if fm else P)


cdef inline void lstm_fused(const CellParams* p, int p0, int p1, bint rev, int m,
                            const float* gin, const float* x, const float* h, float* c,
                            float* h_out, float* scratch) noexcept nogil:
    """m sequences, fused kernel, panels [p0, p1) of the hidden units. The input part
    is gin = W_ih x (m rows of npan*4*16, panel order: _stack's projection) or, when gin
    is NULL, W_ih's panels times x.
    h -> h_out (not in place: every panel reads all of h), c in place. With a
    projection, o * tanh(c) goes to scratch (H,) and lstm_project1 finishes the step
    once every panel is done."""
    p.fns.lstm_fused_f32(p0, p1, rev, m, p.panel_dtype, p.hidden_size, p.input_size,
                         p.proj_size, p.w_ih_panels if gin == NULL else NULL, x,
                         p.w_hh_panels, <const float*>p.bias_panels, gin, h, c,
                         scratch if p.w_hr != NULL else h_out)


cdef inline void lstm_project1(const CellParams* p, int m, const float* scratch,
                               float* h_out) noexcept nogil:
    """h_out (m, P) = W_hr (o * tanh(c)) for m sequences, when the LSTM projects."""
    if p.w_hr != NULL:
        project(False, p.proj_size, m, p.hidden_size, <const float*>p.w_hr, scratch,
                p.hidden_size, <float>0, h_out, p.proj_size)
