# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Dense-layer kernels for float32/float64: BLAS matrix products and a fixed-order column sum.

The public, validating wrappers live in ``cnnative.dense``; the entries here re-check every
property they rely on (dtype, byte order, alignment, contiguity, shapes, BLAS's int range), so
no Python caller can make them read or write out of bounds.  Outputs are always new arrays.
"""
cimport numpy as cnp
from libc.limits cimport INT_MAX
from libc.string cimport memcpy

from _blas cimport gemm_row_major
from _common cimport ANY_FLOAT, C_OR_F_ORDER, NONEMPTY, check_array, floating

cnp.import_array()

cdef int _check_operand(cnp.ndarray a, str name, int ndim, int typenum) except -1:
    """check_array for a BLAS operand (C- or Fortran-contiguous, non-empty), and every
    dimension must fit BLAS's int."""
    cdef int d
    check_array(a, name, ndim, typenum, C_OR_F_ORDER | NONEMPTY)
    for d in range(ndim):
        if cnp.PyArray_DIM(a, d) > INT_MAX:
            raise ValueError(f"{name} has a dimension above 2**31 - 1, more than BLAS can index: "
                             f"shape {(<object> a).shape}")
    return 0


cdef void _matmul(bint trans_a, bint trans_b, int m, int n, int k, const floating *a,
                  const floating *b, const floating *bias, floating *out,
                  int row_block) noexcept nogil:
    """out = a @ b (+ bias), in products of row_block rows of a (all m at once when 0)."""
    cdef Py_ssize_t i, start
    cdef int rows
    cdef int lda = m if trans_a else k
    cdef floating beta = 0
    if bias != NULL:
        # Starting from the bias and accumulating (beta = 1) saves the separate read-modify-write
        # pass over the output that adding it afterwards would cost.
        for i in range(m):
            memcpy(out + i * n, bias, n * sizeof(floating))
        beta = 1
    if row_block <= 0:
        row_block = m
    start = 0
    while start < m:
        rows = <int> min(<Py_ssize_t> row_block, m - start)
        # A Fortran-ordered a's rows start `start` elements in, its leading dimension still m.
        gemm_row_major(trans_a, trans_b, rows, n, k, 1, a + (start if trans_a else start * k),
                       lda, b, k if trans_b else n, beta, out + start * n, n)
        start += rows


def matmul(cnp.ndarray a not None, cnp.ndarray b not None, cnp.ndarray bias=None,
           int row_block=0):
    """out = a @ b, plus bias added to every row when given.

    a : (M, K), b : (K, N), both float32 or both float64, each C- or Fortran-contiguous (a
        Fortran-ordered operand is handed to BLAS as a transpose, not copied), aligned, native
        byte order, non-empty, every dimension at most 2**31 - 1.
    bias : (N,) contiguous, of the same dtype, or None.
    row_block : one product per row_block rows of a (each row's bits then depend only on its
        block), or 0 for one product.
    Returns a new C-contiguous (M, N) array; the GIL is released during the product.
    """
    if row_block < 0:
        raise ValueError(f"row_block must be >= 0, got {row_block}")
    _check_operand(a, "a", 2, ANY_FLOAT)
    cdef int typenum = cnp.PyArray_TYPE(a)
    _check_operand(b, "b", 2, typenum)
    cdef Py_ssize_t m = cnp.PyArray_DIM(a, 0), k = cnp.PyArray_DIM(a, 1), n = cnp.PyArray_DIM(b, 1)
    if cnp.PyArray_DIM(b, 0) != k:
        raise ValueError(f"a of shape {(<object> a).shape} and b of shape {(<object> b).shape} "
                         "cannot be multiplied")
    if bias is not None:
        _check_operand(bias, "bias", 1, typenum)
        if cnp.PyArray_DIM(bias, 0) != n:
            raise ValueError(f"bias must have shape ({n},), got {(<object> bias).shape}")

    # An array that is both C- and Fortran-contiguous (a single row or column) is read as C.
    cdef bint trans_a = not cnp.PyArray_IS_C_CONTIGUOUS(a)
    cdef bint trans_b = not cnp.PyArray_IS_C_CONTIGUOUS(b)
    cdef cnp.npy_intp shape[2]
    shape[0], shape[1] = m, n
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, shape, typenum, 0)
    cdef void *bias_data = NULL if bias is None else cnp.PyArray_DATA(bias)
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            _matmul(trans_a, trans_b, <int> m, <int> n, <int> k,
                    <const float *> cnp.PyArray_DATA(a),
                    <const float *> cnp.PyArray_DATA(b), <const float *> bias_data,
                    <float *> cnp.PyArray_DATA(out), row_block)
    else:
        with nogil:
            _matmul(trans_a, trans_b, <int> m, <int> n, <int> k,
                    <const double *> cnp.PyArray_DATA(a),
                    <const double *> cnp.PyArray_DATA(b), <const double *> bias_data,
                    <double *> cnp.PyArray_DATA(out), row_block)
    return out


