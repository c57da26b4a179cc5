# What every recurrent kernel shares: the packed parameters of one (layer, direction)
# and the elementwise cell updates, fused so each gate value is read once from the
# gate row and never written back.
from cython cimport floating
from libc.math cimport exp, tanh


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


cdef extern from "cell_math.h" nogil:
    int fr_select_isa()
    void fr_lstm_rows_f32(int m, int H, const float* gates, int ldg, const float* bias,
                          float* c, float* h)
    void fr_gru_rows_f32(int m, int H, const float* gi, int ldg, const float* gh,
                         const float* bias, const float* b_hn, float* h)
    void fr_rnn_rows_f32(int m, int H, const float* gates, int ldg, const float* bias,
                         int relu, float* h)
    void fr_activations_f32(int n, const float* x, float* sig, float* th)


cdef inline double sigmoid_f64(double x) noexcept nogil:
    return 1.0 / (1.0 + exp(-x))


cdef inline void lstm_rows(int m, int H, const floating* gates, int ldg,
                           const floating* b, floating* c, floating* h) noexcept nogil:
    """Gate rows [i f g o] (pre-bias) of m sequences -> c updated in place,
    h = o * tanh(c)."""
    cdef int r, j
    cdef const double* g
    cdef double i_, f_, g_, o_, cj
    if floating is float:
        fr_lstm_rows_f32(m, H, gates, ldg, b, c, h)
    else:
        for r in range(m):
            g = gates + r * ldg
            for j in range(H):
                i_ = sigmoid_f64(g[j] + b[j])
                f_ = sigmoid_f64(g[H + j] + b[H + j])
                g_ = tanh(g[2 * H + j] + b[2 * H + j])
                o_ = sigmoid_f64(g[3 * H + j] + b[3 * H + j])
                cj = f_ * c[r * H + j] + i_ * g_
                c[r * H + j] = cj
                h[r * H + j] = o_ * tanh(cj)


cdef inline void gru_rows(int m, int H, const floating* gi, int ldg, const floating* gh,
                          const floating* b, const floating* b_hn,
                          floating* h) noexcept nogil:
    """gi = input gates [r z n] (pre-bias), gh = W_hh h (m, 3H, no bias) -> h in place."""
    cdef int r_, j
    cdef const double* x
    cdef const double* y
    cdef double r, z, n
    if floating is float:
        fr_gru_rows_f32(m, H, gi, ldg, gh, b, b_hn, h)
    else:
        for r_ in range(m):
            x = gi + r_ * ldg
            y = gh + r_ * 3 * H
            for j in range(H):
                r = sigmoid_f64(x[j] + y[j] + b[j])
                z = sigmoid_f64(x[H + j] + y[H + j] + b[H + j])
                n = tanh(x[2 * H + j] + b[2 * H + j] + r * (y[2 * H + j] + b_hn[j]))
                h[r_ * H + j] = (h[r_ * H + j] - n) * z + n


cdef inline void rnn_rows(int m, int H, const floating* gates, int ldg, const floating* b,
                          bint relu, floating* h) noexcept nogil:
    cdef int r, j
    cdef double a
    if floating is float:
        fr_rnn_rows_f32(m, H, gates, ldg, b, relu, h)
    else:
        for r in range(m):
            for j in range(H):
                a = gates[r * ldg + j] + b[j]
                h[r * H + j] = (a if a > 0 else 0) if relu else tanh(a)
