# The sequence driver shared by every cell family: chunked input projection, the
# time scan over packed (length-sorted) batches, bidirectional halves, stacked layers.
# One copy of this loop serves LSTM, GRU and RNN; the families differ only in their
# step function (lstm.pxd, gru.pxd, rnn.pxd), picked by a switch that costs nothing
# next to a step's matrix product.
cimport numpy as cnp
from cython cimport floating
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from fastrnn._kernels._blas cimport gemm, project, NoTrans, Trans
from fastrnn._kernels._cell cimport (CellParams, FR_U, FR_MAXB, fr_kernels, fr_cpu_isa,
                                     fr_kernels_for, fr_activations_f32, fr_ftz_enter,
                                     fr_ftz_leave)
from fastrnn._kernels.lstm cimport lstm_step, lstm_step1, lstm_project1
from fastrnn._kernels.gru cimport gru_step, gru_step1
from fastrnn._kernels.rnn cimport rnn_step, rnn_step1

cnp.import_array()

cdef extern from "parallel.h" nogil:
    ctypedef void (*fr_task_fn)(void* arg, int part) noexcept nogil
    int fr_pool_acquire()
    void fr_pool_release()
    void fr_pool_run(fr_task_fn fn, void* arg)

# Threads a small-batch step may use (1 or 2: the caller and one helper), and the
# hidden size from which splitting it pays. Measured (python bench/run.py split and
# hidden 32-96 the same way: batch 1, float32, one core vs two, interleaved, three
# runs): a loss at 32 (0.6-0.9x), even at 64 (1.1x), 0.8-1.5x at 96-128 depending on
# the run (a shared machine's other load decides whether the helper's core is free),
# and 1.5-2.4x in every run from 256 up, for sequences and step calls alike. Measured
# again after the batch-1 kernels got 20-30% faster: 1.2-1.65x at 80-160 in one hour,
# 0.5-0.8x in the next (the barrier's wake-up cost went from ~0.1 to ~1 us a step when
# the VM's second core was contended), 1.2-1.7x at 256 in both: 256 stays.
cdef int _kernel_threads = 1
cdef int _split_min_hidden = 256
# Batches of several sequences give the helper more work per barrier: measured the
# same way (2 threads, T=50, split vs not, median of three interleaved runs), the split
# pays once hidden^2 * batch reaches 16384: 1.2-1.3x at hidden 32 and batch 16, 1.3-1.5x
# at 64 and 4-8, 1.5-1.9x at 128 from batch 2; it lost (0.7-0.9x) at 32 below batch 16.
cdef inline bint _split_pays(int hidden, int B) noexcept nogil:
    return hidden >= _split_min_hidden or (
        B >= 2 and hidden > FR_U and <long long>hidden * hidden * B >= 16384)


# From this batch on, a fused sequence also takes W_ih x from the packed W_ih panels
# at every step instead of one hoisted GEMM per chunk: with 16+ sequences per weight
# load the fused product runs nearer the FMA peak than OpenBLAS's sgemm does on these
# shapes (1 thread, T=50, LSTM/GRU H 64-512: 1.0-1.12x at 16-64; at 4-8 it loses up
# to 5% at H >= 256; at batch 1 the GEMM, reading W_ih once per chunk, wins by far).
cdef int _fused_x_min_batch = 16


def set_fused_x_min_batch(int n):
    """Fused batches of at least n sequences read W_ih's panels at every step."""
    global _fused_x_min_batch
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    _fused_x_min_batch = n


def get_fused_x_min_batch():
    return _fused_x_min_batch


def set_kernel_threads(int n, int min_hidden=-1):
    """Split small-batch steps across two cores when n >= 2, from min_hidden units up."""
    global _kernel_threads, _split_min_hidden
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _kernel_threads = 2 if n >= 2 else 1
    if min_hidden >= 0:
        _split_min_hidden = min_hidden


def get_kernel_threads():
    return _kernel_threads, _split_min_hidden


ISA_NAMES = ("generic", "avx2", "avx512")   # index: FR_GENERIC, FR_AVX2, FR_AVX512


def cpu_isa():
    """The widest instruction set this CPU runs and this build has."""
    return ISA_NAMES[fr_cpu_isa()]


def _isa_index(name, what="isa"):
    """FR_* index of an ISA name this CPU runs, or a ValueError naming what was asked."""
    if name not in ISA_NAMES:
        raise ValueError(f"{what} must be one of {', '.join(ISA_NAMES)}, got {name!r}")
    if fr_kernels_for(ISA_NAMES.index(name)) == NULL:
        raise ValueError(f"{what} {name!r} is not available on this CPU "
                         f"(it runs up to {cpu_isa()!r})")
    return ISA_NAMES.index(name)


