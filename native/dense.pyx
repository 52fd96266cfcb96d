# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Dense-layer kernels for float32/float64: BLAS matrix products and a fixed-order column sum.

The public, validating wrappers live in ``cnnative.dense``; the entries here re-check every
property they rely on (dtype, byte order, alignment, contiguity, shapes, BLAS's int range), so
no Python caller can make them read or write out of bounds.  Outputs are always new arrays.
"""
cimport numpy as cnp
from libc.limits cimport INT_MAX
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from cpython.pyport cimport PY_SSIZE_T_MAX

from _blas cimport gemm_row_major
from _common cimport ANY_FLOAT, C_OR_F_ORDER, NONEMPTY, check_array, floating, tree_split

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


cdef void _block_gram(bint trans, int m, int n, int k, Py_ssize_t start, int rows,
                      const floating *g, const floating *x, floating *out) noexcept nogil:
    """out (n, k) = g[start:start + rows].T @ x[start:start + rows]; g (m, n) and x (m, k) both
    C-ordered, or both Fortran-ordered when trans."""
    if trans:
        # Fortran g (m, n) is g.T (n, m) in C order: read as is, leading dimension m.
        gemm_row_major(False, True, n, k, rows, 1, g + start, m, x + start, m, 0, out, k)
    else:
        gemm_row_major(True, False, n, k, rows, 1, g + start * n, n, x + start * k, k, 0, out, k)


cdef void _gram_tree(bint trans, int m, int n, int k, int row_block, Py_ssize_t lo,
                     Py_ssize_t hi, const floating *g, const floating *x, floating *out,
                     floating *spare) noexcept nogil:
    """out = the Grams of blocks [lo, hi) added by cnnative._reduce's tree: tree(lo, hi) =
    tree(lo, mid) + tree(mid, hi), mid = tree_split(lo, hi).  The left subtree is built in
    out, the right one in spare, whose further slots (n * k each, as many as the tree is deep)
    serve the right subtree's own recursion."""
    cdef Py_ssize_t mid, i, size = <Py_ssize_t> n * k
    if hi - lo == 1:
        _block_gram(trans, m, n, k, lo * row_block,
                    <int> min(<Py_ssize_t> row_block, m - lo * row_block), g, x, out)
        return
    mid = tree_split(lo, hi)
    _gram_tree(trans, m, n, k, row_block, lo, mid, g, x, out, spare)
    _gram_tree(trans, m, n, k, row_block, mid, hi, g, x, spare, spare + size)
    for i in range(size):
        out[i] = out[i] + spare[i]


cdef Py_ssize_t _tree_depth(Py_ssize_t leaves) noexcept nogil:
    """Slots of spare _gram_tree needs over `leaves` blocks: one per level below the root."""
    cdef Py_ssize_t depth = 0
    while leaves > 1:
        leaves = (leaves + 1) // 2
        depth += 1
    return depth


def block_gram_sum(cnp.ndarray g not None, cnp.ndarray x not None, int row_block):
    """(N, K) array: g[rows].T @ x[rows] for each block of row_block rows, the blocks added by
    the fixed tree of cnnative._reduce (one BLAS product per block, adds in that order).

    g : (M, N), x : (M, K), same float dtype, both C- or both Fortran-contiguous, as for
    matmul.  Besides the result, needs one (N, K) slot per level of the tree (never a slot
    per block).  The GIL is released during the products and adds.
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
    cdef cnp.npy_intp shape[2]
    shape[0], shape[1] = n, k
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, shape, typenum, 0)
    cdef Py_ssize_t blocks = (m + row_block - 1) // row_block, itemsize = cnp.PyArray_ITEMSIZE(g)
    cdef Py_ssize_t depth = _tree_depth(blocks)
    # n * k * itemsize fits (out was allocated); the slots must too.
    if depth and n * k > PY_SSIZE_T_MAX // (depth * itemsize):
        raise MemoryError(f"block_gram_sum: {depth} slots of shape ({n}, {k}) exceed memory")
    cdef void *spare = malloc(depth * n * k * itemsize) if depth else NULL
    if depth and spare == NULL:
        raise MemoryError(f"block_gram_sum: no memory for {depth} slots of shape ({n}, {k})")
    try:
        if typenum == cnp.NPY_FLOAT32:
            with nogil:
                _gram_tree(trans, <int> m, <int> n, <int> k, row_block, 0, blocks,
                           <const float *> cnp.PyArray_DATA(g), <const float *> cnp.PyArray_DATA(x),
                           <float *> cnp.PyArray_DATA(out), <float *> spare)
        else:
            with nogil:
                _gram_tree(trans, <int> m, <int> n, <int> k, row_block, 0, blocks,
                           <const double *> cnp.PyArray_DATA(g),
                           <const double *> cnp.PyArray_DATA(x), <double *> cnp.PyArray_DATA(out),
                           <double *> spare)
    finally:
        free(spare)
    return out
