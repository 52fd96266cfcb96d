# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Direct N-d correlation for float32/float64, bit-identical to scipy.signal.correlate's direct
method (``_sigtools._correlateND``).

Every computation here is a 'valid' correlation of a frame with a kernel: for 'same' and 'full'
the frame is the image zero-padded the way scipy pads it (``padded``).  The public, validating
wrappers are ``cnnative.signal.correlate`` / ``convolve``; this module re-checks every
precondition it relies on for memory safety, so no Python caller can make it read or write out
of bounds.
"""
cimport numpy as cnp
import numpy as np
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from libc.stdint cimport int64_t

from _common cimport (ANY_FLOAT, C_ORDER, NONEMPTY, WRITEABLE, check_array, claimed_work,
                      element_step, floating, next_guided_piece)
from _rounding cimport (cn_fused_available, cn_rounding, fast_path_rounding, rounding_patterns,
                       set_rounding_of_module)
from _simd cimport (CN_SIMD_AVX2, CN_SIMD_AVX512, CN_SIMD_SCALAR, CN_SIMD_VEC128, cn_idx,
                    cn_simd_name, set_simd_cap_of_module, simd_info_of_module)

cnp.import_array()

cdef extern from "corr_nd_simd.h" nogil:
    void cn_corr_nd_f32(const float *frame, cn_idx row_stride, const cn_idx *plane_off,
                        cn_idx planes, float *out, cn_idx out_stride, cn_idx out_rows,
                        cn_idx out_cols, const float *coef, cn_idx kernel_rows,
                        cn_idx taps_per_row)
    void cn_corr_nd_f64(const double *frame, cn_idx row_stride, const cn_idx *plane_off,
                        cn_idx planes, double *out, cn_idx out_stride, cn_idx out_rows,
                        cn_idx out_cols, const double *coef, cn_idx kernel_rows,
                        cn_idx taps_per_row)


# Output size of the public functions (cnnative.signal maps scipy's names to these).
cpdef enum Mode:
    MODE_VALID = 0
    MODE_SAME = 1
    MODE_FULL = 2


# NumPy's own limit on dimensions (NPY_MAXDIMS in NumPy 2).
cdef enum:
    MAX_DIMS = 64


SIMD_LEVEL_NAMES = {CN_SIMD_SCALAR: "scalar", CN_SIMD_VEC128: cn_simd_name(CN_SIMD_VEC128).decode(),
                    CN_SIMD_AVX2: "avx2", CN_SIMD_AVX512: "avx512f"}


def simd_info():
    """(detected, active) instruction-set names of the N-d correlation kernels."""
    return simd_info_of_module()


# How the kernels round each multiply-add (rounding.h): cnnative.signal probes scipy and sets it
# before its first float call.
ROUNDING_PATTERNS = rounding_patterns()


def rounding():
    """The rounding this module's N-d correlation kernels follow (a value of ROUNDING_PATTERNS)."""
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


cdef struct Problem:
    # The frame, kernel and output as ndim >= 2 arrays (a 1-D problem gets a leading axis of
    # length 1).  Frame steps are in elements and may be negative or zero; its last axis has
    # step 1.  The output is C-contiguous.
    int ndim
    cn_idx frame_step[MAX_DIMS]
    cn_idx kernel_shape[MAX_DIMS]
    cn_idx out_shape[MAX_DIMS]
    cn_idx planes          # kernel planes: one per index of the axes before the last two
    cn_idx rows            # output rows: one per index of all the axes but the last
    cn_idx row_planes      # output rows per plane of the output (its second-to-last length)


