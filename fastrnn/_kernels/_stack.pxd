# What other kernel modules (the compiled decode loops) may use of the drivers: the
# packed Kernel with its nogil entry point, its workspaces, and the structs they take.
cimport numpy as cnp

from fastrnn._kernels._cell cimport CellParams


cpdef enum Family:
    LSTM = 0
    GRU = 1
    RNN = 2
    GRU_TEXTBOOK = 3    # reset_after=False: two products per step (gru.pxd)


cdef struct Dispatch:
    int fused_max_batch     # 0 when the model runs no fused kernel at all
    int fused_x_min_batch
    Py_ssize_t cache_bytes  # a core's L2: below FR_MAXB, in-step W_ih x only within it
    int split_min_hidden
    int threads             # 1, or 2 when this call may split across two cores


cdef struct OutRows:
    # where a layer's outputs go: the caller's order and layout for the last layer
    # (time- or batch-major, sequences where the caller had them: no copies after the
    # call), time-major in sorted order between layers
    Py_ssize_t step            # elements from one time step to the next
    Py_ssize_t row             # elements from one sequence to the next
    const int* index           # sequence b's row (NULL: b)


cdef struct Buffers:
    # one call's workspace (Kernel.workspace); a bidirectional layer whose directions
    # run side by side gives direction 1 the second half of each
    void* gates
    void* scratch
    void* state_t
    void* buf_a                # the outputs of layers between (None: NULL)
    void* buf_b
    Py_ssize_t gates_stride, scratch_stride, state_stride   # elements per direction
    int chunk


cdef class CellRecord:
    cdef readonly cnp.ndarray w_ih, w_hh, bias, b_hn, w_hr
    cdef readonly cnp.ndarray w_hh_panels, w_ih_panels, bias_panels, b_hn_panels
    cdef readonly str panel_dtype


cdef class Workspace:
    cdef readonly int steps, batch, chunk
    cdef readonly cnp.ndarray gates, scratch, state_t, buf_a, buf_b
    cdef Buffers buffers     # the pointers, as the drivers take them


cdef class Kernel:
    cdef CellParams* params
    cdef Dispatch dispatch
    cdef readonly int family, num_layers, num_directions, input_size, hidden_size, h_size
    cdef readonly int gates
    cdef readonly bint is_double
    # a layer's W_hh panels exceed plan.cache_bytes (its recurrent weights stream from
    # beyond the L2 at every step): the fused limit is plan.streamed_max_batch's
    cdef readonly bint streams
    cdef readonly str isa           # the plan's: whose table of C kernels it runs
    cdef readonly object dtype, plan
    cdef readonly tuple records
    cdef object _lock, _free

    cpdef batch_groups(self, int batch)
    cpdef Workspace workspace(self, int steps, int batch)
    cpdef Workspace take_workspace(self, int steps, int batch)
    cpdef give_workspace(self, Workspace ws)
    cpdef bint reads_x_in_step(self, int B)
    cpdef bint splits_sequences(self, int T, int B)
    cdef cnp.ndarray _check_call(self, cnp.ndarray x, cnp.ndarray out, cnp.ndarray h_n,
                                 cnp.ndarray c_n, cnp.ndarray batch_sizes, cnp.ndarray rows,
                                 bint batch_major)
    cdef int threads_for(self, int T, int B)
    cdef void release_threads(self, int threads) noexcept nogil
    cdef void run_nogil(self, int T, int B, const int* bs, const void* px, void* pout,
                        void* ph, void* pc, Workspace ws, int parity, const OutRows* og,
                        int threads) noexcept nogil
    cdef void execute(self, int T, int B, const int* bs, void* px, void* pout, void* ph,
                      void* pc, Workspace ws, int parity, const OutRows* og=*) except *