cdef void _column_sums(const floating *a, Py_ssize_t rows, Py_ssize_t cols, bint fortran,
                       floating *out) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating total
    # Rows are added strictly in order, so the result depends neither on the layout nor on the
    # thread count: out[j] = ((a[0, j] + a[1, j]) + a[2, j]) + ...
    if fortran:
        for j in range(cols):
            total = a[j * rows]
            for i in range(1, rows):
                total = total + a[j * rows + i]
            out[j] = total
    else:
        memcpy(out, a, cols * sizeof(floating))
        for i in range(1, rows):
            for j in range(cols):
                out[j] = out[j] + a[i * cols + j]


def column_sums(cnp.ndarray a not None):
    """out[j] = sum over i of a[i, j], added in row order.

    a : (M, N) float32 or float64, C- or Fortran-contiguous, aligned, native byte order,
        non-empty.  Returns a new (N,) array of a's dtype, accumulated in that dtype.
    """
    _check_operand(a, "a", 2, ANY_FLOAT)
    cdef int typenum = cnp.PyArray_TYPE(a)
    cdef Py_ssize_t rows = cnp.PyArray_DIM(a, 0), cols = cnp.PyArray_DIM(a, 1)
    cdef bint fortran = not cnp.PyArray_IS_C_CONTIGUOUS(a)
    cdef cnp.npy_intp shape[1]
    shape[0] = cols
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, shape, typenum, 0)
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            _column_sums(<const float *> cnp.PyArray_DATA(a), rows, cols, fortran,
                         <float *> cnp.PyArray_DATA(out))
    else:
        with nogil:
            _column_sums(<const double *> cnp.PyArray_DATA(a), rows, cols, fortran,
                         <double *> cnp.PyArray_DATA(out))
    return out


cdef void _block_grams(bint trans, int m, int n, int k, int row_block, const floating *g,
                       const floating *x, floating *out) noexcept nogil:
    """out[b] = g[rows of block b].T @ x[rows of block b] for each block of row_block rows; g
    (m, n) and x (m, k) both C-ordered, or both Fortran-ordered when trans."""
    cdef Py_ssize_t start = 0, block = 0
    cdef int rows
    while start < m:
        rows = <int> min(<Py_ssize_t> row_block, m - start)
        if trans:
            # Fortran g (m, n) is g.T (n, m) in C order: read as is, leading dimension m.
            gemm_row_major(False, True, n, k, rows, 1, g + start, m, x + start, m, 0,
                           out + block * n * k, k)
        else:
            gemm_row_major(True, False, n, k, rows, 1, g + start * n, n, x + start * k, k, 0,
                           out + block * n * k, k)
        block += 1
        start += rows


def block_grams(cnp.ndarray g not None, cnp.ndarray x not None, int row_block):
    """(B, N, K) array: g[rows].T @ x[rows] for each block of row_block rows (B blocks).

    g : (M, N), x : (M, K), same float dtype, both C- or both Fortran-contiguous, as for
    matmul.  The GIL is released during the products.
    """
    _check_operand(g, "g", 2, ANY_FLOAT)
    cdef int typenum = cnp.PyArray_TYPE(g)
    _check_operand(x, "x", 2, typenum)
    cdef Py_ssize_t m = cnp.PyArray_DIM(g, 0), n = cnp.PyArray_DIM(g, 1), k = cnp.PyArray_DIM(x, 1)
    if cnp.PyArray_DIM(x, 0) != m:
        raise ValueError(f"g of shape {(<object> g).shape} and x of shape {(<object> x).shape} "
                         "must have as many rows")
    if row_block < 1:
        raise ValueError(f"row_block must be >= 1, got {row_block}")
    cdef bint trans = not cnp.PyArray_IS_C_CONTIGUOUS(g)
    if trans != (not cnp.PyArray_IS_C_CONTIGUOUS(x)):
        raise ValueError("g and x must be both C- or both Fortran-contiguous")
    cdef cnp.npy_intp shape[3]
    shape[0], shape[1], shape[2] = (m + row_block - 1) // row_block, n, k
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(3, shape, typenum, 0)
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            _block_grams(trans, <int> m, <int> n, <int> k, row_block,
                         <const float *> cnp.PyArray_DATA(g), <const float *> cnp.PyArray_DATA(x),
                         <float *> cnp.PyArray_DATA(out))
    else:
        with nogil:
            _block_grams(trans, <int> m, <int> n, <int> k, row_block,
                         <const double *> cnp.PyArray_DATA(g),
                         <const double *> cnp.PyArray_DATA(x), <double *> cnp.PyArray_DATA(out))
    return out
