# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Direct 2-D correlation and convolution for float32/float64, bit-identical to scipy.signal.

The public, validating wrappers live in ``cnnative.signal``; this module re-checks every
precondition it relies on for memory safety, so no Python caller can make it read or write
out of bounds.
"""
cimport numpy as cnp
import numpy as np
from libc.stdlib cimport free, malloc
from libc.float cimport FLT_MAX
from libc.math cimport fabs
from libc.string cimport memcpy
from libc.stdint cimport SIZE_MAX, int64_t

from _common cimport (ANY_FLOAT, C_ORDER, NONEMPTY, WRITEABLE, check_array, claimed_work,
                      element_step, floating, next_guided_piece, symmetric_index, wrap_index)
from _rounding cimport (cn_fused_available, cn_rounding, fast_path_rounding, rounding_patterns,
                       set_rounding_of_module)
from _simd cimport (CN_SIMD_AVX2, CN_SIMD_AVX512, CN_SIMD_SCALAR, CN_SIMD_VEC128, cn_idx,
                    cn_simd_name, set_simd_cap_of_module, simd_info_of_module)

cnp.import_array()

cdef extern from "corr_simd.h" nogil:
    void cn_corr_f32(const float *image, cn_idx image_stride, float *out, cn_idx out_stride,
                     cn_idx out_rows, cn_idx out_cols, const float *coef, const cn_idx *coloff,
                     cn_idx kernel_rows, cn_idx taps_per_row, int flip)
    void cn_corr_f64(const double *image, cn_idx image_stride, double *out, cn_idx out_stride,
                     cn_idx out_rows, cn_idx out_cols, const double *coef, const cn_idx *coloff,
                     cn_idx kernel_rows, cn_idx taps_per_row, int flip)


# Output size of correlate_direct (cnnative.signal maps scipy's names to these).
cpdef enum Mode:
    MODE_VALID = 0
    MODE_SAME = 1
    MODE_FULL = 2


# How correlate_direct extends the image beyond its edges.
cpdef enum Boundary:
    BOUNDARY_FILL = 0
    BOUNDARY_SYMM = 1
    BOUNDARY_WRAP = 2


SIMD_LEVEL_NAMES = {CN_SIMD_SCALAR: "scalar", CN_SIMD_VEC128: cn_simd_name(CN_SIMD_VEC128).decode(),
                    CN_SIMD_AVX2: "avx2", CN_SIMD_AVX512: "avx512f"}


def simd_info():
    """(detected, active) instruction-set names of the correlation kernels."""
    return simd_info_of_module()


# How the kernels round each multiply-add (rounding.h): cnnative.signal probes scipy and sets it
# before its first float call.
ROUNDING_PATTERNS = rounding_patterns()


def rounding():
    """The rounding this module's correlation kernels follow (a value of ROUNDING_PATTERNS)."""
    return cn_rounding


def fused_available():
    """Whether the fused variants can run on this CPU (on x86 they need FMA instructions)."""
    return bool(cn_fused_available())


def set_rounding(int rounding):
    """Sets the rounding (a value of ROUNDING_PATTERNS); returns the old one.

    'fused' raises ValueError where fused_available() is false.  Meant to be set once per
    process, before the kernels run (cnnative.signal does), and by tests.
    """
    return set_rounding_of_module(rounding)


def set_simd_cap(int level):
    """Limit the kernels to the variants up to ``level`` (0 scalar .. 3 avx512f); returns the old cap.

    This module's own cap (each kernel module has one).  Exists so tests can check that every
    compiled variant gives identical results.
    """
    return set_simd_cap_of_module(level)


# Buffered regions are cut into chunks of rows whose padded copy fills about this many bytes
# (at least a few rows, see _plan): small enough to stay in L2 and to come from malloc's free
# lists rather than fresh pages, which a copy of the whole padded image did on every call.
cdef enum:
    BUFFER_BYTES = 65536
    MIN_BUFFER_ROWS = 8


cdef struct Plan:
    # The problem, in elements: image rows are row_step apart, columns col_step.
    Py_ssize_t height, width, row_step, col_step
    Py_ssize_t kernel_rows, kernel_cols, kernel_row_step, kernel_col_step
    Py_ssize_t out_rows, out_cols
    # Where the image sits in the padded frame that scipy's definition extends it to.
    Py_ssize_t top, left
    int boundary
    bint flip
    # Output rows [v_lo, v_hi) x columns [c_lo, c_hi) are computed straight from the image:
    # every window there lies inside it.  Empty (v_lo == v_hi) when nothing is.
    Py_ssize_t v_lo, v_hi, c_lo, c_hi
    # Elements of the buffer a padded copy of a region goes through (0: none needed).
    Py_ssize_t capacity


