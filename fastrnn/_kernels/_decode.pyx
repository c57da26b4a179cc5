# Decode loops in compiled code: token in -> embedding row (or one-hot) -> the stack's
# step -> the head (Linear and elementwise activation blocks) -> argmax or a draw ->
# end-of-sequence bookkeeping, every step of a call in one nogil block. The stack is
# reached through _stack.pxd's Kernel (its nogil driver) and BLAS through _blas.pxd:
# this module links no C kernel unit of its own.
#
# The running sequences are always a prefix of the batch: when some end, the others
# move up (states included, layer by layer) and the next step runs only them.
cimport numpy as cnp
from cython cimport floating
from libc.math cimport exp, tanh, erf, sqrt, INFINITY
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memmove, memset
from cpython.pycapsule cimport PyCapsule_GetPointer

from fastrnn._kernels._blas cimport matmul_bt
from fastrnn._kernels._cell cimport FR_MAXB, fr_ftz_enter, fr_ftz_leave
from fastrnn._kernels._stack cimport Kernel, Workspace

import numpy as np

cnp.import_array()


cdef extern from "numpy/random/bitgen.h":
    # numpy's C bit-generator interface: Generator.random() is next_double
    ctypedef struct bitgen_t:
        void* state
        uint64_t (*next_uint64)(void* st) noexcept nogil
        uint32_t (*next_uint32)(void* st) noexcept nogil
        double (*next_double)(void* st) noexcept nogil
        uint64_t (*next_raw)(void* st) noexcept nogil


# The elementwise activations a head may hold between (or after) its Linear blocks,
# as torch names their modules (lower case).
ACTIVATIONS = {"identity": 0, "relu": 1, "tanh": 2, "sigmoid": 3, "gelu": 4}


cdef struct HeadLayer:
    const void* weight     # (out_features, in_features), torch's layout
    const void* bias       # (out_features,) or NULL
    int in_features, out_features
    int activation         # ACTIVATIONS code, applied after the product


cdef inline cnp.ndarray _contig(a, dtype):
    return np.ascontiguousarray(a, dtype)


cdef inline void* _data(cnp.ndarray a):
    return cnp.PyArray_DATA(a) if a is not None else NULL


cdef void activate(int code, Py_ssize_t n, floating* v) noexcept nogil:
    cdef Py_ssize_t i
    cdef double a
    if code == 1:
        for i in range(n):
            if v[i] < 0:   # NaN stays NaN, as torch's relu leaves it
                v[i] = 0
    elif code == 2:
        for i in range(n):
            v[i] = tanh(v[i])
    elif code == 3:
        for i in range(n):
            v[i] = 1.0 / (1.0 + exp(-<double>v[i]))
    elif code == 4:
        for i in range(n):
            a = v[i]
            v[i] = 0.5 * a * (1.0 + erf(a / sqrt(2.0)))


cdef void head_forward(const HeadLayer* layers, int n, int m, const floating* x, int ldx,
                       floating* buf0, floating* buf1, floating* out) noexcept nogil:
    """out (m, last out_features) = the head over m rows of x (row stride ldx); buf0 and
    buf1 hold the layers between, (m, widest) each."""
    cdef int i, b, j
    cdef const floating* src = x
    cdef int lds = ldx
    cdef floating* dst
    cdef const floating* bias
    cdef const HeadLayer* L
    for i in range(n):
        L = &layers[i]
        dst = out if i == n - 1 else (buf0 if i % 2 == 0 else buf1)
        matmul_bt(m, L.out_features, L.in_features, src, lds, <const floating*>L.weight,
                  <floating>0, dst, L.out_features)
        if L.bias != NULL:
            bias = <const floating*>L.bias
            for b in range(m):
                for j in range(L.out_features):
                    dst[<Py_ssize_t>b * L.out_features + j] += bias[j]
        if L.activation:
            activate(L.activation, <Py_ssize_t>m * L.out_features, dst)
        src = dst
        lds = L.out_features


