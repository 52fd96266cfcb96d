# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Batched 2-D convolution layers (cross-correlation, as in torch.nn.functional.conv2d).

Each call handles samples [start, stop) of a batch.  A product runs on the direct gather kernel
(conv_simd.h) when its lanes are mostly useful, or else the samples' receptive fields are
unrolled into one column matrix (im2col) so that the whole chunk is one BLAS product.  Input
gradients of stride-1 layers run as a transposed convolution on the gather kernel (lanes = input
channels, _grad_x_transposed) where that pays; the others are computed as column matrices and
folded back (col2im).  Stride-1 products whose filters (or channels) would leave vector lanes
empty, 24 of 32 say, run on the row-vector kernels instead (lanes across output positions,
_forward_rows, _grad_x_rows, _grad_w_rows).  Grouped layers
run those products group by group on channel and filter slices, reading x and y in place;
depthwise layers (one input channel per group) take their own kernels, with lanes across
output columns (the cn_dw_* kernels of conv_simd.h).  The validating wrappers live in
``cnnative.conv``; every precondition memory safety depends on is checked again here.
"""
cimport numpy as cnp
from libc.limits cimport INT_MAX
from libc.stdlib cimport calloc, free, malloc
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
        cn_idx dilation_h, dilation_w, image_stride
    void cn_transpose_f32(int level, const float *src, cn_idx src_pitch, cn_idx rows,
                          cn_idx cols, float *dst, cn_idx dst_pitch, const float *shift)
    void cn_transpose_f64(const double *src, cn_idx src_pitch, cn_idx rows, cn_idx cols,
                          double *dst, cn_idx dst_pitch, const double *shift)
    void cn_im2col_f32(const cn_columns *g, const float *x, float *cols)
    void cn_im2col_f64(const cn_columns *g, const double *x, double *cols)
    void cn_col2im_f32(int level, const cn_columns *g, const float *cols, float *grad)
    void cn_col2im_f64(int level, const cn_columns *g, const double *cols, double *grad)
    void cn_dw_rows_f32(int level, const float *input, cn_idx row_step, const cn_idx *tap_offset,
                        cn_idx taps, const float *weights, float shift, cn_idx rows, cn_idx width,
                        float *out, cn_idx out_pitch)
    void cn_dw_rows_f64(int level, const double *input, cn_idx row_step, const cn_idx *tap_offset,
                        cn_idx taps, const double *weights, double shift, cn_idx rows,
                        cn_idx width, double *out, cn_idx out_pitch)
    void cn_dw_grad_w_f32(int level, const float *grad, cn_idx grad_pitch, cn_idx rows,
                          cn_idx width, const float *input, cn_idx row_step,
                          const cn_idx *tap_offset, cn_idx taps, float *acc)
    void cn_dw_grad_w_f64(int level, const double *grad, cn_idx grad_pitch, cn_idx rows,
                          cn_idx width, const double *input, cn_idx row_step,
                          const cn_idx *tap_offset, cn_idx taps, double *acc)
    void cn_prefetch(const void *p, cn_idx nbytes)
    void cn_dw_frame_f32(int level, const float *src, cn_idx rows, cn_idx width, float *dst,
                         cn_idx pitch)
    void cn_dw_frame_f64(int level, const double *src, cn_idx rows, cn_idx width, double *dst,
                         cn_idx pitch)
    int cn_all_finite_f32(const float *values, cn_idx n)
    int cn_all_finite_f64(const double *values, cn_idx n)
    void cn_rows_f32(int level, const float *image, cn_idx pixels, const cn_idx *tap_offset,
                     cn_idx taps, const float *weights, cn_idx filters, float *out, cn_idx out_pitch)
    void cn_rows_f64(int level, const double *image, cn_idx pixels, const cn_idx *tap_offset,
                     cn_idx taps, const double *weights, cn_idx filters, double *out,
                     cn_idx out_pitch)
    void cn_rows_grad_w_f32(int level, const float *grad, cn_idx grad_pitch, cn_idx grad_sample,
                            cn_idx filters, cn_idx pixels, const float *image,
                            cn_idx image_sample, cn_idx samples, const cn_idx *tap_offset,
                            cn_idx taps, float *acc)
    void cn_rows_grad_w_f64(int level, const double *grad, cn_idx grad_pitch, cn_idx grad_sample,
                            cn_idx filters, cn_idx pixels, const double *image,
                            cn_idx image_sample, cn_idx samples, const cn_idx *tap_offset,
                            cn_idx taps, double *acc)

# Algorithm choice: 0 picks per shape, 1 forces the direct kernels, 2 forces im2col + gemm.
# Only tests and benchmarks change it, to check and time both paths.  Depthwise layers take
# their own kernels under "auto" only: "direct" and "gemm" run them group by group like any
# grouped layer.
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


# Input-gradient choice: 0 picks per shape, 1 forces the transposed convolution
# (_grad_x_transposed for stride 1, _grad_x_phases otherwise), 2 the column matrix + col2im
# (or gemm) of _algorithm.
cdef int _input_gradient = 0
INPUT_GRADIENTS = {"auto": 0, "transposed": 1, "columns": 2}


def set_input_gradient(name):
    """Select 'auto', 'transposed' or 'columns' for the input gradient (every later call):
    'transposed' takes the transposed convolution of stride-1 layers and the stride-1 phases of
    strided ones, and still needs finite weights; returns the previous name."""
    global _input_gradient
    if name not in INPUT_GRADIENTS:
        raise ValueError(f"input gradient must be one of {sorted(INPUT_GRADIENTS)}, got {name!r}")
    previous = [k for k, v in INPUT_GRADIENTS.items() if v == _input_gradient][0]
    _input_gradient = INPUT_GRADIENTS[name]
    return previous


cdef bint _transposed_pays(const Geometry *g, int level, bint double_precision) noexcept nogil:
    """Whether a stride-1 input gradient should run as a transposed convolution on the gather
    kernel (lanes = the group's channels) rather than through a column matrix."""
    if g.stride_h != 1 or g.stride_w != 1 or _input_gradient == 2:
        return False
    if _input_gradient == 1:
        return True
    if _algorithm != 0:
        return _algorithm == 1
    # The transposed product spends H*W*round_up(C) multiply-adds per (f, i, j) where the
    # column matrix has Ho*Wo*C useful ones: with little padding (a 'valid' 5x5 layer, whose
    # output is much smaller than its input) most of them would meet the zero frame.
    return (level >= CN_SIMD_AVX2
            and g.out_h * g.out_w * _lane_fraction(g.channels, level, double_precision)
            >= 0.7 * g.height * g.width)


# Row-vector kernels (lanes across output positions, cn_rows* of conv_simd.h) for stride-1
# layers: 0 picks per shape, 1 takes them wherever they apply, 2 never.
cdef int _rows_mode = 0
ROW_KERNELS = {"auto": 0, "on": 1, "off": 2}


def set_row_kernels(name):
    """Select 'auto', 'on' or 'off' for the row-vector kernels of stride-1 layers (every later
    call; 'on' still needs finite weights for the input gradient and a finite x for the weight
    gradient); returns the previous name."""
    global _rows_mode
    if name not in ROW_KERNELS:
        raise ValueError(f"row kernels must be one of {sorted(ROW_KERNELS)}, got {name!r}")
    previous = [k for k, v in ROW_KERNELS.items() if v == _rows_mode][0]
    _rows_mode = ROW_KERNELS[name]
    return previous


cdef bint _rows_pay(const Geometry *g, Py_ssize_t rows, Py_ssize_t pitch, Py_ssize_t cols,
                    Py_ssize_t lanes_used, double handicap, int level,
                    bint double_precision) noexcept nogil:
    """Whether a stride-1 product should run on the row-vector kernels rather than the gather
    kernel whose lanes would be lanes_used (filters, or channels for the input gradient).

    The row kernels compute rows * pitch positions for rows * cols useful ones (rounded up to
    whole vectors); they pay when that share of useful lanes is at least handicap times the
    gather kernel's.  Forward and input gradient write planes directly where the gather
    kernel's products are transposed into planes afterwards, worth about a twentieth of the
    lanes (handicap 0.95, 0.9); the weight gradient's row kernel loads an unaligned vector per
    six multiply-adds and only ties with the gather kernel at 24 filters of 32 lanes, so it
    needs the gather kernel to waste a third of its lanes (1.5).
    """
    cdef Py_ssize_t width
    if g.stride_h != 1 or g.stride_w != 1 or _rows_mode == 2 or _is_depthwise(g):
        return False
    if _rows_mode == 1:
        return True
    if _algorithm != 0 or level < CN_SIMD_AVX2:
        return False
    width = cn_gather_width(level, double_precision)
    if lanes_used <= width:
        # The gather kernel's one-vector blocks load a broadcast per multiply-add.
        handicap -= 0.1
    return (rows * cols / <double> _round_up(rows * pitch, width)
            >= handicap * _lane_fraction(lanes_used, level, double_precision))


cdef bint _phases_pay(const Geometry *g, int level, bint double_precision) noexcept nogil:
    """Whether a strided layer's input gradient should run as stride-1 phases on the gather
    kernel (lanes = the group's channels, _grad_x_phases) rather than through a column matrix
    and col2im (lanes = a sample's output positions)."""
    if (g.stride_h == 1 and g.stride_w == 1) or _input_gradient == 2 or _is_depthwise(g):
        return False
    if _input_gradient == 1:
        return True
    if _algorithm != 0:
        return _algorithm == 1
    return level >= CN_SIMD_AVX2 and _lane_fraction(g.channels, level, double_precision) >= 0.7


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


cdef inline void _transpose(int level, const floating *src, Py_ssize_t src_pitch, Py_ssize_t rows,
                            Py_ssize_t cols, floating *dst, Py_ssize_t dst_pitch,
                            const floating *shift) noexcept nogil:
    """dst[c * dst_pitch + r] = src[r * src_pitch + c] (+ shift[c] unless shift is NULL)."""
    if floating is float:
        cn_transpose_f32(level, src, src_pitch, rows, cols, dst, dst_pitch, shift)
    else:
        cn_transpose_f64(src, src_pitch, rows, cols, dst, dst_pitch, shift)


cdef inline Py_ssize_t _round_up(Py_ssize_t n, Py_ssize_t multiple) noexcept nogil:
    return (n + multiple - 1) // multiple * multiple


cdef struct Geometry:
    # channels and filters count one group's (all of them when groups == 1): every product
    # below is one group's, on the slices of x, w and y that group owns.  Samples lie x_sample
    # and y_sample elements apart in x and y (groups * channels * H * W, groups * filters *
    # Ho * Wo).  Padding may differ on each side ('same' with an even kernel extent).
    Py_ssize_t channels, height, width, filters, kernel_h, kernel_w
    Py_ssize_t stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right
    Py_ssize_t dilation_h, dilation_w, out_h, out_w, groups, x_sample, y_sample


cdef inline Py_ssize_t _padded_h(const Geometry *g) noexcept nogil:
    return g.height + g.pad_top + g.pad_bottom


cdef inline Py_ssize_t _padded_w(const Geometry *g) noexcept nogil:
    return g.width + g.pad_left + g.pad_right


cdef inline bint _is_padded(const Geometry *g) noexcept nogil:
    return g.pad_top > 0 or g.pad_bottom > 0 or g.pad_left > 0 or g.pad_right > 0


cdef inline bint _is_depthwise(const Geometry *g) noexcept nogil:
    """One input channel per group, several groups: the depthwise kernels' case."""
    return _algorithm == 0 and g.groups > 1 and g.channels == 1


cdef cn_columns _columns(const Geometry *g, Py_ssize_t batch, Py_ssize_t row_len) noexcept nogil:
    """The column-matrix shape of `batch` samples of one group, rows row_len apart (conv_simd.h)."""
    cdef cn_columns c
    c.batch, c.channels, c.height, c.width = batch, g.channels, g.height, g.width
    c.kernel_h, c.kernel_w, c.stride_h, c.stride_w = g.kernel_h, g.kernel_w, g.stride_h, g.stride_w
    c.pad_h, c.pad_w, c.out_h, c.out_w, c.row_len = g.pad_top, g.pad_left, g.out_h, g.out_w, row_len
    c.dilation_h, c.dilation_w, c.image_stride = g.dilation_h, g.dilation_w, g.x_sample
    return c


cdef inline void _im2col(const floating *x, Py_ssize_t batch, const Geometry *g,
                         floating *cols) noexcept nogil:
    """cols (C*kh*kw, batch*Ho*Wo): the receptive fields of `batch` samples, zero off the image.

    x points at the group's first channel of the first sample; samples lie g.x_sample apart."""
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
    for f in range(g.groups * g.filters):
        for k in range(8):
            partial[k] = 0
        for s in range(batch):
            row = grad_y + s * g.y_sample + f * pixels
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


cdef inline void _free_all(void *a, void *b, void *c=NULL, void *d=NULL,
                           void *e=NULL) noexcept nogil:
    """free() of a kernel's buffers, some possibly NULL: the one release list a kernel writes
    for its failure path and its end."""
    free(a)
    free(b)
    free(c)
    free(d)
    free(e)


cdef void _release(Workspace *ws) noexcept nogil:
    _free_all(ws.weights, ws.tap_offset, ws.pixel_base, ws.product, ws.buffer)
    ws.weights = ws.tap_offset = ws.pixel_base = ws.product = ws.buffer = NULL


cdef void _window_offsets(cn_idx *offsets, const Geometry *g, Py_ssize_t plane,
                          Py_ssize_t row) noexcept nogil:
    """offsets[(c*kh + i)*kw + j] = c*plane + i*dh*row + j*dw: a kernel window over stacked planes."""
    cdef Py_ssize_t k, i, j, t = 0
    for k in range(g.channels):
        for i in range(g.kernel_h):
            for j in range(g.kernel_w):
                offsets[t] = k * plane + i * g.dilation_h * row + j * g.dilation_w
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
    cdef Py_ssize_t padded_h = _padded_h(g), padded_w = _padded_w(g)
    cdef Py_ssize_t group_x = g.channels * g.height * g.width
    cdef bint padded = _is_padded(g)
    cdef Workspace ws
    cdef Py_ssize_t s, f, p, t, gi, first
    cdef const floating *image
    cdef floating *dst
    cdef floating *weights
    cdef floating *product
    cdef floating shift
    if _allocate(&ws, taps, pixels, lanes, g.channels * padded_h * padded_w if padded else 0,
                 sizeof(floating)) != 0:
        return -1
    weights, product = <floating *> ws.weights, <floating *> ws.product
    if padded:
        # The frame is zeroed once; every sample's copy writes the same inside positions.
        memset(ws.buffer, 0, g.channels * padded_h * padded_w * sizeof(floating))
    _window_offsets(ws.tap_offset, g, padded_h * padded_w, padded_w)
    _output_positions(ws.pixel_base, g, padded_w)
    for gi in range(g.groups):
        first = gi * g.filters
        # Weights as (taps, lanes): one vector of filters per tap, zero in the padding lanes.
        # Through the blocked transpose: element by element, each read of a column of w was a
        # cache line of its own, a sixth of a 7x7 layer's time.
        _transpose(level, w + first * taps, taps, g.filters, taps, weights, lanes, NULL)
        if lanes > g.filters:
            for t in range(taps):
                memset(weights + t * lanes + g.filters, 0, (lanes - g.filters) * sizeof(floating))
        for s in range(batch):
            image = x + s * g.x_sample + gi * group_x
            if s + 1 < batch:
                # The next sample's slice, fetched while this one is multiplied.
                cn_prefetch(image + g.x_sample, group_x * sizeof(floating))
            if padded:
                _frame_copy(level, image, g.channels, g.height, g.width, <floating *> ws.buffer,
                            padded_h, padded_w, g.pad_top, g.pad_left, 1, 1)
                image = <floating *> ws.buffer
            _gather(level, image, ws.pixel_base, pixels, ws.tap_offset, taps, weights, lanes, product)
            _transpose(level, product, lanes, pixels, g.filters, y + s * g.y_sample + first * pixels,
                       pixels, bias + first if bias != NULL else NULL)
    _release(&ws)
    return 0


cdef int _grad_w_direct(const floating *grad_y, const floating *x, floating *grad_w,
                        Py_ssize_t batch, const Geometry *g, int level) noexcept nogil:
    """This chunk's grad_w on the gather kernel: pixels = (c, i, j), taps = (sample, position)."""
    cdef Py_ssize_t lanes = _round_up(g.filters, cn_gather_width(level, floating is double))
    cdef Py_ssize_t kernel_taps = g.channels * g.kernel_h * g.kernel_w
    cdef Py_ssize_t pixels = g.out_h * g.out_w, positions = batch * pixels
    cdef Py_ssize_t padded_h = _padded_h(g), padded_w = _padded_w(g)
    cdef Py_ssize_t plane = padded_h * padded_w, group_x = g.channels * g.height * g.width
    cdef bint padded = _is_padded(g)
    cdef Workspace ws
    cdef Py_ssize_t s, f, p, t, q, gi, first, sample_step
    cdef const floating *image
    cdef floating *weights
    cdef floating *product
    if _allocate(&ws, positions, kernel_taps, lanes, batch * g.channels * plane if padded else 0,
                 sizeof(floating)) != 0:
        return -1
    weights, product = <floating *> ws.weights, <floating *> ws.product
    if padded:
        memset(ws.buffer, 0, batch * g.channels * plane * sizeof(floating))
    memset(ws.weights, 0, positions * lanes * sizeof(floating))
    _window_offsets(ws.pixel_base, g, plane, padded_w)
    for gi in range(g.groups):
        first = gi * g.filters
        if padded:
            for s in range(batch):
                if s + 1 < batch:
                    cn_prefetch(x + (s + 1) * g.x_sample + gi * group_x, group_x * sizeof(floating))
                _frame_copy(level, x + s * g.x_sample + gi * group_x, g.channels, g.height,
                            g.width, <floating *> ws.buffer + s * g.channels * plane, padded_h,
                            padded_w, g.pad_top, g.pad_left, 1, 1)
            image, sample_step = <floating *> ws.buffer, g.channels * plane
        else:
            image, sample_step = x + gi * group_x, g.x_sample
        # The output gradients transposed to (sample, position, lanes) play the weights' part.
        _output_positions(ws.tap_offset, g, padded_w)
        for s in range(batch):
            for p in range(pixels):
                ws.tap_offset[s * pixels + p] = ws.tap_offset[p] + s * sample_step
            # Lanes past the filters stay zero (set once, above).
            if s + 1 < batch:
                cn_prefetch(grad_y + (s + 1) * g.y_sample + first * pixels,
                            g.filters * pixels * sizeof(floating))
            _transpose(level, grad_y + s * g.y_sample + first * pixels, pixels, g.filters, pixels,
                       weights + s * pixels * lanes, lanes, NULL)
        _gather(level, image, ws.pixel_base, kernel_taps, ws.tap_offset, positions, weights, lanes,
                product)
        _transpose(level, product, lanes, kernel_taps, g.filters, grad_w + first * kernel_taps,
                   kernel_taps, NULL)
    _release(&ws)
    return 0


cdef int _grad_x_columns(const floating *grad_y, const floating *w, floating *grad_x,
                         Py_ssize_t batch, const Geometry *g, int level) noexcept nogil:
    """Input gradient on the gather kernel, one sample at a time: the sample's column matrix
    w^T delta (pixels = kernel taps (c, i, j), taps = filters, lanes = output positions) is
    computed into a buffer (C*kh*kw x Ho*Wo, 128 KB for the MNIST network's second layer in
    float32, so it stays in cache there), then folded back by col2im.  Any stride and padding;
    the same products as im2col + gemm, so inf and NaN weights behave alike.  Adds to grad_x
    (the caller zeroes it).
    """
    cdef Py_ssize_t positions = g.out_h * g.out_w
    cdef Py_ssize_t lanes = _round_up(positions, cn_gather_width(level, floating is double))
    cdef Py_ssize_t kernel_taps = g.channels * g.kernel_h * g.kernel_w
    cdef Py_ssize_t group_x = g.channels * g.height * g.width
    cdef Workspace ws
    cdef Py_ssize_t s, f, q, gi
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
    for gi in range(g.groups):
        for s in range(batch):
            delta = grad_y + s * g.y_sample + gi * g.filters * positions
            if lanes != positions:
                # Rows of whole vectors; the padding lanes' products are never read back.
                for f in range(g.filters):
                    memcpy(padded_delta + f * lanes, delta + f * positions,
                           positions * sizeof(floating))
                    memset(padded_delta + f * lanes + positions, 0,
                           (lanes - positions) * sizeof(floating))
                delta = padded_delta
            _gather(level, w + gi * g.filters * kernel_taps, ws.pixel_base, kernel_taps,
                    ws.tap_offset, g.filters, delta, lanes, <floating *> ws.product)
            _col2im_add(<floating *> ws.product, 1, lanes, g, grad_x + s * g.x_sample + gi * group_x)
    _release(&ws)
    return 0


cdef void _flip_weights(const floating *w, const Geometry *g, floating *weights,
                        Py_ssize_t lanes) noexcept nogil:
    """weights[((f*kh + i)*kw + j) * lanes + c] = w[f, c, kh-1-i, kw-1-j] for one group's w, 0 in
    lanes c >= C: the transposed convolution's taps (f, i, j) with the channels as lanes."""
    cdef Py_ssize_t kernel = g.kernel_h * g.kernel_w, f, c, k, t
    cdef const floating *src
    cdef floating *dst
    for f in range(g.filters):
        dst = weights + f * kernel * lanes
        for c in range(g.channels):
            src = w + (f * g.channels + c) * kernel
            for k in range(kernel):
                dst[(kernel - 1 - k) * lanes + c] = src[k]
        if lanes > g.channels:
            for t in range(kernel):
                memset(dst + t * lanes + g.channels, 0, (lanes - g.channels) * sizeof(floating))


cdef int _grad_x_transposed(const floating *grad_y, const floating *w, floating *grad_x,
                            Py_ssize_t batch, const Geometry *g, int level) noexcept nogil:
    """Input gradient of a stride-1 layer as a transposed convolution on the gather kernel.

    Per sample and group, the output gradients are framed (shifted by (k-1)*d - pad, zero
    around) and correlated with the group's kernels flipped and transposed F <-> C:
        grad_x[c, h, w] = sum over (f, i, j) of frame[f, h + i*dh, w + j*dw] * w[f, c, kh-1-i, kw-1-j]
    pixels = input positions, taps = (f, i, j), lanes = the group's channels: a forward-style
    product, no column matrix and no col2im.  Overwrites grad_x.  Each element sums its taps in
    one fixed order, so results do not depend on threads.  The frame's zeros meet every weight:
    callers take this path only when all weights are finite (0 * inf would be NaN where im2col +
    gemm has no product).
    """
    cdef Py_ssize_t lanes = _round_up(g.channels, cn_gather_width(level, floating is double))
    cdef Py_ssize_t kernel = g.kernel_h * g.kernel_w, taps = g.filters * kernel
    cdef Py_ssize_t frame_h = g.height + (g.kernel_h - 1) * g.dilation_h
    cdef Py_ssize_t frame_w = g.width + (g.kernel_w - 1) * g.dilation_w
    cdef Py_ssize_t frame = frame_h * frame_w, pixels = g.height * g.width
    cdef Py_ssize_t group_x = g.channels * pixels, positions = g.out_h * g.out_w
    cdef Py_ssize_t s, f, c, i, j, t, p, gi
    cdef Workspace ws
    cdef floating *weights
    cdef floating *product
    cdef floating *dst
    if _allocate(&ws, taps, pixels, lanes, g.filters * frame, sizeof(floating)) != 0:
        return -1
    weights, product = <floating *> ws.weights, <floating *> ws.product
    memset(ws.buffer, 0, g.filters * frame * sizeof(floating))
    for f in range(g.filters):
        for i in range(g.kernel_h):
            for j in range(g.kernel_w):
                ws.tap_offset[(f * g.kernel_h + i) * g.kernel_w + j] = (
                    f * frame + i * g.dilation_h * frame_w + j * g.dilation_w)
    for p in range(pixels):
        ws.pixel_base[p] = (p // g.width) * frame_w + p % g.width
    for gi in range(g.groups):
        # Weights as (taps, lanes): tap (f, i, j) holds w[f, :, kh-1-i, kw-1-j], zero-padded;
        # w is read in order, and one filter's taps stay in L1 while its channels are written.
        _flip_weights(w + gi * g.filters * g.channels * kernel, g, weights, lanes)
        for s in range(batch):
            if s + 1 < batch:
                cn_prefetch(grad_y + (s + 1) * g.y_sample + gi * g.filters * positions,
                            g.filters * positions * sizeof(floating))
            _frame_copy(level, grad_y + s * g.y_sample + gi * g.filters * positions, g.filters,
                        g.out_h, g.out_w, <floating *> ws.buffer, frame_h, frame_w,
                        (g.kernel_h - 1) * g.dilation_h - g.pad_top,
                        (g.kernel_w - 1) * g.dilation_w - g.pad_left, 1, 1)
            _gather(level, <floating *> ws.buffer, ws.pixel_base, pixels, ws.tap_offset, taps,
                    weights, lanes, product)
            _transpose(level, product, lanes, pixels, g.channels, grad_x + s * g.x_sample + gi * group_x,
                       pixels, NULL)
    _release(&ws)
    return 0


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """a / b rounded up, for b > 0 and any sign of a."""
    return -((-a) // b) if a < 0 else (a + b - 1) // b


cdef int _grad_x_phases(const floating *grad_y, const floating *w, floating *grad_x,
                        Py_ssize_t batch, const Geometry *g, int level) noexcept nogil:
    """Input gradient of a strided layer as sh*sw stride-1 products on the gather kernel.

    Input rows h = a + sh*m (phase a) receive only kernel rows i with a + pad_top - i*dh a
    multiple of sh, from output row m + ki, ki = (a + pad_top - i*dh) / sh; columns likewise.
    So each phase (a, b) is a stride-1 correlation of the framed output gradient (zero around,
    `top` rows and `left` columns in, for the most negative ki and kj) with its own taps
    (f, i, j): pixels = the phase's input positions, lanes = the group's channels, no column
    matrix and no col2im, and no product with the zeros a stride-1 transposed convolution of the
    zero-upsampled gradient would spend three quarters of its time on.  The products are then
    written to their strided positions; a phase no tap reaches is zero.  Overwrites grad_x.  The
    frame's zeros meet every weight: callers take this path only when all weights are finite.
    """
    cdef Py_ssize_t lanes = _round_up(g.channels, cn_gather_width(level, floating is double))
    cdef Py_ssize_t sh = g.stride_h, sw = g.stride_w, kernel = g.kernel_h * g.kernel_w
    cdef Py_ssize_t taps = g.filters * kernel, positions = g.out_h * g.out_w
    cdef Py_ssize_t top = max(0, _ceil_div((g.kernel_h - 1) * g.dilation_h - g.pad_top, sh))
    cdef Py_ssize_t left = max(0, _ceil_div((g.kernel_w - 1) * g.dilation_w - g.pad_left, sw))
    cdef Py_ssize_t rows_max = (g.height + sh - 1) // sh, cols_max = (g.width + sw - 1) // sw
    cdef Py_ssize_t frame_h = top + max(g.out_h, rows_max + (sh - 1 + g.pad_top) // sh)
    cdef Py_ssize_t frame_w = left + max(g.out_w, cols_max + (sw - 1 + g.pad_left) // sw)
    cdef Py_ssize_t frame = frame_h * frame_w, group_x = g.channels * g.height * g.width
    cdef Py_ssize_t phases_h = min(sh, g.height), phases_w = min(sw, g.width)
    cdef Py_ssize_t s, f, c, i, j, k, a, b, m, n, p, t, gi, rows, cols, count, ki, kj, first
    cdef Workspace ws
    cdef floating *weights
    cdef floating *product
    cdef floating *dst
    cdef const floating *src
    # Tap lists of every phase, one after the other: phase (a, b) holds taps
    # [tap_start[a * phases_w + b], tap_start[a * phases_w + b + 1]).
    cdef Py_ssize_t *tap_start = <Py_ssize_t *> malloc((phases_h * phases_w + 1) * sizeof(Py_ssize_t))
    cdef floating *planes = <floating *> malloc(g.channels * rows_max * cols_max * sizeof(floating))
    cdef floating *target
    if tap_start == NULL or planes == NULL:
        _free_all(tap_start, planes)
        return -1
    if _allocate(&ws, taps, rows_max * cols_max, lanes, g.filters * frame, sizeof(floating)) != 0:
        _free_all(tap_start, planes)
        return -1
    weights, product = <floating *> ws.weights, <floating *> ws.product
    memset(ws.buffer, 0, g.filters * frame * sizeof(floating))
    for gi in range(g.groups):
        t = 0
        for a in range(phases_h):
            for b in range(phases_w):
                tap_start[a * phases_w + b] = t
                for f in range(g.filters):
                    for i in range(g.kernel_h):
                        if (a + g.pad_top - i * g.dilation_h) % sh != 0:
                            continue
                        ki = (a + g.pad_top - i * g.dilation_h) // sh
                        for j in range(g.kernel_w):
                            if (b + g.pad_left - j * g.dilation_w) % sw != 0:
                                continue
                            kj = (b + g.pad_left - j * g.dilation_w) // sw
                            ws.tap_offset[t] = f * frame + (top + ki) * frame_w + left + kj
                            src = w + ((gi * g.filters + f) * g.channels) * kernel + i * g.kernel_w + j
                            for c in range(g.channels):
                                weights[t * lanes + c] = src[c * kernel]
                            for c in range(g.channels, lanes):
                                weights[t * lanes + c] = 0
                            t += 1
        tap_start[phases_h * phases_w] = t
        for s in range(batch):
            if s + 1 < batch:
                cn_prefetch(grad_y + (s + 1) * g.y_sample + gi * g.filters * positions,
                            g.filters * positions * sizeof(floating))
            _frame_copy(level, grad_y + s * g.y_sample + gi * g.filters * positions, g.filters,
                        g.out_h, g.out_w, <floating *> ws.buffer, frame_h, frame_w, top, left, 1, 1)
            for a in range(phases_h):
                rows = (g.height - a + sh - 1) // sh
                for b in range(phases_w):
                    cols = (g.width - b + sw - 1) // sw
                    first = tap_start[a * phases_w + b]
                    count = tap_start[a * phases_w + b + 1] - first
                    dst = grad_x + s * g.x_sample + gi * group_x + a * g.width + b
                    if count == 0:
                        for c in range(g.channels):
                            for m in range(rows):
                                for n in range(cols):
                                    dst[c * g.height * g.width + m * sh * g.width + n * sw] = 0
                        continue
                    for m in range(rows):
                        for n in range(cols):
                            ws.pixel_base[m * cols + n] = m * frame_w + n
                    _gather(level, <floating *> ws.buffer, ws.pixel_base, rows * cols,
                            ws.tap_offset + first, count, weights + first * lanes, lanes, product)
                    # Into planes by the blocked transpose first: read across the lanes, the
                    # scatter took a quarter of the products' time.
                    _transpose(level, product, lanes, rows * cols, g.channels, planes, rows * cols,
                               NULL)
                    for c in range(g.channels):
                        for m in range(rows):
                            src = planes + (c * rows + m) * cols
                            target = dst + c * g.height * g.width + m * sh * g.width
                            for n in range(cols):
                                target[n * sw] = src[n]
    _release(&ws)
    _free_all(tap_start, planes)
    return 0


# ------------------------------------------------------------------ row-vector kernels (stride 1)
#
# Position p = oh * pitch + ow of a zero-framed image whose rows are pitch apart: tap (c, i, j)
# of it reads framed[p + c*plane + i*dh*pitch + j*dw], one contiguous vector per tap (see
# cn_rows in conv_simd.h).  The thrown-away positions of the last row read up to dw*(kw-1)
# elements past the last plane, and whole vectors up to a vector more: buffers end _row_slack
# zeros past it.


cdef enum:
    ROW_SLACK = 64


cdef inline Py_ssize_t _row_slack(const Geometry *g) noexcept nogil:
    """Elements past the last plane that the row kernels may read (bounded by _geometry's
    checks: dw*(kw-1) < the padded width)."""
    return g.dilation_w * (g.kernel_w - 1) + ROW_SLACK


cdef inline void _rows(int level, const floating *image, Py_ssize_t pixels,
                       const cn_idx *tap_offset, Py_ssize_t taps, const floating *weights,
                       Py_ssize_t filters, floating *out, Py_ssize_t out_pitch) noexcept nogil:
    if floating is float:
        cn_rows_f32(level, image, pixels, tap_offset, taps, weights, filters, out, out_pitch)
    else:
        cn_rows_f64(level, image, pixels, tap_offset, taps, weights, filters, out, out_pitch)


cdef void _unframe(const floating *src, Py_ssize_t pitch, Py_ssize_t planes, Py_ssize_t plane_pitch,
                   Py_ssize_t rows, Py_ssize_t cols, floating *dst,
                   const floating *shift) noexcept nogil:
    """dst[k, r, c] = src[k * plane_pitch + r * pitch + c] (+ shift[k]): the useful positions."""
    cdef Py_ssize_t k, r, c
    cdef const floating *s
    cdef floating *d
    cdef floating add
    for k in range(planes):
        add = shift[k] if shift != NULL else 0
        for r in range(rows):
            s = src + k * plane_pitch + r * pitch
            d = dst + (k * rows + r) * cols
            if shift == NULL:
                memcpy(d, s, cols * sizeof(floating))
            else:
                for c in range(cols):
                    d[c] = s[c] + add


cdef int _forward_rows(const floating *x, const floating *w, const floating *bias,
                       floating *y, Py_ssize_t batch, const Geometry *g, int level) noexcept nogil:
    """Forward pass of a stride-1 layer on cn_rows: taps = (c, i, j), lanes = positions."""
    cdef Py_ssize_t width = cn_gather_width(level, floating is double)
    cdef Py_ssize_t pitch = _padded_w(g), plane = _padded_h(g) * pitch
    cdef Py_ssize_t pixels = g.out_h * pitch, out_pitch = _round_up(pixels, width)
    cdef Py_ssize_t taps = g.channels * g.kernel_h * g.kernel_w, positions = g.out_h * g.out_w
    cdef Py_ssize_t group_x = g.channels * g.height * g.width, s, f, t, gi, first
    cdef floating *framed = <floating *> calloc(g.channels * plane + _row_slack(g), sizeof(floating))
    cdef floating *weights = <floating *> malloc(taps * g.filters * sizeof(floating))
    cdef floating *out = <floating *> malloc(g.filters * out_pitch * sizeof(floating))
    cdef cn_idx *offsets = <cn_idx *> malloc(taps * sizeof(cn_idx))
    cdef const floating *image
    if framed == NULL or weights == NULL or out == NULL or offsets == NULL:
        _free_all(framed, weights, out, offsets)
        return -1
    _window_offsets(offsets, g, plane, pitch)
    for gi in range(g.groups):
        first = gi * g.filters
        _transpose(level, w + first * taps, taps, g.filters, taps, weights, g.filters, NULL)
        for s in range(batch):
            image = x + s * g.x_sample + gi * group_x
            if s + 1 < batch:
                cn_prefetch(image + g.x_sample, group_x * sizeof(floating))
            _frame_copy(level, image, g.channels, g.height, g.width, framed, _padded_h(g), pitch,
                        g.pad_top, g.pad_left, 1, 1)
            _rows(level, framed, pixels, offsets, taps, weights, g.filters, out, out_pitch)
            _unframe(out, pitch, g.filters, out_pitch, g.out_h, g.out_w,
                     y + s * g.y_sample + first * positions, bias + first if bias != NULL else NULL)
    _free_all(framed, weights, out, offsets)
    return 0


cdef int _grad_w_rows(const floating *grad_y, const floating *x, floating *grad_w,
                      Py_ssize_t batch, const Geometry *g, int level) noexcept nogil:
    """This chunk's grad_w of a stride-1 layer on cn_rows_grad_w (overwritten): every sample's
    input framed and output gradients laid out on the framed positions first, then one call.

    The output gradients are zero at the thrown-away positions, which therefore meet values of
    x: callers take this path only when x is finite.
    """
    cdef Py_ssize_t width = cn_gather_width(level, floating is double)
    cdef Py_ssize_t pitch = _padded_w(g), plane = _padded_h(g) * pitch
    cdef Py_ssize_t pixels = g.out_h * pitch, grad_pitch = _round_up(pixels, width)
    cdef Py_ssize_t taps = g.channels * g.kernel_h * g.kernel_w, positions = g.out_h * g.out_w
    cdef Py_ssize_t group_x = g.channels * g.height * g.width, s, f, t, v, gi, first
    cdef Py_ssize_t image_sample = g.channels * plane, grad_sample = g.filters * grad_pitch
    cdef floating *framed = <floating *> calloc(batch * image_sample + _row_slack(g), sizeof(floating))
    # Rows of whole vectors from a 64-byte boundary on: every gradient load is aligned.
    cdef void *grad_block = calloc(batch * grad_sample * sizeof(floating) + 64, 1)
    cdef floating *grad = <floating *> ((<size_t> grad_block + 63) // 64 * 64)
    cdef floating *partial = <floating *> malloc(g.filters * taps * width * sizeof(floating))
    cdef cn_idx *offsets = <cn_idx *> malloc(taps * sizeof(cn_idx))
    cdef const floating *image
    cdef floating total
    if framed == NULL or grad_block == NULL or partial == NULL or offsets == NULL:
        _free_all(framed, grad_block, partial, offsets)
        return -1
    _window_offsets(offsets, g, plane, pitch)
    for gi in range(g.groups):
        first = gi * g.filters
        memset(partial, 0, g.filters * taps * width * sizeof(floating))
        for s in range(batch):
            image = x + s * g.x_sample + gi * group_x
            _frame_copy(level, image, g.channels, g.height, g.width, framed + s * image_sample,
                        _padded_h(g), pitch, g.pad_top, g.pad_left, 1, 1)
            for f in range(g.filters):
                _frame_copy(level, grad_y + s * g.y_sample + (first + f) * positions, 1, g.out_h,
                            g.out_w, grad + s * grad_sample + f * grad_pitch, g.out_h, pitch, 0, 0,
                            1, 1)
        if floating is float:
            cn_rows_grad_w_f32(level, grad, grad_pitch, grad_sample, g.filters, pixels, framed,
                               image_sample, batch, offsets, taps, partial)
        else:
            cn_rows_grad_w_f64(level, grad, grad_pitch, grad_sample, g.filters, pixels, framed,
                               image_sample, batch, offsets, taps, partial)
        # Each weight's lanes, added up in order.
        for f in range(g.filters):
            for t in range(taps):
                total = partial[(f * taps + t) * width]
                for v in range(1, width):
                    total = total + partial[(f * taps + t) * width + v]
                grad_w[(first + f) * taps + t] = total
    _free_all(framed, grad_block, partial, offsets)
    return 0


cdef int _grad_x_rows(const floating *grad_y, const floating *w, floating *grad_x,
                      Py_ssize_t batch, const Geometry *g, int level) noexcept nogil:
    """Input gradient of a stride-1 layer as the transposed convolution of _grad_x_transposed,
    on cn_rows: lanes = input positions of the framed output gradient, "filters" = the group's
    channels.  Overwrites grad_x; callers take it only with finite weights (the frame's zeros
    meet every weight)."""
    cdef Py_ssize_t width = cn_gather_width(level, floating is double)
    cdef Py_ssize_t kernel = g.kernel_h * g.kernel_w, taps = g.filters * kernel
    cdef Py_ssize_t frame_h = g.height + (g.kernel_h - 1) * g.dilation_h
    cdef Py_ssize_t frame_w = g.width + (g.kernel_w - 1) * g.dilation_w
    cdef Py_ssize_t frame = frame_h * frame_w, pixels = g.height * frame_w
    cdef Py_ssize_t out_pitch = _round_up(pixels, width), positions = g.out_h * g.out_w
    cdef Py_ssize_t group_x = g.channels * g.height * g.width, s, f, c, i, j, t, gi
    cdef floating *framed = <floating *> calloc(g.filters * frame + _row_slack(g), sizeof(floating))
    cdef floating *weights = <floating *> malloc(taps * g.channels * sizeof(floating))
    cdef floating *out = <floating *> malloc(g.channels * out_pitch * sizeof(floating))
    cdef cn_idx *offsets = <cn_idx *> malloc(taps * sizeof(cn_idx))
    if framed == NULL or weights == NULL or out == NULL or offsets == NULL:
        _free_all(framed, weights, out, offsets)
        return -1
    for f in range(g.filters):
        for i in range(g.kernel_h):
            for j in range(g.kernel_w):
                offsets[(f * g.kernel_h + i) * g.kernel_w + j] = (
                    f * frame + i * g.dilation_h * frame_w + j * g.dilation_w)
    for gi in range(g.groups):
        _flip_weights(w + gi * g.filters * g.channels * kernel, g, weights, g.channels)
        for s in range(batch):
            if s + 1 < batch:
                cn_prefetch(grad_y + (s + 1) * g.y_sample + gi * g.filters * positions,
                            g.filters * positions * sizeof(floating))
            _frame_copy(level, grad_y + s * g.y_sample + gi * g.filters * positions, g.filters,
                        g.out_h, g.out_w, framed, frame_h, frame_w,
                        (g.kernel_h - 1) * g.dilation_h - g.pad_top,
                        (g.kernel_w - 1) * g.dilation_w - g.pad_left, 1, 1)
            _rows(level, framed, pixels, offsets, taps, weights, g.channels, out, out_pitch)
            _unframe(out, frame_w, g.channels, out_pitch, g.height, g.width,
                     grad_x + s * g.x_sample + gi * group_x, NULL)
    _free_all(framed, weights, out, offsets)
    return 0


# ------------------------------------------------------------------------- depthwise layers
#
# groups == C: each output plane (s, f) is one input plane (s, f // m) correlated with w[f]
# (m = F // C filters per channel).  Per (sample, channel) the input plane is copied once into
# a zero-framed buffer whose rows are long enough for whole vectors, and the kernels of
# conv_simd.h run over it with lanes across output columns:
#   forward  y[s, f] = rows of taps (i, j) over the framed plane (stride 1), or over its
#            column phases (below) when the column stride is > 1;
#   grad_w   per-lane partial sums over the chunk of grad_y rows (zero-padded to whole
#            vectors) times the column phases, lanes added up at the end in a fixed order;
#   grad_x   the m output gradients of the channel, zero-upsampled by the stride and framed
#            by the kernel extent, correlated with the flipped kernels: rows of taps
#            (multiplier, i, j).  When a weight of the channel is not finite, the framing
#            zeros would turn into NaN where torch has no product at all; those planes take a
#            plain scatter loop instead.
# The planes of x and grad_y are asked for PREFETCH planes ahead.
# Column phases: phase j holds column ow*sw + j*dw of the framed plane at column ow (zero for
# ow >= Wo up to whole vectors), so every read is contiguous and the padding lanes only ever
# meet zeros.


cdef enum:
    PREFETCH = 4


cdef inline void _dw_rows(int level, const floating *src, Py_ssize_t row_step,
                          const cn_idx *tap_offset, Py_ssize_t taps, const floating *weights,
                          floating shift, Py_ssize_t rows, Py_ssize_t width, floating *out,
                          Py_ssize_t out_pitch) noexcept nogil:
    if floating is float:
        cn_dw_rows_f32(level, src, row_step, tap_offset, taps, weights, shift, rows, width, out,
                       out_pitch)
    else:
        cn_dw_rows_f64(level, src, row_step, tap_offset, taps, weights, shift, rows, width, out,
                       out_pitch)


cdef inline void _dw_grad_w(int level, const floating *grad, Py_ssize_t grad_pitch,
                            Py_ssize_t rows, Py_ssize_t width, const floating *src,
                            Py_ssize_t row_step, const cn_idx *tap_offset, Py_ssize_t taps,
                            floating *acc) noexcept nogil:
    if floating is float:
        cn_dw_grad_w_f32(level, grad, grad_pitch, rows, width, src, row_step, tap_offset, taps, acc)
    else:
        cn_dw_grad_w_f64(level, grad, grad_pitch, rows, width, src, row_step, tap_offset, taps, acc)


cdef void _frame_copy(int level, const floating *src, Py_ssize_t planes, Py_ssize_t height,
                      Py_ssize_t width, floating *dst, Py_ssize_t dst_height, Py_ssize_t dst_width,
                      Py_ssize_t top, Py_ssize_t left, Py_ssize_t step_h,
                      Py_ssize_t step_w) noexcept nogil:
    """dst[k, top + r*step_h, left + c*step_w] = src[k, r, c] where that lies in dst.

    Every other element of dst is left as it is: buffers are zeroed once, and every plane of a
    call writes the same positions, so the frame (and, with steps > 1, the gaps) stay zero.
    """
    cdef Py_ssize_t k, r, c, row, first = 0, last = width
    cdef const floating *source
    cdef floating *target
    if (step_h == 1 and step_w == 1 and top >= 0 and left >= 0 and top + height <= dst_height
            and left + width <= dst_width):
        # The usual case, in vectors: the whole plane lands inside the frame.
        for k in range(planes):
            if floating is float:
                cn_dw_frame_f32(level, src + k * height * width, height, width,
                                dst + (k * dst_height + top) * dst_width + left, dst_width)
            else:
                cn_dw_frame_f64(level, src + k * height * width, height, width,
                                dst + (k * dst_height + top) * dst_width + left, dst_width)
        return
    if left < 0:
        first = (-left + step_w - 1) // step_w
    if left + (width - 1) * step_w >= dst_width:
        last = (dst_width - 1 - left) // step_w + 1 if dst_width - 1 - left >= 0 else 0
    if last < first:
        return
    for k in range(planes):
        for r in range(height):
            row = top + r * step_h
            if row < 0 or row >= dst_height:
                continue
            source = src + (k * height + r) * width
            target = dst + (k * dst_height + row) * dst_width + left
            if step_w == 1:
                for c in range(first, last):
                    target[c] = source[c]
            else:
                for c in range(first, last):
                    target[c * step_w] = source[c]


cdef void _dw_column_phases(const floating *framed, Py_ssize_t pitch, const Geometry *g,
                            Py_ssize_t width, floating *phases) noexcept nogil:
    """phases[j, r, ow] = framed[r, ow*sw + j*dw] for ow < Wo, 0 for Wo <= ow < width."""
    cdef Py_ssize_t rows = _padded_h(g), j, r, ow
    cdef const floating *src
    cdef floating *dst
    for j in range(g.kernel_w):
        for r in range(rows):
            src = framed + r * pitch + j * g.dilation_w
            dst = phases + (j * rows + r) * width
            if g.stride_w == 1:
                memcpy(dst, src, g.out_w * sizeof(floating))
            else:
                for ow in range(g.out_w):
                    dst[ow] = src[ow * g.stride_w]
            for ow in range(g.out_w, width):
                dst[ow] = 0


cdef int _forward_depthwise(const floating *x, const floating *w, const floating *bias,
                            floating *y, Py_ssize_t batch, const Geometry *g, int level) noexcept nogil:
    """Forward pass of a depthwise layer, plane by plane (see above); 0 or -1 (no memory)."""
    cdef Py_ssize_t vector = cn_gather_width(level, floating is double)
    cdef Py_ssize_t m = g.filters, taps = g.kernel_h * g.kernel_w, pixels = g.out_h * g.out_w
    cdef Py_ssize_t rows = _padded_h(g), out_round = _round_up(g.out_w, vector)
    cdef Py_ssize_t pitch = _padded_w(g), row_step, items, s, c, k, f, i, j
    cdef bint phased = g.stride_w != 1
    if not phased:
        # Whole vectors from every tap's first column.
        pitch = max(pitch, out_round + (g.kernel_w - 1) * g.dilation_w)
    items = rows * pitch + (g.kernel_w * rows * out_round if phased else 0)
    cdef floating *framed = <floating *> calloc(items, sizeof(floating))
    cdef cn_idx *offsets = <cn_idx *> malloc(taps * sizeof(cn_idx))
    cdef const floating *src
    if framed == NULL or offsets == NULL:
        _free_all(framed, offsets)
        return -1
    for i in range(g.kernel_h):
        for j in range(g.kernel_w):
            if phased:
                offsets[i * g.kernel_w + j] = (j * rows + i * g.dilation_h) * out_round
            else:
                offsets[i * g.kernel_w + j] = i * g.dilation_h * pitch + j * g.dilation_w
    src, row_step = framed, g.stride_h * pitch
    if phased:
        src, row_step = framed + rows * pitch, g.stride_h * out_round
    for s in range(batch):
        for c in range(g.groups):
            if s * g.groups + c + PREFETCH < batch * g.groups:
                cn_prefetch(x + s * g.x_sample + (c + PREFETCH) * g.height * g.width,
                            g.height * g.width * sizeof(floating))
            _frame_copy(level, x + s * g.x_sample + c * g.height * g.width, 1, g.height, g.width,
                        framed, rows, pitch, g.pad_top, g.pad_left, 1, 1)
            if phased:
                _dw_column_phases(framed, pitch, g, out_round, framed + rows * pitch)
            for k in range(m):
                f = c * m + k
                _dw_rows(level, src, row_step, offsets, taps, w + f * taps,
                         bias[f] if bias != NULL else 0, g.out_h, g.out_w,
                         y + s * g.y_sample + f * pixels, g.out_w)
    _free_all(framed, offsets)
    return 0


cdef bint _all_finite(const floating *values, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return cn_all_finite_f32(values, n) != 0
    else:
        return cn_all_finite_f64(values, n) != 0


cdef void _dw_grad_x_scatter(const floating *grad_y, const floating *w, floating *grad_x,
                             const Geometry *g) noexcept nogil:
    """grad_x (H, W) += the m output gradients of one channel times their kernels, term by
    term: only the products that exist (for channels with non-finite weights)."""
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w, k, oh, ow, i, j, h, col
    cdef const floating *delta
    cdef const floating *kernel
    for k in range(g.filters):
        delta = grad_y + k * g.out_h * g.out_w
        kernel = w + k * taps
        for oh in range(g.out_h):
            for i in range(g.kernel_h):
                h = oh * g.stride_h + i * g.dilation_h - g.pad_top
                if h < 0 or h >= g.height:
                    continue
                for j in range(g.kernel_w):
                    for ow in range(g.out_w):
                        col = ow * g.stride_w + j * g.dilation_w - g.pad_left
                        if 0 <= col < g.width:
                            grad_x[h * g.width + col] += delta[oh * g.out_w + ow] * kernel[i * g.kernel_w + j]


cdef int _backward_depthwise(const floating *grad_y, const floating *x, const floating *w,
                             floating *grad_x, floating *grad_w, Py_ssize_t batch,
                             const Geometry *g, int level) noexcept nogil:
    """grad_w (overwritten) and grad_x (overwritten, if not NULL) of a depthwise layer; 0 or -1."""
    cdef Py_ssize_t vector = cn_gather_width(level, floating is double)
    cdef Py_ssize_t m = g.filters, taps = g.kernel_h * g.kernel_w, pixels = g.out_h * g.out_w
    cdef Py_ssize_t rows = _padded_h(g), pitch = _padded_w(g), out_round = _round_up(g.out_w, vector)
    cdef Py_ssize_t plane = g.height * g.width, filters = g.groups * m
    # With a column stride, grad_w reads column phases; otherwise the framed plane itself.
    cdef bint phased = g.stride_w != 1
    cdef Py_ssize_t row_step = g.stride_h * (out_round if phased else pitch)
    # The input gradient's frame: the output gradients spread out by the stride, framed by the
    # kernel extent, rows of whole vectors of input columns.
    cdef Py_ssize_t frame_h = g.height + (g.kernel_h - 1) * g.dilation_h
    cdef Py_ssize_t frame_w = _round_up(g.width, vector) + (g.kernel_w - 1) * g.dilation_w
    cdef Py_ssize_t s, c, k, f, i, j, t, v
    cdef floating total
    cdef const floating *delta
    cdef floating *framed = <floating *> calloc(rows * pitch, sizeof(floating))
    cdef floating *phases = NULL
    cdef floating *partial = <floating *> calloc(filters * taps * vector, sizeof(floating))
    cdef cn_idx *offsets = <cn_idx *> malloc((taps + m * taps) * sizeof(cn_idx))
    cdef floating *frame = NULL
    cdef bint failed = framed == NULL or partial == NULL or offsets == NULL
    if phased and not failed:
        phases = <floating *> malloc(g.kernel_w * rows * out_round * sizeof(floating))
        failed = phases == NULL
    if grad_x != NULL and not failed:
        frame = <floating *> calloc(m * frame_h * frame_w, sizeof(floating))
        failed = frame == NULL
    if failed:
        _free_all(framed, phases, partial, offsets, frame)
        return -1
    for i in range(g.kernel_h):
        for j in range(g.kernel_w):
            if phased:
                offsets[i * g.kernel_w + j] = (j * rows + i * g.dilation_h) * out_round
            else:
                offsets[i * g.kernel_w + j] = i * g.dilation_h * pitch + j * g.dilation_w
            for k in range(m):
                offsets[taps + k * taps + i * g.kernel_w + j] = (
                    k * frame_h * frame_w + (g.kernel_h - 1 - i) * g.dilation_h * frame_w
                    + (g.kernel_w - 1 - j) * g.dilation_w)
    for s in range(batch):
        for c in range(g.groups):
            if s * g.groups + c + PREFETCH < batch * g.groups:
                cn_prefetch(x + s * g.x_sample + (c + PREFETCH) * plane, plane * sizeof(floating))
                cn_prefetch(grad_y + s * g.y_sample + (c + PREFETCH) * m * pixels,
                            m * pixels * sizeof(floating))
            _frame_copy(level, x + s * g.x_sample + c * plane, 1, g.height, g.width, framed, rows,
                        pitch, g.pad_top, g.pad_left, 1, 1)
            if phased:
                _dw_column_phases(framed, pitch, g, out_round, phases)
            for k in range(m):
                f = c * m + k
                _dw_grad_w(level, grad_y + s * g.y_sample + f * pixels, g.out_w, g.out_h, g.out_w,
                           phases if phased else framed, row_step, offsets, taps,
                           partial + f * taps * vector)
            if grad_x == NULL:
                continue
            delta = grad_y + s * g.y_sample + c * m * pixels
            if not _all_finite(w + c * m * taps, m * taps):
                memset(grad_x + s * g.x_sample + c * plane, 0, plane * sizeof(floating))
                _dw_grad_x_scatter(delta, w + c * m * taps, grad_x + s * g.x_sample + c * plane, g)
                continue
            _frame_copy(level, delta, m, g.out_h, g.out_w, frame, frame_h, frame_w,
                        (g.kernel_h - 1) * g.dilation_h - g.pad_top,
                        (g.kernel_w - 1) * g.dilation_w - g.pad_left, g.stride_h, g.stride_w)
            _dw_rows(level, frame, frame_w, offsets + taps, m * taps, w + c * m * taps, 0,
                     g.height, g.width, grad_x + s * g.x_sample + c * plane, g.width)
    # Each tap's lanes, added up in order.
    for f in range(filters):
        for t in range(taps):
            total = partial[(f * taps + t) * vector]
            for v in range(1, vector):
                total = total + partial[(f * taps + t) * vector + v]
            grad_w[f * taps + t] = total
    _free_all(framed, phases, partial, offsets, frame)
    return 0


cdef int _forward_chunk(const floating *x, const floating *w, const floating *bias,
                        floating *y, Py_ssize_t batch, const Geometry *g) noexcept nogil:
    """y (batch, F, Ho, Wo) = conv(x (batch, C, H, W), w (F, C, kh, kw)) + bias; 0 or -1 (no memory)."""
    cdef int level = cn_simd_active()
    if _is_depthwise(g):
        return _forward_depthwise(x, w, bias, y, batch, g, level)
    if _rows_pay(g, g.out_h, _padded_w(g), g.out_w, g.filters, 0.95, level, floating is double):
        return _forward_rows(x, w, bias, y, batch, g, level)
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
    cdef bint transposed, rows_x, rows_w, phases
    cdef int status = 0
    _sum_bias_gradient(grad_y, grad_b, batch, g)
    if _is_depthwise(g):
        return _backward_depthwise(grad_y, x, w, grad_x, grad_w, batch, g, level)
    # A first layer's weight gradient has only C*kh*kw = 9 gather pixels, one and a bit blocks
    # of rows: there the row kernel wins even against full lanes.
    rows_w = _rows_pay(g, g.out_h, _padded_w(g), g.out_w, g.filters,
                       0.9 if g.channels * g.kernel_h * g.kernel_w < 16 else 1.5, level,
                       floating is double) and _all_finite(x, batch * g.x_sample)
    transposed = grad_x != NULL and _transposed_pays(g, level, floating is double)
    phases = grad_x != NULL and _phases_pay(g, level, floating is double)
    # Like the transposed product, the row kernel's input gradient spends H*W positions per
    # tap, for Ho*Wo useful ones.
    rows_x = grad_x != NULL and (
        _rows_mode == 1 or g.out_h * g.out_w >= 0.7 * g.height * g.width) and _rows_pay(
        g, g.height, g.width + (g.kernel_w - 1) * g.dilation_w, g.width, g.channels, 0.9, level,
        floating is double)
    if (transposed or rows_x or phases) and not _all_finite(
            w, g.groups * g.filters * g.channels * g.kernel_h * g.kernel_w):
        transposed = rows_x = phases = False
    if transposed or rows_x or phases:
        input_direct = True
    elif grad_x != NULL:
        memset(grad_x, 0, batch * g.x_sample * sizeof(floating))
    if rows_w:
        weights_direct = True
        status = _grad_w_rows(grad_y, x, grad_w, batch, g, level)
    elif weights_direct:
        status = _grad_w_direct(grad_y, x, grad_w, batch, g, level)
    if status == 0 and rows_x:
        status = _grad_x_rows(grad_y, w, grad_x, batch, g, level)
    elif status == 0 and transposed:
        status = _grad_x_transposed(grad_y, w, grad_x, batch, g, level)
    elif status == 0 and phases:
        status = _grad_x_phases(grad_y, w, grad_x, batch, g, level)
    elif status == 0 and input_direct:
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
    cdef Py_ssize_t s, f, p, gi, first
    cdef floating *dst
    cdef const floating *src
    cdef floating shift
    if cols == NULL or product == NULL:
        _free_all(cols, product)
        return -1
    for gi in range(g.groups):
        first = gi * g.filters
        _im2col(x + gi * g.channels * g.height * g.width, batch, g, cols)
        gemm_row_major(False, False, <int> g.filters, <int> columns, <int> taps, <floating> 1.0,
                       w + first * taps, <int> taps, cols, <int> columns, <floating> 0.0, product,
                       <int> columns)
        # The product is filter-major across the chunk; the output is sample-major.
        for s in range(batch):
            for f in range(g.filters):
                src = product + f * columns + s * pixels
                dst = y + s * g.y_sample + (first + f) * pixels
                shift = bias[first + f] if bias != NULL else 0
                for p in range(pixels):
                    dst[p] = src[p] + shift
    _free_all(cols, product)
    return 0


cdef int _backward_gemm(const floating *grad_y, const floating *x, const floating *w,
                        floating *grad_x, floating *grad_w, Py_ssize_t batch,
                        const Geometry *g) noexcept nogil:
    """grad_w and/or grad_x (either may be NULL; grad_x is added to) by im2col + gemm; 0 or -1."""
    cdef Py_ssize_t taps = g.channels * g.kernel_h * g.kernel_w
    cdef Py_ssize_t pixels = g.out_h * g.out_w, columns = batch * pixels
    cdef floating *cols = <floating *> malloc(taps * columns * sizeof(floating))
    cdef floating *delta = <floating *> malloc(g.filters * columns * sizeof(floating))
    cdef Py_ssize_t s, f, gi, first, group_x = g.channels * g.height * g.width
    if cols == NULL or delta == NULL:
        _free_all(cols, delta)
        return -1
    for gi in range(g.groups):
        first = gi * g.filters
        # delta (F, batch*P): the chunk's output gradients, filter-major like the forward product.
        for s in range(batch):
            for f in range(g.filters):
                memcpy(delta + f * columns + s * pixels,
                       grad_y + s * g.y_sample + (first + f) * pixels, pixels * sizeof(floating))
        if grad_w != NULL:
            _im2col(x + gi * group_x, batch, g, cols)
            gemm_row_major(False, True, <int> g.filters, <int> taps, <int> columns, <floating> 1.0,
                           delta, <int> columns, cols, <int> columns, <floating> 0.0,
                           grad_w + first * taps, <int> taps)
        if grad_x != NULL:
            # The column buffer now receives the gradient of the unrolled input.
            gemm_row_major(True, False, <int> taps, <int> columns, <int> g.filters, <floating> 1.0,
                           w + first * taps, <int> taps, delta, <int> columns, <floating> 0.0, cols,
                           <int> columns)
            _col2im_add(cols, batch, columns, g, grad_x + gi * group_x)
    _free_all(cols, delta)
    return 0


cdef Geometry _geometry(cnp.ndarray x, cnp.ndarray w, (int, int) stride,
                        (int, int, int, int) padding, (int, int) dilation, int groups) except *:
    """Checks x, w and the hyper-parameters the kernels rely on and derives the output size.

    padding is (top, bottom, left, right); w is (F, C // groups, kh, kw).
    """
    cdef Geometry g
    cdef Py_ssize_t padded_h, padded_w, channels
    cdef int stride_h = stride[0], stride_w = stride[1]
    cdef int dilation_h = dilation[0], dilation_w = dilation[1]
    check_array(x, "x", 4, ANY_FLOAT, C_ORDER)
    check_array(w, "w", 4, cnp.PyArray_TYPE(x), C_ORDER)
    if (stride_h < 1 or stride_w < 1 or padding[0] < 0 or padding[1] < 0 or padding[2] < 0
            or padding[3] < 0):
        raise ValueError("stride must be >= 1 and padding >= 0")
    if dilation_h < 1 or dilation_w < 1 or groups < 1:
        raise ValueError("dilation and groups must be >= 1")
    channels, g.height, g.width = x.shape[1], x.shape[2], x.shape[3]
    g.filters, g.kernel_h, g.kernel_w = w.shape[0], w.shape[2], w.shape[3]
    if channels < 1 or g.height < 1 or g.width < 1 or g.filters < 1 or g.kernel_h < 1 or g.kernel_w < 1:
        raise ValueError("empty x or w")
    if channels % groups or g.filters % groups:
        raise ValueError("groups must divide the channels and the filters")
    if w.shape[1] * groups != channels:
        raise ValueError("channel mismatch between x and w")
    g.groups, g.channels, g.filters = groups, channels // groups, g.filters // groups
    g.stride_h, g.stride_w, g.dilation_h, g.dilation_w = stride_h, stride_w, dilation_h, dilation_w
    g.pad_top, g.pad_bottom, g.pad_left, g.pad_right = padding[0], padding[1], padding[2], padding[3]
    # Sizes in Py_ssize_t: padding overflows a C int for paddings near 2**31; the extent
    # dilation * (k - 1) + 1 is compared by division, since it can overflow even Py_ssize_t.
    padded_h = g.height + g.pad_top + g.pad_bottom
    padded_w = g.width + g.pad_left + g.pad_right
    if (g.kernel_h - 1) > (padded_h - 1) // dilation_h or (g.kernel_w - 1) > (padded_w - 1) // dilation_w:
        raise ValueError("kernel larger than the padded input")
    # Workspaces hold padded planes (a chunk's, or one plane per filter of a group, or per
    # kernel column): sizes in doubles first, so that no size computed below can overflow.
    if ((<double> padded_h) * (padded_w + 64) * max(g.channels, g.filters, g.kernel_w)
            * 8 * 16 > 2.0 ** 62):
        raise MemoryError("out of memory in conv2d: the padded input would not fit")
    g.out_h = (padded_h - dilation_h * (g.kernel_h - 1) - 1) // stride_h + 1
    g.out_w = (padded_w - dilation_w * (g.kernel_w - 1) - 1) // stride_w + 1
    g.x_sample = channels * g.height * g.width
    g.y_sample = groups * g.filters * g.out_h * g.out_w
    return g


cdef void _check_chunk(Py_ssize_t start, Py_ssize_t stop, Py_ssize_t n, Py_ssize_t columns,
                       Py_ssize_t rows) except *:
    if not 0 <= start <= stop <= n:
        raise ValueError(f"chunk [{start}, {stop}) outside the batch of {n}")
    # BLAS takes int dimensions.
    if (stop - start) * columns > INT_MAX or rows > INT_MAX:
        raise ValueError("matrix dimension above 2**31 - 1; use smaller chunks")


cdef void _check_workspace(const Geometry *g, Py_ssize_t batch) except *:
    """MemoryError unless every workspace of a chunk of ``batch`` samples has a size that fits.

    _geometry bounds what one padded plane needs; the chunk's buffers multiply that by the
    batch (padded copies of every sample's channels, output gradients laid out on them,
    column matrices of every sample's output positions), so the batch enters here, in doubles,
    before any size is computed in integers.
    """
    cdef double padded = (<double> _padded_h(g)) * (_padded_w(g) + 64) * max(g.channels, g.filters)
    cdef double columns = ((<double> g.out_h) * g.out_w
                           * max(g.channels * g.kernel_h * g.kernel_w, g.filters))
    if (<double> batch) * max(padded, columns) * 8 * 16 > 2.0 ** 62:
        raise MemoryError("out of memory in conv2d: a chunk's workspace would not fit")


def forward(cnp.ndarray x not None, cnp.ndarray w not None, cnp.ndarray bias,
            cnp.ndarray y not None, (int, int) stride, (int, int, int, int) padding,
            (int, int) dilation, int groups, Py_ssize_t start, Py_ssize_t stop):
    """Writes y[start:stop] = conv2d(x[start:stop], w) + bias.

    x (N, C, H, W), w (F, C // groups, kh, kw), bias (F,) or None, y (N, F, Ho, Wo):
    C-contiguous, one of float32/float64.  stride and dilation are (h, w) pairs, padding is
    (top, bottom, left, right).
    """
    cdef Geometry g = _geometry(x, w, stride, padding, dilation, groups)
    cdef int typenum = cnp.PyArray_TYPE(x)
    check_array(y, "y", 4, typenum, C_ORDER | WRITEABLE,
                ((<object> x).shape[0], g.groups * g.filters, g.out_h, g.out_w))
    cdef const char *bias_data = NULL
    if bias is not None:
        check_array(bias, "bias", 1, typenum, C_ORDER, (g.groups * g.filters,))
        bias_data = <const char *> cnp.PyArray_DATA(bias)
    _check_chunk(start, stop, x.shape[0], g.out_h * g.out_w,
                 max(g.channels * g.kernel_h * g.kernel_w, g.filters))
    _check_workspace(&g, stop - start)
    cdef Py_ssize_t x_sample = g.x_sample, y_sample = g.y_sample
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
             (int, int) stride, (int, int, int, int) padding, (int, int) dilation, int groups,
             Py_ssize_t start, Py_ssize_t stop):
    """Gradients of samples [start, stop); stride, padding, dilation and groups as in forward.

    grad_x[start:stop] (N, C, H, W) is overwritten unless grad_x is None; grad_w
    (F, C // groups, kh, kw) and grad_b (F,) receive this chunk's sums only (the caller adds
    chunks up in order).
    """
    cdef Geometry g = _geometry(x, w, stride, padding, dilation, groups)
    cdef int typenum = cnp.PyArray_TYPE(x)
    check_array(grad_y, "grad_y", 4, typenum, C_ORDER,
                ((<object> x).shape[0], g.groups * g.filters, g.out_h, g.out_w))
    check_array(grad_w, "grad_w", 4, typenum, C_ORDER | WRITEABLE, (<object> w).shape)
    check_array(grad_b, "grad_b", 1, typenum, C_ORDER | WRITEABLE, (g.groups * g.filters,))
    cdef char *grad_x_data = NULL
    cdef Py_ssize_t x_sample = g.x_sample
    if grad_x is not None:
        check_array(grad_x, "grad_x", 4, typenum, C_ORDER | WRITEABLE, (<object> x).shape)
    _check_chunk(start, stop, x.shape[0], g.out_h * g.out_w,
                 max(g.channels * g.kernel_h * g.kernel_w, g.filters))
    _check_workspace(&g, stop - start)
    # Only once start is known to lie in the batch: before, a start far outside it overflowed
    # start * x_sample * itemsize (undefined behaviour, found by tools/sanitize.sh).
    if grad_x is not None:
        grad_x_data = <char *> cnp.PyArray_DATA(grad_x) + start * x_sample * cnp.PyArray_ITEMSIZE(x)
    cdef Py_ssize_t y_sample = g.y_sample
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
