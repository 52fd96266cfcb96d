# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Batched 2-D convolution layers (cross-correlation, as in torch.nn.functional.conv2d).

Each call handles samples [start, stop) of a batch.  A product runs on the direct gather kernel
(conv_simd.h) when its lanes are mostly useful, or else the samples' receptive fields are
unrolled into one column matrix (im2col) so that the whole chunk is one BLAS product.  Either
way, input gradients are computed as column matrices and folded back (col2im).  The validating
wrappers live in ``cnnative.conv``; every precondition memory safety depends on is checked
again here.
"""
cimport numpy as cnp
from libc.limits cimport INT_MAX
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from _blas cimport gemm_row_major
from _common cimport ANY_FLOAT, C_ORDER, WRITEABLE, check_array, floating
from _simd cimport CN_SIMD_AVX2, cn_idx, cn_simd_active, set_simd_cap_of_module, simd_info_of_module

cnp.import_array()

cdef extern from "conv_simd.h" nogil:
    cn_idx cn_gather_width(int level, int double_precision)
    void cn_gather_f32(int level, const float *image, const cn_idx *pixel_base, cn_idx pixels,
                       const cn_idx *tap_offset, cn_idx taps, const float *weights, cn_idx lanes,
                       float *out)
    void cn_gather_f64(int level, const double *image, const cn_idx *pixel_base, cn_idx pixels,
                       const cn_idx *tap_offset, cn_idx taps, const double *weights, cn_idx lanes,
                       double *out)
    ctypedef struct cn_columns:
        cn_idx batch, channels, height, width, kernel_h, kernel_w
        cn_idx stride_h, stride_w, pad_h, pad_w, out_h, out_w, row_len
    void cn_im2col_f32(const cn_columns *g, const float *x, float *cols)
    void cn_im2col_f64(const cn_columns *g, const double *x, double *cols)
    void cn_col2im_f32(int level, const cn_columns *g, const float *cols, float *grad)
    void cn_col2im_f64(int level, const cn_columns *g, const double *cols, double *grad)

# Algorithm choice: 0 picks per shape, 1 forces the direct kernels, 2 forces im2col + gemm.
# Only tests and benchmarks change it, to check and time both paths.
cdef int _algorithm = 0
ALGORITHMS = {"auto": 0, "direct": 1, "gemm": 2}


def set_algorithm(name):
    """Select 'auto', 'direct' or 'gemm' for every later call; returns the previous name."""
    global _algorithm
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {name!r}")
    previous = [k for k, v in ALGORITHMS.items() if v == _algorithm][0]
    _algorithm = ALGORITHMS[name]
    return previous


def simd_info():
    """(detected, active) instruction-set names of the convolution kernels."""
    return simd_info_of_module()


def set_simd_cap(int level):
    """Limit the kernels to the variants up to ``level`` (0 scalar .. 3 avx512f); returns the old cap.

    This module's own cap (each kernel module has one).  Exists so tests can check every
    compiled variant of the gather and col2im kernels; below 2 (avx2) the automatic choice
    always takes im2col + gemm, so tests pair it with set_algorithm("direct").
    """
    return set_simd_cap_of_module(level)


cdef bint _direct_pays(double useful_fraction, int level) noexcept nogil:
    """Whether a product should run on the direct kernel rather than im2col + gemm.

    useful_fraction is the share of the direct kernel's multiply-adds that are not spent on
    padding lanes (filters, or a sample's output positions, rounded up to whole vectors).  With
    most lanes useful the direct kernel beats im2col + gemm; below about two thirds BLAS wins,
    and vectors narrower than AVX2 always favour BLAS.  The input gradient's column matrix
    (lanes = output positions) takes the same rule.
    """
    if _algorithm != 0:
        return _algorithm == 1
    return level >= CN_SIMD_AVX2 and useful_fraction >= 0.7


cdef inline double _lane_fraction(Py_ssize_t lanes_used, int level, bint double_precision) noexcept nogil:
    cdef Py_ssize_t width = cn_gather_width(level, double_precision)
    return lanes_used / <double> _round_up(lanes_used, width)


cdef inline void _gather(int level, const floating *image, const cn_idx *pixel_base,
                         cn_idx pixels, const cn_idx *tap_offset, cn_idx taps,
                         const floating *weights, cn_idx lanes, floating *out) noexcept nogil:
    if floating is float:
        cn_gather_f32(level, image, pixel_base, pixels, tap_offset, taps, weights, lanes, out)
    else:
        cn_gather_f64(level, image, pixel_base, pixels, tap_offset, taps, weights, lanes, out)


cdef inline Py_ssize_t _round_up(Py_ssize_t n, Py_ssize_t multiple) noexcept nogil:
    return (n + multiple - 1) // multiple * multiple


cdef struct Geometry:
    Py_ssize_t channels, height, width, filters, kernel_h, kernel_w
    Py_ssize_t stride_h, stride_w, pad_h, pad_w, out_h, out_w


cdef cn_columns _columns(const Geometry *g, Py_ssize_t batch, Py_ssize_t row_len) noexcept nogil:
    """The column-matrix shape of `batch` samples, rows row_len apart (see conv_simd.h)."""
    cdef cn_columns c
    c.batch, c.channels, c.height, c.width = batch, g.channels, g.height, g.width
    c.kernel_h, c.kernel_w, c.stride_h, c.stride_w = g.kernel_h, g.kernel_w, g.stride_h, g.stride_w
    c.pad_h, c.pad_w, c.out_h, c.out_w, c.row_len = g.pad_h, g.pad_w, g.out_h, g.out_w, row_len
    return c


cdef inline void _im2col(const floating *x, Py_ssize_t batch, const Geometry *g,
                         floating *cols) noexcept nogil:
    """cols (C*kh*kw, batch*Ho*Wo): the receptive fields of `batch` samples, zero off the image."""
    cdef cn_columns shape = _columns(g, batch, batch * g.out_h * g.out_w)
    if floating is float:
        cn_im2col_f32(&shape, x, cols)
    else:
        cn_im2col_f64(&shape, x, cols)


cdef inline void _col2im_add(const floating *cols, Py_ssize_t batch, Py_ssize_t row_len,
                             const Geometry *g, floating *grad_x) noexcept nogil:
    """The adjoint of _im2col, for cols rows row_len apart: grad_x += every entry, where it was read."""
    cdef cn_columns shape = _columns(g, batch, row_len)
    cdef int level = cn_simd_active()
    if floating is float:
        cn_col2im_f32(level, &shape, cols, grad_x)
    else:
        cn_col2im_f64(level, &shape, cols, grad_x)


cdef void _shifted_copy(const floating *src, Py_ssize_t planes, Py_ssize_t height,
                        Py_ssize_t width, floating *dst, Py_ssize_t dst_height,
                        Py_ssize_t dst_width, Py_ssize_t top, Py_ssize_t left) noexcept nogil:
    """dst[k, r, c] = src[k, r - top, c - left] where that lies in src, else 0.

    Zero padding when top/left > 0, cropping when negative; planes are (height, width) in src
    and (dst_height, dst_width) in dst.
    """
    cdef Py_ssize_t k, r, c, source_row
    cdef Py_ssize_t first = left if left > 0 else 0
    cdef Py_ssize_t last = width + left if width + left < dst_width else dst_width
    cdef floating *row
    cdef const floating *source
    if last < first:
        last = first
    for k in range(planes):
        for r in range(dst_height):
            row = dst + (k * dst_height + r) * dst_width
            source_row = r - top
            if source_row < 0 or source_row >= height:
                memset(row, 0, dst_width * sizeof(floating))
                continue
            source = src + (k * height + source_row) * width - left
            for c in range(first):
                row[c] = 0
            for c in range(first, last):
                row[c] = source[c]
            for c in range(last, dst_width):
                row[c] = 0


cdef void _sum_bias_gradient(const floating *grad_y, floating *grad_b, Py_ssize_t batch,
                             const Geometry *g) noexcept nogil:
    """grad_b[f] = grad_y[:, f] summed in a fixed order: position p of every sample goes to
    partial sum p % 8 (samples in order, positions in order), then the eight are added in order.

    One running sum made each add wait for the previous one; eight independent ones keep the
    adder busy, and the order is still the same on every machine and for every thread count.
    """
    cdef Py_ssize_t pixels = g.out_h * g.out_w, s, f, p, k
    cdef const floating *row
    cdef floating partial[8]
    cdef floating total
    for f in range(g.filters):
        for k in range(8):
            partial[k] = 0
        for s in range(batch):
            row = grad_y + (s * g.filters + f) * pixels
            p = 0
            while p + 8 <= pixels:
                for k in range(8):
                    partial[k] = partial[k] + row[p + k]
                p += 8
            for k in range(pixels - p):
                partial[k] = partial[k] + row[p + k]
        total = partial[0]
        for k in range(1, 8):
            total = total + partial[k]
        grad_b[f] = total


cdef struct Workspace:
    # Buffers of one direct product: weights (taps x lanes), the gather offsets, the product
    # (pixels x lanes) and, where the image needs re-framing, a padded copy.
    void *weights
    cn_idx *tap_offset
    cn_idx *pixel_base
    void *product
    void *buffer


cdef int _allocate(Workspace *ws, Py_ssize_t taps, Py_ssize_t pixels, Py_ssize_t lanes,
                   Py_ssize_t buffer_items, size_t itemsize) noexcept nogil:
    """Allocates every buffer (buffer only if buffer_items > 0); 0, or -1 with all released."""
    ws.weights = malloc(taps * lanes * itemsize)
    ws.tap_offset = <cn_idx *> malloc(taps * sizeof(cn_idx))
    ws.pixel_base = <cn_idx *> malloc(pixels * sizeof(cn_idx))
    ws.product = malloc(pixels * lanes * itemsize)
    ws.buffer = malloc(buffer_items * itemsize) if buffer_items > 0 else NULL
    if (ws.weights == NULL or ws.tap_offset == NULL or ws.pixel_base == NULL or ws.product == NULL
            or (buffer_items > 0 and ws.buffer == NULL)):
        _release(ws)
        return -1
    return 0


cdef void _release(Workspace *ws) noexcept nogil:
    free(ws.weights)
    free(ws.tap_offset)
    free(ws.pixel_base)
    free(ws.product)
    free(ws.buffer)
    ws.weights = ws.tap_offset = ws.pixel_base = ws.product = ws.buffer = NULL


cdef void _window_offsets(cn_idx *offsets, Py_ssize_t planes, Py_ssize_t kernel_h,
                          Py_ssize_t kernel_w, Py_ssize_t plane, Py_ssize_t row) noexcept nogil:
    """offsets[(k*kh + i)*kw + j] = k*plane + i*row + j: a kernel window over stacked planes."""
    cdef Py_ssize_t k, i, j, t = 0
    for k in range(planes):
        for i in range(kernel_h):
            for j in range(kernel_w):
                offsets[t] = k * plane + i * row + j
                t += 1


cdef void _output_positions(cn_idx *offsets, const Geometry *g, Py_ssize_t row) noexcept nogil:
    """offsets[oh*Wo + ow] = oh*sh*row + ow*sw: where each output's window starts."""
    cdef Py_ssize_t p
    for p in range(g.out_h * g.out_w):
        offsets[p] = (p // g.out_w) * g.stride_h * row + (p % g.out_w) * g.stride_w


cdef int _forward_direct(const floating *x, const floating *w, const floating *bias,
                         floating *y, Py_ssize_t batch, const Geometry *g, int level) noexcept nogil:
    """Forward pass on the gather kernel: pixels = output positions, taps = (c, i, j)."""
    cdef Py_ssize_t lanes = _round_up(g.filters, cn_gather_width(level, floating is double))
    cdef Py_ssize_t taps = g.channels * g.kernel_h * g.kernel_w, pixels = g.out_h * g.out_w
    cdef Py_ssize_t padded_h = g.height + 2 * g.pad_h, padded_w = g.width + 2 * g.pad_w
    cdef bint padded = g.pad_h > 0 or g.pad_w > 0
    cdef Workspace ws
    cdef Py_ssize_t s, f, p, t
    cdef const floating *image
    cdef floating *dst
    cdef floating *weights
    cdef floating *product
    cdef floating shift
    if _allocate(&ws, taps, pixels, lanes, g.channels * padded_h * padded_w if padded else 0,
                 sizeof(floating)) != 0:
        return -1
    weights, product = <floating *> ws.weights, <floating *> ws.product
    # Weights as (taps, lanes): one vector of filters per tap, zero in the padding lanes.
    for t in range(taps):
        for f in range(g.filters):
            weights[t * lanes + f] = w[f * taps + t]
        for f in range(g.filters, lanes):
            weights[t * lanes + f] = 0
    _window_offsets(ws.tap_offset, g.channels, g.kernel_h, g.kernel_w, padded_h * padded_w, padded_w)
    _output_positions(ws.pixel_base, g, padded_w)
    for s in range(batch):
        image = x + s * g.channels * g.height * g.width
        if padded:
            _shifted_copy(image, g.channels, g.height, g.width, <floating *> ws.buffer, padded_h,
                          padded_w, g.pad_h, g.pad_w)
            image = <floating *> ws.buffer
        _gather(level, image, ws.pixel_base, pixels, ws.tap_offset, taps, weights, lanes, product)
        for f in range(g.filters):
            dst = y + (s * g.filters + f) * pixels
            shift = bias[f] if bias != NULL else 0
            for p in range(pixels):
                dst[p] = product[p * lanes + f] + shift
    _release(&ws)
    return 0


cdef int _grad_w_direct(const floating *grad_y, const floating *x, floating *grad_w,
                        Py_ssize_t batch, const Geometry *g, int level) noexcept nogil:
    """This chunk's grad_w on the gather kernel: pixels = (c, i, j), taps = (sample, position)."""
    cdef Py_ssize_t lanes = _round_up(g.filters, cn_gather_width(level, floating is double))
    cdef Py_ssize_t kernel_taps = g.channels * g.kernel_h * g.kernel_w
    cdef Py_ssize_t pixels = g.out_h * g.out_w, positions = batch * pixels
    cdef Py_ssize_t padded_h = g.height + 2 * g.pad_h, padded_w = g.width + 2 * g.pad_w
    cdef Py_ssize_t plane = padded_h * padded_w
    cdef bint padded = g.pad_h > 0 or g.pad_w > 0
    cdef Workspace ws
    cdef Py_ssize_t s, f, p, t, q
    cdef const floating *image = x
    cdef floating *weights
    cdef floating *product
    if _allocate(&ws, positions, kernel_taps, lanes, batch * g.channels * plane if padded else 0,
                 sizeof(floating)) != 0:
        return -1
    weights, product = <floating *> ws.weights, <floating *> ws.product
    if padded:
        _shifted_copy(x, batch * g.channels, g.height, g.width, <floating *> ws.buffer, padded_h,
                      padded_w, g.pad_h, g.pad_w)
        image = <floating *> ws.buffer
    # The output gradients transposed to (sample, position, lanes) play the weights' part.
    _output_positions(ws.tap_offset, g, padded_w)
    for s in range(batch):
        for p in range(pixels):
            q = s * pixels + p
            ws.tap_offset[q] = ws.tap_offset[p] + s * g.channels * plane
            for f in range(g.filters):
                weights[q * lanes + f] = grad_y[(s * g.filters + f) * pixels + p]
            for f in range(g.filters, lanes):
                weights[q * lanes + f] = 0
    _window_offsets(ws.pixel_base, g.channels, g.kernel_h, g.kernel_w, plane, padded_w)
    _gather(level, image, ws.pixel_base, kernel_taps, ws.tap_offset, positions, weights, lanes, product)
    for f in range(g.filters):
        for t in range(kernel_taps):
            grad_w[f * kernel_taps + t] = product[t * lanes + f]
    _release(&ws)
    return 0


cdef int _grad_x_columns(const floating *grad_y, const floating *w, floating *grad_x,
                         Py_ssize_t batch, const Geometry *g, int level) noexcept nogil:
    """Input gradient on the gather kernel, one sample at a time: the sample's column matrix
    w^T delta (pixels = kernel taps (c, i, j), taps = filters, lanes = output positions) is
    computed into a buffer (C*kh*kw x Ho*Wo, 128 KB for the MNIST network's second layer in
    float32, so it stays in cache there), then folded back by col2im.  Any stride and padding;
    the same products as im2col + gemm, so inf and NaN weights behave alike.
    """
    cdef Py_ssize_t positions = g.out_h * g.out_w
    cdef Py_ssize_t lanes = _round_up(positions, cn_gather_width(level, floating is double))
    cdef Py_ssize_t kernel_taps = g.channels * g.kernel_h * g.kernel_w
    cdef Py_ssize_t x_sample = g.channels * g.height * g.width
    cdef Workspace ws
    cdef Py_ssize_t s, f, q
    cdef const floating *delta
    cdef floating *padded_delta
    if _allocate(&ws, g.filters, kernel_taps, lanes, 0, sizeof(floating)) != 0:
        return -1
    # The workspace's weight buffer (taps x lanes = filters x lanes) holds the output gradient
    # when its rows need padding to whole vectors; this product reads its weights from w.
    padded_delta = <floating *> ws.weights
    for f in range(g.filters):
        ws.tap_offset[f] = f * kernel_taps
    for q in range(kernel_taps):
        ws.pixel_base[q] = q
    memset(grad_x, 0, batch * x_sample * sizeof(floating))
    for s in range(batch):
        delta = grad_y + s * g.filters * positions
        if lanes != positions:
            # Rows of whole vectors; the padding lanes' products are never read back.
            for f in range(g.filters):
                memcpy(padded_delta + f * lanes, delta + f * positions,
                       positions * sizeof(floating))
                memset(padded_delta + f * lanes + positions, 0,
                       (lanes - positions) * sizeof(floating))
            delta = padded_delta
        _gather(level, w, ws.pixel_base, kernel_taps, ws.tap_offset, g.filters, delta, lanes,
                <floating *> ws.product)
        _col2im_add(<floating *> ws.product, 1, lanes, g, grad_x + s * x_sample)
    _release(&ws)
    return 0


cdef int _forward_chunk(const floating *x, const floating *w, const floating *bias,
                        floating *y, Py_ssize_t batch, const Geometry *g) noexcept nogil:
    """y (batch, F, Ho, Wo) = conv(x (batch, C, H, W), w (F, C, kh, kw)) + bias; 0 or -1 (no memory)."""
    cdef int level = cn_simd_active()
    if _direct_pays(_lane_fraction(g.filters, level, floating is double), level):
        return _forward_direct(x, w, bias, y, batch, g, level)
    return _forward_gemm(x, w, bias, y, batch, g)


cdef int _backward_chunk(const floating *grad_y, const floating *x, const floating *w,
                         floating *grad_x, floating *grad_w, floating *grad_b,
                         Py_ssize_t batch, const Geometry *g) noexcept nogil:
    """This chunk's grad_w (F, C*kh*kw) and grad_b (F,), overwritten, and its grad_x, if not NULL.

    Each product takes the direct kernel or im2col + gemm by shape alone, so results never
    depend on the thread count.  0, or -1 when memory ran out.
    """
    cdef int level = cn_simd_active()
    cdef bint weights_direct = _direct_pays(_lane_fraction(g.filters, level, floating is double), level)
    # Lanes are the output positions of a sample, rounded up to whole vectors.
    cdef bint input_direct = grad_x != NULL and _direct_pays(
        _lane_fraction(g.out_h * g.out_w, level, floating is double), level)
    cdef int status = 0
    _sum_bias_gradient(grad_y, grad_b, batch, g)
    if weights_direct:
        status = _grad_w_direct(grad_y, x, grad_w, batch, g, level)
    if status == 0 and input_direct:
        status = _grad_x_columns(grad_y, w, grad_x, batch, g, level)
    if status == 0 and (not weights_direct or (grad_x != NULL and not input_direct)):
        status = _backward_gemm(grad_y, x, w, NULL if input_direct else grad_x,
                                NULL if weights_direct else grad_w, batch, g)
    return status


cdef int _forward_gemm(const floating *x, const floating *w, const floating *bias,
                       floating *y, Py_ssize_t batch, const Geometry *g) noexcept nogil:
    """Forward pass as im2col + one gemm for the chunk; 0 or -1 (no memory)."""
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


cdef int _backward_gemm(const floating *grad_y, const floating *x, const floating *w,
                        floating *grad_x, floating *grad_w, Py_ssize_t batch,
                        const Geometry *g) noexcept nogil:
    """grad_w and/or grad_x (either may be NULL) of the chunk by im2col + gemm; 0 or -1."""
    cdef Py_ssize_t taps = g.channels * g.kernel_h * g.kernel_w
    cdef Py_ssize_t pixels = g.out_h * g.out_w, columns = batch * pixels
    cdef floating *cols = <floating *> malloc(taps * columns * sizeof(floating))
    cdef floating *delta = <floating *> malloc(g.filters * columns * sizeof(floating))
    cdef Py_ssize_t s, f
    if cols == NULL or delta == NULL:
        free(cols)
        free(delta)
        return -1
    # delta (F, batch*P): the chunk's output gradients, filter-major like the forward product.
    for s in range(batch):
        for f in range(g.filters):
            memcpy(delta + f * columns + s * pixels, grad_y + (s * g.filters + f) * pixels,
                   pixels * sizeof(floating))
    if grad_w != NULL:
        _im2col(x, batch, g, cols)
        gemm_row_major(False, True, <int> g.filters, <int> taps, <int> columns, <floating> 1.0,
                       delta, <int> columns, cols, <int> columns, <floating> 0.0, grad_w, <int> taps)
    if grad_x != NULL:
        # The column buffer now receives the gradient of the unrolled input.
        gemm_row_major(True, False, <int> taps, <int> columns, <int> g.filters, <floating> 1.0, w,
                       <int> taps, delta, <int> columns, <floating> 0.0, cols, <int> columns)
        memset(grad_x, 0, batch * g.channels * g.height * g.width * sizeof(floating))
        _col2im_add(cols, batch, columns, g, grad_x)
    free(cols)
    free(delta)
    return 0


cdef Geometry _geometry(cnp.ndarray x, cnp.ndarray w, (int, int) stride,
                        (int, int) padding) except *:
    """Checks x, w and the hyper-parameters the kernels rely on and derives the output size."""
    cdef Geometry g
    cdef Py_ssize_t padded_h, padded_w
    cdef int stride_h = stride[0], stride_w = stride[1], pad_h = padding[0], pad_w = padding[1]
    check_array(x, "x", 4, ANY_FLOAT, C_ORDER)
    check_array(w, "w", 4, cnp.PyArray_TYPE(x), C_ORDER)
    if stride_h < 1 or stride_w < 1 or pad_h < 0 or pad_w < 0:
        raise ValueError("stride must be >= 1 and padding >= 0")
    g.channels, g.height, g.width = x.shape[1], x.shape[2], x.shape[3]
    g.filters, g.kernel_h, g.kernel_w = w.shape[0], w.shape[2], w.shape[3]
    if w.shape[1] != g.channels:
        raise ValueError("channel mismatch between x and w")
    if g.channels < 1 or g.height < 1 or g.width < 1 or g.filters < 1 or g.kernel_h < 1 or g.kernel_w < 1:
        raise ValueError("empty x or w")
    g.stride_h, g.stride_w, g.pad_h, g.pad_w = stride_h, stride_w, pad_h, pad_w
    # Sizes in Py_ssize_t: 2 * padding overflows a C int for paddings near 2**31.
    padded_h = g.height + 2 * <Py_ssize_t> pad_h
    padded_w = g.width + 2 * <Py_ssize_t> pad_w
    if g.kernel_h > padded_h or g.kernel_w > padded_w:
        raise ValueError("kernel larger than the padded input")
    g.out_h = (padded_h - g.kernel_h) // stride_h + 1
    g.out_w = (padded_w - g.kernel_w) // stride_w + 1
    return g


cdef void _check_chunk(Py_ssize_t start, Py_ssize_t stop, Py_ssize_t n, Py_ssize_t columns,
                       Py_ssize_t rows) except *:
    if not 0 <= start <= stop <= n:
        raise ValueError(f"chunk [{start}, {stop}) outside the batch of {n}")
    # BLAS takes int dimensions.
    if (stop - start) * columns > INT_MAX or rows > INT_MAX:
        raise ValueError("matrix dimension above 2**31 - 1; use smaller chunks")


def forward(cnp.ndarray x not None, cnp.ndarray w not None, cnp.ndarray bias,
            cnp.ndarray y not None, (int, int) stride, (int, int) padding, Py_ssize_t start,
            Py_ssize_t stop):
    """Writes y[start:stop] = conv2d(x[start:stop], w) + bias.

    x (N, C, H, W), w (F, C, kh, kw), bias (F,) or None, y (N, F, Ho, Wo): C-contiguous, one of
    float32/float64.  stride and padding are (h, w) pairs.
    """
    cdef Geometry g = _geometry(x, w, stride, padding)
    cdef int typenum = cnp.PyArray_TYPE(x)
    check_array(y, "y", 4, typenum, C_ORDER | WRITEABLE,
                ((<object> x).shape[0], g.filters, g.out_h, g.out_w))
    cdef const char *bias_data = NULL
    if bias is not None:
        check_array(bias, "bias", 1, typenum, C_ORDER, (g.filters,))
        bias_data = <const char *> cnp.PyArray_DATA(bias)
    _check_chunk(start, stop, x.shape[0], g.out_h * g.out_w,
                 max(g.channels * g.kernel_h * g.kernel_w, g.filters))
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
             cnp.ndarray grad_x, cnp.ndarray grad_w not None, cnp.ndarray grad_b not None,
             (int, int) stride, (int, int) padding, Py_ssize_t start, Py_ssize_t stop):
    """Gradients of samples [start, stop); stride and padding are (h, w) pairs.

    grad_x[start:stop] (N, C, H, W) is overwritten unless grad_x is None; grad_w (F, C, kh, kw)
    and grad_b (F,) receive this chunk's sums only (the caller adds chunks up in order).
    """
    cdef Geometry g = _geometry(x, w, stride, padding)
    cdef int typenum = cnp.PyArray_TYPE(x)
    check_array(grad_y, "grad_y", 4, typenum, C_ORDER,
                ((<object> x).shape[0], g.filters, g.out_h, g.out_w))
    check_array(grad_w, "grad_w", 4, typenum, C_ORDER | WRITEABLE, (<object> w).shape)
    check_array(grad_b, "grad_b", 1, typenum, C_ORDER | WRITEABLE, (g.filters,))
    cdef char *grad_x_data = NULL
    cdef Py_ssize_t x_sample = g.channels * g.height * g.width
    if grad_x is not None:
        check_array(grad_x, "grad_x", 4, typenum, C_ORDER | WRITEABLE, (<object> x).shape)
    _check_chunk(start, stop, x.shape[0], g.out_h * g.out_w,
                 max(g.channels * g.kernel_h * g.kernel_w, g.filters))
    # Only once start is known to lie in the batch: before, a start far outside it overflowed
    # start * x_sample * itemsize (undefined behaviour, found by tools/sanitize.sh).
    if grad_x is not None:
        grad_x_data = <char *> cnp.PyArray_DATA(grad_x) + start * x_sample * cnp.PyArray_ITEMSIZE(x)
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
