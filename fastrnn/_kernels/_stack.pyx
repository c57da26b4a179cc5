# The kernel layer's drivers, composed as torch's RNN.cpp composes them: a cell step
# (lstm.pxd, gru.pxd, rnn.pxd over the C kernels) -> a scan over time (one function per
# strategy: fused over packed panels, or BLAS plus the cell loops) -> a layer (one or
# two directions, side by side on two cores when that pays) -> the stack. `Kernel`
# holds the packed records of a whole model with its dispatch plan and sizes its own
# workspaces; packing.py writes the records it reads.
cimport numpy as cnp
from cython cimport floating
from libc.math cimport sqrt
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from fastrnn._kernels._blas cimport gemm, project, NoTrans, Trans
from fastrnn._kernels._cell cimport (CellParams, FR_U, FR_MAXB, fr_kernels, fr_cpu_isa,
                                     fr_kernels_for, fr_activations_f32, fr_ftz_enter,
                                     fr_ftz_leave)
from fastrnn._kernels.lstm cimport lstm_step, lstm_fused, lstm_project1
from fastrnn._kernels.gru cimport gru_step, gru_fused, gru_textbook_step, grut_fused
from fastrnn._kernels.rnn cimport rnn_step, rnn_fused

import threading
from collections import OrderedDict

import numpy as np

cnp.import_array()

cdef extern from "parallel.h" nogil:
    ctypedef void (*fr_task_fn)(void* arg, int part) noexcept nogil
    int fr_pool_acquire()
    void fr_pool_set_quota_alone(int alone)
    void fr_pool_release()
    double FR_LONG_JOB
    void fr_pool_run(fr_task_fn fn, void* arg, double flops)

# Hidden units per panel of the fused kernels' packed weights (packing.py's layout).
PANEL_UNITS = FR_U
# Most sequences one fused call advances (Plan.fused_max_batch's bound).
FUSED_BATCH_LIMIT = FR_MAXB
# Storage types of packed panels, as the C kernels number them (FR_W_*).
PANEL_DTYPES = {"float32": 0, "float16": 1, "bfloat16": 2}


# -- process-wide: the ISAs the build can run, and the threads a call may use --------

ISA_NAMES = ("generic", "avx2", "avx512")   # index: FR_GENERIC, FR_AVX2, FR_AVX512
# the families' names in Plan.streamed_max_batch (a textbook GRU has none: it follows
# plan.fused_max_batch)
FAMILY_NAMES = {LSTM: "LSTM", GRU: "GRU", RNN: "RNN"}


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


def default_isa():
    """The instruction set a model packed now runs by default: the CPU's widest, capped
    by FASTRNN_ISA (generic / avx2 / avx512; empty or 'auto': no cap)."""
    import os
    cap = os.environ.get("FASTRNN_ISA", "")
    if cap in ("", "auto"):
        return cpu_isa()
    if cap not in ISA_NAMES:
        raise ValueError(f"FASTRNN_ISA must be one of auto, {', '.join(ISA_NAMES)}, "
                         f"got {cap!r}")
    return ISA_NAMES[min(ISA_NAMES.index(cap), fr_cpu_isa())]


isa = default_isa


# Threads a small-batch step may use (1 or 2: the caller and one helper). A property
# of the process (fastrnn.set_num_threads), not of a model's plan.
cdef int _kernel_threads = 1


def set_kernel_threads(int n):
    """Split small-batch steps across two cores when n >= 2 (fastrnn.set_num_threads)."""
    global _kernel_threads
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _kernel_threads = 2 if n >= 2 else 1


def get_kernel_threads():
    return _kernel_threads


def set_quota_alone(bint alone):
    """Split calls run on the calling thread alone (the process's CPU quota is too small
    for two: fastrnn._threads.quota_runs_alone; parallel.h, fr_pool_set_quota_alone)."""
    fr_pool_set_quota_alone(alone)


def _activations_f32(float[::1] x, bint vector=False, isa=None):
    """(sigmoid(x), tanh(x)) by the kernels' float32 math: the scalar form of the cell
    loops, or (vector) the fused kernels' lanes on the given ISA ('generic', 'avx2',
    'avx512'; default: the one models get); for the accuracy tests."""
    cdef const fr_kernels* fns = fr_kernels_for(_isa_index(default_isa() if isa is None
                                                           else isa))
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