def _isa_from_environment():
    """The CPU's widest ISA, capped by FASTRNN_ISA (generic / avx2 / avx512; empty or
    'auto': no cap). Read when a Kernel is made."""
    import os
    cap = os.environ.get("FASTRNN_ISA", "")
    if cap in ("", "auto"):
        return fr_cpu_isa()
    if cap not in ISA_NAMES:
        raise ValueError(f"FASTRNN_ISA must be one of auto, {', '.join(ISA_NAMES)}, "
                         f"got {cap!r}")
    return min(ISA_NAMES.index(cap), fr_cpu_isa())


# Largest batch that runs through the fused kernel (FR_MAXB at most); larger batches
# use BLAS. Measured per ISA (1 thread, T=50, H 64-512, LSTM and GRU, BLAS -> fused
# us/step): AVX-512 multiplies 6 sequences per weight load and wins everywhere up to
# 64 (3.3x at batch 2-4, 1.2x at 16, LSTM 1.05-1.14x and GRU 0.98-1.07x at 64: the
# packing OpenBLAS redoes every step is saved); AVX2 (FASTRNN_ISA=avx2 on the same
# machine, against OpenBLAS's AVX-512 sgemm) multiplies up to 6 sequences per weight
# load, one gate at a time, and wins up to 12 (1.1-1.9x at 3-12, 0.8-0.9x at 16);
# the SSE build loses to OpenBLAS from batch 1 on sequences.
# FASTRNN_FUSED_MAX_BATCH or set_fused_max_batch() override it.
_FUSED_MAX_BATCH_BY_ISA = {0: 0, 1: 12, 2: 64}
cdef int _fused_max_batch = _FUSED_MAX_BATCH_BY_ISA[_isa_from_environment()]


def set_fused_max_batch(int n):
    """Batches up to n sequences (0 <= n <= 64) run through the fused kernel."""
    global _fused_max_batch
    if not 0 <= n <= FR_MAXB:
        raise ValueError(f"n must lie in [0, {FR_MAXB}], got {n}")
    _fused_max_batch = n


def get_fused_max_batch():
    return _fused_max_batch


def _fused_max_batch_from_environment():
    import os
    text = os.environ.get("FASTRNN_FUSED_MAX_BATCH")
    if text:
        try:
            set_fused_max_batch(int(text))
        except ValueError:
            raise ValueError(
                f"FASTRNN_FUSED_MAX_BATCH must be an int in [0, {FR_MAXB}], got {text!r}") from None


_fused_max_batch_from_environment()


# Hidden units per panel of the fused batch-1 kernel's packed weights.
PANEL_UNITS = FR_U
# Most sequences one fused call advances (set_fused_max_batch's bound).
FUSED_BATCH_LIMIT = FR_MAXB


def isa():
    """The instruction set of the float32 cell loops a model made now runs on:
    'avx512', 'avx2' or 'generic'."""
    return ISA_NAMES[_isa_from_environment()]


def _activations_f32(float[::1] x, bint vector=False, isa=None):
    """(sigmoid(x), tanh(x)) by the kernels' float32 math: the scalar form of the cell
    loops, or (vector) the fused kernels' lanes on the given ISA ('generic', 'avx2',
    'avx512'; default: the one models get); for the accuracy tests."""
    import numpy as np
    cdef const fr_kernels* fns = fr_kernels_for(
        _isa_from_environment() if isa is None else _isa_index(isa))
    sig = np.empty(x.shape[0], np.float32)
    th = np.empty(x.shape[0], np.float32)
    cdef float[::1] s = sig
    cdef float[::1] t = th
    cdef unsigned int mode
    if x.shape[0]:
        if vector:  # as in a kernel call: flush-to-zero, denormals-are-zero
            mode = fr_ftz_enter()
            fns.vactivations_f32(x.shape[0], &x[0], &s[0], &t[0])
            fr_ftz_leave(mode)
        else:
            fr_activations_f32(x.shape[0], &x[0], &s[0], &t[0])
    return sig, th

cpdef enum Family:
    LSTM = 0
    GRU = 1
    RNN = 2


cdef inline void cell_step(Family family, const CellParams* p, bint fm, int m,
                           floating* gates, int ldg, floating* h, floating* c, int ldb,
                           floating* scratch) noexcept nogil:
    if family == LSTM:
        lstm_step(p, fm, m, gates, ldg, h, c, ldb, scratch)
    elif family == GRU:
        gru_step(p, fm, m, gates, ldg, h, c, ldb, scratch)
    else:
        rnn_step(p, fm, m, gates, ldg, h, c, ldb, scratch)


