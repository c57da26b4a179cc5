# GRU: one time step of the recurrence for the m sequences still running.
# Inline, compiled into _stack (see lstm.pxd).
from cython cimport floating
from fastrnn._kernels._blas cimport project
from fastrnn._kernels._cell cimport (CellParams, gru_cells, gru_textbook_rz,
                                     gru_textbook_n)


cdef inline void gru_step(const CellParams* p, bint fm, int m, floating* gates, int ldg,
                          floating* h, floating* c, int ldb,
                          floating* scratch) noexcept nogil:
    """gates hold W_ih x of this step; h advances in place; c is unused.

    W_hh h goes to scratch, not into the gate rows: its n part must be multiplied by r
    (with b_hn) before it meets W_in x. Layouts as in lstm_step.
    """
    cdef int H = p.hidden_size
    cdef int G = p.gate_rows
    project(fm, G, m, H, <const floating*>p.w_hh, h, ldb if fm else H, 0,
            scratch, ldb if fm else G)
    gru_cells(p.fns, fm, m, H, gates, ldg, scratch, <const floating*>p.bias,
              <const floating*>p.b_hn, h, ldb if fm else H)


cdef inline void gru_fused(const CellParams* p, int p0, int p1, bint rev, int m,
                           const float* gin, const float* x, const float* h, float* c,
                           float* h_out, float* scratch) noexcept nogil:
    """m sequences, fused kernel: input part from gin = W_ih x (panel order, as for the
    LSTM) or, when gin is NULL, W_ih's panels times x; h -> h_out (not in place)."""
    p.fns.gru_fused_f32(p0, p1, rev, m, p.panel_dtype, p.hidden_size, p.input_size,
                        p.w_ih_panels if gin == NULL else NULL, x, p.w_hh_panels,
                        <const float*>p.bias_panels, <const float*>p.b_hn_panels, gin, h,
                        h_out)


# -- the textbook GRU (reset_after=False): n = tanh(W_in x + b_n + W_hn (r * h)) ------
# Every bias is folded into p.bias; a step has two dependent products.

cdef inline void gru_textbook_step(const CellParams* p, bint fm, int m, floating* gates,
                                   int ldg, floating* h, floating* c, int ldb,
                                   floating* scratch) noexcept nogil:
    """gates hold W_ih x of this step; h advances in place; c is unused.

    W_h{r,z} h into the r and z rows (beta = 1), then r and z, r * h to scratch (laid
    out like h), W_hn (r * h) into the n rows, then n and h. Layouts as in lstm_step.
    """
    cdef int H = p.hidden_size
    cdef int lds = ldb if fm else H
    cdef const floating* w_hh = <const floating*>p.w_hh
    project(fm, 2 * H, m, H, w_hh, h, lds, 1, gates, ldg)
    gru_textbook_rz(fm, m, H, gates, ldg, <const floating*>p.bias, h, scratch, lds)
    project(fm, H, m, H, w_hh + <Py_ssize_t>2 * H * H, scratch, lds, 1,
            gates + <Py_ssize_t>2 * H * (ldg if fm else 1), ldg)
    gru_textbook_n(fm, m, H, gates, ldg, <const floating*>p.bias, h, lds)


cdef inline void grut_fused(const CellParams* p, int phase, int p0, int p1, bint rev,
                            int m, const float* gin, const float* x, const float* h,
                            float* h_out, float* scratch) noexcept nogil:
    """Phase 1 (r, z and r * h) or 2 (n and h_out) of a fused textbook step for panels
    [p0, p1); every panel's phase 1 must be done before any panel's phase 2 starts.
    scratch carries the step between them; the input part as in gru_fused."""
    p.fns.grut_fused_f32(phase, p0, p1, rev, m, p.panel_dtype, p.hidden_size,
                         p.input_size, p.w_ih_panels if gin == NULL else NULL, x,
                         p.w_hh_panels, <const float*>p.bias_panels, gin, h, scratch, h_out)