cdef class Head:
    """A head: Linear blocks, each optionally followed by an elementwise activation,
    run over rows by BLAS in the model's dtype. layers: [(weight (out, in), bias (out,)
    or None, activation code)], already checked to chain."""
    cdef HeadLayer layers[16]
    cdef readonly int n, in_features, out_features, width
    cdef readonly object dtype
    cdef list arrays

    def __init__(self, layers, dtype):
        self.dtype = np.dtype(dtype)
        if not 1 <= len(layers) <= 16:
            raise ValueError(f"a head holds 1 to 16 Linear blocks, got {len(layers)}")
        self.arrays = []
        self.n = len(layers)
        self.width = 1
        for i, (w, b, act) in enumerate(layers):
            w = _contig(w, self.dtype)
            b = _contig(b, self.dtype) if b is not None else None
            self.arrays += [w, b]
            self.layers[i].weight = _data(w)
            self.layers[i].bias = _data(b)
            self.layers[i].out_features, self.layers[i].in_features = w.shape[0], w.shape[1]
            self.layers[i].activation = act
            if i < self.n - 1:
                self.width = max(self.width, w.shape[0])
        self.in_features = self.layers[0].in_features
        self.out_features = self.layers[self.n - 1].out_features

    def __call__(self, cnp.ndarray x):
        """x (m, in_features), C-contiguous of the head's dtype -> (m, out_features)."""
        cdef int m = x.shape[0]
        out = np.empty((m, self.out_features), self.dtype)
        b0 = np.empty((m, self.width), self.dtype)
        b1 = np.empty((m, self.width), self.dtype)
        if m:
            self.forward(m, x, out, b0, b1)
        return out

    cdef forward(self, int m, cnp.ndarray x, cnp.ndarray out, cnp.ndarray b0,
                 cnp.ndarray b1):
        cdef void* px = _data(x)
        cdef void* po = _data(out)
        cdef void* p0 = _data(b0)
        cdef void* p1 = _data(b1)
        cdef bint dbl = self.dtype == np.float64
        with nogil:
            if dbl:
                head_forward(self.layers, self.n, m, <const double*>px, self.in_features,
                             <double*>p0, <double*>p1, <double*>po)
            else:
                head_forward(self.layers, self.n, m, <const float*>px, self.in_features,
                             <float*>p0, <float*>p1, <float*>po)


# -- choosing a token -------------------------------------------------------------------

cdef int argmax(const floating* z, int V) noexcept nogil:
    """The first largest (np.argmax's choice among ties)."""
    cdef int j, best = 0
    for j in range(1, V):
        if z[j] > z[best]:
            best = j
    return best


cdef double kth_largest(double* a, int n, int k) noexcept nogil:
    """The k-th largest of a[:n] (np.partition(a, -k)[-k]); a is reordered."""
    cdef int lo = 0, hi = n - 1, want = n - k, i, j
    cdef double pivot, t
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                t = a[i]; a[i] = a[j]; a[j] = t
                i += 1
                j -= 1
        if want <= j:
            hi = j
        elif want >= i:
            lo = i
        else:
            break
    return a[want]


cdef int sample(const floating* logits, int V, double temperature, int top_k, double* z,
                double* tmp, bitgen_t* rng) noexcept nogil:
    """A draw from softmax(logits / temperature) over the top_k largest (0: all), by
    inverse CDF with one rng.random(): the same arithmetic, in the same order, as the
    NumPy form (apps._sample), so that a seed gives the same tokens."""
    cdef int j
    cdef double cut, zmax, target
    for j in range(V):
        z[j] = <double>logits[j] / temperature
    if 0 < top_k < V:
        memcpy(tmp, z, V * sizeof(double))
        cut = kth_largest(tmp, V, top_k)
        for j in range(V):
            if not z[j] >= cut:
                z[j] = -INFINITY
    zmax = z[0]
    for j in range(1, V):
        if z[j] > zmax:
            zmax = z[j]
    tmp[0] = exp(z[0] - zmax)
    for j in range(1, V):
        tmp[j] = tmp[j - 1] + exp(z[j] - zmax)
    target = rng.next_double(rng.state) * tmp[V - 1]
    for j in range(V):      # searchsorted(cdf, target, side="right")
        if tmp[j] > target:
            return j
    return V - 1


