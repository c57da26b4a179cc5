from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef void gemm(BLAS_Trans ta, BLAS_Trans tb, int m, int n, int k,
               floating alpha, const floating* A, int lda,
               const floating* B, int ldb,
               floating beta, floating* C, int ldc) noexcept nogil:
    """C (m x n) := alpha * op(A) @ op(B) + beta * C, all row-major.

    Row-major C is column-major C^T = op(B)^T op(A)^T, so the operands and m/n swap.
    """
    cdef char ta_ = ta
    cdef char tb_ = tb
    if floating is float:
        sgemm(&tb_, &ta_, &n, &m, &k, &alpha, <float*>B, &ldb, <float*>A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb_, &ta_, &n, &m, &k, &alpha, <double*>B, &ldb, <double*>A, &lda,
              &beta, C, &ldc)


cdef void gemv(BLAS_Trans ta, int m, int n, floating alpha,
               const floating* A, int lda, const floating* x, int incx,
               floating beta, floating* y, int incy) noexcept nogil:
    """y := alpha * op(A) @ x + beta * y, A row-major (m x n)."""
    # A row-major is A^T column-major: flip the transpose flag and the dimensions.
    cdef char ta_ = NoTrans if ta == Trans else Trans
    if floating is float:
        sgemv(&ta_, &n, &m, &alpha, <float*>A, &lda, <float*>x, &incx, &beta, y, &incy)
    else:
        dgemv(&ta_, &n, &m, &alpha, <double*>A, &lda, <double*>x, &incx, &beta, y, &incy)


cdef void matmul_bt(int m, int n, int k, const floating* A, int lda,
                    const floating* B, floating beta,
                    floating* C, int ldc) noexcept nogil:
    """C[:m, :n] := A[:m, :k] @ B.T + beta * C with B (n x k) contiguous.

    The recurrent and projection products all have this shape. One row goes through
    gemv: OpenBLAS's sgemm with m = 1 pays for packing it cannot use.
    """
    if m == 1:
        gemv(NoTrans, n, k, <floating>1, B, k, A, 1, beta, C, 1)
    else:
        gemm(NoTrans, Trans, m, n, k, <floating>1, A, lda, B, k, beta, C, ldc)


cdef void project(bint fm, int n_out, int m, int k, const floating* W,
                  const floating* x, int ldx, floating beta,
                  floating* y, int ldy) noexcept nogil:
    """y := W x + beta * y for m vectors x, W (n_out x k) contiguous, in either layout:

    feature-major (fm): x is (k, m), y is (n_out, m): GEMM W @ x;
    batch-major: x is (m, k), y is (m, n_out): x @ W.T.
    OpenBLAS runs the feature-major form up to 8x faster for batches of 2 to 64
    (H = 256: 13 vs 115 us at batch 2, 153 vs 240 us at batch 64),
    so the kernels use it for every batch but 1, where this is one gemv either way.
    """
    if fm:
        gemm(NoTrans, NoTrans, n_out, m, k, <floating>1, W, k, x, ldx, beta, y, ldy)
    else:
        matmul_bt(m, n_out, k, x, ldx, W, beta, y, ldy)


# Python-callable twins, used only by the tests to check every transpose x dtype
# against NumPy.

def _gemm_memview(BLAS_Trans ta, BLAS_Trans tb, double alpha,
                  floating[:, ::1] A, floating[:, ::1] B, double beta,
                  floating[:, ::1] C):
    cdef int m = C.shape[0]
    cdef int n = C.shape[1]
    cdef int k = A.shape[1] if ta == NoTrans else A.shape[0]
    gemm(ta, tb, m, n, k, <floating>alpha, &A[0, 0], A.shape[1], &B[0, 0], B.shape[1],
         <floating>beta, &C[0, 0], C.shape[1])


def _gemv_memview(BLAS_Trans ta, double alpha, floating[:, ::1] A,
                  floating[::1] x, double beta, floating[::1] y):
    gemv(ta, A.shape[0], A.shape[1], <floating>alpha, &A[0, 0], A.shape[1], &x[0], 1,
         <floating>beta, &y[0], 1)


def _matmul_bt_memview(floating[:, ::1] A, floating[:, ::1] B, double beta,
                       floating[:, ::1] C):
    matmul_bt(A.shape[0], B.shape[0], A.shape[1], &A[0, 0], A.shape[1], &B[0, 0],
              <floating>beta, &C[0, 0], C.shape[1])