def empty_aligned(shape, dtype, int align=64):
    """np.empty whose data starts on an `align`-byte boundary: the kernels load whole
    cache lines, and a vector load that straddles two lines costs two (numpy's own
    buffers are only 16-byte aligned)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.empty(nbytes + align, np.uint8)
    start = -buf.ctypes.data % align
    return buf[start:start + nbytes].view(dtype).reshape(shape)


# -- the plan as the nogil code reads it ---------------------------------------------

cdef inline int lstm_units(int gate_rows, int proj_size) noexcept nogil:
    return <int>sqrt(<double>gate_rows * proj_size / 4.0)


cdef inline int lstm_hidden(const CellParams* p) noexcept nogil:
    """The hidden size of an LSTM whose step multiplies as many recurrent weights as this
    layer's (gate_rows x proj_size = 4 H^2): H for an LSTM, 0.87 H for a GRU, 0.5 H for
    an RNN. A split step's gain is the half of those weights each core streams, its cost
    one meeting of the cores, whatever the family: the thresholds compare this."""
    return lstm_units(p.gate_rows, p.proj_size)


def lstm_equivalent(int gates, int hidden):
    """lstm_hidden of a layer of `gates` gates and `hidden` units (fastrnn tune times
    each family at the size whose equivalent is its LSTM size)."""
    return lstm_units(gates * hidden, hidden)


cdef inline bint split_pays(const Dispatch* d, const CellParams* p, int B) noexcept nogil:
    """Splitting each step's panels across two cores pays from split_min_hidden (in an
    LSTM's hidden units: lstm_hidden) up, and for batches once hidden^2 * batch reaches
    16384 (2 threads, T=50, split vs not, median of three interleaved runs: 1.2-1.3x at
    hidden 32 and batch 16, 1.3-1.5x at 64 and 4-8, 1.5-1.9x at 128 from batch 2; it
    lost, 0.7-0.9x, at 32 below 16)."""
    cdef int hidden = p.hidden_size
    return lstm_hidden(p) >= d.split_min_hidden or (
        B >= 2 and hidden > FR_U and <long long>hidden * hidden * B >= 16384)


# The share of plan.cache_bytes a layer's panels may fill for x_from_panels: 7/8.
cdef enum:
    X_FIT_EIGHTHS = 7


cdef inline bint x_from_panels(const CellParams* p, const Dispatch* d, int B,
                               bint split) noexcept nogil:
    """Whether a fused batch reads W_ih x from the W_ih panels in every step, rather
    than from one projection per chunk: from fused_x_min_batch sequences, where both
    matrices' panels stay in a core's L2 from step to step (each core holding half of
    them when the step is split), else only at FR_MAXB sequences per weight load.
    Reading 8 MB of weights a step from L3 (LSTM hidden 512) made batch 16 1.13x and
    32 1.05x slower than the hoisted projection, while at FR_MAXB in-step won
    (0.91-0.97x); with the weights in L2 (hidden 64-224) in-step was 0.92-1.03x from
    batch 16 (AVX-512 Xeon, 2 MB L2, 1 thread, T=100). "Fit" leaves an eighth of the
    L2 to the rest of the step (x, h, c, the stack): an LSTM's hidden 256 (2 MB of
    panels on that 2 MB L2) ran batch 16 at 1.09x and 32 at 1.02x the hoisted time,
    while 1.2-1.6 MB of panels (LSTM 192-224, GRU 256) were level (0.98-1.01x)."""
    if B < d.fused_x_min_batch:
        return False
    return B >= FR_MAXB or (p.panel_bytes * 8
                            <= d.cache_bytes * X_FIT_EIGHTHS * (2 if split else 1))


cdef inline int num_panels(const CellParams* p) noexcept nogil:
    return (p.hidden_size + FR_U - 1) // FR_U


cdef inline int panel_rows(const CellParams* p) noexcept nogil:
    """Gate rows of one sequence in panel order: hidden padded to whole panels (the
    fused path's hoisted projection; Kernel.workspace sizes for it)."""
    return num_panels(p) * FR_U * (p.gate_rows // p.hidden_size)


# -- cells ---------------------------------------------------------------------------

cdef inline void cell_step(Family family, const CellParams* p, bint fm, int m,
                           floating* gates, int ldg, floating* h, floating* c, int ldb,
                           floating* scratch) noexcept nogil:
    """One BLAS-path step of m sequences: W_hh h into the gate rows, the cell update."""
    if family == LSTM:
        lstm_step(p, fm, m, gates, ldg, h, c, ldb, scratch)
    elif family == GRU:
        gru_step(p, fm, m, gates, ldg, h, c, ldb, scratch)
    elif family == GRU_TEXTBOOK:
        gru_textbook_step(p, fm, m, gates, ldg, h, c, ldb, scratch)
    else:
        rnn_step(p, fm, m, gates, ldg, h, c, ldb, scratch)


cdef inline int step_phases(Family family) noexcept nogil:
    """Passes over the panels per fused step: 2 for the textbook GRU, whose n panels
    read r * h of every unit (grut_fused), else 1."""
    return 2 if family == GRU_TEXTBOOK else 1


cdef inline void fused_cell(Family family, const CellParams* p, int phase, int p0, int p1,
                            bint rev, int m, const float* gin, const float* x,
                            const float* h, float* c, float* h_out,
                            float* scratch) noexcept nogil:
    """Panels [p0, p1) of one fused step of m sequences (of its phase 1 or 2: see
    step_phases)."""
    if family == GRU_TEXTBOOK:
        grut_fused(p, phase, p0, p1, rev, m, gin, x, h, h_out, scratch)
    elif family == LSTM:
        lstm_fused(p, p0, p1, rev, m, gin, x, h, c, h_out, scratch)
    elif family == GRU:
        gru_fused(p, p0, p1, rev, m, gin, x, h, c, h_out, scratch)
    else:
        rnn_fused(p, p0, p1, rev, m, gin, x, h, c, h_out, scratch)


cdef struct FusedStep:
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
    int phase


cdef void fused_step_half(void* arg, int part) noexcept nogil:
    cdef FusedStep* a = <FusedStep*>arg
    cdef int half = (a.npan + 1) // 2
    if part == 0:
        fused_cell(a.family, a.p, a.phase, 0, half, a.rev, a.m, a.gin, a.x, a.h, a.c,
                   a.h_out, a.scratch)
    else:
        fused_cell(a.family, a.p, a.phase, half, a.npan, a.rev, a.m, a.gin, a.x, a.h, a.c,
                   a.h_out, a.scratch)


cdef inline double phase_flops(Family family, const CellParams* p, int phase, int m,
                              bint x_in_step) noexcept nogil:
    """The multiply-adds (x2) of one phase of a fused step, which decide whether a
    sleeping helper is woken for it (fr_pool_run): W_hh h, and W_ih x where the step
    takes it from the panels (gin NULL). The textbook GRU's first phase multiplies W_hh's
    r and z rows and all of W_ih's, its second W_hh's n rows."""
    cdef double hh_rows = p.gate_rows
    cdef double ih_rows = p.gate_rows if x_in_step else 0
    if family == GRU_TEXTBOOK:
        hh_rows = p.gate_rows * (2.0 / 3.0 if phase == 1 else 1.0 / 3.0)
        if phase == 2:
            ih_rows = 0
    return 2.0 * m * (hh_rows * p.proj_size + ih_rows * p.input_size)


cdef inline void fused_step(Family family, const CellParams* p, bint split, bint rev,
                            int m, const float* gin, const float* x, const float* h,
                            float* c, float* h_out, float* scratch) noexcept nogil:
    """The whole fused step: all panels (on two cores when split; in descending order
    when rev), phase after phase (the two cores meet between them: each fr_pool_run
    returns when both halves are done), then the LSTM's projection, which needs every
    panel's output."""
    cdef FusedStep args
    cdef int npan = num_panels(p)
    cdef int phase
    for phase in range(1, step_phases(family) + 1):
        if split and npan > 1:
            args.family, args.p, args.m, args.gin, args.x, args.h = family, p, m, gin, x, h
            args.c, args.h_out, args.scratch, args.npan, args.rev = (c, h_out, scratch,
                                                                     npan, rev)
            args.phase = phase
            fr_pool_run(fused_step_half, &args, phase_flops(family, p, phase, m, gin == NULL))
        else:
            fused_cell(family, p, phase, 0, npan, rev, m, gin, x, h, c, h_out, scratch)
    if family == LSTM:
        lstm_project1(p, m, scratch, h_out)


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


cdef inline void project_panels(const CellParams* p, bint split, const float* x, int ldx,
                                int n, float* out) noexcept nogil:
    """out (n, panel_rows) = W_ih x for n rows of x, in panel order, from W_ih's panels
    (the helper core projects half of the panels when split)."""
    cdef Projection proj
    proj.fns = p.fns
    proj.wt, proj.G, proj.K = p.panel_dtype, p.gate_rows // p.hidden_size, p.input_size
    proj.npan, proj.ldx, proj.n, proj.w, proj.x, proj.out = (
        num_panels(p), ldx, n, p.w_ih_panels, x, out)
    if split:
        fr_pool_run(project_half, &proj, 2.0 * n * p.gate_rows * p.input_size)
    else:
        p.fns.panel_project_f32(proj.wt, proj.G, proj.K, proj.npan, 0, proj.npan, proj.w,
                                proj.x, proj.ldx, proj.n, proj.out)


# -- scans over time -----------------------------------------------------------------
#
# Both strategies share this contract. One direction of one layer over T steps of a
# (T*B, ldx) input: h (B, P) and c (B, H) hold the initial state and advance in place,
# so that a sequence that stops early keeps its own final state; sequence b's output at
# step t goes to out + t * og.step + row(b) * og.row (P values; a bidirectional layer's
# directions write their halves, out offset by d * P), row(b) = og.index[b] or b.
# batch_sizes[t] sequences run at step t, always a prefix of the batch (NULL: all B).
# The input projection of `chunk` steps at a time is done before their steps.

cdef inline Py_ssize_t out_row(const OutRows* og, int b) noexcept nogil:
    return (og.index[b] if og.index != NULL else b) * og.row

cdef inline void chunk_bounds(int T, int chunk, int done, bint reverse, int* t0,
                              int* t1) noexcept nogil:
    """The next chunk [t0, t1) of steps, from the end of time when reverse."""
    if reverse:
        t1[0] = T - done
        t0[0] = t1[0] - chunk if t1[0] > chunk else 0
    else:
        t0[0] = done
        t1[0] = done + chunk if T - done > chunk else T


cdef inline int full_steps(const int* batch_sizes, int t0, int t1, int B) noexcept nogil:
    """How many steps from t0 on, within [t0, t1), run the whole batch. Sequences are
    ordered by length, so these are a prefix of the chunk whichever way time runs;
    the steps after them run fewer sequences (batch_sizes[t] of them)."""
    cdef int t = t0
    if batch_sizes == NULL:
        return t1 - t0
    while t < t1 and batch_sizes[t] == B:
        t += 1
    return t - t0


cdef void scan_fused(Family family, const CellParams* p, const Dispatch* d, int T, int B,
                     const int* batch_sizes, bint reverse, const float* x, int ldx,
                     float* h, float* c, float* out, const OutRows* og, float* gates,
                     int chunk,
                     float* scratch, float* h_next, bint split, int parity) noexcept nogil:
    """Batch-major steps through the fused kernel over packed weights, B <= FR_MAXB.

    Gate rows are contiguous per sequence, in panel order; h is double-buffered (every
    panel reads all of h), h_next being the second buffer. A batch of fused_x_min_batch
    or more, or a single streamed step, reads W_ih x from its panels inside each step;
    others project a chunk of steps at once beforehand, reading W_ih once for all.
    The panels are walked in ascending and descending order by turns, (parity + t) & 1
    deciding, so that the panels of one step's end are still cached at the next step's
    start; a stream passes its own count of steps as parity, so that the turns continue
    from call to call.
    """
    cdef int P = p.proj_size
    cdef int row = panel_rows(p)
    # (the step's own product reads x's rows packed, input_size apart)
    cdef bint x_in_step = ldx == p.input_size and (T == 1 or x_from_panels(p, d, B, split))
    cdef float* hs = h
    cdef float* swap
    cdef int t0, t1, s, t, m, b, full
    cdef int done = 0
    cdef float* o
    while done < T:
        chunk_bounds(T, chunk, done, reverse, &t0, &t1)
        done += t1 - t0
        if not x_in_step:  # gates[s*B + b] = W_ih x[t0 + s, b], panel order
            # the steps of the whole batch in one call, then each shorter step's
            # running rows alone: padding past a sequence's end costs no product
            full = full_steps(batch_sizes, t0, t1, B)
            if full:
                project_panels(p, split, x + <Py_ssize_t>t0 * B * ldx, ldx, full * B, gates)
            for t in range(t0 + full, t1):
                if batch_sizes[t]:
                    project_panels(p, split, x + <Py_ssize_t>t * B * ldx, ldx,
                                   batch_sizes[t], gates + <Py_ssize_t>(t - t0) * B * row)
        for s in range(t1 - t0):
            t = t1 - 1 - s if reverse else t0 + s
            m = batch_sizes[t] if batch_sizes != NULL else B
            if m == 0:
                continue
            fused_step(family, p, split, (parity + t) & 1, m,
                       NULL if x_in_step else gates + <Py_ssize_t>(t - t0) * B * row,
                       x + <Py_ssize_t>t * B * ldx, hs, c, h_next, scratch)
            if m < B:  # finished sequences keep their final h in both buffers
                memcpy(h_next + <Py_ssize_t>m * P, hs + <Py_ssize_t>m * P,
                       <Py_ssize_t>(B - m) * P * sizeof(float))
            swap = hs
            hs = h_next
            h_next = swap
            o = out + t * og.step
            for b in range(m):
                memcpy(o + out_row(og, b), hs + <Py_ssize_t>b * P, P * sizeof(float))
    if hs != h:
        memcpy(h, hs, <Py_ssize_t>B * P * sizeof(float))


cdef inline void transpose(int rows, int cols, const floating* src, int lds,
                           floating* dst, int ldd) noexcept nogil:
    """dst[j, i] = src[i, j] for the (rows, cols) block of src."""
    cdef int i, j
    for i in range(rows):
        for j in range(cols):
            dst[<Py_ssize_t>j * ldd + i] = src[<Py_ssize_t>i * lds + j]


cdef void scan_blas(Family family, const CellParams* p, int T, int B,
                    const int* batch_sizes, bint reverse, const floating* x, int ldx,
                    floating* h, floating* c, floating* out, const OutRows* og,
                    floating* gates,
                    int chunk, floating* scratch, floating* state_t) noexcept nogil:
    """Steps through BLAS and the vectorised cell loops.

    Batches of two or more run feature-major (gates (G, chunk*B), states (P, B) and
    (H, B) in state_t), the layout in which BLAS runs W @ h fastest (see project());
    a single sequence stays batch-major, its products gemv.
    """
    cdef int G = p.gate_rows
    cdef int P = p.proj_size
    cdef int H = p.hidden_size
    cdef bint fm = B > 1
    cdef int ldg = chunk * B if fm else G
    cdef floating* hs = state_t if fm else h
    cdef floating* cs = (state_t + <Py_ssize_t>P * B) if fm else c
    cdef int t0, t1, s, t, m, b, k, full
    cdef Py_ssize_t r
    cdef int done = 0
    cdef floating* o
    if fm:
        transpose(B, P, h, P, hs, B)
        if c != NULL:
            transpose(B, H, c, H, cs, B)
    while done < T:
        chunk_bounds(T, chunk, done, reverse, &t0, &t1)
        done += t1 - t0
        # the steps of the whole batch in one product, then each shorter step's running
        # sequences alone (see scan_fused)
        full = full_steps(batch_sizes, t0, t1, B)
        if fm:  # gates[:, s*B + b] = W_ih x[t0 + s, b]
            if full:
                gemm(NoTrans, Trans, G, full * B, p.input_size, <floating>1,
                     <const floating*>p.w_ih, p.input_size, x + <Py_ssize_t>t0 * B * ldx,
                     ldx, <floating>0, gates, ldg)
            for t in range(t0 + full, t1):
                if batch_sizes[t]:
                    gemm(NoTrans, Trans, G, batch_sizes[t], p.input_size, <floating>1,
                         <const floating*>p.w_ih, p.input_size,
                         x + <Py_ssize_t>t * B * ldx, ldx, <floating>0,
                         gates + <Py_ssize_t>(t - t0) * B, ldg)
        elif full:   # gates[s, :] = W_ih x[t0 + s] (one sequence: a step runs or not)
            project(False, G, full, p.input_size, <const floating*>p.w_ih,
                    x + <Py_ssize_t>t0 * ldx, ldx, <floating>0, gates, G)
        for s in range(t1 - t0):
            t = t1 - 1 - s if reverse else t0 + s
            m = batch_sizes[t] if batch_sizes != NULL else B
            if m == 0:
                continue
            cell_step(family, p, fm, m, gates + <Py_ssize_t>(t - t0) * B * (1 if fm else G),
                      ldg, hs, cs, B, scratch)
            o = out + t * og.step
            if fm:
                for b in range(m):
                    r = out_row(og, b)
                    for k in range(P):
                        o[r + k] = hs[<Py_ssize_t>k * B + b]
            else:
                memcpy(o + out_row(og, 0), hs, P * sizeof(floating))
    if fm:
        transpose(P, B, hs, B, h, P)
        if c != NULL:
            transpose(H, B, cs, B, c, H)


cdef inline bint runs_fused(const CellParams* p, const Dispatch* d, int B) noexcept nogil:
    return p.w_hh_panels != NULL and p.w_ih_panels != NULL and B <= d.fused_max_batch


cdef void scan(Family family, const CellParams* p, const Dispatch* d, int T, int B,
               const int* batch_sizes, bint reverse, const floating* x, int ldx,
               floating* h, floating* c, floating* out, const OutRows* og,
               floating* gates,
               int chunk, floating* scratch, floating* state_t, bint split,
               int parity) noexcept nogil:
    """One direction of one layer, by the strategy the plan picks for this batch."""
    if floating is float:
        if runs_fused(p, d, B):
            scan_fused(family, p, d, T, B, batch_sizes, reverse, x, ldx, h, c, out, og,
                       gates, chunk, scratch, state_t, split, parity)
            return
    scan_blas(family, p, T, B, batch_sizes, reverse, x, ldx, h, c, out, og, gates,
              chunk, scratch, state_t)


# -- layers and the stack ------------------------------------------------------------

cdef struct Directions:
    # one bidirectional layer, its two directions on two cores (floats only)
    Family family
    const CellParams* p        # the layer's two records
    const Dispatch* d
    int T, B
    const int* batch_sizes
    const float* x
    int ldx
    float* out
    const OutRows* og
    float* h_n                 # the layer's forward slot of h_n (the backward one follows)
    float* c_n
    const Buffers* ws
    int parity


cdef void direction_part(void* arg, int k) noexcept nogil:
    """Direction k of a Directions layer, single-threaded, on its own buffers."""
    cdef Directions* a = <Directions*>arg
    cdef const CellParams* p = &a.p[k]
    cdef int P = p.proj_size
    scan(a.family, p, a.d, a.T, a.B, a.batch_sizes, k == 1, a.x, a.ldx,
         a.h_n + <Py_ssize_t>k * a.B * P,
         a.c_n + <Py_ssize_t>k * a.B * p.hidden_size if a.c_n != NULL else NULL,
         a.out + k * P, a.og, <float*>a.ws.gates + k * a.ws.gates_stride, a.ws.chunk,
         <float*>a.ws.scratch + k * a.ws.scratch_stride,
         <float*>a.ws.state_t + k * a.ws.state_stride, False, a.parity)


# An LSTM's hidden size (lstm_hidden) below which a bidirectional layer runs its two
# directions side by side rather than splitting each step's panels. Measured (2
# layers, T=100, 2 threads against 1): side by side 1.4-1.9x at hidden 64-128, batch
# 1-8, where splitting each step's panels pays less or not at all; from hidden 256 the
# panel split, which keeps half of every direction's weights in each core's L2, is as
# fast or up to 15% faster.
cdef enum:
    SIDE_BY_SIDE_BELOW = 256


cdef inline bint side_by_side(const CellParams* p, const Dispatch* d) noexcept nogil:
    """Whether a bidirectional layer's directions go one per core (below both the
    panel split's threshold and SIDE_BY_SIDE_BELOW)."""
    cdef int h = lstm_hidden(p)
    return h < SIDE_BY_SIDE_BELOW or h < d.split_min_hidden


cdef inline bint directions_side_by_side(const CellParams* p, const Dispatch* d,
                                         int num_directions, int B) noexcept nogil:
    """With two cores, a bidirectional layer (side_by_side) runs its two directions
    side by side, each on its own core and its own half of the workspace: no barrier
    per step."""
    return (d.threads >= 2 and num_directions == 2 and side_by_side(p, d)
            and runs_fused(p, d, B))


cdef void run_layer(Family family, const CellParams* p, const Dispatch* d,
                    int num_directions, int T, int B, const int* batch_sizes,
                    const floating* x, int ldx, floating* out, const OutRows* og,
                    floating* h_n, floating* c_n, const Buffers* ws,
                    int parity) noexcept nogil:
    """One layer, p pointing at its records (one per direction): direction 1 reads time
    backwards and writes the second half of each output row (og: where the rows go).
    x: (T*B) rows of stride ldx. h_n / c_n point at the layer's first state slot; the
    second direction's follows."""
    cdef int k
    cdef Directions dirs
    if floating is float:
        if directions_side_by_side(p, d, num_directions, B):
            dirs.family, dirs.p, dirs.d, dirs.T, dirs.B = family, p, d, T, B
            dirs.batch_sizes, dirs.x, dirs.ldx, dirs.out, dirs.og = (
                batch_sizes, x, ldx, out, og)
            dirs.h_n, dirs.c_n = h_n, c_n
            dirs.ws, dirs.parity = ws, parity
            fr_pool_run(direction_part, &dirs, FR_LONG_JOB)
            return
    for k in range(num_directions):
        scan(family, &p[k], d, T, B, batch_sizes, k == 1, x, ldx,
             h_n + <Py_ssize_t>k * B * p[k].proj_size,
             c_n + <Py_ssize_t>k * B * p[k].hidden_size if c_n != NULL else NULL,
             out + k * p[k].proj_size, og, <floating*>ws.gates, ws.chunk,
             <floating*>ws.scratch, <floating*>ws.state_t,
             d.threads >= 2 and split_pays(d, &p[k], B), parity)


cdef void run_stack(Family family, const CellParams* params, const Dispatch* d,
                    int num_layers, int num_directions, int T, int B,
                    const int* batch_sizes, const floating* x, int ldx, floating* out,
                    const OutRows* og, floating* h_n, floating* c_n, const Buffers* ws,
                    floating* buf_a, floating* buf_b, int parity) noexcept nogil:
    """All layers: layer 0 reads x, (T*B) rows of stride ldx (input_size, or more for
    every other sequence of a batch: run_pair), layer l layer l-1's output (buf_a /
    buf_b in turn, (T, B, D*P) in the sorted order), the last layer writes `out` where
    og says; h_n, c_n are (L*D, B, P) and (L*D, B, H)."""
    cdef int l, k
    cdef const floating* x_l = x
    cdef floating* out_l
    cdef OutRows between
    between.step = <Py_ssize_t>B * num_directions * params[0].proj_size
    between.row = num_directions * params[0].proj_size
    between.index = NULL
    for l in range(num_layers):
        out_l = out if l == num_layers - 1 else (buf_a if l % 2 == 0 else buf_b)
        k = l * num_directions
        run_layer(family, &params[k], d, num_directions, T, B, batch_sizes, x_l,
                  ldx if l == 0 else between.row, out_l,
                  og if l == num_layers - 1 else &between,
                  h_n + <Py_ssize_t>k * B * params[k].proj_size,
                  c_n + <Py_ssize_t>k * B * params[k].hidden_size if c_n != NULL else NULL,
                  ws, parity)
        x_l = out_l


# -- two halves of a batch, one per core --------------------------------------------

# A whole-sequence call of a unidirectional float32 stack goes to the two cores as two
# halves of its batch (fastrnn._pipeline.run: the even and the odd sequences of the
# length order) where a core's L2 holds every layer's panels (each core streams all of
# them): each core runs its sequences through all steps with no meeting per step, where
# the panel split meets once or twice a step. An even batch's halves are read in place
# (rows of twice the stride); an odd batch's are copied first, which pays only for
# layers below an LSTM's hidden SEQUENCE_SPLIT_BELOW (lstm_hidden). From
# SEQUENCE_SPLIT_MIN_BATCH sequences (halves of at least 2 keep the multi-column
# products) and SEQUENCE_SPLIT_MIN_STEPS steps (the call's one meeting costs about a
# step). Measured (2 threads, T=100, best of 5-7, halves / panel split time, AVX-512
# Xeon, 2 MB L2), even batches read in place: LSTM hidden 64 0.59x at batch 8, 0.99x
# at 64; 128 0.87x at 8, 0.92x at 16, 0.98x at 64, 1.03x at 4; 192 0.90x at 8; 256
# 0.92x at 8, 1.00x at 16-64; GRU 128 0.88x at 8, 0.99x at 4, GRU 256 0.96-0.98x at
# 16-64. Halves copied: LSTM hidden 32-64 0.60-0.83x at batch 4-32, 96 0.92-1.00x,
# but 128 0.98-1.10x.
cdef enum:
    SEQUENCE_SPLIT_BELOW = 128
    SEQUENCE_SPLIT_MIN_BATCH = 4
    SEQUENCE_SPLIT_MIN_STEPS = 8


cdef int _row_stride(cnp.ndarray x, dtype, int width) except -1:
    """The stride, in elements, of x's (T*n) rows of `width` values: x C-contiguous,
    or every other row of a C-contiguous array (one stride throughout); else a
    ValueError."""
    cdef Py_ssize_t size = dtype.itemsize
    cdef Py_ssize_t s0, s1
    if (cnp.PyArray_NDIM(x) == 3 and x.dtype == dtype and cnp.PyArray_ISNOTSWAPPED(x)
            and x.shape[2] == width and cnp.PyArray_STRIDE(x, 2) == size):
        if cnp.PyArray_IS_C_CONTIGUOUS(x):
            return width
        s0, s1 = cnp.PyArray_STRIDE(x, 0), cnp.PyArray_STRIDE(x, 1)
        if (s1 % size == 0 and s1 >= width * size and s0 == x.shape[1] * s1
                and s1 // size < 1 << 30):
            return <int>(s1 // size)
    raise ValueError(f"x must be a 3-D {dtype} array in native byte order whose (T*n) rows "
                     f"of {width} values are C-contiguous or one stride apart; got "
                     f"{x.dtype} {(<object>x).shape} strides {(<object>x).strides}")


cdef struct PairPart:
    # one half: its arrays (contiguous, as the pipeline made them) and workspace
    int B
    const int* bs
    const float* x
    int ldx                    # x's row stride: 2 * input_size for every other sequence
    float* h
    float* c
    OutRows og
    const Buffers* ws


cdef struct Pair:
    Family family
    const CellParams* params
    Dispatch d                 # threads = 1: each half runs on one core
    int num_layers, T
    float* out
    PairPart part[2]


cdef void pair_part(void* arg, int k) noexcept nogil:
    """Half k of a Pair, single-threaded, with flush-to-zero on this thread."""
    cdef Pair* a = <Pair*>arg
    cdef PairPart* h = &a.part[k]
    cdef unsigned int mxcsr
    if h.B == 0:
        return
    mxcsr = fr_ftz_enter()
    run_stack(a.family, a.params, &a.d, a.num_layers, 1, a.T, h.B, h.bs, h.x, h.ldx, a.out,
              &h.og, h.h, h.c, h.ws, <float*>h.ws.buf_a, <float*>h.ws.buf_b, 0)
    fr_ftz_leave(mxcsr)


# -- the packed model ----------------------------------------------------------------

cdef inline void* _data(cnp.ndarray a):
    return cnp.PyArray_DATA(a) if a is not None else NULL


cdef _check_array(cnp.ndarray a, str name, dtype, int ndim, bint writes):
    """What the drivers need of an array they read (and write, when writes)."""
    if (cnp.PyArray_NDIM(a) != ndim or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or not cnp.PyArray_ISNOTSWAPPED(a) or a.dtype != dtype
            or (writes and not cnp.PyArray_ISWRITEABLE(a))):
        raise ValueError(f"{name} must be a {ndim}-D C-contiguous {dtype} array in native "
                         f"byte order{', writeable' if writes else ''}; got {a.dtype} "
                         f"{(<object>a).shape}{'' if a.flags.writeable else ' read-only'}")


cdef bint _non_increasing_within(const int* v, Py_ssize_t n, int hi):
    cdef Py_ssize_t i
    cdef int last = hi
    for i in range(n):
        if v[i] < 0 or v[i] > last:
            return False
        last = v[i]
    return True


cdef bint _disjoint(const int* a, Py_ssize_t na, const int* b, Py_ssize_t nb,
                    Py_ssize_t n):
    """No value in both a and b, whose values are in [0, n) (checked): one mark per
    value, so that parts of any size cost their length."""
    seen = np.zeros(n, np.uint8)
    cdef unsigned char[::1] mark = seen
    cdef Py_ssize_t i
    for i in range(na):
        mark[a[i]] = 1
    for i in range(nb):
        if mark[b[i]]:
            return False
    return True


cdef bint _all_within(const int* v, Py_ssize_t n, int hi):
    cdef Py_ssize_t i
    for i in range(n):
        if v[i] < 0 or v[i] >= hi:
            return False
    return True


cdef class CellRecord:
    """One (layer, direction)'s packed parameters, as torch's CellParams: arrays of the
    model's dtype, C-contiguous, read-only (packing.py makes them).

    w_ih (gate_rows, input_size), w_hh (gate_rows, h_size), bias (gate_rows,) with the
    recurrent bias folded in where the family allows, b_hn (hidden,) the GRU's unfolded
    rows or None, w_hr (proj_size, hidden) or None. The fused kernels' copies (float32
    models; None otherwise): w_hh_panels and w_ih_panels in panel_dtype storage,
    bias_panels and b_hn_panels, all cache-line aligned.
    """

    def __init__(self, cnp.ndarray w_ih, cnp.ndarray w_hh, cnp.ndarray bias,
                 cnp.ndarray b_hn=None, cnp.ndarray w_hr=None, *,
                 cnp.ndarray w_hh_panels=None, cnp.ndarray w_ih_panels=None,
                 cnp.ndarray bias_panels=None, cnp.ndarray b_hn_panels=None,
                 str panel_dtype="float32"):
        if panel_dtype not in PANEL_DTYPES:
            raise ValueError(f"panel_dtype must be one of {list(PANEL_DTYPES)}, got "
                             f"{panel_dtype!r}")
        arrays = (w_ih, w_hh, bias, b_hn, w_hr, w_hh_panels, w_ih_panels, bias_panels,
                  b_hn_panels)
        for a in arrays:
            if a is not None and not a.flags.c_contiguous:
                raise ValueError("CellRecord arrays must be C-contiguous")
        self.w_ih, self.w_hh, self.bias, self.b_hn, self.w_hr = w_ih, w_hh, bias, b_hn, w_hr
        self.w_hh_panels, self.w_ih_panels = w_hh_panels, w_ih_panels
        self.bias_panels, self.b_hn_panels = bias_panels, b_hn_panels
        self.panel_dtype = panel_dtype

    @property
    def fused(self):
        """Whether the fused kernels' panels are packed."""
        return self.w_hh_panels is not None and self.w_ih_panels is not None

    def arrays(self):
        """Every array the record holds, by field name."""
        names = ("w_ih", "w_hh", "bias", "b_hn", "w_hr", "w_hh_panels", "w_ih_panels",
                 "bias_panels", "b_hn_panels")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


cdef class Workspace:
    """Buffers for one call shape (steps, batch), sized by its Kernel: gate rows for a
    chunk of steps (per direction: a bidirectional layer's directions may run side by
    side), the cell scratch, transposed / second-buffer states, and the buffers between
    layers. One call uses a workspace at a time."""

    def __init__(self, int steps, int batch, int chunk, cnp.ndarray gates,
                 cnp.ndarray scratch, cnp.ndarray state_t, cnp.ndarray buf_a,
                 cnp.ndarray buf_b):
        cdef int d = gates.shape[0]
        self.steps, self.batch, self.chunk = steps, batch, chunk
        self.gates, self.scratch, self.state_t = gates, scratch, state_t
        self.buf_a, self.buf_b = buf_a, buf_b
        self.buffers.gates, self.buffers.scratch, self.buffers.state_t = (
            _data(gates), _data(scratch), _data(state_t))
        self.buffers.gates_stride = cnp.PyArray_SIZE(gates) // d
        self.buffers.scratch_stride = cnp.PyArray_SIZE(scratch) // d
        self.buffers.state_stride = cnp.PyArray_SIZE(state_t) // d
        self.buffers.chunk = chunk
        self.buffers.buf_a, self.buffers.buf_b = _data(buf_a), _data(buf_b)


# How many call shapes keep a free workspace; beyond that the least recently used goes.
WORKSPACE_SHAPES = 8


cdef class Kernel:
    """The packed parameters of a whole stack with their dispatch plan, ready for the
    nogil drivers.

    Read-only once built, so one Kernel serves any number of threads, each call taking
    its own workspace (kept per call shape for the next call: `run`) and bringing its
    own states.
    """

    def __cinit__(self, int family, records, int num_directions, plan, bint relu=False):
        """records: one CellRecord per (layer, direction), layer-major; plan: the
        model's Plan (plan.py)."""
        cdef int k
        cdef CellRecord rec
        cdef const fr_kernels* fns = fr_kernels_for(_isa_index(plan.isa, "plan.isa"))
        self.isa = fns.name.decode()
        self.records = tuple(records)
        if not self.records or len(self.records) % num_directions:
            raise ValueError(f"{len(self.records)} records for {num_directions} directions")
        self.family = family
        self.num_directions = num_directions
        self.num_layers = len(self.records) // num_directions
        first = self.records[0]
        self.dtype = first.w_ih.dtype
        self.is_double = self.dtype == np.float64
        self.input_size = first.w_ih.shape[1]
        self.h_size = first.w_hh.shape[1]
        self.hidden_size = first.w_hr.shape[1] if first.w_hr is not None else self.h_size
        self.gates = first.w_ih.shape[0] // self.hidden_size
        self.plan = plan
        self._lock = threading.Lock()
        self._free = OrderedDict()
        self.params = <CellParams*>malloc(len(self.records) * sizeof(CellParams))
        if self.params == NULL:
            raise MemoryError()
        fused = not self.is_double and plan.fused
        streams = False
        for k, rec in enumerate(self.records):
            if rec.w_ih.dtype != self.dtype or rec.w_hh.dtype != self.dtype:
                raise ValueError("every record must have the model's dtype")
            self.params[k].w_ih = _data(rec.w_ih)
            self.params[k].w_hh = _data(rec.w_hh)
            self.params[k].bias = _data(rec.bias)
            self.params[k].b_hn = _data(rec.b_hn)
            self.params[k].w_hr = _data(rec.w_hr)
            self.params[k].input_size = rec.w_ih.shape[1]
            self.params[k].gate_rows = rec.w_ih.shape[0]
            self.params[k].proj_size = rec.w_hh.shape[1]
            self.params[k].hidden_size = (rec.w_hr.shape[1] if rec.w_hr is not None
                                          else rec.w_hh.shape[1])
            self.params[k].relu = relu
            self.params[k].w_hh_panels = _data(rec.w_hh_panels) if fused else NULL
            self.params[k].w_ih_panels = _data(rec.w_ih_panels) if fused else NULL
            self.params[k].panel_dtype = PANEL_DTYPES[rec.panel_dtype]
            self.params[k].bias_panels = _data(rec.bias_panels)
            self.params[k].b_hn_panels = _data(rec.b_hn_panels)
            self.params[k].panel_bytes = (
                (rec.w_hh_panels.nbytes + rec.w_ih_panels.nbytes) if rec.fused else 0)
            self.params[k].fns = fns
            fused = fused and rec.fused
            streams = streams or (rec.fused and rec.w_hh_panels.nbytes > plan.cache_bytes)
        self.streams = streams
        # one limit for the model (plan.max_batch), the streamed one where any layer's
        # W_hh panels exceed the L2 (every layer's W_hh has the same shape; W_hr is not
        # counted): a batch runs fused through every layer or through none, as
        # Kernel.batch_groups assumes
        limit = plan.max_batch(FAMILY_NAMES.get(family, ""), streams)
        self.dispatch.fused_max_batch = min(limit, FR_MAXB) if fused else 0
        self.dispatch.fused_x_min_batch = plan.fused_x_min_batch
        self.dispatch.cache_bytes = plan.cache_bytes
        self.dispatch.split_min_hidden = plan.split_min_hidden
        self.dispatch.threads = 1

    def __dealloc__(self):
        free(self.params)

    @property
    def fused_max_batch(self):
        """The largest batch this kernel runs fused (0: none)."""
        return self.dispatch.fused_max_batch

    cpdef batch_groups(self, int batch):
        """Near-equal slices of `batch` to run one fused call each, or None (one call).

        Where the fused kernel runs up to its limit, it beats BLAS there, and a larger
        batch runs faster as groups of at most that many sequences than through BLAS
        whole: 1.1-1.3x at batch 65-256, hidden 32-1024, copies included (AVX-512).
        With a lower limit BLAS takes the batch."""
        cdef int limit = self.dispatch.fused_max_batch
        cdef int count, i
        if batch <= limit or limit < FR_MAXB:
            return None
        count = (batch + limit - 1) // limit   # C division here (cdivision): no negatives
        return [(<long long>batch * i // count, <long long>batch * (i + 1) // count)
                for i in range(count)]

    cpdef Workspace workspace(self, int steps, int batch):
        """A new Workspace for calls of `steps` steps of `batch` sequences."""
        d = self.num_directions
        # hidden padded to whole panels: the fused path's projection is in panel order
        gate_rows = self.gates * ((self.hidden_size + FR_U - 1) // FR_U * FR_U)
        chunk = max(1, min(steps, self.plan.chunk_elements // max(1, batch * gate_rows)))
        width = d * self.h_size
        return Workspace(
            steps, batch, chunk,
            empty_aligned((d, chunk, batch, gate_rows), self.dtype),
            empty_aligned((d, batch, gate_rows), self.dtype),
            # h and c transposed (feature-major layout); the fused kernel's second h
            empty_aligned(d * batch * (self.h_size + self.hidden_size), self.dtype),
            np.empty((steps, batch, width), self.dtype) if self.num_layers > 1 else None,
            np.empty((steps, batch, width), self.dtype) if self.num_layers > 2 else None)

    cpdef Workspace take_workspace(self, int steps, int batch):
        """A free workspace of this shape, or a new one. The caller owns it until it
        gives it back, so concurrent calls never share buffers."""
        with self._lock:
            free = self._free.get((steps, batch))
            if free:
                return free.pop()
        return self.workspace(steps, batch)

    cpdef give_workspace(self, Workspace ws):
        """Back to the free list of its shape; the least recently given shape goes when
        more than WORKSPACE_SHAPES are kept."""
        key = (ws.steps, ws.batch)
        with self._lock:
            free = self._free.get(key)
            if free is None:
                free = self._free[key] = []
                if len(self._free) > WORKSPACE_SHAPES:
                    self._free.popitem(last=False)
            else:
                self._free.move_to_end(key)
            free.append(ws)

    def free_shapes(self):
        """The call shapes that hold a free workspace, least recently used first."""
        with self._lock:
            return list(self._free)

    def run(self, cnp.ndarray x not None, cnp.ndarray out not None,
            cnp.ndarray h_n not None, cnp.ndarray c_n, cnp.ndarray batch_sizes=None,
            cnp.ndarray rows=None, bint batch_major=False):
        """Run the stack over x (T, B, I), advancing h_n (L*D, B, P) and c_n (L*D, B, H)
        in place, in a workspace of this shape. Sequence b's outputs go to row rows[b]
        (default b) of out, (T, N, D*P), or (N, T, D*P) when batch_major: the caller's
        order and layout, written once. Arrays: C-contiguous, native, of the kernel's
        dtype, the written ones writeable; batch_sizes (T,) int32, non-increasing, in
        [0, B], or None; rows (B,) int32 in [0, N), or None (then N = B). The model's call
        pipeline makes them so; anything else is refused here (the kernel is public as
        model.kernel) with a ValueError naming the argument. Runs without the GIL."""
        _check_array(x, "x", self.dtype, 3, False)   # before any shape is read
        c_n = self._check_call(x, out, h_n, c_n, batch_sizes, rows, batch_major)
        self.run_trusted(x, out, h_n, c_n, batch_sizes, rows, batch_major)

    cdef cnp.ndarray _check_call(self, cnp.ndarray x, cnp.ndarray out, cnp.ndarray h_n,
                                 cnp.ndarray c_n, cnp.ndarray batch_sizes, cnp.ndarray rows,
                                 bint batch_major):
        """run's checks of everything but x's layout (which the caller checked): x's
        shape, out, the states, batch_sizes and rows, each with a ValueError naming it.
        Returns c_n, None for a family without a cell state."""
        cdef int T, B
        cdef Py_ssize_t width, n
        cdef int L = self.num_layers * self.num_directions
        _check_array(out, "out", self.dtype, 3, True)
        _check_array(h_n, "h_n", self.dtype, 3, True)
        T, B = x.shape[0], x.shape[1]
        n = out.shape[0] if batch_major else out.shape[1]
        width = out.shape[2]
        if (x.shape[2] != self.input_size or (out.shape[1] if batch_major else out.shape[0])
                != T or width != self.num_directions * self.h_size or n < B
                or (rows is None and n != B)):
            raise ValueError(f"x {(<object>x).shape} and out {(<object>out).shape} do not "
                             f"fit the kernel (input_size {self.input_size}, output width "
                             f"{self.num_directions * self.h_size}, batch_major={batch_major})")
        if (<object>h_n).shape != (L, B, self.h_size):
            raise ValueError(f"h_n must have shape {(L, B, self.h_size)}, got "
                             f"{(<object>h_n).shape}")
        if self.family == LSTM:
            if c_n is None:
                raise ValueError("c_n is needed: the kernel's family has a cell state")
            _check_array(c_n, "c_n", self.dtype, 3, True)
            if (<object>c_n).shape != (L, B, self.hidden_size):
                raise ValueError(f"c_n must have shape {(L, B, self.hidden_size)}, got "
                                 f"{(<object>c_n).shape}")
        else:
            c_n = None
        if batch_sizes is not None:
            _check_array(batch_sizes, "batch_sizes", np.dtype(np.intc), 1, False)
            if batch_sizes.shape[0] != T or not _non_increasing_within(
                    <const int*>_data(batch_sizes), T, B):
                raise ValueError(f"batch_sizes must be {T} non-increasing counts in "
                                 f"[0, {B}]")
        if rows is not None:
            _check_array(rows, "rows", np.dtype(np.intc), 1, False)
            if rows.shape[0] != B or not _all_within(<const int*>_data(rows), B, <int>n):
                raise ValueError(f"rows must be {B} row indices in [0, {n})")
        return c_n

    def run_trusted(self, cnp.ndarray x, cnp.ndarray out, cnp.ndarray h_n,
                    cnp.ndarray c_n, cnp.ndarray batch_sizes, cnp.ndarray rows,
                    bint batch_major):
        """run() for arrays already known to be what run() checks (the call pipeline's
        own, made and validated by it): no second check on every model call."""
        cdef int T = x.shape[0]
        cdef int B = x.shape[1]
        cdef OutRows og
        cdef Py_ssize_t width = out.shape[2]
        if B == 0:
            return
        og.step = width if batch_major else out.shape[1] * width
        og.row = T * width if batch_major else width
        og.index = <const int*>_data(rows)
        ws = self.take_workspace(T, B)
        try:
            self.execute(T, B, <const int*>_data(batch_sizes), _data(x), _data(out),
                         _data(h_n), _data(c_n), ws, 0, &og)
        finally:
            self.give_workspace(ws)

    cpdef bint reads_x_in_step(self, int B):
        """Whether a fused call of B sequences over several steps, on one core, takes its
        first layer's W_ih x from the panels in every step (plan.fused_x_min_batch and
        plan.cache_bytes: x_from_panels) rather than from one projection per chunk."""
        cdef const CellParams* p = &self.params[0]
        return runs_fused(p, &self.dispatch, B) and x_from_panels(p, &self.dispatch, B, False)

    cpdef bint splits_sequences(self, int T, int B):
        """Whether a call of T steps of B sequences runs as two halves of the batch, one
        per core (run_pair): two threads allowed (fastrnn.set_num_threads), a
        unidirectional float32 stack fused at this batch, at least
        SEQUENCE_SPLIT_MIN_BATCH sequences and SEQUENCE_SPLIT_MIN_STEPS steps, and every
        layer's panels within plan.cache_bytes (each core streams all of them at every
        step; all of it, not x_from_panels' 7/8: an LSTM's hidden 256, 2 MB of panels on
        a 2 MB L2, ran its halves at 0.95-0.98x the panel split's time at batch 8-64), an
        odd batch only below SEQUENCE_SPLIT_BELOW (an LSTM's hidden units: lstm_hidden;
        its halves are copied)."""
        cdef int k
        if (_kernel_threads < 2 or self.is_double or self.num_directions != 1
                or B < SEQUENCE_SPLIT_MIN_BATCH or T < SEQUENCE_SPLIT_MIN_STEPS
                or not runs_fused(&self.params[0], &self.dispatch, B)):
            return False
        for k in range(self.num_layers):
            if ((B % 2 and lstm_hidden(&self.params[k]) >= SEQUENCE_SPLIT_BELOW)
                    or self.params[k].panel_bytes > self.dispatch.cache_bytes):
                return False
        return True

    def run_pair(self, cnp.ndarray out, parts, bint batch_major):
        """Two halves of a batch at once, one per core. parts: two (x, h_n, c_n,
        batch_sizes, rows) of the pipeline's making, as run_trusted takes them (each
        half's x (T, n, I) and states, its rows of out), but x may also be every other
        sequence of a C-contiguous batch (x[:, k::2] of an even batch: rows of one
        stride), read in place; where the helper core is taken by another call, the
        halves run one after the other. Each part gets run's checks (rows required,
        and no row of out written by both parts)."""
        cdef Pair pair
        cdef int k, T
        cdef unsigned int mxcsr
        cdef Py_ssize_t width
        cdef cnp.ndarray x, h_n, c_n, bs, rows
        if self.is_double or self.num_directions != 1 or len(parts) != 2:
            raise ValueError("run_pair runs two halves of a unidirectional float32 stack")
        _check_array(out, "out", self.dtype, 3, True)
        width = out.shape[2]
        T = out.shape[1] if batch_major else out.shape[0]
        for k in range(2):
            x, h_n, c_n, bs, rows = parts[k]
            if rows is None:
                raise ValueError(f"run_pair: part {k} needs its rows of out")
            pair.part[k].ldx = _row_stride(x, self.dtype, self.input_size)
            c_n = self._check_call(x, out, h_n, c_n, bs, rows, batch_major)
            pair.part[k].B = x.shape[1]
            pair.part[k].bs = <const int*>_data(bs)
            pair.part[k].x = <const float*>_data(x)
            pair.part[k].h = <float*>_data(h_n)
            pair.part[k].c = <float*>_data(c_n)
            pair.part[k].og.step = width if batch_major else out.shape[1] * width
            pair.part[k].og.row = T * width if batch_major else width
            pair.part[k].og.index = <const int*>_data(rows)
        if not _disjoint(pair.part[0].og.index, pair.part[0].B, pair.part[1].og.index,
                         pair.part[1].B, out.shape[0] if batch_major else out.shape[1]):
            raise ValueError("run_pair: the two parts' rows of out must differ (the cores "
                             "write them at once)")
        pair.family, pair.params, pair.d = <Family>self.family, self.params, self.dispatch
        pair.d.threads = 1
        pair.num_layers, pair.T = self.num_layers, T
        pair.out = <float*>_data(out)
        spaces = []
        try:
            for k in range(2):
                ws = self.take_workspace(T, pair.part[k].B)
                spaces.append(ws)
                pair.part[k].ws = &(<Workspace>ws).buffers
            with nogil:
                if fr_pool_acquire():
                    fr_pool_run(pair_part, &pair, FR_LONG_JOB)
                    fr_pool_release()
                else:
                    mxcsr = fr_ftz_enter()
                    pair_part(&pair, 0)
                    pair_part(&pair, 1)
                    fr_ftz_leave(mxcsr)
        finally:
            for ws in spaces:
                self.give_workspace(ws)

    cdef int threads_for(self, int T, int B):
        """2 when this call should take the helper core and has it (the caller then
        releases it: fr_pool_release), else 1."""
        cdef const CellParams* p = &self.params[0]
        cdef bint want
        if _kernel_threads < 2 or self.is_double or not runs_fused(p, &self.dispatch, B):
            return 1
        if self.num_directions == 2 and side_by_side(p, &self.dispatch):
            # whole directions side by side (run_layer): one meeting per layer
            want = <long long>T * B * self.hidden_size * self.hidden_size >= 65536
        else:
            want = split_pays(&self.dispatch, p, B)
        return 2 if want and fr_pool_acquire() else 1

    cdef void release_threads(self, int threads) noexcept nogil:
        """Give back the helper core threads_for took (threads == 2): the pool lives in
        this module, so compiled loops in other modules release it here."""
        if threads == 2:
            fr_pool_release()

    cdef void run_nogil(self, int T, int B, const int* bs, const void* px, void* pout,
                        void* ph, void* pc, Workspace ws, int parity, const OutRows* og,
                        int threads) noexcept nogil:
        """run_stack in the kernel's dtype, for callers that hold no GIL and have set
        flush-to-zero (fr_ftz_enter) themselves: a compiled loop of many calls. og: where
        the outputs go (NULL: out is (T, B, D*P) in the batch's order); threads: from
        threads_for."""
        cdef Dispatch d = self.dispatch
        cdef OutRows dense
        cdef void* pa = ws.buffers.buf_a
        cdef void* pb = ws.buffers.buf_b
        d.threads = threads
        if og == NULL:
            dense.row = self.num_directions * self.h_size
            dense.step = B * dense.row
            dense.index = NULL
            og = &dense
        if self.is_double:
            run_stack(<Family>self.family, self.params, &d, self.num_layers,
                      self.num_directions, T, B, bs, <const double*>px, self.input_size,
                      <double*>pout, og,
                      <double*>ph, <double*>pc, &ws.buffers, <double*>pa, <double*>pb,
                      parity)
        else:
            run_stack(<Family>self.family, self.params, &d, self.num_layers,
                      self.num_directions, T, B, bs, <const float*>px, self.input_size,
                      <float*>pout, og,
                      <float*>ph, <float*>pc, &ws.buffers, <float*>pa, <float*>pb, parity)

    cdef void execute(self, int T, int B, const int* bs, void* px, void* pout, void* ph,
                      void* pc, Workspace ws, int parity, const OutRows* og=NULL) except *:
        """run_nogil without the GIL, with flush-to-zero, on two cores when a split is
        wanted and the helper is free. parity: where the alternating panel order stands
        (a stream's step count; 0 for a sequence)."""
        cdef unsigned int mxcsr
        cdef int threads = self.threads_for(T, B)
        with nogil:
            mxcsr = fr_ftz_enter()
            self.run_nogil(T, B, bs, px, pout, ph, pc, ws, parity, og, threads)
            fr_ftz_leave(mxcsr)
            if threads == 2:
                fr_pool_release()


cdef class StreamCore:
    """The state and every buffer of a stream of step calls through a unidirectional
    stack, allocated once; `step` runs all layers in one nogil call. The checks of
    anything that is not already an array of the right kind live in the Python
    subclass (fastrnn.stream.Stream: _check_x, _check_out).

    Not thread-safe by itself (it owns its state): give each thread its own stream.
    Streams of one model share its read-only Kernel.
    """
    cdef readonly Kernel kernel
    cdef readonly int batch, input_size, output_size
    cdef readonly object dtype
    cdef int typenum
    cdef cnp.ndarray y
    cdef readonly bint has_c
    cdef int parity   # steps taken, mod 2: the fused kernel's panel order goes by turns
    # the batch's groups (Kernel.batch_groups; one group when none): (first, end, h, c,
    # workspace for one step), each group with its own state
    cdef list groups
    cdef cnp.ndarray h, c     # the single group's state and workspace, for step()'s
    cdef Workspace ws         # fast path (None when grouped)

    def __cinit__(self, Kernel kernel, int batch):
        if kernel.num_directions != 1:
            raise ValueError("a stream needs a unidirectional model")
        L = kernel.num_layers
        self.kernel = kernel
        self.batch = batch
        self.input_size = kernel.input_size
        self.output_size = kernel.h_size
        self.dtype = kernel.dtype
        self.typenum = self.dtype.num
        self.has_c = kernel.family == LSTM
        self.y = np.empty((1, batch, self.output_size), self.dtype)
        spans = kernel.batch_groups(batch) or [(0, batch)]
        self.groups = [
            (first, end, np.zeros((L, end - first, self.output_size), self.dtype),
             np.zeros((L, end - first, kernel.hidden_size), self.dtype)
             if self.has_c else None, kernel.workspace(1, end - first))
            for first, end in spans]
        if len(self.groups) == 1:
            _, _, self.h, self.c, self.ws = self.groups[0]

    cdef bint _fits(self, object a, int size, bint writes):
        """a is a C-contiguous ndarray of the stream's dtype in native byte order
        holding `size` values (and writeable, when the kernel writes it)."""
        return (type(a) is cnp.ndarray
                and cnp.PyArray_TYPE(<cnp.ndarray>a) == self.typenum
                and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
                and (not writes or cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a))
                and cnp.PyArray_SIZE(<cnp.ndarray>a) == size)

    def step(self, x, out=None):
        """Advance every stream in the batch by one time step.

        x: (batch, input_size), or (input_size,) for a stream of batch 1, of the model's
        dtype (other float dtypes are converted). Returns the last layer's output,
        (batch, output_size) or (output_size,) like x; with `out` (a writeable array of
        that shape and the model's dtype) it is written there and no array is allocated.
        """
        cdef cnp.ndarray xa
        cdef int B = self.batch
        if self._fits(x, B * self.input_size, False) and (
                (cnp.PyArray_NDIM(<cnp.ndarray>x) == 2
                 and cnp.PyArray_DIM(<cnp.ndarray>x, 1) == self.input_size)
                or (cnp.PyArray_NDIM(<cnp.ndarray>x) == 1 and B == 1)):
            xa = <cnp.ndarray>x
        else:
            xa = self._check_x(x)
        cdef bint flat = cnp.PyArray_NDIM(xa) == 1
        cdef cnp.ndarray dest = self.y
        if out is not None:
            if not self._fits(out, B * self.output_size, True) or (
                    cnp.PyArray_NDIM(<cnp.ndarray>out) != (1 if flat else 2)):
                self._check_out(out, flat)   # refuses it, or it is an ndarray subclass
            dest = <cnp.ndarray>out
        if self.ws is not None:   # one group: the whole batch
            self.kernel.execute(1, B, NULL, cnp.PyArray_DATA(xa), cnp.PyArray_DATA(dest),
                                cnp.PyArray_DATA(self.h), _data(self.c), self.ws, self.parity)
            self.parity ^= 1
        else:
            self._advance_groups(1, xa, dest, False)
        if out is not None:
            return out
        return self.y[0, 0].copy() if flat else self.y[0].copy()

    def _advance(self, int steps, cnp.ndarray xs, cnp.ndarray dest):
        """`steps` time steps: xs (steps, batch, I) -> dest (steps, batch, P), both
        validated (C-contiguous, native, writeable dest, the stream's dtype)."""
        self._advance_groups(steps, xs, dest, len(self.groups) > 1)

    cdef _advance_groups(self, int steps, cnp.ndarray xs, cnp.ndarray dest, bint copies):
        """`steps` time steps of every group: xs (steps, batch, I) -> dest (steps, batch,
        P), C-contiguous of the stream's dtype. A single step reads each group's rows in
        place; several steps of a grouped batch go through contiguous copies (copies)."""
        cdef Py_ssize_t size = self.dtype.itemsize
        cdef int first, end
        cdef char* px = <char*>cnp.PyArray_DATA(xs)
        cdef char* pout = <char*>cnp.PyArray_DATA(dest)
        for first, end, h, c, ws in self.groups:
            if copies:
                x_g = np.ascontiguousarray(xs[:, first:end])
                o_g = np.empty((steps, end - first, self.output_size), self.dtype)
                ws = self.kernel.take_workspace(steps, end - first)
                try:
                    self.kernel.execute(steps, end - first, NULL, _data(x_g), _data(o_g),
                                        _data(h), _data(c), ws, self.parity)
                finally:
                    self.kernel.give_workspace(ws)
                dest[:, first:end] = o_g
            elif steps == 1:
                self.kernel.execute(1, end - first, NULL,
                                    px + first * self.input_size * size,
                                    pout + first * self.output_size * size,
                                    _data(h), _data(c), ws, self.parity)
            else:
                ws = self.kernel.take_workspace(steps, end - first)
                try:
                    self.kernel.execute(steps, end - first, NULL, px, pout, _data(h),
                                        _data(c), ws, self.parity)
                finally:
                    self.kernel.give_workspace(ws)
        self.parity = (self.parity + steps) & 1

    def _check_x(self, x):
        raise NotImplementedError

    def _check_out(self, out, flat):
        raise NotImplementedError

    def reset(self):
        """Every state back to zeros."""
        for group in self.groups:
            group[2].fill(0)
            if group[3] is not None:
                group[3].fill(0)

    def _get_state(self):
        """(h, c or None), the whole batch's (num_layers, batch, .) state arrays."""
        if len(self.groups) == 1:
            return self.groups[0][2], self.groups[0][3]
        return (np.concatenate([g[2] for g in self.groups], axis=1),
                np.concatenate([g[3] for g in self.groups], axis=1) if self.has_c else None)

    def _set_state(self, h, c):
        """h, c: validated arrays of the state's shapes."""
        for first, end, h_g, c_g, _ in self.groups:
            h_g[...] = h[:, first:end]
            if c_g is not None:
                c_g[...] = c[:, first:end]