# -- the loop ---------------------------------------------------------------------------

cdef struct Loop:
    int B, steps, eos, V, n_in, P, H, L, vocab_in, step_first, top_k
    double temperature
    bitgen_t* rng            # NULL: argmax
    const void* table        # (vocab_in, I) embedding rows; NULL: one-hot over I
    void* x
    void* y
    void* b0
    void* b1
    void* logits
    void* h
    void* c                  # NULL without a cell state
    int* rows                # running slot -> sequence
    int* toks                # running slot -> its next input token
    int* alive
    long long* ids           # (B, steps) out
    int* lengths             # (B,) out
    void* gh                 # (L, FR_MAXB, P) and (L, FR_MAXB, H): one group's states
    void* gc
    void* logits_out         # (steps, B, V) or NULL
    double* z
    double* tmp


cdef void inputs(Loop* a, int m, floating* x) noexcept nogil:
    """x (m, I) = each running sequence's token as the recurrence's input."""
    cdef int b
    cdef const floating* table = <const floating*>a.table
    for b in range(m):
        if table != NULL:
            memcpy(x + <Py_ssize_t>b * a.n_in, table + <Py_ssize_t>a.toks[b] * a.n_in,
                   a.n_in * sizeof(floating))
        else:
            memset(x + <Py_ssize_t>b * a.n_in, 0, a.n_in * sizeof(floating))
            x[<Py_ssize_t>b * a.n_in + a.toks[b]] = 1


cdef void compact(Loop* a, int m, int kept, floating* h, floating* c) noexcept nogil:
    """Move the running slots (alive) up to a prefix of `kept`, their states with them:
    the states are (L, m, .) before and (L, kept, .) after. Each row moves to a place at
    or before its own, in increasing order, so nothing is overwritten before it is read."""
    cdef int b, j, l
    j = 0
    for b in range(m):
        if a.alive[b]:
            a.rows[j] = a.rows[b]
            a.toks[j] = a.toks[b]
            j += 1
    for l in range(a.L):
        j = 0
        for b in range(m):
            if a.alive[b]:
                memmove(h + (<Py_ssize_t>l * kept + j) * a.P,
                        h + (<Py_ssize_t>l * m + b) * a.P, a.P * sizeof(floating))
                if c != NULL:
                    memmove(c + (<Py_ssize_t>l * kept + j) * a.H,
                            c + (<Py_ssize_t>l * m + b) * a.H, a.H * sizeof(floating))
                j += 1


cdef void copy_rows(int L, const floating* src, int lds, floating* dst, int ldd, int n,
                    int width) noexcept nogil:
    """n rows of width values of each of L layers: layer l's rows start at l * lds * width
    in src, l * ldd * width in dst."""
    cdef int l
    for l in range(L):
        memcpy(dst + <Py_ssize_t>l * ldd * width, src + <Py_ssize_t>l * lds * width,
               <Py_ssize_t>n * width * sizeof(floating))


cdef void stack_step(floating* kind, Kernel kernel, Workspace ws, Loop* a, int m,
                     int parity, int threads) noexcept nogil:
    """One step of the stack for the first m slots. More rows than one fused call takes
    run as near-equal groups, as a Stream's batch does (Kernel.batch_groups), each
    through copies of its states: the copies cost L * (P + H) values a row against the
    step's gates * H * (I + P) products."""
    cdef int maxb = kernel.dispatch.fused_max_batch
    cdef int groups, first, end, g, k
    cdef floating* h = <floating*>a.h
    cdef floating* c = <floating*>a.c
    cdef floating* gh = <floating*>a.gh
    cdef floating* gc = <floating*>a.gc
    if m <= maxb or maxb < FR_MAXB:
        kernel.run_nogil(1, m, NULL, a.x, a.y, a.h, a.c, ws, parity, NULL, threads)
        return
    groups = (m + maxb - 1) // maxb
    first = 0
    for k in range(groups):
        end = first + (m - first) // (groups - k)
        g = end - first
        copy_rows(a.L, h + <Py_ssize_t>first * a.P, m, gh, g, g, a.P)
        if c != NULL:
            copy_rows(a.L, c + <Py_ssize_t>first * a.H, m, gc, g, g, a.H)
        kernel.run_nogil(1, g, NULL, <floating*>a.x + <Py_ssize_t>first * a.n_in,
                         <floating*>a.y + <Py_ssize_t>first * a.P, gh,
                         gc if c != NULL else NULL, ws, parity, NULL, threads)
        copy_rows(a.L, gh, g, h + <Py_ssize_t>first * a.P, m, g, a.P)
        if c != NULL:
            copy_rows(a.L, gc, g, c + <Py_ssize_t>first * a.H, m, g, a.H)
        first = end


