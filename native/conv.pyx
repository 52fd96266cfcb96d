# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Batched 2-D convolution layers (cross-correlation, as in torch.nn.functional.conv2d).

Each call handles samples [start, stop) of a batch: the samples' receptive fields are unrolled
into one column matrix (im2col) so that the whole chunk is one BLAS product, and gradients for
the input are folded back (col2im).  The validating wrappers live in ``cnnative.conv``; every
precondition memory safety depends on is checked again here.
"""
cimport numpy as cnp
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from _blas cimport gemm_row_major
from _common cimport floating

cnp.import_array()

cdef int INT_MAX = 2147483647


cdef struct Geometry:
    Py_ssize_t channels, height, width, filters, kernel_h, kernel_w
    Py_ssize_t stride_h, stride_w, pad_h, pad_w, out_h, out_w


cdef void _im2col(const floating *x, Py_ssize_t batch, const Geometry *g,
                  floating *cols) noexcept nogil:
    """cols[(c*kh + i)*kw + j, s*P + oh*Wo + ow] = x[s, c, oh*sh + i - ph, ow*sw + j - pw], 0 off the image.

    x holds `batch` samples (C, H, W); cols is (C*kh*kw, batch*P) with P = Wo*Ho.
    """
    cdef Py_ssize_t plane = g.height * g.width, pixels = g.out_h * g.out_w
    cdef Py_ssize_t row_len = batch * pixels
    cdef Py_ssize_t c, i, j, s, oh, ow, ih, first, last
    cdef const floating *src
    cdef floating *dst
    for c in range(g.channels):
        for i in range(g.kernel_h):
            for j in range(g.kernel_w):
                # Output columns whose input column iw = ow*sw + j - pw lies on the image.
                first = _ceil_div(g.pad_w - j, g.stride_w)
                if first < 0:
                    first = 0
                last = _ceil_div(g.width + g.pad_w - j, g.stride_w)
                if last > g.out_w:
                    last = g.out_w
                if last < first:
                    last = first
                for s in range(batch):
                    dst = cols + ((c * g.kernel_h + i) * g.kernel_w + j) * row_len + s * pixels
                    for oh in range(g.out_h):
                        ih = oh * g.stride_h + i - g.pad_h
                        if ih < 0 or ih >= g.height:
                            memset(dst, 0, g.out_w * sizeof(floating))
                        else:
                            src = x + (s * g.channels + c) * plane + ih * g.width + j - g.pad_w
                            for ow in range(first):
                                dst[ow] = 0
                            if g.stride_w == 1:
                                memcpy(dst + first, src + first, (last - first) * sizeof(floating))
                            else:
                                for ow in range(first, last):
                                    dst[ow] = src[ow * g.stride_w]
                            for ow in range(last, g.out_w):
                                dst[ow] = 0
                        dst += g.out_w


cdef void _col2im_add(const floating *cols, Py_ssize_t batch, const Geometry *g,
                      floating *grad_x) noexcept nogil:
    """The adjoint of _im2col: grad_x[s, c, ih, iw] += every column entry that was read from it.

    Entries are added in the fixed order of the column matrix, so results are deterministic.
    """
    cdef Py_ssize_t plane = g.height * g.width, pixels = g.out_h * g.out_w
    cdef Py_ssize_t row_len = batch * pixels
    cdef Py_ssize_t c, i, j, s, oh, ow, ih, first, last
    cdef floating *dst
    cdef const floating *src
    for c in range(g.channels):
        for i in range(g.kernel_h):
            for j in range(g.kernel_w):
                first = _ceil_div(g.pad_w - j, g.stride_w)
                if first < 0:
                    first = 0
                last = _ceil_div(g.width + g.pad_w - j, g.stride_w)
                if last > g.out_w:
                    last = g.out_w
                for s in range(batch):
                    src = cols + ((c * g.kernel_h + i) * g.kernel_w + j) * row_len + s * pixels
                    for oh in range(g.out_h):
                        ih = oh * g.stride_h + i - g.pad_h
                        if 0 <= ih < g.height:
                            dst = grad_x + (s * g.channels + c) * plane + ih * g.width + j - g.pad_w
                            if g.stride_w == 1:
                                for ow in range(first, last):
                                    dst[ow] += src[ow]
                            else:
                                for ow in range(first, last):
                                    dst[ow * g.stride_w] += src[ow]
                        src += g.out_w


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    # C division truncates towards zero; this rounds up for either sign of a (b > 0).
    return -((-a) // b) if a < 0 else (a + b - 1) // b


cdef int _forward_chunk(const floating *x, const floating *w, const floating *bias,
                        floating *y, Py_ssize_t batch, const Geometry *g) noexcept nogil:
    """y (batch, F, Ho, Wo) = conv(x (batch, C, H, W), w (F, C, kh, kw)) + bias; 0 or -1 (no memory)."""
    cdef Py_ssize_t taps = g.channels * g.kernel_h * g.kernel_w
    cdef Py_ssize_t pixels = g.out_h * g.out_w, columns = batch * pixels
    cdef floating *cols = <floating *> malloc(taps * columns * sizeof(floating))
    cdef floating *product = <floating *> malloc(g.filters * columns * sizeof(floating))
    cdef Py_ssize_t s, f, p
    cdef floating *dst
    cdef const floating *src
    cdef floating shift
    if cols == NULL or product == NULL:
        free(cols)
        free(product)
        return -1
    _im2col(x, batch, g, cols)
    gemm_row_major(False, False, <int> g.filters, <int> columns, <int> taps, <floating> 1.0, w,
           <int> taps, cols, <int> columns, <floating> 0.0, product, <int> columns)
    # The product is filter-major across the chunk; the output is sample-major.
    for s in range(batch):
        for f in range(g.filters):
            src = product + f * columns + s * pixels
            dst = y + (s * g.filters + f) * pixels
            shift = bias[f] if bias != NULL else 0
            for p in range(pixels):
                dst[p] = src[p] + shift
    free(cols)
    free(product)
    return 0


cdef int _backward_chunk(const floating *grad_y, const floating *x, const floating *w,
                         floating *grad_x, floating *grad_w, floating *grad_b,
                         Py_ssize_t batch, const Geometry *g) noexcept nogil:
    """This chunk's grad_w (F, C*kh*kw) and grad_b (F,), overwritten, and its grad_x, if not NULL.

    0, or -1 when memory ran out.
    """
    cdef Py_ssize_t taps = g.channels * g.kernel_h * g.kernel_w
    cdef Py_ssize_t pixels = g.out_h * g.out_w, columns = batch * pixels
    cdef floating *cols = <floating *> malloc(taps * columns * sizeof(floating))
    cdef floating *delta = <floating *> malloc(g.filters * columns * sizeof(floating))
    cdef Py_ssize_t s, f, p
    cdef floating total
    cdef floating *row
    if cols == NULL or delta == NULL:
        free(cols)
        free(delta)
        return -1
    # delta (F, batch*P): the chunk's output gradients, filter-major like the forward product.
    for s in range(batch):
        for f in range(g.filters):
            memcpy(delta + f * columns + s * pixels, grad_y + (s * g.filters + f) * pixels,
                   pixels * sizeof(floating))
    for f in range(g.filters):
        row = delta + f * columns
        total = 0
        for p in range(columns):
            total += row[p]
        grad_b[f] = total
    _im2col(x, batch, g, cols)
    gemm_row_major(False, True, <int> g.filters, <int> taps, <int> columns, <floating> 1.0, delta,
           <int> columns, cols, <int> columns, <floating> 0.0, grad_w, <int> taps)
    if grad_x != NULL:
        # Reuse the column buffer for the gradient of the unrolled input.
        gemm_row_major(True, False, <int> taps, <int> columns, <int> g.filters, <floating> 1.0, w,
               <int> taps, delta, <int> columns, <floating> 0.0, cols, <int> columns)
        memset(grad_x, 0, batch * g.channels * g.height * g.width * sizeof(floating))
        _col2im_add(cols, batch, g, grad_x)
    free(cols)
    free(delta)
    return 0


cdef Geometry _geometry(cnp.ndarray x, cnp.ndarray w, int stride_h, int stride_w, int pad_h,
                        int pad_w) except *:
    """Checks the arrays and hyper-parameters the kernels rely on and derives the output size."""
    cdef Geometry g
    if cnp.PyArray_NDIM(x) != 4 or cnp.PyArray_NDIM(w) != 4:
        raise ValueError("x and w must be 4-D")
    if stride_h < 1 or stride_w < 1 or pad_h < 0 or pad_w < 0:
        raise ValueError("stride must be >= 1 and padding >= 0")
    g.channels, g.height, g.width = x.shape[1], x.shape[2], x.shape[3]
    g.filters, g.kernel_h, g.kernel_w = w.shape[0], w.shape[2], w.shape[3]
    if w.shape[1] != g.channels:
        raise ValueError("channel mismatch between x and w")
    if g.channels < 1 or g.height < 1 or g.width < 1 or g.filters < 1 or g.kernel_h < 1 or g.kernel_w < 1:
        raise ValueError("empty x or w")
    g.stride_h, g.stride_w, g.pad_h, g.pad_w = stride_h, stride_w, pad_h, pad_w
    if g.kernel_h > g.height + 2 * pad_h or g.kernel_w > g.width + 2 * pad_w:
        raise ValueError("kernel larger than the padded input")
    g.out_h = (g.height + 2 * pad_h - g.kernel_h) // stride_h + 1
    g.out_w = (g.width + 2 * pad_w - g.kernel_w) // stride_w + 1
    return g


cdef void _check_array(cnp.ndarray a, int typenum, tuple shape, str name) except *:
    """a must be C-contiguous, of dtype typenum in native byte order, and of the given shape."""
    if cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{name} must be a C-contiguous array of the same float dtype as x")
    if shape is not None and (<object> a).shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {(<object> a).shape}")


cdef void _check_chunk(Py_ssize_t start, Py_ssize_t stop, Py_ssize_t n, Py_ssize_t columns,
                       Py_ssize_t rows) except *:
    if not 0 <= start <= stop <= n:
        raise ValueError(f"chunk [{start}, {stop}) outside the batch of {n}")
    # BLAS takes int dimensions.
    if (stop - start) * columns > INT_MAX or rows > INT_MAX:
        raise ValueError("matrix dimension above 2**31 - 1; use smaller chunks")


def forward(cnp.ndarray x not None, cnp.ndarray w not None, bias, cnp.ndarray y not None,
            int stride_h, int stride_w, int pad_h, int pad_w, Py_ssize_t start, Py_ssize_t stop):
    """Writes y[start:stop] = conv2d(x[start:stop], w) + bias.

    x (N, C, H, W), w (F, C, kh, kw), bias (F,) or None, y (N, F, Ho, Wo): C-contiguous, one of
    float32/float64.
    """
    cdef Geometry g = _geometry(x, w, stride_h, stride_w, pad_h, pad_w)
    cdef int typenum = cnp.PyArray_TYPE(x)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError("x must be float32 or float64")
    _check_array(x, typenum, None, "x")
    _check_array(w, typenum, None, "w")
    _check_array(y, typenum, ((<object> x).shape[0], g.filters, g.out_h, g.out_w), "y")
    cdef cnp.ndarray bias_array
    cdef const char *bias_data = NULL
    if bias is not None:
        bias_array = bias
        _check_array(bias_array, typenum, (g.filters,), "bias")
        bias_data = <const char *> cnp.PyArray_DATA(bias_array)
    _check_chunk(start, stop, x.shape[0], g.out_h * g.out_w, g.channels * g.kernel_h * g.kernel_w)
    cdef Py_ssize_t x_sample = g.channels * g.height * g.width
    cdef Py_ssize_t y_sample = g.filters * g.out_h * g.out_w
    cdef int status = 0
    if stop == start:
        return
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            status = _forward_chunk(<const float *> cnp.PyArray_DATA(x) + start * x_sample,
                                    <const float *> cnp.PyArray_DATA(w), <const float *> bias_data,
                                    <float *> cnp.PyArray_DATA(y) + start * y_sample,
                                    stop - start, &g)
    else:
        with nogil:
            status = _forward_chunk(<const double *> cnp.PyArray_DATA(x) + start * x_sample,
                                    <const double *> cnp.PyArray_DATA(w), <const double *> bias_data,
                                    <double *> cnp.PyArray_DATA(y) + start * y_sample,
                                    stop - start, &g)
    if status != 0:
        raise MemoryError("out of memory in conv2d forward")


def backward(cnp.ndarray grad_y not None, cnp.ndarray x not None, cnp.ndarray w not None,
             grad_x, cnp.ndarray grad_w not None, cnp.ndarray grad_b not None,
             int stride_h, int stride_w, int pad_h, int pad_w, Py_ssize_t start, Py_ssize_t stop):
    """Gradients of samples [start, stop).

    grad_x[start:stop] (N, C, H, W) is overwritten unless grad_x is None; grad_w (F, C, kh, kw)
    and grad_b (F,) receive this chunk's sums only (the caller adds chunks up in order).
    """
    cdef Geometry g = _geometry(x, w, stride_h, stride_w, pad_h, pad_w)
    cdef int typenum = cnp.PyArray_TYPE(x)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError("x must be float32 or float64")
    _check_array(x, typenum, None, "x")
    _check_array(w, typenum, None, "w")
    _check_array(grad_y, typenum, ((<object> x).shape[0], g.filters, g.out_h, g.out_w), "grad_y")
    _check_array(grad_w, typenum, (<object> w).shape, "grad_w")
    _check_array(grad_b, typenum, (g.filters,), "grad_b")
    cdef cnp.ndarray grad_x_array
    cdef char *grad_x_data = NULL
    cdef Py_ssize_t x_sample = g.channels * g.height * g.width
    if grad_x is not None:
        grad_x_array = grad_x
        _check_array(grad_x_array, typenum, (<object> x).shape, "grad_x")
        grad_x_data = <char *> cnp.PyArray_DATA(grad_x_array) + start * x_sample * cnp.PyArray_ITEMSIZE(x)
    _check_chunk(start, stop, x.shape[0], g.out_h * g.out_w, g.channels * g.kernel_h * g.kernel_w)
    cdef Py_ssize_t y_sample = g.filters * g.out_h * g.out_w
    cdef int status = 0
    if stop == start:
        grad_w[...] = 0
        grad_b[...] = 0
        return
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            status = _backward_chunk(<const float *> cnp.PyArray_DATA(grad_y) + start * y_sample,
                                     <const float *> cnp.PyArray_DATA(x) + start * x_sample,
                                     <const float *> cnp.PyArray_DATA(w), <float *> grad_x_data,
                                     <float *> cnp.PyArray_DATA(grad_w),
                                     <float *> cnp.PyArray_DATA(grad_b), stop - start, &g)
    else:
        with nogil:
            status = _backward_chunk(<const double *> cnp.PyArray_DATA(grad_y) + start * y_sample,
                                     <const double *> cnp.PyArray_DATA(x) + start * x_sample,
                                     <const double *> cnp.PyArray_DATA(w), <double *> grad_x_data,
                                     <double *> cnp.PyArray_DATA(grad_w),
                                     <double *> cnp.PyArray_DATA(grad_b), stop - start, &g)
    if status != 0:
        raise MemoryError("out of memory in conv2d backward")
