# Row-major GEMM through scipy's BLAS, for kernel modules that multiply matrices.  Kept apart
# from _common.pxd because cimporting it makes a module import scipy.linalg.cython_blas at load
# time, which the kernels that need no BLAS should not pay for.

from scipy.linalg.cython_blas cimport dgemm, sgemm

from _common cimport floating


cdef inline void gemm_row_major(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                                const floating *a, int lda, const floating *b, int ldb,
                                floating beta, floating *c, int ldc) noexcept nogil:
    """c = alpha * op(a) @ op(b) + beta * c for row-major matrices.

    op(a) is (m, k) and op(b) is (k, n); a stored row-major is (k, m) when trans_a, else (m, k),
    likewise b.  lda, ldb, ldc are the row lengths in memory (elements).  With beta == 0, c is
    not read, so it may start uninitialised.
    """
    # BLAS sees a row-major array as its transpose in column-major order.  Asking it for
    # c^T = op(b)^T op(a)^T therefore writes row-major c without any transposing copy; each
    # stored operand is already the transpose BLAS needs, so the transpose flags carry over.
    cdef char flag_a = b'T' if trans_a else b'N'
    cdef char flag_b = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&flag_b, &flag_a, &n, &m, &k, &alpha, <float *> b, &ldb, <float *> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&flag_b, &flag_a, &n, &m, &k, &alpha, <double *> b, &ldb, <double *> a, &lda,
              &beta, c, &ldc)
