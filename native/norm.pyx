# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Batch normalisation over the channels of (N, C, S) float32/float64 arrays, fused per channel.

A channel is N segments of S contiguous elements (S = H * W for images, 1 for (N, C)).  Each
channel is done wholly by one thread, in one fixed order, so the partition of channels among
threads never changes a bit:

- training forward: the channel's sum, then its sum of squared deviations from the mean (two
  passes, no E[x^2] - E[x]^2 cancellation), both in double; then y = (x - mean) * scale + shift
  in one pass, while the channel is still in cache;
- backward: sum(dy) and sum(dy * (x - mean)) in one pass (double), then grad_x in a second.

With S > 1 the per-channel loops are norm_simd.h's (fixed lanes, see there).  With S == 1 a
channel is a column of an (N, C) matrix: the loops run along rows over a block of channels,
each channel's sum still taken over n in order.

The validating wrapper is ``cnnative.norm``; the entry points here re-check everything their
memory safety depends on.
"""
cimport numpy as cnp
import numpy as np
from libc.math cimport sqrt
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free

from _common cimport (ANY_FLOAT, C_ORDER, NONEMPTY, WRITEABLE, check_array, claimed_work,
                     floating, next_piece, tree_split)
from _simd cimport cn_idx, set_simd_cap_of_module, simd_info_of_module

cnp.import_array()


cdef extern from "norm_simd.h" nogil:
    double cn_norm_sum_f32(const float *x, cn_idx n_seg, cn_idx seg_step, cn_idx len)
    double cn_norm_sum_f64(const double *x, cn_idx n_seg, cn_idx seg_step, cn_idx len)
    double cn_norm_m2_f32(const float *x, cn_idx n_seg, cn_idx seg_step, cn_idx len, double mean)
    double cn_norm_m2_f64(const double *x, cn_idx n_seg, cn_idx seg_step, cn_idx len, double mean)
    void cn_norm_dot_f32(const float *dy, const float *x, cn_idx n_seg, cn_idx seg_step,
                         cn_idx len, double mean, double *sums)
    void cn_norm_dot_f64(const double *dy, const double *x, cn_idx n_seg, cn_idx seg_step,
                         cn_idx len, double mean, double *sums)
    void cn_norm_affine_f32(const float *x, float *y, cn_idx n_seg, cn_idx seg_step, cn_idx len,
                            float mean, float scale, float shift)
    void cn_norm_affine_f64(const double *x, double *y, cn_idx n_seg, cn_idx seg_step,
                            cn_idx len, double mean, double scale, double shift)
    void cn_norm_grad_f32(const float *dy, const float *x, float *gx, cn_idx n_seg,
                          cn_idx seg_step, cn_idx len, float a, float mean, float b, float d)
    void cn_norm_grad_f64(const double *dy, const double *x, double *gx, cn_idx n_seg,
                          cn_idx seg_step, cn_idx len, double a, double mean, double b, double d)
    void cn_norm_scale_f32(const float *dy, float *gx, cn_idx n_seg, cn_idx seg_step, cn_idx len,
                           float a)
    void cn_norm_scale_f64(const double *dy, double *gx, cn_idx n_seg, cn_idx seg_step,
                           cn_idx len, double a)


def simd_info():
    """(detected, active) instruction-set names of the batch-norm kernels."""
    return simd_info_of_module()


def set_simd_cap(int level):
    """Limit the kernels to the variants up to ``level`` (0 scalar .. 3 avx512f); returns the old cap.

    Every variant computes the same bits (the summation order is fixed in the source); below
    2 (avx2) the baseline build runs.
    """
    return set_simd_cap_of_module(level)


cdef struct Shape:
    Py_ssize_t n, c, s


# ------------------------------------------------------------------------------ per channel

cdef inline double _sum(const floating *x, const Shape *sh) noexcept nogil:
    if floating is float:
        return cn_norm_sum_f32(x, sh.n, sh.c * sh.s, sh.s)
    else:
        return cn_norm_sum_f64(x, sh.n, sh.c * sh.s, sh.s)


cdef inline double _m2(const floating *x, const Shape *sh, double mean) noexcept nogil:
    if floating is float:
        return cn_norm_m2_f32(x, sh.n, sh.c * sh.s, sh.s, mean)
    else:
        return cn_norm_m2_f64(x, sh.n, sh.c * sh.s, sh.s, mean)


cdef inline void _affine(const floating *x, floating *y, const Shape *sh, floating mean,
                         floating scale, floating shift) noexcept nogil:
    if floating is float:
        cn_norm_affine_f32(x, y, sh.n, sh.c * sh.s, sh.s, mean, scale, shift)
    else:
        cn_norm_affine_f64(x, y, sh.n, sh.c * sh.s, sh.s, mean, scale, shift)


cdef inline void _dot(const floating *dy, const floating *x, const Shape *sh, double mean,
                      double *sums) noexcept nogil:
    if floating is float:
        cn_norm_dot_f32(dy, x, sh.n, sh.c * sh.s, sh.s, mean, sums)
    else:
        cn_norm_dot_f64(dy, x, sh.n, sh.c * sh.s, sh.s, mean, sums)


cdef inline void _grad(const floating *dy, const floating *x, floating *gx, const Shape *sh,
                       floating a, floating mean, floating b, floating d) noexcept nogil:
    if floating is float:
        cn_norm_grad_f32(dy, x, gx, sh.n, sh.c * sh.s, sh.s, a, mean, b, d)
    else:
        cn_norm_grad_f64(dy, x, gx, sh.n, sh.c * sh.s, sh.s, a, mean, b, d)


cdef inline void _scale(const floating *dy, floating *gx, const Shape *sh,
                        floating a) noexcept nogil:
    if floating is float:
        cn_norm_scale_f32(dy, gx, sh.n, sh.c * sh.s, sh.s, a)
    else:
        cn_norm_scale_f64(dy, gx, sh.n, sh.c * sh.s, sh.s, a)


# The batch's reduction tree (cnnative._reduce): blocks of BLOCK samples, each summed by the
# loops above, added by a fixed binary tree whose left part has the extra block of an odd
# count.  A process holding a node of the tree (a data-parallel shard) computes its value
# exactly; the fused kernels and channel_sums share these functions.
DEF BLOCK = 8

cdef enum SumKind:
    SUM = 0    # sum(x)
    M2 = 1     # sum((x - center)^2)
    DOT = 2    # sum(dy), sum(dy * (x - center)): a is dy, b is x


cdef void _tree_channel(int kind, const floating *a, const floating *b, const Shape *sh,
                        double center, Py_ssize_t lo, Py_ssize_t hi,
                        double *out) noexcept nogil:
    """out[0] (and out[1] for DOT): one channel's sums over the blocks [lo, hi), by the tree.
    a and b point at the channel's first element."""
    cdef Shape part
    cdef Py_ssize_t mid, offset
    cdef double right[2]
    if hi - lo == 1:
        part = sh[0]
        part.n = min(<Py_ssize_t> BLOCK, sh.n - lo * BLOCK)
        offset = lo * BLOCK * sh.c * sh.s
        if kind == SUM:
            out[0] = _sum(a + offset, &part)
        elif kind == M2:
            out[0] = _m2(a + offset, &part, center)
        else:
            _dot(a + offset, b + offset, &part, center, out)
        return
    mid = tree_split(lo, hi)
    _tree_channel(kind, a, b, sh, center, lo, mid, out)
    _tree_channel(kind, a, b, sh, center, mid, hi, right)
    out[0] += right[0]
    if kind == DOT:
        out[1] += right[1]