cdef int _describe(Problem *p, cnp.ndarray frame, cnp.ndarray kernel) except -1:
    """Fills p from a checked frame and kernel (same ndim and dtype, non-empty); ValueError
    unless the kernel fits inside the frame in every axis and the frame's last axis is
    unit-step."""
    cdef int ndim = cnp.PyArray_NDIM(frame), lead = 2 - ndim if ndim < 2 else 0, d
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(frame), length, k
    if ndim > MAX_DIMS:
        raise ValueError(f"at most {MAX_DIMS} dimensions")
    p.ndim = ndim + lead
    for d in range(lead):  # only a 1-D problem has one: a single row
        p.frame_step[d], p.kernel_shape[d], p.out_shape[d] = 0, 1, 1
    for d in range(ndim):
        length, k = cnp.PyArray_DIM(frame, d), cnp.PyArray_DIM(kernel, d)
        if k > length:
            raise ValueError(f"the kernel must fit inside the frame; axis {d} has {k} > {length}")
        p.frame_step[lead + d] = element_step(cnp.PyArray_STRIDE(frame, d), itemsize, length)
        p.kernel_shape[lead + d] = k
        p.out_shape[lead + d] = length - k + 1
    if p.out_shape[p.ndim - 1] > 1 or p.kernel_shape[p.ndim - 1] > 1:
        if p.frame_step[p.ndim - 1] != 1:
            raise ValueError("the frame's last axis must be contiguous")
    else:
        p.frame_step[p.ndim - 1] = 1  # a single column: never stepped along
    p.planes, p.rows = 1, 1
    for d in range(p.ndim - 2):
        p.planes *= p.kernel_shape[d]
    for d in range(p.ndim - 1):
        p.rows *= p.out_shape[d]
    p.row_planes = p.out_shape[p.ndim - 2]
    return 0


cdef void _rows(const floating *frame, const Problem *p, const cn_idx *plane_off,
                const floating *coef, floating *out, Py_ssize_t first,
                Py_ssize_t last) noexcept nogil:
    """Output rows [first, last) (row r: the C-order index over all axes but the last)."""
    cdef Py_ssize_t r = first, count, rest, offset, row_in_plane
    cdef int d
    cdef cn_idx cols = p.out_shape[p.ndim - 1]
    while r < last:
        row_in_plane = r % p.row_planes
        count = min(last - r, p.row_planes - row_in_plane)
        # The frame offset of the row's first window: its output index times the frame steps.
        offset = row_in_plane * p.frame_step[p.ndim - 2]
        rest = r // p.row_planes
        d = p.ndim - 3
        while d >= 0:
            offset += (rest % p.out_shape[d]) * p.frame_step[d]
            rest = rest // p.out_shape[d]
            d -= 1
        if floating is float:
            cn_corr_nd_f32(frame + offset, p.frame_step[p.ndim - 2], plane_off, p.planes,
                           out + r * cols, cols, count, cols, coef,
                           p.kernel_shape[p.ndim - 2], p.kernel_shape[p.ndim - 1])
        else:
            cn_corr_nd_f64(frame + offset, p.frame_step[p.ndim - 2], plane_off, p.planes,
                           out + r * cols, cols, count, cols, coef,
                           p.kernel_shape[p.ndim - 2], p.kernel_shape[p.ndim - 1])
        r += count


cdef int _correlate_claimed(const floating *frame, const Problem *p, const floating *coef,
                            floating *out, Py_ssize_t start, Py_ssize_t stop, int64_t *counter,
                            Py_ssize_t claim, Py_ssize_t parts) noexcept nogil:
    """Builds the plane offsets, then computes pieces of output rows [start, stop) claimed
    from counter until none is left.  Returns 0, or -1 when memory ran out."""
    cdef cn_idx *plane_off = <cn_idx *> malloc(p.planes * sizeof(cn_idx))
    cdef Py_ssize_t q, rest, offset, first, last
    cdef int d
    if plane_off == NULL:
        return -1
    for q in range(p.planes):
        rest, offset = q, 0
        d = p.ndim - 3
        while d >= 0:
            offset += (rest % p.kernel_shape[d]) * p.frame_step[d]
            rest = rest // p.kernel_shape[d]
            d -= 1
        plane_off[q] = offset
    while next_guided_piece(counter, claim, parts, start, stop, &first, &last):
        _rows(frame, p, plane_off, coef, out, first, last)
    free(plane_off)
    return 0


cdef int _copy_kernel(floating *coef, const floating *kernel, const cn_idx *shape,
                      const cn_idx *step, int ndim, bint flip) noexcept nogil:
    """The kernel's elements in C order (reversed in every axis with flip: convolution)."""
    cdef cn_idx index[MAX_DIMS]
    cdef Py_ssize_t total = 1, t, offset
    cdef int d
    for d in range(ndim):
        index[d] = 0
        total *= shape[d]
    for t in range(total):
        offset = 0
        for d in range(ndim):
            offset += (shape[d] - 1 - index[d] if flip else index[d]) * step[d]
        coef[t] = kernel[offset]
        d = ndim - 1
        while d >= 0:  # the next index in C order
            index[d] += 1
            if index[d] < shape[d]:
                break
            index[d] = 0
            d -= 1
    return 0


