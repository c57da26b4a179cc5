# What every recurrent kernel shares: the packed parameters of one (layer, direction)
# and the elementwise cell updates, fused so each gate value is read once from the
# gate row and never written back.
from cython cimport floating
from libc.math cimport exp, tanh


cdef extern from "fr_kernels.h" nogil:
    enum: FR_U
    enum: FR_MAXB
    enum: FR_GENERIC, FR_AVX2, FR_AVX512
    ctypedef struct fr_kernels:
        # one ISA's kernels (fr_kernels.h documents each entry)
        int isa
        const char* name
        void (*lstm_rows_f32)(int m, int H, const float* gates, int ldg, const float* bias,
                              float* c, float* h) noexcept nogil
        void (*gru_rows_f32)(int m, int H, const float* gi, int ldg, const float* gh,
                             const float* bias, const float* b_hn, float* h) noexcept nogil
        void (*rnn_rows_f32)(int m, int H, const float* gates, int ldg, const float* bias,
                             int relu, float* h) noexcept nogil
        void (*lstm_cols_f32)(int m, int H, const float* gates, int ldg, const float* bias,
                              float* c, float* h, int lds) noexcept nogil
        void (*gru_cols_f32)(int m, int H, const float* gi, int ldg, const float* gh,
                             const float* bias, const float* b_hn, float* h,
                             int lds) noexcept nogil
        void (*rnn_cols_f32)(int m, int H, const float* gates, int ldg, const float* bias,
                             int relu, float* h, int lds) noexcept nogil
        void (*panel_project_f32)(int wt, int G, int K, int npan, int p0, int p1,
                                  const void* w, const float* x, int ldx, int n,
                                  float* out) noexcept nogil
        void (*lstm_fused_f32)(int p0, int p1, int rev, int m, int wt, int H, int n_in, int K,
                               const void* wx, const float* x, const void* w,
                               const float* bias, const float* gin, const float* h, float* c,
                               float* h_out) noexcept nogil
        void (*gru_fused_f32)(int p0, int p1, int rev, int m, int wt, int H, int n_in,
                              const void* wx, const float* x, const void* w,
                              const float* bias, const float* b_hn, const float* gin,
                              const float* h, float* h_out) noexcept nogil
        void (*rnn_fused_f32)(int p0, int p1, int rev, int m, int wt, int H, int n_in,
                              const void* wx, const float* x, const void* w,
                              const float* bias, const float* gin, int relu, const float* h,
                              float* h_out) noexcept nogil
        void (*grut_fused_f32)(int phase, int p0, int p1, int rev, int m, int wt, int H,
                               int n_in, const void* wx, const float* x, const void* w,
                               const float* bias, const float* gin, const float* h,
                               float* scratch, float* h_out) noexcept nogil
        void (*vactivations_f32)(int n, const float* x, float* sig, float* th) noexcept nogil
    int fr_cpu_isa()
    const fr_kernels* fr_kernels_for(int isa)
    void fr_activations_f32(int n, const float* x, float* sig, float* th)
    unsigned int fr_ftz_enter()
    void fr_ftz_leave(unsigned int old)


cdef struct CellParams:
    # Pointers into arrays owned (and kept alive) by the Python layer, typed by the
    # model's dtype; void* because Cython structs cannot hold fused types.
    const void* w_ih      # (gate_rows, input_size), torch's layout
    const void* w_hh      # (gate_rows, proj_size)
    const void* bias      # (gate_rows,) b_ih + b_hh, except the GRU's n rows: b_ih only
    const void* b_hn      # (hidden_size,) GRU only: it sits inside r * (W_hn h + b_hn)
    const void* w_hr      # (proj_size, hidden_size), LSTM with proj_size, else NULL
    int input_size
    int hidden_size
    int proj_size         # width of h: hidden_size unless an LSTM projects
    int gate_rows         # 4, 3 or 1 times hidden_size
    bint relu             # RNN only
    # The fused kernel's copies (float32 only; NULL: use the BLAS step):
    const void* w_hh_panels   # W_hh in panels of FR_U units (src/cell_math_impl.h)
    const void* w_ih_panels   # W_ih the same way, for streamed single steps
    int panel_dtype           # storage of both: FR_W_F32, FR_W_F16 or FR_W_BF16
    const void* bias_panels   # bias in panel order, zero-padded
    const void* b_hn_panels   # GRU's b_hn in panel order
    Py_ssize_t panel_bytes    # W_hh's and W_ih's panels together
    # The float32 kernels of the ISA this model runs on (never NULL): chosen when the
    # model is packed, so every call goes through the table it carries.
    const fr_kernels* fns


# The fused cell updates of m running sequences, in either layout:
#   batch-major (fm False): gate rows (m, ldg), states (m, H) with row stride lds;
#   feature-major (fm True): gates (G, m) with row stride ldg, states (H, m) with
#   row stride lds.
# float32 goes to the vectorised C loops of fns (src/cell_math_impl.h), specialised
# per layout; float64 runs one strided loop per family on libm, where exactness is the point.

cdef inline double sigmoid_f64(double x) noexcept nogil:
    return 1.0 / (1.0 + exp(-x))


