# The one place fastrnn talks to BLAS (scipy.linalg.cython_blas, no link-time BLAS).
# Callers think in row-major NumPy shapes; the column-major translation and the
# 32-bit BLAS integers live here and nowhere else.
from cython cimport floating

cpdef enum BLAS_Trans:
    NoTrans = 110  # 'n'
    Trans = 116    # 't'

cdef void gemm(BLAS_Trans ta, BLAS_Trans tb, int m, int n, int k,
               floating alpha, const floating* A, int lda,
               const floating* B, int ldb,
               floating beta, floating* C, int ldc) noexcept nogil

cdef void gemv(BLAS_Trans ta, int m, int n, floating alpha,
               const floating* A, int lda, const floating* x, int incx,
               floating beta, floating* y, int incy) noexcept nogil

cdef void matmul_bt(int m, int n, int k, const floating* A, int lda,
                    const floating* B, floating beta,
                    floating* C, int ldc) noexcept nogil

cdef void project(bint fm, int n_out, int m, int k, const floating* W,
                  const floating* x, int ldx, floating beta,
                  floating* y, int ldy) noexcept nogil