cdef object _run(cnp.ndarray frame, cnp.ndarray kernel, const Problem *p, bint flip,
                 cnp.ndarray out, Py_ssize_t start, Py_ssize_t stop, int64_t *counter,
                 Py_ssize_t claim, Py_ssize_t parts):
    cdef int ndim = cnp.PyArray_NDIM(kernel), d, status = 0
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(kernel), taps = 1
    cdef cn_idx shape[MAX_DIMS]
    cdef cn_idx step[MAX_DIMS]
    for d in range(ndim):
        shape[d] = cnp.PyArray_DIM(kernel, d)
        step[d] = element_step(cnp.PyArray_STRIDE(kernel, d), itemsize, shape[d])
        # A zero-stride kernel can be larger than memory; its copy must not overflow size_t.
        if shape[d] > (<Py_ssize_t> 1 << 40) // taps:
            raise MemoryError("kernel too large to copy")
        taps *= shape[d]
    cdef void *coef = malloc(taps * itemsize)
    if coef == NULL:
        raise MemoryError("out of memory in correlate_nd")
    if cnp.PyArray_TYPE(frame) == cnp.NPY_FLOAT32:
        with nogil:
            _copy_kernel(<float *> coef, <const float *> cnp.PyArray_DATA(kernel), shape, step,
                         ndim, flip)
            status = _correlate_claimed(<const float *> cnp.PyArray_DATA(frame), p,
                                        <const float *> coef, <float *> cnp.PyArray_DATA(out),
                                        start, stop, counter, claim, parts)
    else:
        with nogil:
            _copy_kernel(<double *> coef, <const double *> cnp.PyArray_DATA(kernel), shape, step,
                         ndim, flip)
            status = _correlate_claimed(<const double *> cnp.PyArray_DATA(frame), p,
                                        <const double *> coef, <double *> cnp.PyArray_DATA(out),
                                        start, stop, counter, claim, parts)
    free(coef)
    if status != 0:
        raise MemoryError("out of memory in correlate_nd")
    return out


cdef tuple _check_pair(cnp.ndarray frame, cnp.ndarray kernel):
    cdef int ndim = cnp.PyArray_NDIM(frame)
    if ndim < 1:
        raise ValueError("frame must have at least one dimension")
    check_array(frame, "frame", ndim, ANY_FLOAT, NONEMPTY)
    check_array(kernel, "kernel", ndim, cnp.PyArray_TYPE(frame), NONEMPTY)
    return tuple(frame.shape[d] - kernel.shape[d] + 1 for d in range(ndim))


def correlate_valid(cnp.ndarray frame not None, cnp.ndarray kernel not None, bint flip,
                    cnp.ndarray out=None, Py_ssize_t start=0, object stop=None,
                    object counter=None, Py_ssize_t claim=1, Py_ssize_t parts=0):
    """out = scipy-order 'valid' correlation of frame with kernel (flip: kernel reversed in
    every axis, i.e. convolution).

    frame, kernel: same ndim (>= 1), non-empty, both float32 or both float64, the kernel no
    larger than the frame in any axis; the frame's last axis unit-step (other axes and the
    kernel: any strides).  Output shape frame.shape - kernel.shape + 1.
    Without ``out``, returns a new C-contiguous array holding all of it (start, stop and
    counter must then keep their defaults).  With ``out`` (C-contiguous, writeable, the
    inputs' dtype and the output's shape), writes output rows [start, stop) into it (a row:
    one index of all axes but the last, in C order; stop None: to the end) and returns it;
    ``counter`` (a 1-D int64 array shared by the threads of one call, counter[0] = 0 at first)
    shares those rows among the calls of several threads, which claim ``claim`` rows at a
    time, or with ``parts`` >= 1 pieces of 1/parts of the rows left, at least ``claim`` (long
    runs first, short ones last).  Each output element has the same value whichever call
    computes it.  Releases the GIL.
    """
    out_shape = _check_pair(frame, kernel)
    cdef int typenum = cnp.PyArray_TYPE(frame)
    cdef Problem p
    _describe(&p, frame, kernel)
    cdef Py_ssize_t row_stop = p.rows if stop is None else stop
    if out is None:
        # A new array is returned whole: no part of it may be left uninitialised.
        if start != 0 or row_stop != p.rows or counter is not None:
            raise ValueError("without out, all rows are computed: start, stop and counter "
                             "must be left out")
        out = np.empty(out_shape, frame.dtype)
    else:
        check_array(out, "out", cnp.PyArray_NDIM(frame), typenum, C_ORDER | WRITEABLE,
                    out_shape)
    cdef int64_t unshared = 0
    if parts < 0:
        raise ValueError(f"parts must be >= 0, got {parts}")
    cdef int64_t *shared = claimed_work(counter, &claim, &unshared, start, row_stop, p.rows,
                                         "rows")
    return _run(frame, kernel, &p, flip, out, start, row_stop, shared, claim, parts)