cdef void _plan(Plan *p, Py_ssize_t itemsize) noexcept nogil:
    """Splits the output into the part read from the image in place and the buffered rest.

    Windows of output (m, n) cover padded rows m .. m + J - 1 and columns n .. n + K - 1, which
    are image rows m - top .. and columns n - left ..; those inside the image in both axes need
    no copy.  The rest (the border rows and columns of 'same' and 'full', everything when
    columns are not contiguous) goes through a small buffer holding a padded copy of just the
    rows and columns a region reads.  Which path computes an output never changes its value:
    each sums the same products in the same order.
    """
    # One AVX-512 vector: a side strip narrower than that would run on scalar code, so the
    # strips are widened to it at the expense of the straight part.
    cdef Py_ssize_t vector = 64 // itemsize
    cdef Py_ssize_t padded_rows = p.out_rows + p.kernel_rows - 1
    cdef Py_ssize_t padded_cols = p.out_cols + p.kernel_cols - 1
    cdef Py_ssize_t lo = p.top, hi = p.top + p.height - p.kernel_rows + 1
    cdef Py_ssize_t first = p.left, last = p.left + p.width - p.kernel_cols + 1
    cdef Py_ssize_t c_lo = 0 if first == 0 else max(first, vector)
    cdef Py_ssize_t c_hi = p.out_cols if last == p.out_cols else min(last, p.out_cols - vector)
    cdef Py_ssize_t budget = BUFFER_BYTES // itemsize, widest, rows
    p.v_lo = p.v_hi = p.c_lo = p.c_hi = 0
    # A frame that fits the buffer anyway is copied whole: one kernel call over full-width rows
    # beats five over the pieces when the call is a few microseconds.
    if (p.col_step == 1 and hi > lo and c_hi > c_lo
            and (c_hi - c_lo >= vector or (c_lo == 0 and c_hi == p.out_cols))
            and (padded_rows * padded_cols > budget or (lo == 0 and hi == p.out_rows
                                                        and c_lo == 0 and c_hi == p.out_cols))):
        p.v_lo, p.v_hi, p.c_lo, p.c_hi = lo, hi, c_lo, c_hi
    if p.v_lo == p.v_hi or p.v_lo > 0 or p.v_hi < p.out_rows:
        widest = padded_cols  # whole rows go through the buffer
    elif p.c_lo == 0 and p.c_hi == p.out_cols:
        p.capacity = 0  # nothing does
        return
    else:
        widest = max(p.c_lo, p.out_cols - p.c_hi) + p.kernel_cols - 1
    # Room for at least kernel_rows padded rows, so every chunk has an output row.
    rows = max(budget // widest, min(MIN_BUFFER_ROWS, p.out_rows) + p.kernel_rows - 1)
    p.capacity = min(rows, padded_rows) * widest


cdef inline void _kernel(const floating *image, Py_ssize_t image_stride, floating *out,
                         Py_ssize_t out_stride, Py_ssize_t rows, Py_ssize_t cols,
                         const floating *coef, const cn_idx *coloff, const Plan *p) noexcept nogil:
    if floating is float:
        cn_corr_f32(image, image_stride, out, out_stride, rows, cols, coef, coloff,
                    p.kernel_rows, p.kernel_cols, p.flip)
    else:
        cn_corr_f64(image, image_stride, out, out_stride, rows, cols, coef, coloff,
                    p.kernel_rows, p.kernel_cols, p.flip)


cdef void _fill(const floating *image, const Plan *p, const Py_ssize_t *margin_source,
                floating fillvalue, floating *buf, Py_ssize_t row_first, Py_ssize_t row_stop,
                Py_ssize_t col_first, Py_ssize_t col_stop) noexcept nogil:
    """Copies padded-frame rows [row_first, row_stop) x columns [col_first, col_stop) to buf.

    margin_source[j] (j < left) and margin_source[j - width] (j >= left + width) give the image
    column of padded column j outside the image, or -1 for the fill value.
    """
    cdef Py_ssize_t i, j, k, stop, src_row
    cdef Py_ssize_t stride = col_stop - col_first, col_step = p.col_step
    cdef floating *dst
    cdef const floating *src
    for i in range(row_first, row_stop):
        dst = buf + (i - row_first) * stride - col_first  # dst[j] for padded column j
        src_row = i - p.top
        if not 0 <= src_row < p.height:
            if p.boundary == BOUNDARY_SYMM:
                src_row = symmetric_index(src_row, p.height)
            elif p.boundary == BOUNDARY_WRAP:
                src_row = wrap_index(src_row, p.height)
            else:
                for j in range(col_first, col_stop):
                    dst[j] = fillvalue
                continue
        src = image + src_row * p.row_step
        j = col_first
        stop = min(col_stop, p.left)
        while j < stop:
            k = margin_source[j]
            dst[j] = fillvalue if k < 0 else src[k * col_step]
            j += 1
        stop = min(col_stop, p.left + p.width)
        if j < stop:
            if col_step == 1:
                memcpy(dst + j, src + (j - p.left), (stop - j) * sizeof(floating))
            else:
                for k in range(j - p.left, stop - p.left):
                    dst[k + p.left] = src[k * col_step]
            j = stop
        while j < col_stop:
            k = margin_source[j - p.width]
            dst[j] = fillvalue if k < 0 else src[k * col_step]
            j += 1


cdef void _buffered(const floating *image, const Plan *p, const floating *coef,
                    const cn_idx *coloff, const Py_ssize_t *margin_source, floating fillvalue,
                    floating *buf, floating *out, Py_ssize_t row_first, Py_ssize_t row_stop,
                    Py_ssize_t col_first, Py_ssize_t col_stop) noexcept nogil:
    """Output rows [row_first, row_stop) x columns [col_first, col_stop) through padded copies
    in buf, as many rows at a time as p.capacity holds (at least one: see _plan)."""
    cdef Py_ssize_t padded_width = col_stop - col_first + p.kernel_cols - 1
    cdef Py_ssize_t chunk = p.capacity // padded_width - (p.kernel_rows - 1)
    cdef Py_ssize_t row = row_first, rows
    while row < row_stop:
        rows = min(chunk, row_stop - row)
        _fill(image, p, margin_source, fillvalue, buf, row, row + rows + p.kernel_rows - 1,
              col_first, col_first + padded_width)
        _kernel(buf, padded_width, out + row * p.out_cols + col_first, p.out_cols, rows,
                col_stop - col_first, coef, coloff, p)
        row += rows


cdef void _compute_rows(const floating *image, const Plan *p, const floating *coef,
                        const cn_idx *coloff, const Py_ssize_t *margin_source,
                        floating fillvalue, floating *buf, floating *out, Py_ssize_t row_first,
                        Py_ssize_t row_stop) noexcept nogil:
    """Output rows [row_first, row_stop), whole."""
    cdef Py_ssize_t lo = max(row_first, p.v_lo), hi = min(row_stop, p.v_hi)
    if lo >= hi:
        _buffered(image, p, coef, coloff, margin_source, fillvalue, buf, out, row_first,
                  row_stop, 0, p.out_cols)
        return
    if row_first < lo:
        _buffered(image, p, coef, coloff, margin_source, fillvalue, buf, out, row_first, lo, 0,
                  p.out_cols)
    # In bounds: rows lo - top .. hi - 1 - top + J - 1 and columns c_lo - left .. c_hi - 1 -
    # left + K - 1 all lie in the image by the choice of [v_lo, v_hi) x [c_lo, c_hi).
    _kernel(image + (lo - p.top) * p.row_step + (p.c_lo - p.left), p.row_step,
            out + lo * p.out_cols + p.c_lo, p.out_cols, hi - lo, p.c_hi - p.c_lo, coef, coloff,
            p)
    if p.c_lo > 0:
        _buffered(image, p, coef, coloff, margin_source, fillvalue, buf, out, lo, hi, 0, p.c_lo)
    if p.c_hi < p.out_cols:
        _buffered(image, p, coef, coloff, margin_source, fillvalue, buf, out, lo, hi, p.c_hi,
                  p.out_cols)
    if hi < row_stop:
        _buffered(image, p, coef, coloff, margin_source, fillvalue, buf, out, hi, row_stop, 0,
                  p.out_cols)


cdef int _correlate_claimed(const floating *image, const Plan *p, const floating *kernel,
                            floating fillvalue, floating *out, Py_ssize_t start,
                            Py_ssize_t stop, int64_t *counter, Py_ssize_t claim,
                            Py_ssize_t parts) noexcept nogil:
    """Builds the tap tables and a buffer, then computes pieces of output rows [start, stop)
    claimed from counter until none is left.  Returns 0, or -1 when memory ran out."""
    cdef Py_ssize_t taps = p.kernel_rows * p.kernel_cols
    cdef Py_ssize_t margins = p.out_cols + p.kernel_cols - 1 - p.width
    # One allocation for all of it; each part starts on a cache line.
    cdef size_t buf_bytes = _round_up(p.capacity * sizeof(floating))
    cdef size_t coef_bytes = _round_up(taps * sizeof(floating))
    cdef size_t coloff_bytes = _round_up(p.kernel_cols * sizeof(cn_idx))
    cdef char *memory = <char *> malloc(buf_bytes + coef_bytes + coloff_bytes
                                        + margins * sizeof(Py_ssize_t) + 64)
    cdef char *aligned
    cdef floating *buf
    cdef floating *coef
    cdef cn_idx *coloff
    cdef Py_ssize_t *margin_source
    cdef Py_ssize_t i, j, t, first, last
    if memory == NULL:
        return -1
    aligned = memory + (64 - (<size_t> memory) % 64) % 64
    buf = <floating *> aligned
    coef = <floating *> (aligned + buf_bytes)
    coloff = <cn_idx *> (aligned + buf_bytes + coef_bytes)
    margin_source = <Py_ssize_t *> (aligned + buf_bytes + coef_bytes + coloff_bytes)
    # scipy visits kernel taps row by row in ascending order; for convolution the image is
    # walked backwards, which in padded coordinates means mirrored rows (the kernel's flip
    # flag) and mirrored columns (coloff).
    t = 0
    for i in range(p.kernel_rows):
        for j in range(p.kernel_cols):
            coef[t] = kernel[i * p.kernel_row_step + j * p.kernel_col_step]
            t += 1
    for j in range(p.kernel_cols):
        coloff[j] = p.kernel_cols - 1 - j if p.flip else j
    for j in range(margins):
        # Padded column j (left of the image) or j + width (right of it).
        t = j - p.left if j < p.left else j + p.width - p.left
        if p.boundary == BOUNDARY_SYMM:
            margin_source[j] = symmetric_index(t, p.width)
        elif p.boundary == BOUNDARY_WRAP:
            margin_source[j] = wrap_index(t, p.width)
        else:
            margin_source[j] = -1
    while next_guided_piece(counter, claim, parts, start, stop, &first, &last):
        _compute_rows(image, p, coef, coloff, margin_source, fillvalue, buf, out, first, last)
    free(memory)
    return 0


cdef inline size_t _round_up(size_t nbytes) noexcept nogil:
    return (nbytes + 63) & ~(<size_t> 63)


cdef float _to_float32(double value) except? -1:
    # A C cast from double to float is only defined within float's range; beyond it NumPy's
    # conversion gives the IEEE result (rounding to FLT_MAX or overflowing to inf) quietly here.
    if fabs(value) <= FLT_MAX or value != value or fabs(value) == float("inf"):
        return <float> value
    with np.errstate(over="ignore"):
        return np.float32(value)


cdef int _setup(Plan *p, cnp.ndarray image, cnp.ndarray kernel, bint flip, int mode,
                int boundary) except -1:
    """Fills p from checked arguments; the output shape is p.out_rows x p.out_cols."""
    if (mode != MODE_VALID and mode != MODE_SAME and mode != MODE_FULL) or (
            boundary != BOUNDARY_FILL and boundary != BOUNDARY_SYMM and boundary != BOUNDARY_WRAP):
        raise ValueError("unknown mode or boundary code")
    cdef Py_ssize_t height = cnp.PyArray_DIM(image, 0), width = cnp.PyArray_DIM(image, 1)
    cdef Py_ssize_t kernel_rows = cnp.PyArray_DIM(kernel, 0), kernel_cols = cnp.PyArray_DIM(kernel, 1)
    if mode == MODE_VALID:
        if kernel_rows > height or kernel_cols > width:
            raise ValueError("in valid mode the kernel must fit inside the image")
        p.out_rows, p.out_cols, p.top, p.left = height - kernel_rows + 1, width - kernel_cols + 1, 0, 0
    elif mode == MODE_SAME:
        p.out_rows, p.out_cols = height, width
        # 'same' is centred on 'full': correlation starts at K//2, convolution at (K-1)//2,
        # which puts the image (K-1)//2 resp. K//2 into the padded frame.
        p.top = kernel_rows // 2 if flip else (kernel_rows - 1) // 2
        p.left = kernel_cols // 2 if flip else (kernel_cols - 1) // 2
    else:
        p.out_rows, p.out_cols = height + kernel_rows - 1, width + kernel_cols - 1
        p.top, p.left = kernel_rows - 1, kernel_cols - 1
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(image)
    p.height, p.width, p.kernel_rows, p.kernel_cols = height, width, kernel_rows, kernel_cols
    p.row_step = element_step(cnp.PyArray_STRIDE(image, 0), itemsize, height)
    p.col_step = element_step(cnp.PyArray_STRIDE(image, 1), itemsize, width)
    p.kernel_row_step = element_step(cnp.PyArray_STRIDE(kernel, 0), itemsize, kernel_rows)
    p.kernel_col_step = element_step(cnp.PyArray_STRIDE(kernel, 1), itemsize, kernel_cols)
    p.boundary, p.flip = boundary, flip
    # Bounds every size computed from these (padded frame, buffer, tables) well inside size_t.
    cdef Py_ssize_t padded_rows = p.out_rows + kernel_rows - 1
    cdef Py_ssize_t padded_cols = p.out_cols + kernel_cols - 1
    if (padded_rows > (<Py_ssize_t> (SIZE_MAX // 4)) // padded_cols // itemsize
            or kernel_rows > (<Py_ssize_t> (SIZE_MAX // 4)) // kernel_cols // itemsize):
        raise MemoryError("padded image too large")
    _plan(p, itemsize)
    return 0


cdef object _run(const Plan *p, cnp.ndarray image, cnp.ndarray kernel, double fillvalue,
                 cnp.ndarray out, Py_ssize_t start, Py_ssize_t stop, int64_t *counter,
                 Py_ssize_t claim, Py_ssize_t parts):
    cdef int status
    cdef float fill32
    if cnp.PyArray_TYPE(image) == cnp.NPY_FLOAT32:
        fill32 = _to_float32(fillvalue)
        with nogil:
            status = _correlate_claimed(<const float *> cnp.PyArray_DATA(image), p,
                                        <const float *> cnp.PyArray_DATA(kernel), fill32,
                                        <float *> cnp.PyArray_DATA(out), start, stop, counter,
                                        claim, parts)
    else:
        with nogil:
            status = _correlate_claimed(<const double *> cnp.PyArray_DATA(image), p,
                                        <const double *> cnp.PyArray_DATA(kernel), fillvalue,
                                        <double *> cnp.PyArray_DATA(out), start, stop, counter,
                                        claim, parts)
    if status != 0:
        raise MemoryError("out of memory in correlate_direct")
    return out


def correlate_direct(cnp.ndarray image not None, cnp.ndarray kernel not None, bint flip,
                     int mode, int boundary, double fillvalue, cnp.ndarray out=None,
                     Py_ssize_t start=0, object stop=None, object counter=None,
                     Py_ssize_t claim=1, Py_ssize_t parts=0):
    """out = scipy-order correlation (flip=False) or convolution (flip=True) of image with kernel.

    image, kernel: 2-D, non-empty, both float32 or both float64, any strides.
    fillvalue: converted to the arrays' dtype as NumPy converts (out-of-range becomes inf).
    mode: a Mode, boundary: a Boundary (or their int values).  In valid mode the
    kernel must fit inside the image (the caller swaps the inputs as scipy does).
    Without ``out``, returns a new C-contiguous array of the inputs' dtype holding all of it
    (start, stop and counter must then keep their defaults).
    With ``out`` (C-contiguous, writeable, the inputs' dtype and the output's shape), writes
    output rows [start, stop) (stop None: to the end) into it and returns it; ``counter`` (a
    1-D int64 array shared by the threads of one call, counter[0] = 0 at first) shares those
    rows among the calls of several threads, which claim ``claim`` rows at a time, or with
    ``parts`` >= 1 pieces of 1/parts of the rows left, at least ``claim`` (long runs first,
    short ones last).  Each output element has the same value whichever call computes it.
    Releases the GIL.
    """
    check_array(image, "image", 2, ANY_FLOAT, NONEMPTY)
    cdef int typenum = cnp.PyArray_TYPE(image)
    check_array(kernel, "kernel", 2, typenum, NONEMPTY)
    cdef Plan p
    _setup(&p, image, kernel, flip, mode, boundary)
    cdef cnp.npy_intp out_shape[2]
    out_shape[0], out_shape[1] = p.out_rows, p.out_cols
    cdef Py_ssize_t row_stop = p.out_rows if stop is None else stop
    if out is None:
        # A new array is returned whole: no part of it may be left uninitialised.
        if start != 0 or row_stop != p.out_rows or counter is not None:
            raise ValueError("without out, all rows are computed: start, stop and counter "
                             "must be left out")
        out = cnp.PyArray_EMPTY(2, out_shape, typenum, 0)
    else:
        check_array(out, "out", 2, typenum, C_ORDER | WRITEABLE, (p.out_rows, p.out_cols))
    cdef int64_t unshared = 0
    if parts < 0:
        raise ValueError(f"parts must be >= 0, got {parts}")
    cdef int64_t *shared = claimed_work(counter, &claim, &unshared, start, row_stop, p.out_rows,
                                         "rows")
    return _run(&p, image, kernel, fillvalue, out, start, row_stop, shared, claim, parts)


cdef int _mode_code(object mode) noexcept:
    if mode == "full":
        return MODE_FULL
    if mode == "same":
        return MODE_SAME
    if mode == "valid":
        return MODE_VALID
    return -1


cdef int _boundary_code(object boundary) noexcept:
    if boundary == "fill" or boundary == "pad":
        return BOUNDARY_FILL
    if boundary == "symm" or boundary == "symmetric":
        return BOUNDARY_SYMM
    if boundary == "wrap" or boundary == "circular":
        return BOUNDARY_WRAP
    return -1


cdef bint _plain_float_array(object a, int typenum) noexcept:
    return (cnp.PyArray_CheckExact(a) and cnp.PyArray_NDIM(<cnp.ndarray> a) == 2
            and cnp.PyArray_TYPE(<cnp.ndarray> a) == typenum
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray> a) and cnp.PyArray_ISALIGNED(<cnp.ndarray> a)
            and cnp.PyArray_DIM(<cnp.ndarray> a, 0) > 0 and cnp.PyArray_DIM(<cnp.ndarray> a, 1) > 0)


def correlate_small(object in1, object in2, object mode, object boundary, object fillvalue,
                    object method, bint flip, double max_work):
    """The whole of cnnative.signal's correlate2d/convolve2d for the common small call, or None.

    Applies when in1 and in2 are non-empty 2-D ndarrays (not subclasses) of one native-order,
    aligned dtype float32 or float64, method is 'direct', mode and boundary are str of scipy's
    spellings, fillvalue is a float or an int of at most 2**53 in magnitude, a 'valid' in2 fits in in1, and the
    output takes at most ``max_work`` multiply-adds; then returns the result, computed on the
    calling thread.  Otherwise returns None, having changed nothing: the caller takes the
    general path, which checks everything and reports errors.  Exists because at 28x28 the
    Python-level checks cost as much as the kernel.  Also None while the rounding is undecided or
    scipy's (see rounding.h).
    """
    cdef int typenum
    if not fast_path_rounding():
        return None
    if type(method) is not str or method != "direct" or not cnp.PyArray_CheckExact(in1):
        return None
    typenum = cnp.PyArray_TYPE(<cnp.ndarray> in1)
    if typenum != cnp.NPY_FLOAT64 and typenum != cnp.NPY_FLOAT32:
        return None
    if not (_plain_float_array(in1, typenum) and _plain_float_array(in2, typenum)):
        return None
    if type(mode) is not str or type(boundary) is not str:
        return None
    cdef int mode_code = _mode_code(mode), boundary_code = _boundary_code(boundary)
    if mode_code < 0 or boundary_code < 0:
        return None
    cdef double fill
    if type(fillvalue) is float:
        fill = fillvalue
    elif type(fillvalue) is int and -9007199254740992 <= fillvalue <= 9007199254740992:
        fill = fillvalue
    else:
        return None
    cdef cnp.ndarray image = <cnp.ndarray> in1, kernel = <cnp.ndarray> in2
    if mode_code == MODE_VALID and (cnp.PyArray_DIM(kernel, 0) > cnp.PyArray_DIM(image, 0)
                                    or cnp.PyArray_DIM(kernel, 1) > cnp.PyArray_DIM(image, 1)):
        return None  # swapped or refused: the general path knows scipy's rule
    cdef Plan p
    _setup(&p, image, kernel, flip, mode_code, boundary_code)
    if (<double> p.out_rows) * p.out_cols * p.kernel_rows * p.kernel_cols > max_work:
        return None
    cdef cnp.npy_intp out_shape[2]
    out_shape[0], out_shape[1] = p.out_rows, p.out_cols
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, out_shape, typenum, 0)
    cdef int64_t unshared = 0
    return _run(&p, image, kernel, fill, out, 0, p.out_rows, &unshared, p.out_rows, 0)