cdef int run_loop(floating* kind, Kernel kernel, Workspace ws, Loop* a,
                  const HeadLayer* head, int n_head, int threads) noexcept nogil:
    """All steps of a decode call; returns how many steps ran (the last one's tokens
    ended every sequence, or steps were all taken)."""
    cdef int m = a.B, t, b, tok, kept, seq
    cdef int parity = 0
    cdef floating* logits = <floating*>a.logits
    cdef floating* row
    cdef floating* seen = <floating*>a.logits_out
    for t in range(a.steps):
        if t > 0 or a.step_first:
            inputs(a, m, <floating*>a.x)
            stack_step(kind, kernel, ws, a, m, parity, threads)
            parity ^= 1
            head_forward(head, n_head, m, <const floating*>a.y, a.P, <floating*>a.b0,
                         <floating*>a.b1, logits)
        kept = 0
        for b in range(m):
            row = logits + <Py_ssize_t>b * a.V
            seq = a.rows[b]
            if seen != NULL:
                memcpy(seen + (<Py_ssize_t>t * a.B + seq) * a.V, row, a.V * sizeof(floating))
            if a.rng == NULL:
                tok = argmax(row, a.V)
            else:
                tok = sample(row, a.V, a.temperature, a.top_k, a.z, a.tmp, a.rng)
            a.alive[b] = tok != a.eos
            if a.alive[b]:
                a.ids[<Py_ssize_t>seq * a.steps + a.lengths[seq]] = tok
                a.lengths[seq] += 1
                a.toks[b] = tok
                kept += 1
        if kept < m:
            compact(a, m, kept, <floating*>a.h, <floating*>a.c)
            m = kept
        if m == 0:
            return t + 1
    return a.steps


