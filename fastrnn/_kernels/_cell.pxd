# What every recurrent kernel shares: the packed parameters of one (layer, direction)
# and the elementwise cell updates, fused so each gate value is read once from the
# gate row and never written back.
from cython cimport floating
from libc.math cimport expf, exp, tanhf, tanh


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


cdef inline floating sigmoid(floating x) noexcept nogil:
    if floating is float:
        return 1.0 / (1.0 + expf(-x))
    else:
        return 1.0 / (1.0 + exp(-x))


cdef inline floating tanh_(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline void lstm_update(int H, const floating* g, const floating* b,
                             floating* c, floating* h) noexcept nogil:
    """Gate row g = [i f g o] (pre-bias) -> c updated in place, h = o * tanh(c)."""
    cdef int j
    cdef floating i_, f_, g_, o_, cj
    for j in range(H):
        i_ = sigmoid(g[j] + b[j])
        f_ = sigmoid(g[H + j] + b[H + j])
        g_ = tanh_(g[2 * H + j] + b[2 * H + j])
        o_ = sigmoid(g[3 * H + j] + b[3 * H + j])
        cj = f_ * c[j] + i_ * g_
        c[j] = cj
        h[j] = o_ * tanh_(cj)


cdef inline void gru_update(int H, const floating* gi, const floating* gh,
                            const floating* b, const floating* b_hn,
                            floating* h) noexcept nogil:
    """gi = input gates [r z n] (pre-bias), gh = W_hh h (no bias) -> h in place."""
    cdef int j
    cdef floating r, z, n
    for j in range(H):
        r = sigmoid(gi[j] + gh[j] + b[j])
        z = sigmoid(gi[H + j] + gh[H + j] + b[H + j])
        n = tanh_(gi[2 * H + j] + b[2 * H + j] + r * (gh[2 * H + j] + b_hn[j]))
        # torch's form: (h - n) * z + n, the same rounding as ATen's GRU cell
        h[j] = (h[j] - n) * z + n


cdef inline void rnn_update(int H, const floating* g, const floating* b,
                            bint relu, floating* h) noexcept nogil:
    cdef int j
    cdef floating a
    if relu:
        for j in range(H):
            a = g[j] + b[j]
            h[j] = a if a > 0 else 0
    else:
        for j in range(H):
            h[j] = tanh_(g[j] + b[j])
