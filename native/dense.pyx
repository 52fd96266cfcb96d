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
                  const floating *b, const floating *bias, floating *out) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating beta = 0
    if bias != NULL:
        # Starting from the bias and accumulating (beta = 1) saves the separate read-modify-write
        # pass over the output that adding it afterwards would cost.
        for i in range(m):
            memcpy(out + i * n, bias, n * sizeof(floating))
        beta = 1
    gemm_row_major(trans_a, trans_b, m, n, k, 1, a, m if trans_a else k, b, k if trans_b else n,
                   beta, out, n)


def matmul(cnp.ndarray a not None, cnp.ndarray b not None, cnp.ndarray bias=None):
    """out = a @ b, plus bias added to every row when given.

    a : (M, K), b : (K, N), both float32 or both float64, each C- or Fortran-contiguous (a
        Fortran-ordered operand is handed to BLAS as a transpose, not copied), aligned, native
        byte order, non-empty, every dimension at most 2**31 - 1.
    bias : (N,) contiguous, of the same dtype, or None.
    Returns a new C-contiguous (M, N) array; the GIL is released during the product.
    """
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
                    <float *> cnp.PyArray_DATA(out))
    else:
        with nogil:
            _matmul(trans_a, trans_b, <int> m, <int> n, <int> k,
                    <const double *> cnp.PyArray_DATA(a),
                    <const double *> cnp.PyArray_DATA(b), <const double *> bias_data,
                    <double *> cnp.PyArray_DATA(out))
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