cdef class Decoder:
    """Every buffer of decode calls over `batch` sequences (or fewer) of one model:
    states, the input rows, the stack's workspace, the head's buffers and logits. Made
    once per model and batch (the apps keep them); one call at a time uses it.

    kernel: the recurrence's packed Kernel (unidirectional); has_c: whether its family
    keeps a cell state; table: (vocab_in, input_size) embedding rows, or None for
    one-hot input over input_size tokens; head: a Head ending in vocab outputs.
    """
    cdef readonly Kernel kernel
    cdef readonly Head head
    cdef readonly int batch, vocab, vocab_in, num_layers, h_size, hidden_size, input_size
    cdef readonly bint has_c
    cdef readonly object dtype
    cdef readonly cnp.ndarray h, c, table
    cdef public object source   # what the caller made it from (apps: the embedding)
    cdef cnp.ndarray gh, gc, h2, c2, x, y, b0, b1, logits, rows, toks, alive, z, tmp
    cdef Workspace ws

    def __init__(self, Kernel kernel, bint has_c, table, Head head, int batch):
        if kernel.num_directions != 1:
            raise ValueError("a decoder needs a unidirectional recurrence")
        if head.in_features != kernel.h_size:
            raise ValueError(f"the head takes {head.in_features} features, the recurrence "
                             f"gives {kernel.h_size}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.kernel, self.head, self.batch, self.has_c = kernel, head, batch, has_c
        self.dtype = kernel.dtype
        if head.dtype != self.dtype:
            raise ValueError(f"the head's dtype {head.dtype} is not the model's {self.dtype}")
        L, P, H, I = kernel.num_layers, kernel.h_size, kernel.hidden_size, kernel.input_size
        self.num_layers, self.h_size, self.hidden_size, self.input_size = L, P, H, I
        if table is not None:
            self.table = _contig(table, self.dtype)
            if self.table.ndim != 2 or self.table.shape[1] != I:
                raise ValueError(f"table must be (vocab, input_size={I}), got "
                                 f"{np.shape(table)}")
            self.vocab_in = self.table.shape[0]
        else:
            self.vocab_in = I
        self.vocab = head.out_features
        dt = self.dtype
        self.h, self.h2 = np.zeros((L, batch, P), dt), np.zeros((L, batch, P), dt)
        self.c = np.zeros((L, batch, H), dt) if has_c else None
        self.c2 = np.zeros((L, batch, H), dt) if has_c else None
        self.gh = np.zeros((L, FR_MAXB, P), dt)
        self.gc = np.zeros((L, FR_MAXB, H), dt) if has_c else None
        self.x = np.zeros((batch, I), dt)
        self.y = np.zeros((batch, P), dt)
        self.b0 = np.empty((batch, head.width), dt)
        self.b1 = np.empty((batch, head.width), dt)
        self.logits = np.empty((batch, self.vocab), dt)
        self.rows = np.empty(batch, np.intc)
        self.toks = np.empty(batch, np.intc)
        self.alive = np.empty(batch, np.intc)
        self.z = np.empty(self.vocab, np.float64)
        self.tmp = np.empty(self.vocab, np.float64)
        self.ws = kernel.workspace(1, batch)

    def set_state(self, h, c=None):
        """The states of m <= batch sequences, (L, m, P) and (L, m, H): the first m
        slots, laid out for a batch of m."""
        m = h.shape[1]
        self.h.reshape(-1)[:h.size] = h.reshape(-1)
        if self.has_c:
            self.c.reshape(-1)[:c.size] = c.reshape(-1)
        return m

    def state(self, int m):
        """Copies of the first m slots' states ((L, m, P), and (L, m, H) or None)."""
        L = self.num_layers
        h = self.h.reshape(-1)[:L * m * self.h_size].reshape(L, m, self.h_size).copy()
        if not self.has_c:
            return h, None
        return h, self.c.reshape(-1)[:L * m * self.hidden_size].reshape(
            L, m, self.hidden_size).copy()

    def set_output(self, y):
        """y (m, P): the recurrence's last outputs (a prompt's), to run the head over."""
        self.y.reshape(-1)[:y.size] = y.reshape(-1)

    def decode(self, int B, int steps, cnp.ndarray tokens, int eos, bint step_first,
               double temperature=0, int top_k=0, rng=None, bint return_logits=False):
        """Decode B sequences (their states set) for up to `steps` steps.

        step_first: each step feeds `tokens` (B,) then chooses; else the first choice is
        made from the head over the outputs set by set_output (a prompt's last step).
        eos < 0: none (every sequence takes all steps). temperature 0 (or rng None):
        argmax; else draws from rng (a numpy Generator) as apps._sample does. Returns
        (ids (B, steps) int64, lengths (B,), logits (ran, B, V) or None); a sequence's
        logits are 0 after its end.
        """
        cdef Loop a
        cdef int b, ran, threads
        cdef unsigned int mxcsr
        cdef bitgen_t* gen = NULL
        if not 1 <= B <= self.batch:
            raise ValueError(f"B must be in [1, {self.batch}], got {B}")
        ids = np.zeros((B, max(steps, 0)), np.int64)
        lengths = np.zeros(B, np.intc)
        seen = np.zeros((steps, B, self.vocab), self.dtype) if return_logits else None
        if steps <= 0:
            return ids, lengths, seen[:0] if seen is not None else None
        self.rows[:B] = np.arange(B)
        if tokens is not None:
            self.toks[:B] = tokens
        if temperature > 0:
            gen = <bitgen_t*>PyCapsule_GetPointer(rng.bit_generator.capsule, "BitGenerator")
        a.B, a.steps, a.eos, a.V, a.n_in = B, steps, eos, self.vocab, self.input_size
        a.P, a.H, a.L, a.vocab_in = self.h_size, self.hidden_size, self.num_layers, self.vocab_in
        a.step_first, a.top_k, a.temperature, a.rng = step_first, top_k, temperature, gen
        a.table = _data(self.table)
        a.x, a.y, a.b0, a.b1 = _data(self.x), _data(self.y), _data(self.b0), _data(self.b1)
        a.logits, a.h, a.c = _data(self.logits), _data(self.h), _data(self.c)
        a.rows, a.toks = <int*>_data(self.rows), <int*>_data(self.toks)
        a.alive = <int*>_data(self.alive)
        a.ids, a.lengths = <long long*>_data(ids), <int*>_data(lengths)
        a.logits_out = _data(seen)
        a.gh, a.gc = _data(self.gh), _data(self.gc)
        a.z, a.tmp = <double*>_data(self.z), <double*>_data(self.tmp)
        if not step_first:   # the first choice reads the head over the set outputs
            self.head.forward(B, self.y, self.logits, self.b0, self.b1)
        threads = self.kernel.threads_for(1, B)
        lock = rng.bit_generator.lock if gen != NULL else None
        if lock is not None:
            lock.acquire()
        try:
            with nogil:
                mxcsr = fr_ftz_enter()
                if self.kernel.is_double:
                    ran = run_loop(<double*>NULL, self.kernel, self.ws, &a,
                                   self.head.layers, self.head.n, threads)
                else:
                    ran = run_loop(<float*>NULL, self.kernel, self.ws, &a,
                                   self.head.layers, self.head.n, threads)
                fr_ftz_leave(mxcsr)
                self.kernel.release_threads(threads)
        finally:
            if lock is not None:
                lock.release()
        return ids, lengths, seen[:ran] if seen is not None else None

    def step(self, int m, cnp.ndarray tokens):
        """One step of the first m slots fed tokens (m,): the logits (m, V), a view of
        the decoder's buffer (valid until the next call)."""
        cdef Loop a
        cdef int threads
        cdef unsigned int mxcsr
        if not 1 <= m <= self.batch:
            raise ValueError(f"m must be in [1, {self.batch}], got {m}")
        self.toks[:m] = tokens
        a.n_in, a.toks, a.table = self.input_size, <int*>_data(self.toks), _data(self.table)
        a.L, a.P, a.H = self.num_layers, self.h_size, self.hidden_size
        a.x, a.y, a.h, a.c = _data(self.x), _data(self.y), _data(self.h), _data(self.c)
        a.gh, a.gc = _data(self.gh), _data(self.gc)
        threads = self.kernel.threads_for(1, m)
        with nogil:
            mxcsr = fr_ftz_enter()
            if self.kernel.is_double:
                inputs(&a, m, <double*>a.x)
                stack_step(<double*>NULL, self.kernel, self.ws, &a, m, 0, threads)
            else:
                inputs(&a, m, <float*>a.x)
                stack_step(<float*>NULL, self.kernel, self.ws, &a, m, 0, threads)
            fr_ftz_leave(mxcsr)
            self.kernel.release_threads(threads)
        self.head.forward(m, self.y, self.logits, self.b0, self.b1)
        return self.logits[:m]

    def head_logits(self, int m):
        """The head over the first m outputs set by set_output: (m, V), a view."""
        self.head.forward(m, self.y, self.logits, self.b0, self.b1)
        return self.logits[:m]

    def gather(self, int m, cnp.ndarray parents):
        """Slots j < len(parents) take the states of slots parents[j] (< m), the states
        laid out for len(parents) sequences afterwards (a beam's survivors)."""
        cdef int n = parents.shape[0]
        L = self.num_layers
        idx = np.asarray(parents, np.intp)
        for src, dst, width in ((self.h, self.h2, self.h_size),
                                (self.c, self.c2, self.hidden_size)):
            if src is None:
                continue
            old = src.reshape(-1)[:L * m * width].reshape(L, m, width)
            dst.reshape(-1)[:L * n * width].reshape(L, n, width)[...] = old[:, idx]
        self.h, self.h2 = self.h2, self.h
        if self.has_c:
            self.c, self.c2 = self.c2, self.c