cdef void _pad(const char *src, const cn_idx *src_shape, const cn_idx *src_step,
               char *dst, const cn_idx *dst_shape, const cn_idx *dst_size,
               const cn_idx *before, int d, int ndim, Py_ssize_t itemsize) noexcept nogil:
    """Copies the block of src at axis d into dst (C-contiguous; dst_size[d] bytes per index
    of axis d) at offset before, zeros around it."""
    cdef cn_idx i, lo = before[d], hi = before[d] + src_shape[d]
    cdef cn_idx j
    if lo > 0:
        memset(dst, 0, lo * dst_size[d])
    if hi < dst_shape[d]:
        memset(dst + hi * dst_size[d], 0, (dst_shape[d] - hi) * dst_size[d])
    if d == ndim - 1:
        if src_step[d] == itemsize:
            memcpy(dst + lo * itemsize, src, src_shape[d] * itemsize)
        else:
            for j in range(src_shape[d]):
                memcpy(dst + (lo + j) * itemsize, src + j * src_step[d], itemsize)
        return
    for i in range(src_shape[d]):
        _pad(src + i * src_step[d], src_shape, src_step, dst + (lo + i) * dst_size[d],
             dst_shape, dst_size, before, d + 1, ndim, itemsize)


cdef cnp.ndarray _padded(cnp.ndarray image, const cn_idx *before, const cn_idx *after):
    """A new C-contiguous array: image with before[d] zeros ahead of it and after[d] behind it
    in axis d (both >= 0, checked by the callers)."""
    cdef int ndim = cnp.PyArray_NDIM(image), d
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(image)
    cdef cn_idx src_shape[MAX_DIMS]
    cdef cn_idx src_step[MAX_DIMS]
    cdef cn_idx dst_size[MAX_DIMS]
    cdef cn_idx dst_shape[MAX_DIMS]
    for d in range(ndim):
        src_shape[d] = cnp.PyArray_DIM(image, d)
        src_step[d] = cnp.PyArray_STRIDE(image, d)
        dst_shape[d] = src_shape[d] + before[d] + after[d]
    # np.empty refuses shapes beyond memory with ValueError or MemoryError; the byte sizes
    # below are then products of an existing array's dimensions.
    cdef cnp.ndarray frame = np.empty(tuple(dst_shape[d] for d in range(ndim)), image.dtype)
    cdef cn_idx size = itemsize
    d = ndim - 1
    while d >= 0:
        dst_size[d] = size
        size *= dst_shape[d]
        d -= 1
    if cnp.PyArray_SIZE(frame) == 0:
        return frame
    with nogil:
        _pad(<const char *> cnp.PyArray_DATA(image), src_shape, src_step,
             <char *> cnp.PyArray_DATA(frame), dst_shape, dst_size, before, 0, ndim,
             itemsize)
    return frame


def padded(cnp.ndarray image not None, tuple before not None, tuple after not None):
    """A new C-contiguous array of image's dtype: image with before[d] zeros ahead of it and
    after[d] zeros behind it in axis d.  image: float32 or float64, any strides, >= 1-D."""
    cdef int ndim = cnp.PyArray_NDIM(image), d
    if ndim < 1:
        raise ValueError("image must have at least one dimension")
    check_array(image, "image", ndim, ANY_FLOAT)
    if len(before) != ndim or len(after) != ndim:
        raise ValueError(f"before and after need {ndim} entries each")
    cdef cn_idx lo[MAX_DIMS]
    cdef cn_idx hi[MAX_DIMS]
    for d in range(ndim):
        lo[d], hi[d] = before[d], after[d]
        if lo[d] < 0 or hi[d] < 0 or lo[d] > (<cn_idx> 1 << 40) or hi[d] > (<cn_idx> 1 << 40):
            raise ValueError("padding must be in [0, 2**40]")
    return _padded(image, lo, hi)


