from cython cimport floating
from fastrnn._kernels._cell cimport CellParams

cdef void lstm_step(const CellParams* p, int m, floating* gates, floating* h,
                    floating* c, floating* scratch) noexcept nogil
