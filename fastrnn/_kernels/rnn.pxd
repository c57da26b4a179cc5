from cython cimport floating
from fastrnn._kernels._cell cimport CellParams

cdef void rnn_step(const CellParams* p, bint fm, int m, floating* gates, int ldg,
                   floating* h, floating* c, int ldb, floating* scratch) noexcept nogil

cdef void rnn_step1(const CellParams* p, int p0, int p1, bint rev, int m, const float* gin,
                     const float* x,
                     const float* h, float* c,
                    float* h_out, float* scratch) noexcept nogil