cdef int _mode_code(object mode) noexcept:
    if mode == "full":
        return MODE_FULL
    if mode == "same":
        return MODE_SAME
    if mode == "valid":
        return MODE_VALID
    return -1


cdef bint _plain_float_array(object a, int typenum, int ndim) noexcept:
    if not (cnp.PyArray_CheckExact(a) and cnp.PyArray_NDIM(<cnp.ndarray> a) == ndim
            and cnp.PyArray_TYPE(<cnp.ndarray> a) == typenum
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray> a)
            and cnp.PyArray_ISALIGNED(<cnp.ndarray> a)):
        return False
    cdef int d
    for d in range(ndim):
        if cnp.PyArray_DIM(<cnp.ndarray> a, d) < 1:
            return False
    return True


def correlate_small(object in1, object in2, object mode, object method, bint flip,
                    double max_work, double max_auto_work):
    """The whole of cnnative.signal's correlate/convolve for the common small call, or None.

    Applies when in1 and in2 are non-empty ndarrays (not subclasses) of one ndim (1..64) and
    one native-order, aligned dtype float32 or float64, mode is a str of scipy's spellings,
    scipy would not swap the inputs ('valid': in2 fits in in1; 'full': in2 has no more
    elements than in1), and the output takes at most ``max_work`` multiply-adds with method
    'direct' (``max_auto_work`` with 'auto', below which direct always wins); then returns the
    result, computed on the calling thread.  Otherwise returns None, having changed nothing:
    the caller takes the general path, which checks everything and reports errors.  Also None
    while the rounding is undecided or scipy's (see rounding.h).
    """
    cdef int typenum, ndim, d, mode_code
    cdef double bound
    if not fast_path_rounding():
        return None
    if type(method) is not str or not cnp.PyArray_CheckExact(in1):
        return None
    if method == "direct":
        bound = max_work
    elif method == "auto":
        bound = max_auto_work
    else:
        return None
    typenum = cnp.PyArray_TYPE(<cnp.ndarray> in1)
    ndim = cnp.PyArray_NDIM(<cnp.ndarray> in1)
    if (typenum != cnp.NPY_FLOAT64 and typenum != cnp.NPY_FLOAT32) or ndim < 1:
        return None
    if not (_plain_float_array(in1, typenum, ndim) and _plain_float_array(in2, typenum, ndim)):
        return None
    if type(mode) is not str:
        return None
    mode_code = _mode_code(mode)
    if mode_code < 0:
        return None
    cdef cnp.ndarray image = <cnp.ndarray> in1, kernel = <cnp.ndarray> in2
    cdef cn_idx before[MAX_DIMS]
    cdef cn_idx after[MAX_DIMS]
    cdef double work = 1.0
    cdef cn_idx n, k
    for d in range(ndim):
        n, k = cnp.PyArray_DIM(image, d), cnp.PyArray_DIM(kernel, d)
        if mode_code == MODE_VALID:
            if k > n:
                return None  # swapped or refused: the general path knows scipy's rule
            before[d] = after[d] = 0
            work *= (n - k + 1) * (<double> k)
        elif mode_code == MODE_SAME:
            before[d] = k // 2
            after[d] = k - 1 - k // 2
            work *= n * (<double> k)
        else:
            before[d] = after[d] = k - 1
            work *= (n + k - 1) * (<double> k)
    if work > bound:
        return None
    if mode_code == MODE_FULL and cnp.PyArray_SIZE(kernel) > cnp.PyArray_SIZE(image):
        return None  # scipy swaps these
    cdef cnp.ndarray frame = image
    if mode_code != MODE_VALID or (cnp.PyArray_STRIDE(image, ndim - 1)
                                   != cnp.PyArray_ITEMSIZE(image)
                                   and cnp.PyArray_DIM(image, ndim - 1) > 1):
        frame = _padded(image, before, after)
    cdef Problem p
    _describe(&p, frame, kernel)
    cdef cnp.ndarray out = np.empty(tuple(frame.shape[d] - kernel.shape[d] + 1
                                          for d in range(ndim)), image.dtype)
    cdef int64_t unshared = 0
    return _run(frame, kernel, &p, flip, out, 0, p.rows, &unshared, p.rows, 0)
