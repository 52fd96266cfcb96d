# Row-major matrix products on BLAS gemm, for every kernel module that multiplies matrices.
# scipy.linalg.cython_blas hands out the BLAS scipy itself links, so no link flags are needed.
from scipy.linalg.cython_blas cimport dgemm, sgemm

from _common cimport floating


cdef inline void matmul(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                        const floating *a, int lda, const floating *b, int ldb, floating beta,
                        floating *c, int ldc) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C for row-major storage.

    op(A) is m x k, op(B) is k x n, C is m x n; lda, ldb, ldc are the row strides (in elements)
    of A, B and C as stored.  A row-major matrix is its transpose in BLAS's column-major view,
    so C^T = op(B)^T @ op(A)^T is one gemm with the operands swapped and no copies.
    """
    cdef char op_a = b'T' if trans_a else b'N'
    cdef char op_b = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&op_b, &op_a, &n, &m, &k, &alpha, <float *> b, &ldb, <float *> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&op_b, &op_a, &n, &m, &k, &alpha, <double *> b, &ldb, <double *> a, &lda,
              &beta, c, &ldc)
