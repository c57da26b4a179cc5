from cython cimport floating
from fastrnn._kernels._cell cimport CellParams

cdef void rnn_step(const CellParams* p, bint fm, int m, floating* gates, int ldg,
                   floating* h, floating* c, int ldb, floating* scratch) noexcept nogil