cdef inline void lstm_cells(const fr_kernels* fns, bint fm, int m, int H,
                            const floating* gates, int ldg, const floating* bias,
                            floating* c, floating* h, int lds) noexcept nogil:
    """c advances in place, h = o * tanh(c); gates are pre-bias [i f g o]."""
    cdef Py_ssize_t gu = ldg if fm else 1, gb = 1 if fm else ldg
    cdef Py_ssize_t su = lds if fm else 1, sb = 1 if fm else lds
    cdef int b, j
    cdef double cj
    if floating is float:
        if fm:
            fns.lstm_cols_f32(m, H, gates, ldg, bias, c, h, lds)
        else:
            fns.lstm_rows_f32(m, H, gates, ldg, bias, c, h)
    else:
        for b in range(m):
            for j in range(H):
                cj = (sigmoid_f64(gates[(H + j) * gu + b * gb] + bias[H + j]) * c[j * su + b * sb]
                      + sigmoid_f64(gates[j * gu + b * gb] + bias[j])
                      * tanh(gates[(2 * H + j) * gu + b * gb] + bias[2 * H + j]))
                c[j * su + b * sb] = cj
                h[j * su + b * sb] = (sigmoid_f64(gates[(3 * H + j) * gu + b * gb] + bias[3 * H + j])
                                      * tanh(cj))


cdef inline void gru_cells(const fr_kernels* fns, bint fm, int m, int H,
                           const floating* gi, int ldg, const floating* gh,
                           const floating* bias, const floating* b_hn, floating* h,
                           int lds) noexcept nogil:
    """gi = input gates [r z n] (pre-bias), gh = W_hh h (no bias, laid out like the
    states: (m, 3H) rows or (3H, m) with stride lds) -> h in place."""
    cdef Py_ssize_t gu = ldg if fm else 1, gb = 1 if fm else ldg
    cdef Py_ssize_t hu = lds if fm else 1, hb = 1 if fm else 3 * H
    cdef Py_ssize_t su = lds if fm else 1, sb = 1 if fm else lds
    cdef int b, j
    cdef double r, z, n
    if floating is float:
        if fm:
            fns.gru_cols_f32(m, H, gi, ldg, gh, bias, b_hn, h, lds)
        else:
            fns.gru_rows_f32(m, H, gi, ldg, gh, bias, b_hn, h)
    else:
        for b in range(m):
            for j in range(H):
                r = sigmoid_f64(gi[j * gu + b * gb] + gh[j * hu + b * hb] + bias[j])
                z = sigmoid_f64(gi[(H + j) * gu + b * gb] + gh[(H + j) * hu + b * hb]
                                + bias[H + j])
                n = tanh(gi[(2 * H + j) * gu + b * gb] + bias[2 * H + j]
                         + r * (gh[(2 * H + j) * hu + b * hb] + b_hn[j]))
                # torch's form: (h - n) * z + n, the same rounding as ATen's GRU cell
                h[j * su + b * sb] = (h[j * su + b * sb] - n) * z + n


cdef inline void rnn_cells(const fr_kernels* fns, bint fm, int m, int H,
                           const floating* gates, int ldg, const floating* bias, bint relu,
                           floating* h, int lds) noexcept nogil:
    cdef Py_ssize_t gu = ldg if fm else 1, gb = 1 if fm else ldg
    cdef Py_ssize_t su = lds if fm else 1, sb = 1 if fm else lds
    cdef int b, j
    cdef double a
    if floating is float:
        if fm:
            fns.rnn_cols_f32(m, H, gates, ldg, bias, relu, h, lds)
        else:
            fns.rnn_rows_f32(m, H, gates, ldg, bias, relu, h)
    else:
        for b in range(m):
            for j in range(H):
                a = gates[j * gu + b * gb] + bias[j]
                h[j * su + b * sb] = (a if a > 0 else 0) if relu else tanh(a)


# The textbook GRU's cell loops (reset_after=False), both dtypes, in the layouts above;
# gates hold W_ih x + W_h{r,z} h (r, z rows) and later W_ih x + W_hn (r * h) (n rows),
# before the bias, which holds every recurrent bias. Plain loops: the textbook GRU's
# BLAS path runs batches the fused kernel does not take, where the products dominate.

cdef inline void gru_textbook_rz(bint fm, int m, int H, floating* gates, int ldg,
                                 const floating* bias, const floating* h, floating* rh,
                                 int lds) noexcept nogil:
    """r and z: z replaces its gate row, r * h goes to rh (laid out like h)."""
    cdef Py_ssize_t gu = ldg if fm else 1, gb = 1 if fm else ldg
    cdef Py_ssize_t su = lds if fm else 1, sb = 1 if fm else lds
    cdef int b, j
    cdef floating r
    for j in range(H):
        for b in range(m):
            r = <floating>(1.0 / (1.0 + exp(-(gates[j * gu + b * gb] + bias[j]))))
            gates[(H + j) * gu + b * gb] = <floating>(
                1.0 / (1.0 + exp(-(gates[(H + j) * gu + b * gb] + bias[H + j]))))
            rh[j * su + b * sb] = r * h[j * su + b * sb]


cdef inline void gru_textbook_n(bint fm, int m, int H, const floating* gates, int ldg,
                                const floating* bias, floating* h, int lds) noexcept nogil:
    """n and h in place, z from its gate row (gru_textbook_rz)."""
    cdef Py_ssize_t gu = ldg if fm else 1, gb = 1 if fm else ldg
    cdef Py_ssize_t su = lds if fm else 1, sb = 1 if fm else lds
    cdef int b, j
    cdef floating n
    for j in range(H):
        for b in range(m):
            n = <floating>tanh(gates[(2 * H + j) * gu + b * gb] + bias[2 * H + j])
            # torch's form of the update, (h - n) * z + n
            h[j * su + b * sb] = (h[j * su + b * sb] - n) * gates[(H + j) * gu + b * gb] + n