cdef inline int num_panels(const CellParams* p) noexcept nogil:
    return (p.hidden_size + FR_U - 1) // FR_U


cdef inline int panel_rows(const CellParams* p) noexcept nogil:
    """Gate rows of one sequence in panel order: hidden padded to whole panels (the
    fused path's hoisted projection; layers.py sizes the workspace for it)."""
    return num_panels(p) * FR_U * (p.gate_rows // p.hidden_size)


cdef inline void cell_step1(Family family, const CellParams* p, int p0, int p1, bint rev,
                            int m, const float* gin, const float* x, const float* h,
                            float* c, float* h_out, float* scratch) noexcept nogil:
    if family == LSTM:
        lstm_step1(p, p0, p1, rev, m, gin, x, h, c, h_out, scratch)
    elif family == GRU:
        gru_step1(p, p0, p1, rev, m, gin, x, h, c, h_out, scratch)
    else:
        rnn_step1(p, p0, p1, rev, m, gin, x, h, c, h_out, scratch)


cdef struct Step1:
    # one fused step, for the two halves of a split (parallel.h)
    Family family
    const CellParams* p
    int m
    const float* gin
    const float* x
    const float* h
    float* c
    float* h_out
    float* scratch
    int npan
    bint rev


cdef void step1_half(void* arg, int part) noexcept nogil:
    cdef Step1* a = <Step1*>arg
    cdef int half = (a.npan + 1) // 2
    if part == 0:
        cell_step1(a.family, a.p, 0, half, a.rev, a.m, a.gin, a.x, a.h, a.c, a.h_out,
                   a.scratch)
    else:
        cell_step1(a.family, a.p, half, a.npan, a.rev, a.m, a.gin, a.x, a.h, a.c, a.h_out,
                   a.scratch)


cdef struct Projection:
    # the fused path's hoisted input projection of a chunk, in panel order
    int wt, G, K, npan, ldx, n
    const fr_kernels* fns
    const void* w
    const float* x
    float* out


cdef void project_half(void* arg, int part) noexcept nogil:
    """Panels [0, half) or [half, npan) of a Projection (two cores)."""
    cdef Projection* a = <Projection*>arg
    cdef int half = (a.npan + 1) // 2
    a.fns.panel_project_f32(a.wt, a.G, a.K, a.npan, 0 if part == 0 else half,
                            half if part == 0 else a.npan, a.w, a.x, a.ldx, a.n, a.out)


cdef inline void fused_step1(Family family, const CellParams* p, bint split, bint rev,
                             int m, const float* gin, const float* x, const float* h,
                             float* c, float* h_out, float* scratch) noexcept nogil:
    """The whole fused step: all panels (on two cores when split; in descending order
    when rev), then the LSTM's projection, which needs every panel's output."""
    cdef Step1 args
    cdef int npan = num_panels(p)
    if split and npan > 1:
        args.family, args.p, args.m, args.gin, args.x, args.h = family, p, m, gin, x, h
        args.c, args.h_out, args.scratch, args.npan, args.rev = c, h_out, scratch, npan, rev
        fr_pool_run(step1_half, &args)
    else:
        cell_step1(family, p, 0, npan, rev, m, gin, x, h, c, h_out, scratch)
    if family == LSTM:
        lstm_project1(p, m, scratch, h_out)


cdef inline void transpose(int rows, int cols, const floating* src, int lds,
                           floating* dst, int ldd) noexcept nogil:
    """dst[j, i] = src[i, j] for the (rows, cols) block of src."""
    cdef int i, j
    for i in range(rows):
        for j in range(cols):
            dst[<Py_ssize_t>j * ldd + i] = src[<Py_ssize_t>i * lds + j]


cdef void scan(Family family, const CellParams* p, int T, int B,
               const int* batch_sizes, bint reverse,
               const floating* x, int ldx, floating* h, floating* c,
               floating* out, int ldout,
               floating* gates, int chunk, floating* scratch,
               floating* state_t, bint split, int parity) noexcept nogil:
    """Run one direction of one layer over T steps of a (T*B, ldx) input.

    The fused steps walk the panels in ascending and descending order by turns,
    (parity + t) & 1 deciding, so that the panels of one step's end are still
    cached at the next step's start (fr_lstm_step1_f32); a stream passes its own count
    of steps as parity, so that the turns continue from call to call.

    h (B, P) and c (B, H) hold the initial state and are advanced in place, so that a
    sequence that stops early keeps its own final state. Step t's output rows go to
    out[t*B + b, :P] (row stride ldout: a bidirectional layer writes its half).
    batch_sizes[t] sequences are running at step t, always a prefix of the batch
    (NULL: all B). The input projection for `chunk` steps at a time is one GEMM, or on
    the fused path one panel_project from W_ih's panels (rows padded to whole panels).

    Up to _fused_max_batch sequences (float32) run batch-major through the fused
    kernel over packed weights: gate rows contiguous per sequence, h double-buffered
    (every panel reads all of h). Other batches run feature-major (gates (G, chunk*B),
    states (P, B) and (H, B) in state_t), the layout in which BLAS runs W @ h fastest
    (see project()); float64 batches of one stay batch-major with a gemv.
    """
    cdef int G = p.gate_rows
    cdef int P = p.proj_size
    cdef int H = p.hidden_size
    cdef bint fused = (floating is float and p.w_hh_panels != NULL
                       and p.w_ih_panels != NULL and B <= _fused_max_batch and B <= FR_MAXB)
    cdef bint fm = B > 1 and not fused
    # a single streamed step, or a batch of many sequences, reads W_ih from its panels
    # inside the fused pass; others project a chunk of steps at once beforehand, which
    # reads W_ih once for all its steps
    cdef bint fused_x = fused and (T == 1 or B >= _fused_x_min_batch)
    # gate rows of the hoisted projection: panel order, padded to whole panels, when fused
    cdef int row = panel_rows(p) if fused else G
    cdef int ldg = chunk * B if fm else row
    cdef floating* hs = state_t if fm else h
    cdef floating* cs = (state_t + <Py_ssize_t>P * B) if fm else c
    cdef floating* h_next = state_t   # the fused step's other h buffer
    cdef floating* swap
    cdef Projection proj
    cdef int t0, t1, s, t, m, b, k
    cdef int done = 0
    cdef floating* g
    cdef floating* o
    if fm:
        transpose(B, P, h, P, hs, B)
        if c != NULL:
            transpose(B, H, c, H, cs, B)
    while done < T:
        if reverse:
            t1 = T - done
            t0 = t1 - chunk if t1 > chunk else 0
        else:
            t0 = done
            t1 = t0 + chunk if T - t0 > chunk else T
        done += t1 - t0
        if fused_x:
            pass
        elif fused:  # gates[s*B + b] = W_ih x[t0 + s, b] in panel order, from W_ih's panels
            if floating is float:
                proj.wt, proj.G, proj.K = p.panel_dtype, p.gate_rows // H, p.input_size
                proj.fns = p.fns
                proj.npan, proj.ldx, proj.n = num_panels(p), ldx, (t1 - t0) * B
                proj.w, proj.x, proj.out = p.w_ih_panels, x + <Py_ssize_t>t0 * B * ldx, gates
                if split:  # the helper projects half of the panels, then stays for the steps
                    fr_pool_run(project_half, &proj)
                else:
                    p.fns.panel_project_f32(proj.wt, proj.G, proj.K, proj.npan, 0,
                                            proj.npan, proj.w, proj.x, proj.ldx, proj.n,
                                            proj.out)
        elif fm:  # gates[:, s*B + b] = W_ih x[t0 + s, b]
            gemm(NoTrans, Trans, G, (t1 - t0) * B, p.input_size, <floating>1,
                 <const floating*>p.w_ih, p.input_size, x + <Py_ssize_t>t0 * B * ldx, ldx,
                 <floating>0, gates, ldg)
        else:   # gates[s*B + b, :] = W_ih x[t0 + s, b] (a gemv for one streamed step)
            project(False, G, (t1 - t0) * B, p.input_size, <const floating*>p.w_ih,
                    x + <Py_ssize_t>t0 * B * ldx, ldx, <floating>0, gates, G)
        for s in range(t1 - t0):
            t = t1 - 1 - s if reverse else t0 + s
            m = batch_sizes[t] if batch_sizes != NULL else B
            if m == 0:
                continue
            g = gates + <Py_ssize_t>(t - t0) * B * (1 if fm else row)
            o = out + <Py_ssize_t>t * B * ldout
            if fused:
                if floating is float:
                    fused_step1(family, p, split, (parity + t) & 1, m,
                                NULL if fused_x else g,
                                x + <Py_ssize_t>t * B * ldx, hs, cs, h_next, scratch)
                if m < B:  # finished sequences keep their final h in both buffers
                    memcpy(h_next + <Py_ssize_t>m * P, hs + <Py_ssize_t>m * P,
                           <Py_ssize_t>(B - m) * P * sizeof(floating))
                swap = hs
                hs = h_next
                h_next = swap
            else:
                cell_step(family, p, fm, m, g, ldg, hs, cs, B, scratch)
            if fm:
                for b in range(m):
                    for k in range(P):
                        o[<Py_ssize_t>b * ldout + k] = hs[<Py_ssize_t>k * B + b]
            else:
                for b in range(m):
                    memcpy(o + <Py_ssize_t>b * ldout, hs + <Py_ssize_t>b * P,
                           P * sizeof(floating))
    if fm:
        transpose(P, B, hs, B, h, P)
        if c != NULL:
            transpose(H, B, cs, B, c, H)
    elif hs != h:
        memcpy(h, hs, <Py_ssize_t>B * P * sizeof(floating))


cdef struct Directions:
    # one bidirectional layer, its two directions on two cores (floats only)
    Family family
    const CellParams* p        # the layer's two records
    int T, B, chunk
    const int* batch_sizes
    const float* x
    float* out
    float* h_n                 # the layer's forward slot of h_n (the backward one follows)
    float* c_n
    float* gates               # direction d's buffers start d strides further
    float* scratch
    float* state_t
    Py_ssize_t gates_stride, scratch_stride, state_stride
    int parity


cdef void direction_part(void* arg, int d) noexcept nogil:
    """Direction d of a Directions layer, single-threaded, on its own buffers."""
    cdef Directions* a = <Directions*>arg
    cdef const CellParams* p = &a.p[d]
    cdef int P = p.proj_size
    scan(a.family, p, a.T, a.B, a.batch_sizes, d == 1, a.x, p.input_size,
         a.h_n + <Py_ssize_t>d * a.B * P,
         a.c_n + <Py_ssize_t>d * a.B * p.hidden_size if a.c_n != NULL else NULL,
         a.out + d * P, 2 * P, a.gates + d * a.gates_stride, a.chunk,
         a.scratch + d * a.scratch_stride, a.state_t + d * a.state_stride, False, a.parity)


cdef void run_stack(Family family, const CellParams* params, int num_layers,
                    int num_directions, int T, int B, const int* batch_sizes,
                    const floating* x, floating* out, floating* h_n, floating* c_n,
                    floating* gates, int chunk, floating* scratch, floating* state_t,
                    floating* buf_a, floating* buf_b, bint split, int parity) noexcept nogil:
    """All layers and directions. Layer l reads layer l-1's output (buf_a / buf_b in
    turn), the last layer writes `out`; h_n, c_n are (L*D, B, P) and (L*D, B, H).

    With two cores (split), a bidirectional layer below hidden 256 runs its directions
    side by side, each on its own core and its own half of the workspace (layers.py
    sizes it for two): no barrier per step. Measured (2 layers, T=100, 2 threads
    against 1): 1.4-1.9x at hidden 64-128, batch 1-8, where splitting each step's
    panels pays less or not at all; from hidden 256 the panel split, which keeps half
    of every direction's weights in each core's L2, is as fast or up to 15% faster, so
    larger layers split their steps, where that pays."""
    cdef int l, d, k
    cdef const CellParams* p
    cdef const floating* x_l = x
    cdef floating* out_l
    cdef Directions dirs
    cdef int H = params[0].hidden_size
    cdef int P = params[0].proj_size
    cdef int gpad = panel_rows(&params[0])
    for l in range(num_layers):
        out_l = out if l == num_layers - 1 else (buf_a if l % 2 == 0 else buf_b)
        if floating is float:
            if split and num_directions == 2 and H < _split_min_hidden:
                k = l * 2
                dirs.family, dirs.p, dirs.T, dirs.B, dirs.chunk = family, &params[k], T, B, chunk
                dirs.batch_sizes, dirs.x, dirs.out = batch_sizes, x_l, out_l
                dirs.h_n = h_n + <Py_ssize_t>k * B * P
                dirs.c_n = c_n + <Py_ssize_t>k * B * H if c_n != NULL else NULL
                dirs.gates, dirs.scratch, dirs.state_t = gates, scratch, state_t
                dirs.gates_stride = <Py_ssize_t>chunk * B * gpad
                dirs.scratch_stride = <Py_ssize_t>B * gpad
                dirs.state_stride = <Py_ssize_t>B * (P + H)
                dirs.parity = parity
                fr_pool_run(direction_part, &dirs)
                x_l = out_l
                continue
        for d in range(num_directions):
            k = l * num_directions + d
            p = &params[k]
            scan(family, p, T, B, batch_sizes, d == 1, x_l, p.input_size,
                 h_n + <Py_ssize_t>k * B * p.proj_size,
                 c_n + <Py_ssize_t>k * B * p.hidden_size if c_n != NULL else NULL,
                 out_l + d * p.proj_size, num_directions * p.proj_size,
                 gates, chunk, scratch, state_t,
                 split and _split_pays(p.hidden_size, B), parity)
        x_l = out_l


cdef inline void* _data(cnp.ndarray a):
    return cnp.PyArray_DATA(a) if a is not None else NULL


cdef class Kernel:
    """The packed parameters of a whole stack, ready for the nogil driver.

    Built once at load from contiguous arrays of the model's dtype (which it keeps
    alive); read-only afterwards, so one Kernel serves any number of threads, each
    bringing its own states and workspace.
    """
    cdef CellParams* params
    cdef readonly int family, num_layers, num_directions, max_hidden
    cdef readonly bint is_double
    cdef readonly str isa
    cdef list _keep

    def __cinit__(self, int family, list layers, bint is_double, int num_directions,
                  bint relu=False, isa=None):
        """layers: one dict per (layer, direction) with w_ih, w_hh, bias, and
        b_hn (GRU) / w_hr (LSTM with proj_size) or None. isa: the float32 kernels'
        instruction set, 'generic' / 'avx2' / 'avx512' (default: the CPU's widest,
        capped by FASTRNN_ISA)."""
        cdef int k
        cdef const fr_kernels* fns = fr_kernels_for(
            _isa_from_environment() if isa is None else _isa_index(isa))
        self.isa = fns.name.decode()
        cdef cnp.ndarray w_ih, w_hh, w_hr
        self.family = family
        self.num_layers = len(layers) // num_directions
        self.num_directions = num_directions
        self.is_double = is_double
        self._keep = layers
        self.params = <CellParams*>malloc(len(layers) * sizeof(CellParams))
        if self.params == NULL:
            raise MemoryError()
        for k, rec in enumerate(layers):
            w_ih, w_hh, w_hr = rec["w_ih"], rec["w_hh"], rec["w_hr"]
            self.params[k].w_ih = _data(w_ih)
            self.params[k].w_hh = _data(w_hh)
            self.params[k].bias = _data(rec["bias"])
            self.params[k].b_hn = _data(rec["b_hn"])
            self.params[k].w_hr = _data(w_hr)
            self.params[k].input_size = w_ih.shape[1]
            self.params[k].gate_rows = w_ih.shape[0]
            self.params[k].proj_size = w_hh.shape[1]
            self.params[k].hidden_size = w_hr.shape[1] if w_hr is not None else w_hh.shape[1]
            self.params[k].relu = relu
            self.max_hidden = max(self.max_hidden, self.params[k].hidden_size)
            self.params[k].w_hh_panels = _data(rec.get("w_hh_panels"))
            self.params[k].w_ih_panels = _data(rec.get("w_ih_panels"))
            self.params[k].panel_dtype = {"float32": 0, "float16": 1, "bfloat16": 2}[
                rec.get("panel_dtype", "float32")]
            self.params[k].bias_panels = _data(rec.get("bias_panels"))
            self.params[k].b_hn_panels = _data(rec.get("b_hn_panels"))
            self.params[k].fns = fns

    def __dealloc__(self):
        free(self.params)

    def forward(self, cnp.ndarray x, cnp.ndarray out, cnp.ndarray h_n,
                cnp.ndarray c_n, cnp.ndarray batch_sizes, cnp.ndarray gates,
                int chunk, cnp.ndarray scratch, cnp.ndarray state_t, cnp.ndarray buf_a,
                cnp.ndarray buf_b):
        """Run the stack over x (T, B, I) into out (T, B, D*P), advancing h_n / c_n in
        place. Every array has been validated by the caller: C-contiguous, of the
        kernel's dtype, of the sizes the layers need. Runs without the GIL."""
        cdef int T = x.shape[0]
        cdef int B = x.shape[1]
        cdef const int* bs = <const int*>_data(batch_sizes)
        cdef void* px = _data(x)
        cdef void* pout = _data(out)
        cdef void* ph = _data(h_n)
        cdef void* pc = _data(c_n)
        cdef void* pg = _data(gates)
        cdef void* ps = _data(scratch)
        cdef void* pt = _data(state_t)
        cdef void* pa = _data(buf_a)
        cdef void* pb = _data(buf_b)
        self.execute(T, B, self.num_directions, bs, px, pout, ph, pc, pg, chunk, ps, pt,
                     pa, pb)

    cdef bint _want_split(self, int T, int B, int num_directions):
        if not (_kernel_threads >= 2 and B <= _fused_max_batch and not self.is_double
                and self.params[0].w_hh_panels != NULL):
            return False
        if num_directions == 2 and self.max_hidden < _split_min_hidden:
            # whole directions side by side (run_stack): one meeting per layer
            return <long long>T * B * self.max_hidden * self.max_hidden >= 65536
        return _split_pays(self.max_hidden, B)

    cdef void execute(self, int T, int B, int num_directions, const int* bs, void* px,
                      void* pout, void* ph, void* pc, void* pg, int chunk, void* ps,
                      void* pt, void* pa, void* pb, int parity=0) except *:
        """run_stack in the kernel's dtype, without the GIL, with flush-to-zero, on two
        cores when a split is wanted and the helper is free. parity: where the
        alternating panel order stands (a stream's step count; 0 for a sequence)."""
        cdef unsigned int mxcsr
        cdef Family family = <Family>self.family
        cdef bint split = self._want_split(T, B, num_directions) and fr_pool_acquire()
        with nogil:
            mxcsr = fr_ftz_enter()
            if self.is_double:
                run_stack(family, self.params, self.num_layers, num_directions, T, B, bs,
                          <const double*>px, <double*>pout, <double*>ph, <double*>pc,
                          <double*>pg, chunk, <double*>ps, <double*>pt, <double*>pa,
                          <double*>pb, split, parity)
            else:
                run_stack(family, self.params, self.num_layers, num_directions, T, B, bs,
                          <const float*>px, <float*>pout, <float*>ph, <float*>pc,
                          <float*>pg, chunk, <float*>ps, <float*>pt, <float*>pa,
                          <float*>pb, split, parity)
            fr_ftz_leave(mxcsr)
            if split:
                fr_pool_release()


cdef class Stream:
    """One stream of step calls through a unidirectional stack: the state and every
    buffer a step needs, allocated once. `step` runs all layers in one nogil call.

    Not thread-safe by itself (it owns its state): give each thread its own Stream.
    Streams of one model share its read-only weights.
    """
    cdef Kernel kernel
    cdef readonly int batch, input_size, output_size
    cdef readonly object dtype
    cdef int typenum
    cdef cnp.ndarray h, c, gates, scratch, state_t, buf_a, buf_b, y
    cdef readonly bint has_c
    cdef int parity   # steps taken, mod 2: the fused kernel's panel order goes by turns
    # a batch stepped as groups (layers.py, _batch_groups): (first, end, h, c, workspace)
    # per group, each with its own state; None for one group, whose state is h, c
    cdef list groups

    def __cinit__(self, Kernel kernel, int batch, int input_size, int hidden_size,
                  int output_size, dtype, bint has_c, workspace, groups=None):
        """workspace: the model's buffers for one step of `batch` sequences (gates,
        scratch, state_t, buf_a, buf_b; layers.py's _Workspace), owned by this stream.
        groups: None, or [(first, end, workspace for end - first sequences)] to step the
        batch as those groups of sequences, one call each."""
        import numpy as np
        cdef int L = kernel.num_layers
        self.kernel = kernel
        self.batch = batch
        self.input_size = input_size
        self.output_size = output_size
        self.dtype = np.dtype(dtype)
        self.typenum = self.dtype.num
        self.has_c = has_c
        self.y = np.empty((1, batch, output_size), self.dtype)
        if groups is not None:
            self.groups = [
                (first, end, np.zeros((L, end - first, output_size), self.dtype),
                 np.zeros((L, end - first, hidden_size), self.dtype) if has_c else None, ws)
                for first, end, ws in groups]
            return
        self.h = np.zeros((L, batch, output_size), self.dtype)
        self.c = np.zeros((L, batch, hidden_size), self.dtype) if has_c else None
        self.gates = workspace.gates
        self.scratch = workspace.scratch
        self.state_t = workspace.state_t
        self.buf_a = workspace.buf_a    # None for one layer
        self.buf_b = workspace.buf_b    # None for fewer than three

    cdef bint _fits(self, object a, int size):
        """a is a C-contiguous ndarray of the stream's dtype holding `size` values."""
        return (type(a) is cnp.ndarray
                and cnp.PyArray_TYPE(<cnp.ndarray>a) == self.typenum
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
                and cnp.PyArray_SIZE(<cnp.ndarray>a) == size)

    def step(self, x, out=None):
        """Advance every stream in the batch by one time step.

        x: (batch, input_size), or (input_size,) for a stream of batch 1, of the model's
        dtype (other float dtypes are converted). Returns the last layer's output,
        (batch, output_size) or (output_size,) like x; with `out` (an array of that
        shape and the model's dtype) it is written there and no array is allocated.
        """
        cdef cnp.ndarray xa
        cdef int B = self.batch
        if self._fits(x, B * self.input_size) and (
                (cnp.PyArray_NDIM(<cnp.ndarray>x) == 2
                 and cnp.PyArray_DIM(<cnp.ndarray>x, 1) == self.input_size)
                or (cnp.PyArray_NDIM(<cnp.ndarray>x) == 1 and B == 1)):
            xa = <cnp.ndarray>x
        else:
            xa = self._check_x(x)
        cdef bint flat = cnp.PyArray_NDIM(xa) == 1
        cdef cnp.ndarray dest = self.y
        if out is not None:
            if not self._fits(out, B * self.output_size) or (
                    cnp.PyArray_NDIM(<cnp.ndarray>out) != (1 if flat else 2)):
                self._bad_out(out, flat)
            dest = <cnp.ndarray>out
        if self.groups is None:
            self.kernel.execute(1, B, 1, NULL, cnp.PyArray_DATA(xa), cnp.PyArray_DATA(dest),
                                cnp.PyArray_DATA(self.h), _data(self.c),
                                cnp.PyArray_DATA(self.gates), 1,
                                cnp.PyArray_DATA(self.scratch), cnp.PyArray_DATA(self.state_t),
                                _data(self.buf_a), _data(self.buf_b), self.parity)
        else:
            self._step_groups(xa, dest)
        self.parity ^= 1
        if out is not None:
            return out
        return self.y[0, 0].copy() if flat else self.y[0].copy()

    cdef _execute_on(self, int steps, int first, int end, char* px, char* pout, h, c, ws):
        """`steps` time steps of sequences [first, end), whose state is h, c: x rows at
        px, output rows at pout, through ws, a workspace for (steps, end - first)."""
        self.kernel.execute(steps, end - first, 1, NULL, px, pout, _data(h), _data(c),
                            _data(ws.gates), ws.chunk, _data(ws.scratch), _data(ws.state_t),
                            _data(ws.buf_a), _data(ws.buf_b), self.parity)

    cdef _step_groups(self, cnp.ndarray xa, cnp.ndarray dest):
        """One step of each group: its rows of x and of the output, its own state."""
        cdef char* px = <char*>cnp.PyArray_DATA(xa)
        cdef char* pout = <char*>cnp.PyArray_DATA(dest)
        cdef Py_ssize_t size = self.dtype.itemsize
        cdef int first, end
        for first, end, h, c, ws in self.groups:
            self._execute_on(1, first, end, px + first * self.input_size * size,
                             pout + first * self.output_size * size, h, c, ws)

    def _advance(self, int steps, cnp.ndarray xs, cnp.ndarray dest, ws, int group):
        """`steps` time steps of group `group` (of _states(); 0: the whole batch when
        not grouped): xs (steps, b, I) -> dest (steps, b, P), both C-contiguous of the
        stream's dtype, through ws, the model's workspace for (steps, b). The group's
        state advances; the panel order's turn moves on in _advanced, once all groups
        ran."""
        first, end, h, c = self._states()[group]
        self._execute_on(steps, first, end, <char*>cnp.PyArray_DATA(xs),
                         <char*>cnp.PyArray_DATA(dest), h, c, ws)

    def _advanced(self, int steps):
        self.parity = (self.parity + steps) & 1

    def _check_x(self, x):
        import numpy as np
        from fastrnn import _checks
        xa = _checks.as_float_array(x, "x", self.dtype)
        if xa.ndim == 1 and self.batch == 1:
            _checks.check_shape(xa, (self.input_size,), "x")
        else:
            _checks.check_shape(xa, (self.batch, self.input_size), "x")
        return xa

    def _bad_out(self, out, flat):
        shape = (self.batch, self.output_size)
        if flat:
            shape = (self.output_size,)
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(
            f"out must be a C-contiguous {self.dtype.name} array of shape {shape}, got "
            f"{getattr(out, 'dtype', '')} {got}"
        )

    def reset(self):
        """Every state back to zeros."""
        for first, end, h, c in self._states():
            h.fill(0)
            if c is not None:
                c.fill(0)

    def _states(self):
        """(first, end, h, c) of each group's state (one group: the whole batch)."""
        if self.groups is None:
            return [(0, self.batch, self.h, self.c)]
        return [group[:4] for group in self.groups]

    def _get_state(self):
        import numpy as np
        if self.groups is None:
            return self.h, self.c
        parts = self._states()
        return (np.concatenate([p[2] for p in parts], axis=1),
                np.concatenate([p[3] for p in parts], axis=1) if self.has_c else None)

    def _set_state(self, h, c):
        """h, c: validated arrays of the state's shapes."""
        for first, end, h_g, c_g in self._states():
            h_g[...] = h[:, first:end]
            if c_g is not None:
                c_g[...] = c[:, first:end]
