# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""2-D max pooling with argmax indices (and its backward scatter), average and global average
pooling (and their backward passes), for float32/float64 planes.

Semantics are PyTorch's CPU ones: each window is scanned row-major, an element replaces the
running maximum when it is larger or NaN (so the first maximum wins ties and the last NaN wins),
padding is -inf and never chosen.  Indices are flat positions ``ih * W + iw`` within a plane.

The validating wrappers live in ``cnnative.pooling``; the entry points here re-check every
precondition they rely on for memory safety, so no Python caller can make them read or write
out of bounds.  They work on planes ``[start, stop)`` of a (P, H, W) stack so that
``_threads.run_chunks`` can hand disjoint slices to different threads.
"""
cimport numpy as cnp
import numpy as np
from libc.limits cimport INT_MAX
from libc.math cimport INFINITY
from libc.stdint cimport INT32_MAX, int32_t, int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from _common cimport (ANY_FLOAT, C_ORDER, NONEMPTY, WRITEABLE, check_array, claimed_work,
                     element_step, floating, next_piece)
from _simd cimport cn_idx, set_simd_cap_of_module, simd_info_of_module

cnp.import_array()


cdef extern from "pool_simd.h" nogil:
    int cn_pool2x2_f32(const float *plane, cn_idx row_step, cn_idx width, float *y,
                       int64_t *indices, cn_idx out_cols, cn_idx row_first, cn_idx row_stop,
                       cn_idx col_first, cn_idx col_stop, cn_idx stride_h, cn_idx pad_h,
                       cn_idx pad_w)
    int cn_pool2x2_f64(const double *plane, cn_idx row_step, cn_idx width, double *y,
                       int64_t *indices, cn_idx out_cols, cn_idx row_first, cn_idx row_stop,
                       cn_idx col_first, cn_idx col_stop, cn_idx stride_h, cn_idx pad_h,
                       cn_idx pad_w)
    void cn_avg2x2_f32(const float *plane, cn_idx row_step, float *y, cn_idx out_cols,
                       cn_idx row_first, cn_idx row_stop, cn_idx col_first, cn_idx col_stop,
                       cn_idx pad_h, cn_idx pad_w)
    void cn_avg2x2_f64(const double *plane, cn_idx row_step, double *y, cn_idx out_cols,
                       cn_idx row_first, cn_idx row_stop, cn_idx col_first, cn_idx col_stop,
                       cn_idx pad_h, cn_idx pad_w)
    void cn_avg2x2_back_f32(const float *grad_y, cn_idx out_cols, float *grad_x, cn_idx width,
                            cn_idx row_first, cn_idx row_stop, cn_idx col_first,
                            cn_idx col_stop, cn_idx pad_h, cn_idx pad_w)
    void cn_avg2x2_back_f64(const double *grad_y, cn_idx out_cols, double *grad_x,
                            cn_idx width, cn_idx row_first, cn_idx row_stop, cn_idx col_first,
                            cn_idx col_stop, cn_idx pad_h, cn_idx pad_w)

    void cn_plane_means_f32(const float *x, cn_idx size, cn_idx first, cn_idx last, float *y)
    void cn_plane_means_f64(const double *x, cn_idx size, cn_idx first, cn_idx last, double *y)


def simd_info():
    """(detected, active) instruction-set names of the pooling kernels."""
    return simd_info_of_module()


def set_simd_cap(int level):
    """Limit the kernels to the variants up to ``level`` (0 scalar .. 3 avx512f); returns the old cap.

    This module's own cap (each kernel module has one).  Exists so tests can check that every
    compiled variant gives identical results; below 2 (avx2) the portable loops run.
    """
    return set_simd_cap_of_module(level)


# What max_pool2d_backward_planes returns.
cpdef enum Status:
    STATUS_OK = 0
    STATUS_BAD_INDEX = 1


cdef struct Geometry:
    # A pooling problem's shape: input planes (height, width), output planes (out_rows,
    # out_cols), the window and its stride and padding.  Hot functions copy the fields they use
    # into locals first: stores through the output pointers could alias *g as far as the
    # compiler knows, which would reload every field in the inner loops.
    Py_ssize_t height, width, out_rows, out_cols
    Py_ssize_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w


ctypedef fused position:
    # Argmax positions are kept at the value's width while a row is reduced: the compiler only
    # vectorises the compare-and-blend when the blended position lanes match the value lanes, or
    # are narrower (int32 for both dtypes).  int64 is the fallback for planes of 2**31 elements
    # or more.
    int32_t
    int64_t


cdef inline bint _replaces(floating val, floating current) noexcept nogil:
    # PyTorch's rule.  Bitwise | keeps both comparisons unconditional, so the loops that use it
    # compile to compare-and-blend instead of branches on data.
    return (val > current) | (val != val)


cdef inline void _pool_row_interior(const floating *row, Py_ssize_t row_step, Py_ssize_t width,
                                    Py_ssize_t pad_w, position row_origin, floating *y_row,
                                    position *pos, Py_ssize_t col_first, Py_ssize_t col_stop,
                                    const Py_ssize_t kernel_h, const Py_ssize_t kernel_w,
                                    const Py_ssize_t stride_w) noexcept nogil:
    """Output columns [col_first, col_stop) of a row whose windows lie wholly inside the plane.

    ``row`` is the windows' first input row, ``row_origin`` its position in the plane.  Called
    with literal window sizes and stride only: once inlined, the tap loops unroll and each
    window is folded in scan order in registers, leaving one compare-and-blend per tap across
    the vectorised output columns.
    """
    cdef Py_ssize_t ow, ki, kj, left
    cdef floating best, val
    cdef position where
    # Position of each window's first element, counted in the position type so the vector
    # loop needs no 64-bit to 32-bit conversions.
    cdef position corner = row_origin + <position> (col_first * stride_w - pad_w)
    cdef position w = <position> width
    cdef bint take
    for ow in range(col_first, col_stop):
        left = ow * stride_w - pad_w
        best = row[left]
        where = corner
        for ki in range(kernel_h):
            for kj in range(kernel_w):
                if ki == 0 and kj == 0:
                    continue
                val = row[ki * row_step + left + kj]
                take = _replaces(val, best)
                best = val if take else best
                where = corner + <position> ki * w + <position> kj if take else where
        y_row[ow] = best
        pos[ow] = where
        corner += <position> stride_w


cdef void _pool_row(const floating *src, Py_ssize_t row_step, floating *y_row, position *pos,
                    Py_ssize_t oh, Py_ssize_t col_first, Py_ssize_t col_stop,
                    const Geometry *g) noexcept nogil:
    """Output columns [col_first, col_stop) of row ``oh``, any window, stride and padding.

    ``src`` is the plane (height, width).  y_row and pos hold the running (max, argmax) and the
    window's taps are the outer loops in row-major order, so every output still sees its
    elements in scan order while the innermost loop runs across output columns with the same
    compare-and-blend in every lane.  Padding taps are skipped by clipping each tap's column
    range rather than by tests inside the loop.
    """
    cdef Py_ssize_t height = g.height, width = g.width, kernel_h = g.kernel_h
    cdef Py_ssize_t kernel_w = g.kernel_w, stride_h = g.stride_h, stride_w = g.stride_w
    cdef Py_ssize_t pad_h = g.pad_h, pad_w = g.pad_w
    cdef Py_ssize_t ow, ih, kj, offset, first, stop, limit, kj_first, kj_stop
    cdef Py_ssize_t ih_first = oh * stride_h - pad_h
    cdef Py_ssize_t ih_stop = ih_first + kernel_h
    cdef const floating *row
    cdef position row_base
    cdef floating val, current
    cdef bint take
    cdef floating neg_inf = -INFINITY
    if col_first >= col_stop:
        return  # the border ranges beside an interior run are often empty
    if ih_first < 0:
        ih_first = 0
    if ih_stop > height:
        ih_stop = height
    # Taps that land inside the row for some output column: 0 <= ow*stride_w + kj - pad_w < width.
    # The others do nothing, and a window far wider than the plane (allowed with enough
    # padding) would otherwise cost a loop iteration per tap.
    kj_first = pad_w - (col_stop - 1) * stride_w
    if kj_first < 0:
        kj_first = 0
    kj_stop = pad_w + width - col_first * stride_w
    if kj_stop > kernel_w:
        kj_stop = kernel_w
    # The running maximum starts at -inf on the window's first real element, so a window of
    # real -inf values reports that element (a real -inf never beats -inf).
    for ow in range(col_first, col_stop):
        offset = ow * stride_w - pad_w
        y_row[ow] = neg_inf
        pos[ow] = <position> (ih_first * width + (offset if offset > 0 else 0))
    for ih in range(ih_first, ih_stop):
        row = src + ih * row_step
        for kj in range(kj_first, kj_stop):
            offset = kj - pad_w
            # Output columns whose tap kj lands inside the row: 0 <= ow*stride_w + offset < width.
            first = 0 if offset >= 0 else (-offset + stride_w - 1) // stride_w
            limit = width - offset
            stop = (limit + stride_w - 1) // stride_w if limit > 0 else 0
            if first < col_first:
                first = col_first
            if stop > col_stop:
                stop = col_stop
            row_base = <position> (ih * width + offset)
            if stride_w == 1:
                # Its own loop so the compiler sees unit-stride loads.
                for ow in range(first, stop):
                    val = row[ow + offset]
                    current = y_row[ow]
                    take = _replaces(val, current)
                    y_row[ow] = val if take else current
                    pos[ow] = row_base + <position> ow if take else pos[ow]
            else:
                for ow in range(first, stop):
                    val = row[ow * stride_w + offset]
                    current = y_row[ow]
                    take = _replaces(val, current)
                    y_row[ow] = val if take else current
                    pos[ow] = row_base + <position> (ow * stride_w) if take else pos[ow]


cdef inline void _fold_run(const floating *vals, position first, floating *best,
                           position *where, Py_ssize_t n) noexcept nogil:
    """Folds element i of vals, at position first + i, into (best[i], where[i]), i < n."""
    cdef Py_ssize_t i
    cdef floating val, current
    cdef bint take
    # A counter of the position type: deriving it from the 64-bit loop index costs a
    # conversion per vector.
    cdef position at = first
    for i in range(n):
        val = vals[i]
        current = best[i]
        take = _replaces(val, current)
        best[i] = val if take else current
        where[i] = at if take else where[i]
        at += 1


cdef inline void _fold_pairs(const floating *vals, const position *at, floating *best,
                             position *where, Py_ssize_t n) noexcept nogil:
    """Folds (vals[i], at[i]) into (best[i], where[i]), i < n."""
    cdef Py_ssize_t i
    cdef floating val, current
    cdef position val_at, current_at
    cdef bint take
    for i in range(n):
        val = vals[i]
        val_at = at[i]
        current = best[i]
        current_at = where[i]
        take = _replaces(val, current)
        best[i] = val if take else current
        where[i] = val_at if take else current_at


cdef inline void _runs_across_fixed(const floating *vals, floating *best, position *where,
                                    Py_ssize_t n, const Py_ssize_t taps) noexcept nogil:
    """(best[i], where[i]) = fold of vals[i .. i + taps) at positions i.., for i < n.

    Called with literal ``taps`` only, so the tap loop unrolls and the run stays in registers.
    """
    cdef Py_ssize_t i, t
    cdef floating run_best, val
    cdef position run_where, at = 0
    cdef bint take
    for i in range(n):
        run_best = vals[i]
        run_where = at
        for t in range(1, taps):
            val = vals[i + t]
            take = _replaces(val, run_best)
            run_best = val if take else run_best
            run_where = at + <position> t if take else run_where
        best[i] = run_best
        where[i] = run_where
        at += 1


cdef inline void _runs_down_fixed(const floating *vals, const position *at, Py_ssize_t step,
                                  floating *best, position *where, Py_ssize_t n,
                                  const Py_ssize_t taps) noexcept nogil:
    """(best[i], where[i]) = fold of (vals, at)[i + t*step] for t < taps, i < n; literal taps."""
    cdef Py_ssize_t i, t
    cdef floating run_best, val
    cdef position run_where, val_at
    cdef bint take
    for i in range(n):
        run_best = vals[i]
        run_where = at[i]
        for t in range(1, taps):
            # Both loads unconditional: a load inside the select would be control flow.
            val = vals[i + t * step]
            val_at = at[i + t * step]
            take = _replaces(val, run_best)
            run_best = val if take else run_best
            run_where = val_at if take else run_where
        best[i] = run_best
        where[i] = run_where


cdef inline void _runs_across(const floating *vals, floating *best, position *where,
                              Py_ssize_t n, Py_ssize_t taps) noexcept nogil:
    """(best[i], where[i]) = fold of vals[i .. i + taps) at positions i.., for i < n; taps >= 2."""
    cdef Py_ssize_t t
    if taps == 2:
        _runs_across_fixed(vals, best, where, n, 2)
        return
    _runs_across_fixed(vals, best, where, n, 3)
    for t in range(3, taps):
        _fold_run(vals + t, <position> t, best, where, n)


cdef inline void _runs_down(const floating *vals, const position *at, Py_ssize_t step,
                            floating *best, position *where, Py_ssize_t n,
                            Py_ssize_t taps) noexcept nogil:
    """(best[i], where[i]) = fold of (vals, at)[i + t*step] for t < taps, i < n; taps >= 1."""
    cdef Py_ssize_t t
    if taps == 1:
        memcpy(best, vals, n * sizeof(floating))
        memcpy(where, at, n * sizeof(position))
    elif taps == 2:
        _runs_down_fixed(vals, at, step, best, where, n, 2)
    else:
        _runs_down_fixed(vals, at, step, best, where, n, 3)
        for t in range(3, taps):
            _fold_pairs(vals + t * step, at + t * step, best, where, n)


cdef void _pool_plane_separable(const floating *plane, floating *y, int64_t *indices,
                                const Geometry *g, floating *row_best, position *row_where,
                                floating *col_best, position *col_where,
                                position *pos) noexcept nogil:
    """Horizontal stride 1 and no horizontal padding, on a C-contiguous plane (height, width).

    A window's rows are consecutive runs of the row-major scan and the rule is associative
    over such runs, so each row's kernel_w-wide run is reduced once (row_best/row_where,
    height*width entries) and shared by the kernel_h overlapping windows that contain it;
    then runs are combined down the columns.  Both steps are long unit-stride loops: the
    horizontal one runs over the whole plane as one flat array (runs crossing a row end are
    computed but never read), and so does the vertical one when stride_h is 1 and pad_h 0
    (into col_best/col_where, out_rows*width entries).  pos is scratch for out_cols positions.
    """
    cdef Py_ssize_t height = g.height, width = g.width, out_rows = g.out_rows
    cdef Py_ssize_t out_cols = g.out_cols, kernel_h = g.kernel_h, kernel_w = g.kernel_w
    cdef Py_ssize_t stride_h = g.stride_h, pad_h = g.pad_h
    cdef Py_ssize_t i, oh, ow, ki, ih, ih_first, ih_stop
    cdef Py_ssize_t n_runs = height * width - (kernel_w - 1)
    cdef Py_ssize_t n_cols
    cdef floating *y_row
    cdef int64_t *i_row
    _runs_across(plane, row_best, row_where, n_runs, kernel_w)

    if stride_h == 1 and pad_h == 0:
        # Every output row's windows start one input row further: the vertical combine is a
        # flat loop too, over out_rows rows of width entries (the tail columns are unused).
        n_cols = (out_rows - 1) * width + out_cols
        _runs_down(row_best, row_where, width, col_best, col_where, n_cols, kernel_h)
        for oh in range(out_rows):
            memcpy(y + oh * out_cols, col_best + oh * width, out_cols * sizeof(floating))
            i_row = indices + oh * out_cols
            for ow in range(out_cols):
                i_row[ow] = col_where[oh * width + ow]
        return

    for oh in range(out_rows):
        # Padding rows are skipped; the first real row seeds the fold, as the scan would.
        ih_first = oh * stride_h - pad_h
        ih_stop = ih_first + kernel_h
        if ih_first < 0:
            ih_first = 0
        if ih_stop > height:
            ih_stop = height
        y_row = y + oh * out_cols
        _runs_down(row_best + ih_first * width, row_where + ih_first * width, width, y_row, pos,
                   out_cols, ih_stop - ih_first)
        i_row = indices + oh * out_cols
        for ow in range(out_cols):
            i_row[ow] = pos[ow]


# Window shapes with an unrolled interior path (any vertical stride, any padding); stride 1
# across goes to the separable path instead.
cdef enum:
    WINDOW_GENERIC = 0
    WINDOW_2X2_S2 = 1
    WINDOW_3X3_S2 = 2


cdef void _pool_rows(const floating *plane, Py_ssize_t row_step, floating *y, int64_t *indices,
                     position *pos, Py_ssize_t oh_first, Py_ssize_t oh_stop, int window,
                     bint borders_only, Py_ssize_t inner_first, Py_ssize_t inner_stop,
                     const Geometry *g) noexcept nogil:
    """Output rows [oh_first, oh_stop) of a plane whose outputs are y and indices.

    Columns [inner_first, inner_stop) are those whose windows need no horizontal padding;
    borders_only says they are done already.  pos is scratch for out_cols positions.
    """
    cdef Py_ssize_t height = g.height, width = g.width, out_cols = g.out_cols
    cdef Py_ssize_t kernel_h = g.kernel_h, stride_h = g.stride_h, pad_h = g.pad_h, pad_w = g.pad_w
    cdef Py_ssize_t oh, ow, ih_first
    cdef const floating *row
    cdef floating *y_row
    cdef int64_t *i_row
    for oh in range(oh_first, oh_stop):
        y_row = y + oh * out_cols
        i_row = indices + oh * out_cols
        ih_first = oh * stride_h - pad_h
        if borders_only:
            _pool_row(plane, row_step, y_row, pos, oh, 0, inner_first, g)
            _pool_row(plane, row_step, y_row, pos, oh, inner_stop, out_cols, g)
            for ow in range(inner_first):
                i_row[ow] = pos[ow]
            for ow in range(inner_stop, out_cols):
                i_row[ow] = pos[ow]
            continue
        if window == WINDOW_GENERIC or ih_first < 0 or ih_first + kernel_h > height:
            _pool_row(plane, row_step, y_row, pos, oh, 0, out_cols, g)
        else:
            _pool_row(plane, row_step, y_row, pos, oh, 0, inner_first, g)
            row = plane + ih_first * row_step
            if window == WINDOW_2X2_S2:
                _pool_row_interior(row, row_step, width, pad_w, <position> (ih_first * width),
                                   y_row, pos, inner_first, inner_stop, 2, 2, 2)
            else:
                _pool_row_interior(row, row_step, width, pad_w, <position> (ih_first * width),
                                   y_row, pos, inner_first, inner_stop, 3, 3, 2)
            _pool_row(plane, row_step, y_row, pos, oh, inner_stop, out_cols, g)
        for ow in range(out_cols):
            i_row[ow] = pos[ow]


cdef int _pool_planes(const floating *x, Py_ssize_t plane_step, Py_ssize_t row_step,
                      Py_ssize_t col_step, floating *y, int64_t *indices, const Geometry *g,
                      Py_ssize_t start, Py_ssize_t stop, position *pos) noexcept nogil:
    """Pools planes [start, stop); steps are in elements; pos is scratch for out_cols positions.

    Returns 0, or -1 when memory ran out.
    """
    cdef Py_ssize_t height = g.height, width = g.width, out_rows = g.out_rows
    cdef Py_ssize_t out_cols = g.out_cols, kernel_h = g.kernel_h, kernel_w = g.kernel_w
    cdef Py_ssize_t stride_h = g.stride_h, stride_w = g.stride_w, pad_h = g.pad_h, pad_w = g.pad_w
    cdef Py_ssize_t p, i, j, src_row_step = row_step
    cdef Py_ssize_t n_out = out_rows * out_cols
    cdef Py_ssize_t inner_first, inner_stop, inner_row_first, inner_row_stop
    cdef int simd_done
    cdef const floating *plane
    cdef floating *dense
    cdef floating *y_plane
    cdef int64_t *i_plane
    cdef floating *gathered = NULL
    cdef floating *row_best = NULL
    cdef floating *col_best = NULL
    cdef position *row_where = NULL
    cdef position *col_where = NULL
    cdef int status = 0
    cdef int window = WINDOW_GENERIC
    cdef bint separable = stride_w == 1 and pad_w == 0 and kernel_w > 1
    if kernel_h == 2 and kernel_w == 2 and stride_w == 2:
        window = WINDOW_2X2_S2
    elif kernel_h == 3 and kernel_w == 3 and stride_w == 2:
        window = WINDOW_3X3_S2
    # Output columns whose windows need no horizontal padding: ow*stride_w - pad_w >= 0 and
    # ow*stride_w - pad_w + kernel_w <= width.
    inner_first = (pad_w + stride_w - 1) // stride_w
    inner_stop = (width + pad_w - kernel_w) // stride_w + 1
    if inner_stop > out_cols:
        inner_stop = out_cols
    if inner_first > inner_stop:
        inner_first = inner_stop
    # Likewise the output rows whose windows need no vertical padding.
    inner_row_first = (pad_h + stride_h - 1) // stride_h
    inner_row_stop = (height + pad_h - kernel_h) // stride_h + 1
    if inner_row_stop > out_rows:
        inner_row_stop = out_rows
    if inner_row_first > inner_row_stop:
        inner_row_first = inner_row_stop
    if col_step != 1 or (separable and row_step != width):
        # Gathered once per plane: the window loops want unit-stride rows, the separable path
        # a contiguous plane.
        gathered = <floating *> malloc(height * width * sizeof(floating))
        if gathered == NULL:
            return -1
        src_row_step = width
    if separable:
        row_best = <floating *> malloc(height * width * sizeof(floating))
        row_where = <position *> malloc(height * width * sizeof(position))
        col_best = <floating *> malloc(out_rows * width * sizeof(floating))
        col_where = <position *> malloc(out_rows * width * sizeof(position))
        if row_best == NULL or row_where == NULL or col_best == NULL or col_where == NULL:
            status = -1
            stop = start
    for p in range(start, stop):
        plane = x + p * plane_step
        if gathered != NULL:
            for i in range(height):
                dense = gathered + i * width
                for j in range(width):
                    dense[j] = plane[i * row_step + j * col_step]
            plane = gathered
        if separable:
            _pool_plane_separable(plane, y + p * n_out, indices + p * n_out, g, row_best,
                                  row_where, col_best, col_where, pos)
            continue
        y_plane = y + p * n_out
        i_plane = indices + p * n_out
        simd_done = 0
        if window == WINDOW_2X2_S2:
            # Interior windows of the whole plane in one call; only borders are left below.
            if floating is float:
                simd_done = cn_pool2x2_f32(plane, src_row_step, width, y_plane, i_plane,
                                           out_cols, inner_row_first, inner_row_stop,
                                           inner_first, inner_stop, stride_h, pad_h, pad_w)
            else:
                simd_done = cn_pool2x2_f64(plane, src_row_step, width, y_plane, i_plane,
                                           out_cols, inner_row_first, inner_row_stop,
                                           inner_first, inner_stop, stride_h, pad_h, pad_w)
        if simd_done:
            _pool_rows(plane, src_row_step, y_plane, i_plane, pos, 0, inner_row_first, window,
                       False, inner_first, inner_stop, g)
            if inner_first > 0 or inner_stop < out_cols:
                _pool_rows(plane, src_row_step, y_plane, i_plane, pos, inner_row_first,
                           inner_row_stop, window, True, inner_first, inner_stop, g)
            _pool_rows(plane, src_row_step, y_plane, i_plane, pos, inner_row_stop, out_rows,
                       window, False, inner_first, inner_stop, g)
        else:
            _pool_rows(plane, src_row_step, y_plane, i_plane, pos, 0, out_rows, window, False,
                       inner_first, inner_stop, g)
    free(gathered)
    free(row_best)
    free(row_where)
    free(col_best)
    free(col_where)
    return status


cdef int _pool_planes_dispatch(const floating *x, Py_ssize_t plane_step, Py_ssize_t row_step,
                               Py_ssize_t col_step, floating *y, int64_t *indices,
                               const Geometry *g, Py_ssize_t start,
                               Py_ssize_t stop) noexcept nogil:
    """_pool_planes with int32 positions when every plane position fits, else int64."""
    cdef int status = -1
    cdef int32_t *pos32
    cdef int64_t *pos64
    # INT32_MAX, not INT_MAX: the bound is the int32 position type's, whatever C's int is.
    if g.height * g.width <= INT32_MAX:
        pos32 = <int32_t *> malloc(g.out_cols * sizeof(int32_t))
        if pos32 != NULL:
            status = _pool_planes(x, plane_step, row_step, col_step, y, indices, g, start, stop,
                                  pos32)
        free(pos32)
    else:
        pos64 = <int64_t *> malloc(g.out_cols * sizeof(int64_t))
        if pos64 != NULL:
            status = _pool_planes(x, plane_step, row_step, col_step, y, indices, g, start, stop,
                                  pos64)
        free(pos64)
    return status


cdef int _pool_claimed(const floating *x, Py_ssize_t plane_step, Py_ssize_t row_step,
                       Py_ssize_t col_step, floating *y, int64_t *indices, const Geometry *g,
                       Py_ssize_t start, Py_ssize_t stop, int64_t *counter,
                       Py_ssize_t claim) noexcept nogil:
    """_pool_planes_dispatch on pieces of [start, stop) claimed from counter until none is left."""
    cdef Py_ssize_t first, last
    cdef int status
    while next_piece(counter, claim, start, stop, &first, &last):
        status = _pool_planes_dispatch(x, plane_step, row_step, col_step, y, indices, g, first,
                                       last)
        if status != 0:
            return status
    return 0


cdef int _scatter_claimed(const floating *grad_y, const int64_t *indices, floating *grad_x,
                          Py_ssize_t n_out, Py_ssize_t plane_size, Py_ssize_t start,
                          Py_ssize_t stop, int64_t *counter, Py_ssize_t claim) noexcept nogil:
    """_scatter_planes on pieces of [start, stop) claimed from counter until none is left."""
    cdef Py_ssize_t first, last
    cdef int status
    while next_piece(counter, claim, start, stop, &first, &last):
        status = _scatter_planes(grad_y, indices, grad_x, n_out, plane_size, first, last)
        if status != STATUS_OK:
            return status
    return STATUS_OK


cdef int _scatter_planes(const floating *grad_y, const int64_t *indices, floating *grad_x,
                         Py_ssize_t n_out, Py_ssize_t plane_size, Py_ssize_t start,
                         Py_ssize_t stop) noexcept nogil:
    """grad_x[p] = 0, then grad_x[p, indices[p, o]] += grad_y[p, o], for planes [start, stop).

    Outputs o are added in increasing order.  Returns STATUS_BAD_INDEX (before writing anything
    for it) at the first index outside [0, plane_size), else STATUS_OK.
    """
    cdef Py_ssize_t p, o
    cdef int64_t target
    cdef const floating *g
    cdef const int64_t *idx
    cdef floating *out
    for p in range(start, stop):
        g = grad_y + p * n_out
        idx = indices + p * n_out
        out = grad_x + p * plane_size
        # Zeroed here rather than by the caller: the plane is then in cache for the scatter,
        # and each thread clears its own planes.
        memset(out, 0, plane_size * sizeof(floating))
        for o in range(n_out):
            target = idx[o]
            # One unsigned comparison covers both negative and too-large indices.
            if <uint64_t> target >= <uint64_t> plane_size:
                return STATUS_BAD_INDEX
            out[target] += g[o]
    return STATUS_OK


cdef Geometry _window_geometry(Py_ssize_t height, Py_ssize_t width,
                               (Py_ssize_t, Py_ssize_t) kernel_size,
                               (Py_ssize_t, Py_ssize_t) stride,
                               (Py_ssize_t, Py_ssize_t) padding) except *:
    """The pooling geometry of (height, width) planes, every precondition the kernels rely on
    checked: non-empty planes, kernel and stride >= 1, padding in [0, kernel // 2], all within
    INT_MAX, the window inside the padded plane."""
    cdef Geometry g
    g.height, g.width = height, width
    g.kernel_h, g.kernel_w = kernel_size
    g.stride_h, g.stride_w = stride
    g.pad_h, g.pad_w = padding
    if g.height < 1 or g.width < 1:
        raise ValueError("planes must be non-empty")
    if g.kernel_h < 1 or g.kernel_w < 1 or g.stride_h < 1 or g.stride_w < 1:
        raise ValueError("kernel and stride must be >= 1")
    # Bounded so that window arithmetic (corners, clipped tap ranges) cannot overflow.
    if max(g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w) > INT_MAX:
        raise ValueError("kernel, stride and padding must be at most 2**31 - 1")
    # The bound on padding is what makes every max-pool window contain a real element, which
    # the kernels use as its initial argmax (and keeps every average's divisor positive).
    if not (0 <= g.pad_h <= g.kernel_h // 2 and 0 <= g.pad_w <= g.kernel_w // 2):
        raise ValueError("padding must be in [0, kernel // 2]")
    if g.kernel_h - 2 * g.pad_h > g.height or g.kernel_w - 2 * g.pad_w > g.width:
        raise ValueError("kernel larger than the padded input")
    g.out_rows = (g.height - (g.kernel_h - 2 * g.pad_h)) // g.stride_h + 1
    g.out_cols = (g.width - (g.kernel_w - 2 * g.pad_w)) // g.stride_w + 1
    return g


def max_pool2d_planes(cnp.ndarray x not None, cnp.ndarray y not None,
                      cnp.ndarray indices not None, (Py_ssize_t, Py_ssize_t) kernel_size,
                      (Py_ssize_t, Py_ssize_t) stride, (Py_ssize_t, Py_ssize_t) padding,
                      Py_ssize_t start, Py_ssize_t stop, object counter=None, Py_ssize_t claim=1):
    """Max-pools planes [start, stop) of x into y and indices, in place.

    With ``counter`` (a 1-D int64 array shared by the threads of one call, counter[0] = 0 at
    first), the planes are not all done by this call: it claims ``claim`` planes at a time
    from counter[0] until none is left, so threads that start late simply find less to do.

    x: (P, H, W) float32/float64, H, W >= 1, any strides; y: (P, Ho, Wo) of x's dtype and
    indices: (P, Ho, Wo) int64, both C-contiguous and writeable.  kernel_size, stride and
    padding are (h, w) pairs, with Ho = (H + 2*pad_h - kernel_h) // stride_h + 1 (likewise Wo).
    kernel >= 1, stride >= 1, 0 <= pad <= kernel // 2 and the kernel must fit in the padded
    plane.  Releases the GIL.
    """
    check_array(x, "x", 3, ANY_FLOAT)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t planes = cnp.PyArray_DIM(x, 0)
    cdef Geometry g = _window_geometry(cnp.PyArray_DIM(x, 1), cnp.PyArray_DIM(x, 2), kernel_size,
                                       stride, padding)
    check_array(y, "y", 3, typenum, C_ORDER | WRITEABLE, (planes, g.out_rows, g.out_cols))
    check_array(indices, "indices", 3, cnp.NPY_INT64, C_ORDER | WRITEABLE,
                (planes, g.out_rows, g.out_cols))
    cdef int64_t unshared = 0
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(x)
    cdef Py_ssize_t plane_step = element_step(cnp.PyArray_STRIDE(x, 0), itemsize, planes)
    cdef Py_ssize_t row_step = element_step(cnp.PyArray_STRIDE(x, 1), itemsize, g.height)
    cdef Py_ssize_t col_step = element_step(cnp.PyArray_STRIDE(x, 2), itemsize, g.width)
    cdef int64_t *shared = claimed_work(counter, &claim, &unshared, start, stop, planes,
                                         "planes")
    cdef int status
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            status = _pool_claimed(<const float *> cnp.PyArray_DATA(x), plane_step, row_step,
                                   col_step, <float *> cnp.PyArray_DATA(y),
                                   <int64_t *> cnp.PyArray_DATA(indices), &g, start, stop,
                                   shared, claim)
    else:
        with nogil:
            status = _pool_claimed(<const double *> cnp.PyArray_DATA(x), plane_step, row_step,
                                   col_step, <double *> cnp.PyArray_DATA(y),
                                   <int64_t *> cnp.PyArray_DATA(indices), &g, start, stop,
                                   shared, claim)
    if status != 0:
        raise MemoryError("out of memory in max_pool2d_planes")


def max_pool2d_backward_planes(cnp.ndarray grad_y not None, cnp.ndarray indices not None,
                               cnp.ndarray grad_x not None, Py_ssize_t start, Py_ssize_t stop,
                               object counter=None, Py_ssize_t claim=1):
    """Overwrites planes [start, stop) of grad_x with grad_y scattered to indices; returns a status.

    ``counter`` and ``claim`` share the planes among threads as for max_pool2d_planes.

    grad_y: (P, Ho, Wo) float32/float64 and indices: (P, Ho, Wo) int64, both C-contiguous;
    grad_x: (P, H, W) of grad_y's dtype, C-contiguous and writeable; its planes are zeroed,
    then outputs are added in row-major order within each plane.  Returns STATUS_OK, or
    STATUS_BAD_INDEX when an index lies outside [0, H*W): nothing is written for it and the
    remaining planes of the range are left untouched.  Releases the GIL.
    """
    check_array(grad_y, "grad_y", 3, ANY_FLOAT, C_ORDER)
    cdef int typenum = cnp.PyArray_TYPE(grad_y)
    cdef Py_ssize_t planes = cnp.PyArray_DIM(grad_y, 0)
    cdef Py_ssize_t out_rows = cnp.PyArray_DIM(grad_y, 1), out_cols = cnp.PyArray_DIM(grad_y, 2)
    # Aligned too: the scatter loads int64 indices directly (a misaligned view slipped through,
    # found by tools/sanitize.sh).
    check_array(indices, "indices", 3, cnp.NPY_INT64, C_ORDER, (<object> grad_y).shape)
    check_array(grad_x, "grad_x", 3, typenum, C_ORDER | WRITEABLE)
    if cnp.PyArray_DIM(grad_x, 0) != planes:
        raise ValueError(f"grad_x must have {planes} planes, got shape {(<object> grad_x).shape}")
    cdef Py_ssize_t n_out = out_rows * out_cols
    cdef Py_ssize_t plane_size = cnp.PyArray_DIM(grad_x, 1) * cnp.PyArray_DIM(grad_x, 2)
    cdef int64_t unshared = 0
    cdef int64_t *shared = claimed_work(counter, &claim, &unshared, start, stop, planes,
                                         "planes")
    cdef int status
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            status = _scatter_claimed(<const float *> cnp.PyArray_DATA(grad_y),
                                      <const int64_t *> cnp.PyArray_DATA(indices),
                                      <float *> cnp.PyArray_DATA(grad_x), n_out, plane_size,
                                      start, stop, shared, claim)
    else:
        with nogil:
            status = _scatter_claimed(<const double *> cnp.PyArray_DATA(grad_y),
                                      <const int64_t *> cnp.PyArray_DATA(indices),
                                      <double *> cnp.PyArray_DATA(grad_x), n_out, plane_size,
                                      start, stop, shared, claim)
    return status


# ------------------------------------------------------------------------------ average pooling
#
# PyTorch's CPU rule: each output is the sum of its window's real elements, added from zero in
# row-major order, divided by the window's area (count_include_pad) or by the number of its
# real elements.  Backward: outputs in row-major order each add grad / divisor to every real
# element of their window, into a zeroed plane.


cdef inline Py_ssize_t _avg_divisor(Py_ssize_t rows_in, Py_ssize_t ow, const Geometry *g,
                                    bint count_include_pad) noexcept nogil:
    cdef Py_ssize_t left, right
    if count_include_pad:
        return g.kernel_h * g.kernel_w
    left = ow * g.stride_w - g.pad_w
    right = left + g.kernel_w
    if left < 0:
        left = 0
    if right > g.width:
        right = g.width
    return rows_in * (right - left)


cdef inline void _tap_columns(Py_ssize_t kj, const Geometry *g, Py_ssize_t col_first,
                              Py_ssize_t col_stop, Py_ssize_t *first,
                              Py_ssize_t *stop) noexcept nogil:
    """Output columns of [col_first, col_stop) whose tap kj lands inside the row."""
    cdef Py_ssize_t offset = kj - g.pad_w, limit = g.width - offset
    cdef Py_ssize_t sw = g.stride_w
    first[0] = 0 if offset >= 0 else (-offset + sw - 1) // sw
    stop[0] = (limit + sw - 1) // sw if limit > 0 else 0
    if first[0] < col_first:
        first[0] = col_first
    if stop[0] > col_stop:
        stop[0] = col_stop


cdef inline void _tap_range(const Geometry *g, Py_ssize_t col_first, Py_ssize_t col_stop,
                            Py_ssize_t *kj_first, Py_ssize_t *kj_stop) noexcept nogil:
    """Taps that land inside the row for some output column of [col_first, col_stop)."""
    kj_first[0] = g.pad_w - (col_stop - 1) * g.stride_w
    if kj_first[0] < 0:
        kj_first[0] = 0
    kj_stop[0] = g.pad_w + g.width - col_first * g.stride_w
    if kj_stop[0] > g.kernel_w:
        kj_stop[0] = g.kernel_w


cdef void _avg_row(const floating *plane, floating *y_row, Py_ssize_t oh, Py_ssize_t col_first,
                   Py_ssize_t col_stop, const Geometry *g, bint count_include_pad) noexcept nogil:
    """Output columns [col_first, col_stop) of row oh; the window's taps are the outer loops
    (row-major), so each output adds its elements in scan order, from zero."""
    cdef Py_ssize_t width = g.width, sw = g.stride_w
    cdef Py_ssize_t ow, ih, kj, offset, first, stop, kj_first, kj_stop
    cdef Py_ssize_t ih_first = oh * g.stride_h - g.pad_h
    cdef Py_ssize_t ih_stop = ih_first + g.kernel_h
    cdef const floating *row
    if col_first >= col_stop:
        return
    if ih_first < 0:
        ih_first = 0
    if ih_stop > g.height:
        ih_stop = g.height
    _tap_range(g, col_first, col_stop, &kj_first, &kj_stop)
    for ow in range(col_first, col_stop):
        y_row[ow] = 0
    for ih in range(ih_first, ih_stop):
        row = plane + ih * width
        for kj in range(kj_first, kj_stop):
            _tap_columns(kj, g, col_first, col_stop, &first, &stop)
            offset = kj - g.pad_w
            if sw == 1:
                for ow in range(first, stop):
                    y_row[ow] += row[ow + offset]
            else:
                for ow in range(first, stop):
                    y_row[ow] += row[ow * sw + offset]
    for ow in range(col_first, col_stop):
        y_row[ow] = y_row[ow] / <floating> _avg_divisor(ih_stop - ih_first, ow, g,
                                                        count_include_pad)


cdef void _avg_back_row(const floating *g_row, floating *plane, floating *delta, Py_ssize_t oh,
                        Py_ssize_t col_first, Py_ssize_t col_stop, const Geometry *g,
                        bint count_include_pad) noexcept nogil:
    """Adds the gradients of outputs [col_first, col_stop) of row oh to their windows.

    Taps go in descending column order with output columns innermost, so an input element
    receives the row's outputs in ascending column order (the larger tap belongs to the
    earlier output); rows are called in ascending order.  delta: out_cols scratch.
    """
    cdef Py_ssize_t width = g.width, sw = g.stride_w
    cdef Py_ssize_t ow, ih, kj, offset, first, stop, kj_first, kj_stop
    cdef Py_ssize_t ih_first = oh * g.stride_h - g.pad_h
    cdef Py_ssize_t ih_stop = ih_first + g.kernel_h
    cdef floating *row
    if col_first >= col_stop:
        return
    if ih_first < 0:
        ih_first = 0
    if ih_stop > g.height:
        ih_stop = g.height
    _tap_range(g, col_first, col_stop, &kj_first, &kj_stop)
    for ow in range(col_first, col_stop):
        delta[ow] = g_row[ow] / <floating> _avg_divisor(ih_stop - ih_first, ow, g,
                                                        count_include_pad)
    for ih in range(ih_first, ih_stop):
        row = plane + ih * width
        for kj in range(kj_stop - 1, kj_first - 1, -1):
            _tap_columns(kj, g, col_first, col_stop, &first, &stop)
            offset = kj - g.pad_w
            if sw == 1:
                for ow in range(first, stop):
                    row[ow + offset] += delta[ow]
            else:
                for ow in range(first, stop):
                    row[ow * sw + offset] += delta[ow]


cdef inline void _interior(const Geometry *g, Py_ssize_t *rows, Py_ssize_t *cols) noexcept nogil:
    """[rows[0], rows[1]) and [cols[0], cols[1]): outputs whose windows need no padding."""
    cols[0] = (g.pad_w + g.stride_w - 1) // g.stride_w
    cols[1] = (g.width + g.pad_w - g.kernel_w) // g.stride_w + 1
    if cols[1] > g.out_cols:
        cols[1] = g.out_cols
    if cols[0] > cols[1]:
        cols[0] = cols[1]
    rows[0] = (g.pad_h + g.stride_h - 1) // g.stride_h
    rows[1] = (g.height + g.pad_h - g.kernel_h) // g.stride_h + 1
    if rows[1] > g.out_rows:
        rows[1] = g.out_rows
    if rows[0] > rows[1]:
        rows[0] = rows[1]


cdef inline bint _is_2x2_s2(const Geometry *g) noexcept nogil:
    return g.kernel_h == 2 and g.kernel_w == 2 and g.stride_h == 2 and g.stride_w == 2


cdef void _avg_planes(const floating *x, floating *y, const Geometry *g, bint count_include_pad,
                      Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t p, oh
    cdef Py_ssize_t plane_size = g.height * g.width, n_out = g.out_rows * g.out_cols
    cdef Py_ssize_t rows[2]
    cdef Py_ssize_t cols[2]
    cdef const floating *plane
    cdef floating *y_plane
    cdef bint fast = _is_2x2_s2(g)
    _interior(g, rows, cols)
    for p in range(start, stop):
        plane = x + p * plane_size
        y_plane = y + p * n_out
        if not fast:
            for oh in range(g.out_rows):
                _avg_row(plane, y_plane + oh * g.out_cols, oh, 0, g.out_cols, g,
                         count_include_pad)
            continue
        if floating is float:
            cn_avg2x2_f32(plane, g.width, y_plane, g.out_cols, rows[0], rows[1], cols[0],
                          cols[1], g.pad_h, g.pad_w)
        else:
            cn_avg2x2_f64(plane, g.width, y_plane, g.out_cols, rows[0], rows[1], cols[0],
                          cols[1], g.pad_h, g.pad_w)
        for oh in range(g.out_rows):
            if rows[0] <= oh < rows[1]:
                _avg_row(plane, y_plane + oh * g.out_cols, oh, 0, cols[0], g, count_include_pad)
                _avg_row(plane, y_plane + oh * g.out_cols, oh, cols[1], g.out_cols, g,
                         count_include_pad)
            else:
                _avg_row(plane, y_plane + oh * g.out_cols, oh, 0, g.out_cols, g,
                         count_include_pad)


cdef int _avg_back_planes(const floating *grad_y, floating *grad_x, const Geometry *g,
                          bint count_include_pad, Py_ssize_t start,
                          Py_ssize_t stop) noexcept nogil:
    """Returns -1 when out of memory."""
    cdef Py_ssize_t p, oh, ih, covered_rows, covered_cols
    cdef Py_ssize_t plane_size = g.height * g.width, n_out = g.out_rows * g.out_cols
    cdef Py_ssize_t rows[2]
    cdef Py_ssize_t cols[2]
    cdef floating *plane
    cdef const floating *g_plane
    cdef bint fast = _is_2x2_s2(g)
    cdef bint unpadded = fast and g.pad_h == 0 and g.pad_w == 0
    cdef floating *delta = <floating *> malloc(g.out_cols * sizeof(floating))
    if delta == NULL:
        return -1
    _interior(g, rows, cols)
    # Unpadded 2x2/s2 windows tile the plane but for an odd last row or column.
    covered_rows, covered_cols = 2 * g.out_rows, 2 * g.out_cols
    for p in range(start, stop):
        plane = grad_x + p * plane_size
        g_plane = grad_y + p * n_out
        if unpadded:
            if floating is float:
                cn_avg2x2_back_f32(g_plane, g.out_cols, plane, g.width, 0, g.out_rows, 0,
                                   g.out_cols, 0, 0)
            else:
                cn_avg2x2_back_f64(g_plane, g.out_cols, plane, g.width, 0, g.out_rows, 0,
                                   g.out_cols, 0, 0)
            if covered_cols < g.width:
                for ih in range(covered_rows):
                    plane[ih * g.width + covered_cols] = 0
            if covered_rows < g.height:
                memset(plane + covered_rows * g.width, 0,
                       (g.height - covered_rows) * g.width * sizeof(floating))
            continue
        memset(plane, 0, plane_size * sizeof(floating))
        for oh in range(g.out_rows):
            if fast and rows[0] <= oh < rows[1]:
                _avg_back_row(g_plane + oh * g.out_cols, plane, delta, oh, 0, cols[0], g,
                              count_include_pad)
                if floating is float:
                    cn_avg2x2_back_f32(g_plane, g.out_cols, plane, g.width, oh, oh + 1, cols[0],
                                       cols[1], g.pad_h, g.pad_w)
                else:
                    cn_avg2x2_back_f64(g_plane, g.out_cols, plane, g.width, oh, oh + 1, cols[0],
                                       cols[1], g.pad_h, g.pad_w)
                _avg_back_row(g_plane + oh * g.out_cols, plane, delta, oh, cols[1], g.out_cols,
                              g, count_include_pad)
            else:
                _avg_back_row(g_plane + oh * g.out_cols, plane, delta, oh, 0, g.out_cols, g,
                              count_include_pad)
    free(delta)
    return 0


cdef int _avg_claimed(bint backward, const void *src, void *dst, bint single,
                      const Geometry *g, bint count_include_pad, Py_ssize_t start,
                      Py_ssize_t stop, int64_t *counter, Py_ssize_t claim) noexcept nogil:
    cdef Py_ssize_t first, last
    cdef int status = 0
    while status == 0 and next_piece(counter, claim, start, stop, &first, &last):
        if not backward:
            if single:
                _avg_planes(<const float *> src, <float *> dst, g, count_include_pad, first, last)
            else:
                _avg_planes(<const double *> src, <double *> dst, g, count_include_pad, first,
                            last)
        elif single:
            status = _avg_back_planes(<const float *> src, <float *> dst, g, count_include_pad,
                                      first, last)
        else:
            status = _avg_back_planes(<const double *> src, <double *> dst, g,
                                      count_include_pad, first, last)
    return status


def avg_pool2d_planes(cnp.ndarray x not None, cnp.ndarray y not None,
                      (Py_ssize_t, Py_ssize_t) kernel_size, (Py_ssize_t, Py_ssize_t) stride,
                      (Py_ssize_t, Py_ssize_t) padding, bint count_include_pad,
                      Py_ssize_t start, Py_ssize_t stop, object counter=None, Py_ssize_t claim=1):
    """Average-pools planes [start, stop) of x into y, in place (PyTorch's rule, floor mode).

    x: (P, H, W) float32/float64, C-contiguous, H, W >= 1; y: (P, Ho, Wo) of x's dtype,
    C-contiguous and writeable.  Geometry as for max_pool2d_planes; ``counter``/``claim`` too.
    Releases the GIL.
    """
    check_array(x, "x", 3, ANY_FLOAT, C_ORDER)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t planes = cnp.PyArray_DIM(x, 0)
    cdef Geometry g = _window_geometry(cnp.PyArray_DIM(x, 1), cnp.PyArray_DIM(x, 2), kernel_size,
                                       stride, padding)
    check_array(y, "y", 3, typenum, C_ORDER | WRITEABLE, (planes, g.out_rows, g.out_cols))
    cdef int64_t unshared = 0
    cdef int64_t *shared = claimed_work(counter, &claim, &unshared, start, stop, planes,
                                         "planes")
    cdef const void *src = cnp.PyArray_DATA(x)
    cdef void *dst = cnp.PyArray_DATA(y)
    cdef bint single = typenum == cnp.NPY_FLOAT32
    cdef int status
    with nogil:
        status = _avg_claimed(False, src, dst, single, &g, count_include_pad, start, stop,
                              shared, claim)


def avg_pool2d_backward_planes(cnp.ndarray grad_y not None, cnp.ndarray grad_x not None,
                               (Py_ssize_t, Py_ssize_t) kernel_size,
                               (Py_ssize_t, Py_ssize_t) stride,
                               (Py_ssize_t, Py_ssize_t) padding, bint count_include_pad,
                               Py_ssize_t start, Py_ssize_t stop, object counter=None,
                               Py_ssize_t claim=1):
    """Overwrites planes [start, stop) of grad_x (P, H, W) with the gradient of average pooling.

    grad_y: (P, Ho, Wo) float32/float64, C-contiguous, Ho and Wo those of the geometry;
    grad_x: grad_y's dtype, C-contiguous and writeable.  Releases the GIL.
    """
    check_array(grad_x, "grad_x", 3, ANY_FLOAT, C_ORDER | WRITEABLE)
    cdef int typenum = cnp.PyArray_TYPE(grad_x)
    cdef Py_ssize_t planes = cnp.PyArray_DIM(grad_x, 0)
    cdef Geometry g = _window_geometry(cnp.PyArray_DIM(grad_x, 1), cnp.PyArray_DIM(grad_x, 2),
                                       kernel_size, stride, padding)
    check_array(grad_y, "grad_y", 3, typenum, C_ORDER, (planes, g.out_rows, g.out_cols))
    cdef int64_t unshared = 0
    cdef int64_t *shared = claimed_work(counter, &claim, &unshared, start, stop, planes,
                                         "planes")
    cdef const void *src = cnp.PyArray_DATA(grad_y)
    cdef void *dst = cnp.PyArray_DATA(grad_x)
    cdef bint single = typenum == cnp.NPY_FLOAT32
    cdef int status
    with nogil:
        status = _avg_claimed(True, src, dst, single, &g, count_include_pad, start, stop,
                              shared, claim)
    if status != 0:
        raise MemoryError("out of memory in avg_pool2d_backward_planes")


# ----------------------------------------------------------------------- global average pooling


cdef void _global_planes(bint backward, const void *src, void *dst, bint single,
                         Py_ssize_t size, Py_ssize_t start, Py_ssize_t stop,
                         int64_t *counter, Py_ssize_t claim) noexcept nogil:
    """Forward: dst[p] = sum of plane p (double, pool_simd.h's lanes) / size, rounded once.
    Backward: every element of plane p of dst = 0 + src[p] / size, in the element type."""
    cdef Py_ssize_t first, last, p, i
    cdef float d32
    cdef double d64
    cdef float *o32
    cdef double *o64
    while next_piece(counter, claim, start, stop, &first, &last):
        if not backward:
            if single:
                cn_plane_means_f32(<const float *> src, size, first, last, <float *> dst)
            else:
                cn_plane_means_f64(<const double *> src, size, first, last, <double *> dst)
            continue
        for p in range(first, last):
            if single:
                d32 = 0.0
                d32 = d32 + (<const float *> src)[p] / <float> size
                o32 = <float *> dst + p * size
                for i in range(size):
                    o32[i] = d32
            else:
                d64 = 0.0
                d64 = d64 + (<const double *> src)[p] / <double> size
                o64 = <double *> dst + p * size
                for i in range(size):
                    o64[i] = d64


def global_avg_pool_planes(cnp.ndarray x not None, cnp.ndarray y not None, Py_ssize_t start,
                           Py_ssize_t stop, object counter=None, Py_ssize_t claim=1):
    """y[p] = mean of x[p] for planes [start, stop); x: (P, S) float32/float64, C-contiguous,
    S >= 1; y: (P,) of x's dtype, C-contiguous and writeable.  Releases the GIL."""
    check_array(x, "x", 2, ANY_FLOAT, C_ORDER | NONEMPTY)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t planes = cnp.PyArray_DIM(x, 0), size = cnp.PyArray_DIM(x, 1)
    check_array(y, "y", 1, typenum, C_ORDER | WRITEABLE, (planes,))
    cdef int64_t unshared = 0
    cdef int64_t *shared = claimed_work(counter, &claim, &unshared, start, stop, planes,
                                         "planes")
    cdef const void *src = cnp.PyArray_DATA(x)
    cdef void *dst = cnp.PyArray_DATA(y)
    cdef bint single = typenum == cnp.NPY_FLOAT32
    with nogil:
        _global_planes(False, src, dst, single, size, start, stop, shared, claim)


def global_avg_pool_backward_planes(cnp.ndarray grad_y not None, cnp.ndarray grad_x not None,
                                    Py_ssize_t start, Py_ssize_t stop, object counter=None,
                                    Py_ssize_t claim=1):
    """grad_x[p, :] = grad_y[p] / S for planes [start, stop); grad_y: (P,) float32/float64,
    C-contiguous; grad_x: (P, S) of its dtype, S >= 1, C-contiguous and writeable.  Releases
    the GIL."""
    check_array(grad_x, "grad_x", 2, ANY_FLOAT, C_ORDER | WRITEABLE | NONEMPTY)
    cdef int typenum = cnp.PyArray_TYPE(grad_x)
    cdef Py_ssize_t planes = cnp.PyArray_DIM(grad_x, 0), size = cnp.PyArray_DIM(grad_x, 1)
    check_array(grad_y, "grad_y", 1, typenum, C_ORDER, (planes,))
    cdef int64_t unshared = 0
    cdef int64_t *shared = claimed_work(counter, &claim, &unshared, start, stop, planes,
                                         "planes")
    cdef const void *src = cnp.PyArray_DATA(grad_y)
    cdef void *dst = cnp.PyArray_DATA(grad_x)
    cdef bint single = typenum == cnp.NPY_FLOAT32
    with nogil:
        _global_planes(True, src, dst, single, size, start, stop, shared, claim)