cdef void _tree_rows(double *blocks, Py_ssize_t width, Py_ssize_t lo,
                     Py_ssize_t hi) noexcept nogil:
    """Rows [lo, hi) of blocks (each ``width`` doubles) added by the tree into row lo."""
    cdef Py_ssize_t mid, j
    if hi - lo == 1:
        return
    mid = tree_split(lo, hi)
    _tree_rows(blocks, width, lo, mid)
    _tree_rows(blocks, width, mid, hi)
    for j in range(width):
        blocks[lo * width + j] += blocks[mid * width + j]


cdef int _row_sums(int kind, const floating *a, const floating *b, const Shape *sh,
                   const double *center, Py_ssize_t c0, Py_ssize_t c1,
                   double *out) noexcept nogil:
    """The sums of channels [c0, c1) of an (N, C) array (S == 1), row by row in each block:
    out[c - c0] (and out[k + c - c0] for DOT, k = c1 - c0).  -1 when out of memory."""
    cdef Py_ssize_t k = c1 - c0, width = (2 if kind == DOT else 1) * (c1 - c0)
    cdef Py_ssize_t n_blocks = (sh.n + BLOCK - 1) // BLOCK, n, c, j
    cdef double v, d
    cdef double *blocks = <double *> calloc(n_blocks * width + 1, sizeof(double))
    cdef double *acc
    if blocks == NULL:
        return -1
    for n in range(sh.n):
        acc = blocks + (n // BLOCK) * width
        for c in range(c0, c1):
            j = c - c0
            v = <double> a[n * sh.c + c]
            if kind == SUM:
                acc[j] += v
            elif kind == M2:
                d = v - center[c]
                acc[j] += d * d
            else:
                acc[j] += v
                acc[k + j] += v * (<double> b[n * sh.c + c] - center[c])
    _tree_rows(blocks, width, 0, n_blocks)
    for j in range(width):
        out[j] = blocks[j]
    free(blocks)
    return 0


cdef inline void _finish_stats(double mean_d, double m2, double count, double eps,
                               floating *mean, floating *inv_std, floating *var,
                               Py_ssize_t c) noexcept nogil:
    """Rounds channel c's statistics from its mean and sum of squared deviations (double)."""
    mean[c] = <floating> mean_d
    inv_std[c] = <floating> (1.0 / sqrt(m2 / count + eps))
    var[c] = <floating> (m2 / (count - 1.0))


cdef int _train_block(const floating *x, floating *y, const floating *gamma,
                      const floating *beta, floating *mean, floating *inv_std, floating *var,
                      const Shape *sh, double eps, const double *given, double count,
                      Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """Training forward of channels [c0, c1); returns -1 when out of memory.

    given: NULL, or the batch's statistics (2, C) from channel_sums (each channel's mean in
    double, then its sum of squared deviations), count values per channel (a data-parallel
    batch, of which x is a shard); NULL: computed from x, count = N * S."""
    cdef Py_ssize_t c, offset, k = c1 - c0
    cdef double mean_d, m2
    cdef double *acc
    cdef floating scale
    if sh.s > 1:
        for c in range(c0, c1):
            offset = c * sh.s
            if given != NULL:
                mean_d, m2 = given[c], given[sh.c + c]
            else:
                _tree_channel(SUM, x + offset, x, sh, 0.0, 0, (sh.n + BLOCK - 1) // BLOCK,
                              &mean_d)
                mean_d = mean_d / count
                _tree_channel(M2, x + offset, x, sh, mean_d, 0, (sh.n + BLOCK - 1) // BLOCK,
                              &m2)
            _finish_stats(mean_d, m2, count, eps, mean, inv_std, var, c)
            scale = gamma[c] * inv_std[c]
            _affine(x + offset, y + offset, sh, mean[c], scale, beta[c])
        return 0
    # (N, C): a block of channels row by row.
    if given != NULL:
        for c in range(c0, c1):
            _finish_stats(given[c], given[sh.c + c], count, eps, mean, inv_std, var, c)
    else:
        acc = <double *> calloc(sh.c + 2 * k + 1, sizeof(double))  # the means at their c
        if acc == NULL:
            return -1
        if _row_sums(SUM, x, x, sh, acc, c0, c1, acc + sh.c) != 0:
            free(acc)
            return -1
        for c in range(c0, c1):
            acc[c] = acc[sh.c + c - c0] / count
        if _row_sums(M2, x, x, sh, acc, c0, c1, acc + sh.c + k) != 0:
            free(acc)
            return -1
        for c in range(c0, c1):
            _finish_stats(acc[c], acc[sh.c + k + c - c0], count, eps, mean, inv_std, var, c)
        free(acc)
    _eval_rows(x, y, gamma, beta, mean, inv_std, sh, c0, c1)
    return 0


cdef void _eval_rows(const floating *x, floating *y, const floating *gamma,
                     const floating *beta, const floating *mean, const floating *inv_std,
                     const Shape *sh, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    cdef Py_ssize_t n, c
    cdef const floating *row
    cdef floating *out
    for n in range(sh.n):
        row = x + n * sh.c
        out = y + n * sh.c
        for c in range(c0, c1):
            out[c] = (row[c] - mean[c]) * (gamma[c] * inv_std[c]) + beta[c]


cdef int _eval_block(const floating *x, floating *y, const floating *gamma,
                     const floating *beta, const floating *mean, const floating *inv_std,
                     const Shape *sh, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    cdef Py_ssize_t c, offset
    if sh.s > 1:
        for c in range(c0, c1):
            offset = c * sh.s
            _affine(x + offset, y + offset, sh, mean[c], gamma[c] * inv_std[c], beta[c])
    else:
        _eval_rows(x, y, gamma, beta, mean, inv_std, sh, c0, c1)
    return 0


cdef inline void _grad_coefficients(double sum_dy, double sum_dyxc, double count,
                                    floating gamma, floating mean, floating inv_std,
                                    bint training, floating *grad_gamma, floating *grad_beta,
                                    floating *coef) noexcept nogil:
    """grad_gamma, grad_beta and (a, b, d) of grad_x = dy * a + (x - mean) * b + d."""
    cdef double istd = <double> inv_std
    cdef double a = <double> gamma * istd
    cdef double dgamma = sum_dyxc * istd
    grad_beta[0] = <floating> sum_dy
    grad_gamma[0] = <floating> dgamma
    coef[0] = <floating> a
    if training:
        coef[1] = <floating> (-a * istd * dgamma / count)
        coef[2] = <floating> (-a * sum_dy / count)
    else:
        coef[1] = 0
        coef[2] = 0


cdef int _backward_block(const floating *dy, const floating *x, floating *gx,
                         const floating *gamma, const floating *mean, const floating *inv_std,
                         bint training, floating *grad_gamma, floating *grad_beta,
                         const Shape *sh, const double *given, double count, Py_ssize_t c0,
                         Py_ssize_t c1) noexcept nogil:
    """Backward of channels [c0, c1); -1 when out of memory.  given: NULL, or the batch's
    sum(dy) and sum(dy * (x - mean)) (2, C) from channel_sums and count as for _train_block."""
    cdef Py_ssize_t c, n, offset, k = c1 - c0
    cdef double sums[2]
    cdef floating coef[3]
    cdef double *acc
    cdef floating *co
    cdef const floating *g_row
    cdef const floating *x_row
    cdef floating *out
    if sh.s > 1:
        for c in range(c0, c1):
            offset = c * sh.s
            if given != NULL:
                sums[0], sums[1] = given[c], given[sh.c + c]
            else:
                _tree_channel(DOT, dy + offset, x + offset, sh, <double> mean[c], 0,
                              (sh.n + BLOCK - 1) // BLOCK, sums)
            _grad_coefficients(sums[0], sums[1], count, gamma[c], mean[c], inv_std[c], training,
                               grad_gamma + c, grad_beta + c, coef)
            if training:
                _grad(dy + offset, x + offset, gx + offset, sh, coef[0], mean[c], coef[1],
                      coef[2])
            else:
                _scale(dy + offset, gx + offset, sh, coef[0])
        return 0
    acc = <double *> calloc(sh.c + 2 * k + 1, sizeof(double))  # the means at their c
    co = <floating *> calloc(3 * k + 1, sizeof(floating))
    if acc == NULL or co == NULL:
        free(acc)
        free(co)
        return -1
    if given != NULL:
        for c in range(c0, c1):
            acc[sh.c + c - c0], acc[sh.c + k + c - c0] = given[c], given[sh.c + c]
    else:
        for c in range(c0, c1):
            acc[c] = <double> mean[c]
        if _row_sums(DOT, dy, x, sh, acc, c0, c1, acc + sh.c) != 0:
            free(acc)
            free(co)
            return -1
    for c in range(c0, c1):
        _grad_coefficients(acc[sh.c + c - c0], acc[sh.c + k + c - c0], count, gamma[c], mean[c],
                           inv_std[c], training, grad_gamma + c, grad_beta + c, coef)
        co[c - c0], co[k + c - c0], co[2 * k + c - c0] = coef[0], coef[1], coef[2]
    for n in range(sh.n):
        g_row = dy + n * sh.c
        x_row = x + n * sh.c
        out = gx + n * sh.c
        if training:
            for c in range(c0, c1):
                out[c] = (g_row[c] * co[c - c0] + (x_row[c] - mean[c]) * co[k + c - c0]) \
                    + co[2 * k + c - c0]
        else:
            for c in range(c0, c1):
                out[c] = g_row[c] * co[c - c0]
    free(acc)
    free(co)
    return 0


# --------------------------------------------------------------------------- entry points

cdef enum Kind:
    TRAIN = 0
    EVAL = 1
    BACKWARD = 2


cdef int _claimed(int kind, const void *a, const void *b, void *out, const void *gamma,
                  const void *beta, void *mean, void *inv_std, void *var, void *grad_gamma,
                  void *grad_beta, bint training, bint single, const Shape *sh, double eps,
                  const double *given, double count, Py_ssize_t start, Py_ssize_t stop,
                  int64_t *counter, Py_ssize_t claim) noexcept nogil:
    """Channel blocks of [start, stop) claimed from counter until none is left."""
    cdef Py_ssize_t first, last
    cdef int status = 0
    while status == 0 and next_piece(counter, claim, start, stop, &first, &last):
        if single:
            if kind == TRAIN:
                status = _train_block(<const float *> a, <float *> out, <const float *> gamma,
                                      <const float *> beta, <float *> mean, <float *> inv_std,
                                      <float *> var, sh, eps, given, count, first, last)
            elif kind == EVAL:
                status = _eval_block(<const float *> a, <float *> out, <const float *> gamma,
                                     <const float *> beta, <const float *> mean,
                                     <const float *> inv_std, sh, first, last)
            else:
                status = _backward_block(<const float *> a, <const float *> b, <float *> out,
                                         <const float *> gamma, <const float *> mean,
                                         <const float *> inv_std, training,
                                         <float *> grad_gamma, <float *> grad_beta, sh, given,
                                         count, first, last)
        else:
            if kind == TRAIN:
                status = _train_block(<const double *> a, <double *> out, <const double *> gamma,
                                      <const double *> beta, <double *> mean,
                                      <double *> inv_std, <double *> var, sh, eps, given, count,
                                      first, last)
            elif kind == EVAL:
                status = _eval_block(<const double *> a, <double *> out, <const double *> gamma,
                                     <const double *> beta, <const double *> mean,
                                     <const double *> inv_std, sh, first, last)
            else:
                status = _backward_block(<const double *> a, <const double *> b,
                                         <double *> out, <const double *> gamma,
                                         <const double *> mean, <const double *> inv_std,
                                         training, <double *> grad_gamma,
                                         <double *> grad_beta, sh, given, count, first, last)
    return status


cdef Shape _shape_of(cnp.ndarray x, str name) except *:
    cdef Shape sh
    check_array(x, name, 3, ANY_FLOAT, C_ORDER | NONEMPTY)
    sh.n, sh.c, sh.s = cnp.PyArray_DIM(x, 0), cnp.PyArray_DIM(x, 1), cnp.PyArray_DIM(x, 2)
    return sh


cdef _check_channels(int typenum, Py_ssize_t channels, dict arrays, bint write):
    for name, a in arrays.items():
        if not isinstance(a, cnp.ndarray):
            raise TypeError(f"{name} must be a numpy array")
        check_array(<cnp.ndarray> a, name, 1, typenum, C_ORDER | (WRITEABLE if write else 0),
                    (channels,))


cdef void *_data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray> a)


cdef const double *_given(cnp.ndarray given, double count, Shape sh) except? NULL:
    """given: None, or (2, C) float64 C-contiguous statistics or sums of the whole batch
    (channel_sums' results combined over the shards) of count values per channel, at least
    as many as x has."""
    if given is None:
        return NULL
    check_array(given, "given", 2, cnp.NPY_FLOAT64, C_ORDER, (2, sh.c))
    if not count >= <double> (sh.n * sh.s):
        raise ValueError(f"count must be at least x's values per channel, got {count}")
    return <const double *> cnp.PyArray_DATA(given)


def channel_sums(int kind, cnp.ndarray a not None, cnp.ndarray b=None,
                 cnp.ndarray center=None):
    """Per-channel sums of (N, C, S) arrays over their blocks, by the reduction tree, in double.

    kind 0: sum(a) -> (C,); 1: sum((a - center)^2) -> (C,); 2: sum(a) and
    sum(a * (b - center)) -> (2, C), a being grad_y and b x.  center: (C,) float64,
    C-contiguous (kinds 1 and 2).  b: a's shape and dtype.  What the fused kernels compute for
    a whole batch, for a shard of one (a node of the tree).  Releases the GIL.
    """
    cdef Shape sh = _shape_of(a, "a")
    cdef int typenum = cnp.PyArray_TYPE(a)
    if kind not in (SUM, M2, DOT):
        raise ValueError(f"kind must be 0, 1 or 2, got {kind}")
    if kind == DOT:
        if b is None:
            raise ValueError("kind 2 needs b")
        check_array(b, "b", 3, typenum, C_ORDER, (<object> a).shape)
    cdef const double *pc = NULL
    if kind != SUM:
        if center is None:
            raise ValueError("kinds 1 and 2 need center")
        check_array(center, "center", 1, cnp.NPY_FLOAT64, C_ORDER, (sh.c,))
        pc = <const double *> cnp.PyArray_DATA(center)
    cdef cnp.npy_intp shape[2]
    shape[0], shape[1] = (2 if kind == DOT else 1), sh.c
    cdef cnp.ndarray out = cnp.PyArray_ZEROS(2, shape, cnp.NPY_FLOAT64, 0)
    cdef double *po = <double *> cnp.PyArray_DATA(out)
    cdef const void *pa = _data(a)
    cdef const void *pb = _data(b) if kind == DOT else pa
    cdef int status
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _sums_of(kind, <const float *> pa, <const float *> pb, &sh, pc, po)
        else:
            status = _sums_of(kind, <const double *> pa, <const double *> pb, &sh, pc, po)
    if status != 0:
        raise MemoryError("out of memory in channel_sums")
    return out if kind == DOT else out[0]


cdef int _sums_of(int kind, const floating *a, const floating *b, const Shape *sh,
                  const double *center, double *out) noexcept nogil:
    """out (C,) or (2, C): channel_sums' results."""
    cdef Py_ssize_t c
    cdef double pair[2]
    cdef double *rows
    if sh.s > 1:
        for c in range(sh.c):
            _tree_channel(kind, a + c * sh.s, b + c * sh.s, sh,
                          0.0 if center == NULL else center[c], 0, (sh.n + BLOCK - 1) // BLOCK,
                          pair)
            out[c] = pair[0]
            if kind == DOT:
                out[sh.c + c] = pair[1]
        return 0
    rows = <double *> calloc(2 * sh.c + 1, sizeof(double))
    if rows == NULL:
        return -1
    if _row_sums(kind, a, b, sh, center, 0, sh.c, rows) != 0:
        free(rows)
        return -1
    for c in range((2 if kind == DOT else 1) * sh.c):
        out[c] = rows[c]
    free(rows)
    return 0


def batch_norm_train(cnp.ndarray x not None, cnp.ndarray gamma not None,
                     cnp.ndarray beta not None, double eps, cnp.ndarray y not None,
                     cnp.ndarray mean not None, cnp.ndarray inv_std not None,
                     cnp.ndarray var not None, Py_ssize_t start, Py_ssize_t stop,
                     object counter=None, Py_ssize_t claim=1, cnp.ndarray given=None,
                     double count=0.0):
    """Training forward of channels [start, stop) of x (N, C, S), in place.

    Writes mean, inv_std = 1 / sqrt(biased variance + eps) and the unbiased variance of each
    channel (all (C,), x's dtype, C-contiguous and writeable) and y (x's shape and dtype,
    C-contiguous, writeable).  gamma and beta: (C,) of x's dtype.  N * S must be at least 2
    and eps > 0.  ``counter``/``claim`` share the channels among threads as in pool.pyx.
    ``given``/``count``: the statistics of a batch x is a shard of, as for _given.
    Releases the GIL.
    """
    cdef Shape sh = _shape_of(x, "x")
    cdef int typenum = cnp.PyArray_TYPE(x)
    check_array(y, "y", 3, typenum, C_ORDER | WRITEABLE, (<object> x).shape)
    _check_channels(typenum, sh.c, {"gamma": gamma, "beta": beta}, False)
    _check_channels(typenum, sh.c, {"mean": mean, "inv_std": inv_std, "var": var}, True)
    cdef const double *pgiven = _given(given, count, sh)
    if given is None:
        count = <double> (sh.n * sh.s)
    if count < 2:
        raise ValueError("training needs more than one value per channel")
    if not eps > 0:
        raise ValueError("eps must be > 0")
    cdef int64_t unshared = 0
    cdef int64_t *shared = claimed_work(counter, &claim, &unshared, start, stop, sh.c,
                                         "channels")
    cdef bint single = typenum == cnp.NPY_FLOAT32
    cdef const void *px = _data(x)
    cdef void *py = _data(y)
    cdef const void *pg = _data(gamma)
    cdef const void *pb = _data(beta)
    cdef void *pm = _data(mean)
    cdef void *pi = _data(inv_std)
    cdef void *pv = _data(var)
    cdef int status
    with nogil:
        status = _claimed(TRAIN, px, NULL, py, pg, pb, pm, pi, pv, NULL, NULL, True, single, &sh,
                          eps, pgiven, count, start, stop, shared, claim)
    if status != 0:
        raise MemoryError("out of memory in batch_norm_train")


def batch_norm_eval(cnp.ndarray x not None, cnp.ndarray gamma not None,
                    cnp.ndarray beta not None, cnp.ndarray mean not None,
                    cnp.ndarray inv_std not None, cnp.ndarray y not None, Py_ssize_t start,
                    Py_ssize_t stop, object counter=None, Py_ssize_t claim=1):
    """y = (x - mean) * (gamma * inv_std) + beta for channels [start, stop) of x (N, C, S).

    gamma, beta, mean and inv_std: (C,) of x's dtype, C-contiguous; y as for batch_norm_train.
    Releases the GIL.
    """
    cdef Shape sh = _shape_of(x, "x")
    cdef int typenum = cnp.PyArray_TYPE(x)
    check_array(y, "y", 3, typenum, C_ORDER | WRITEABLE, (<object> x).shape)
    _check_channels(typenum, sh.c, {"gamma": gamma, "beta": beta, "mean": mean,
                                    "inv_std": inv_std}, False)
    cdef int64_t unshared = 0
    cdef int64_t *shared = claimed_work(counter, &claim, &unshared, start, stop, sh.c,
                                         "channels")
    cdef bint single = typenum == cnp.NPY_FLOAT32
    cdef const void *px = _data(x)
    cdef void *py = _data(y)
    cdef const void *pg = _data(gamma)
    cdef const void *pb = _data(beta)
    cdef void *pm = _data(mean)
    cdef void *pi = _data(inv_std)
    cdef int status
    with nogil:
        status = _claimed(EVAL, px, NULL, py, pg, pb, pm, pi, NULL, NULL, NULL, False, single,
                          &sh, 0.0, NULL, 0.0, start, stop, shared, claim)
    if status != 0:
        raise MemoryError("out of memory in batch_norm_eval")


def batch_norm_backward(cnp.ndarray grad_y not None, cnp.ndarray x not None,
                        cnp.ndarray gamma not None, cnp.ndarray mean not None,
                        cnp.ndarray inv_std not None, bint training,
                        cnp.ndarray grad_x not None, cnp.ndarray grad_gamma not None,
                        cnp.ndarray grad_beta not None, Py_ssize_t start, Py_ssize_t stop,
                        object counter=None, Py_ssize_t claim=1, cnp.ndarray given=None,
                        double count=0.0):
    """Backward of channels [start, stop): grad_x (x's shape), grad_gamma and grad_beta ((C,)).

    grad_y and x: (N, C, S), same shape and dtype, C-contiguous; gamma, mean, inv_std: (C,) as
    used forward.  With ``training`` the statistics depend on x (torch's training gradient),
    else they are constants: grad_x = grad_y * gamma * inv_std.  ``given``/``count``: the
    sums of a batch x is a shard of, as for _given.  Releases the GIL.
    """
    cdef Shape sh = _shape_of(x, "x")
    cdef int typenum = cnp.PyArray_TYPE(x)
    check_array(grad_y, "grad_y", 3, typenum, C_ORDER, (<object> x).shape)
    check_array(grad_x, "grad_x", 3, typenum, C_ORDER | WRITEABLE, (<object> x).shape)
    _check_channels(typenum, sh.c, {"gamma": gamma, "mean": mean, "inv_std": inv_std}, False)
    _check_channels(typenum, sh.c, {"grad_gamma": grad_gamma, "grad_beta": grad_beta}, True)
    cdef const double *pgiven = _given(given, count, sh)
    if given is None:
        count = <double> (sh.n * sh.s)
    cdef int64_t unshared = 0
    cdef int64_t *shared = claimed_work(counter, &claim, &unshared, start, stop, sh.c,
                                         "channels")
    cdef bint single = typenum == cnp.NPY_FLOAT32
    cdef const void *pdy = _data(grad_y)
    cdef const void *px = _data(x)
    cdef void *pgx = _data(grad_x)
    cdef const void *pg = _data(gamma)
    cdef void *pm = _data(mean)
    cdef void *pi = _data(inv_std)
    cdef void *pgg = _data(grad_gamma)
    cdef void *pgb = _data(grad_beta)
    cdef int status
    with nogil:
        status = _claimed(BACKWARD, pdy, px, pgx, pg, NULL, pm, pi, NULL, pgg, pgb, training,
                          single, &sh, 0.0, pgiven, count, start, stop, shared, claim)
    if status != 0:
        raise MemoryError("out of memory in batch_norm_backward")
