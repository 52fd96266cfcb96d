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
from libc.stdint cimport SIZE_MAX

from _common cimport ANY_FLOAT, NONEMPTY, check_array, element_step, floating, symmetric_index, wrap_index
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


def set_simd_cap(int level):
    """Limit the kernels to the variants up to ``level`` (0 scalar .. 3 avx512f); returns the old cap.

    This module's own cap (each kernel module has one).  Exists so tests can check that every
    compiled variant gives identical results.
    """
    return set_simd_cap_of_module(level)


cdef int _pad_and_correlate(floating *image, Py_ssize_t height, Py_ssize_t width,
                            Py_ssize_t row_step, Py_ssize_t col_step,
                            const floating *kernel, Py_ssize_t kernel_rows, Py_ssize_t kernel_cols,
                            Py_ssize_t kernel_row_step, Py_ssize_t kernel_col_step,
                            floating *out, Py_ssize_t out_rows, Py_ssize_t out_cols,
                            Py_ssize_t top, Py_ssize_t left, bint flip, bint direct_image,
                            int boundary, floating fillvalue) noexcept nogil:
    """Builds the padded image (unless ``direct_image``) and the tap table, then runs the kernel.

    Steps are in elements.  Returns 0, or -1 when memory ran out.
    """
    cdef Py_ssize_t padded_rows = out_rows + kernel_rows - 1
    cdef Py_ssize_t padded_cols = out_cols + kernel_cols - 1
    cdef Py_ssize_t taps = kernel_rows * kernel_cols
    cdef floating *padded = NULL
    cdef Py_ssize_t *col_source = NULL
    cdef floating *coef = <floating *> malloc(taps * sizeof(floating))
    cdef cn_idx *coloff = <cn_idx *> malloc(kernel_cols * sizeof(cn_idx))
    cdef Py_ssize_t i, j, t, padded_stride
    cdef int status = -1

    if direct_image:
        padded = image
        padded_stride = row_step
    else:
        padded_stride = padded_cols
        padded = <floating *> malloc(padded_rows * padded_cols * sizeof(floating))
        col_source = <Py_ssize_t *> malloc(padded_cols * sizeof(Py_ssize_t))

    if coef != NULL and coloff != NULL and padded != NULL and (direct_image or col_source != NULL):
        if not direct_image:
            _fill_padded(image, height, width, row_step, col_step, padded, padded_rows,
                         padded_cols, top, left, boundary, fillvalue, col_source)
        # scipy visits kernel taps row by row in ascending order; for convolution the image is
        # walked backwards, which in padded coordinates means mirrored rows (the kernel's flip
        # flag) and mirrored columns (coloff).
        t = 0
        for i in range(kernel_rows):
            for j in range(kernel_cols):
                coef[t] = kernel[i * kernel_row_step + j * kernel_col_step]
                t += 1
        for j in range(kernel_cols):
            coloff[j] = kernel_cols - 1 - j if flip else j
        if floating is float:
            cn_corr_f32(padded, padded_stride, out, out_cols, out_rows, out_cols, coef, coloff,
                        kernel_rows, kernel_cols, flip)
        else:
            cn_corr_f64(padded, padded_stride, out, out_cols, out_rows, out_cols, coef, coloff,
                        kernel_rows, kernel_cols, flip)
        status = 0

    free(coef)
    free(coloff)
    free(col_source)
    if not direct_image:
        free(padded)
    return status


cdef void _fill_padded(const floating *image, Py_ssize_t height, Py_ssize_t width,
                       Py_ssize_t row_step, Py_ssize_t col_step, floating *padded,
                       Py_ssize_t padded_rows, Py_ssize_t padded_cols, Py_ssize_t top,
                       Py_ssize_t left, int boundary, floating fillvalue,
                       Py_ssize_t *col_source) noexcept nogil:
    """Copies image into the padded frame, extending it per boundary.

    col_source is scratch space for padded_cols entries.
    """
    cdef Py_ssize_t i, j, k, src_row
    cdef floating *dst
    cdef const floating *src
    # Source column of each padded column, or -1 where the fill value goes.
    for j in range(padded_cols):
        k = j - left
        if 0 <= k < width:
            col_source[j] = k
        elif boundary == BOUNDARY_SYMM:
            col_source[j] = symmetric_index(k, width)
        elif boundary == BOUNDARY_WRAP:
            col_source[j] = wrap_index(k, width)
        else:
            col_source[j] = -1
    for i in range(padded_rows):
        dst = padded + i * padded_cols
        src_row = i - top
        if not 0 <= src_row < height:
            if boundary == BOUNDARY_SYMM:
                src_row = symmetric_index(src_row, height)
            elif boundary == BOUNDARY_WRAP:
                src_row = wrap_index(src_row, height)
            else:
                for j in range(padded_cols):
                    dst[j] = fillvalue
                continue
        src = image + src_row * row_step
        # Only the margins need the column map; the image part of the row is a straight copy,
        # which is most of the padding time for small kernels.
        for j in range(left):
            dst[j] = fillvalue if col_source[j] < 0 else src[col_source[j] * col_step]
        if col_step == 1:
            memcpy(dst + left, src, width * sizeof(floating))
        else:
            for j in range(width):
                dst[left + j] = src[j * col_step]
        for j in range(left + width, padded_cols):
            dst[j] = fillvalue if col_source[j] < 0 else src[col_source[j] * col_step]


cdef float _to_float32(double value) except? -1:
    # A C cast from double to float is only defined within float's range; beyond it NumPy's
    # conversion gives the IEEE result (rounding to FLT_MAX or overflowing to inf) quietly here.
    if fabs(value) <= FLT_MAX or value != value or fabs(value) == float("inf"):
        return <float> value
    with np.errstate(over="ignore"):
        return np.float32(value)


def correlate_direct(cnp.ndarray image not None, cnp.ndarray kernel not None, bint flip,
                     int mode, int boundary, double fillvalue):
    """out = scipy-order correlation (flip=False) or convolution (flip=True) of image with kernel.

    image, kernel: 2-D, non-empty, both float32 or both float64, any strides.
    fillvalue: converted to the arrays' dtype as NumPy converts (out-of-range becomes inf).
    mode: a Mode, boundary: a Boundary (or their int values).  In valid mode the
    kernel must fit inside the image (the caller swaps the inputs as scipy does).
    Returns a new C-contiguous array of the inputs' dtype.
    """
    check_array(image, "image", 2, ANY_FLOAT, NONEMPTY)
    cdef int typenum = cnp.PyArray_TYPE(image)
    check_array(kernel, "kernel", 2, typenum, NONEMPTY)
    if (mode != MODE_VALID and mode != MODE_SAME and mode != MODE_FULL) or (
            boundary != BOUNDARY_FILL and boundary != BOUNDARY_SYMM and boundary != BOUNDARY_WRAP):
        raise ValueError("unknown mode or boundary code")
    cdef Py_ssize_t height = cnp.PyArray_DIM(image, 0), width = cnp.PyArray_DIM(image, 1)
    cdef Py_ssize_t kernel_rows = cnp.PyArray_DIM(kernel, 0), kernel_cols = cnp.PyArray_DIM(kernel, 1)

    cdef Py_ssize_t out_rows, out_cols, top, left
    if mode == MODE_VALID:
        if kernel_rows > height or kernel_cols > width:
            raise ValueError("in valid mode the kernel must fit inside the image")
        out_rows, out_cols, top, left = height - kernel_rows + 1, width - kernel_cols + 1, 0, 0
    elif mode == MODE_SAME:
        out_rows, out_cols = height, width
        # 'same' is centred on 'full': correlation starts at K//2, convolution at (K-1)//2,
        # which puts the image (K-1)//2 resp. K//2 into the padded frame.
        top = kernel_rows // 2 if flip else (kernel_rows - 1) // 2
        left = kernel_cols // 2 if flip else (kernel_cols - 1) // 2
    else:
        out_rows, out_cols = height + kernel_rows - 1, width + kernel_cols - 1
        top, left = kernel_rows - 1, kernel_cols - 1

    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(image)
    cdef Py_ssize_t row_step = element_step(cnp.PyArray_STRIDE(image, 0), itemsize, height)
    cdef Py_ssize_t col_step = element_step(cnp.PyArray_STRIDE(image, 1), itemsize, width)
    cdef Py_ssize_t kernel_row_step = element_step(cnp.PyArray_STRIDE(kernel, 0), itemsize, kernel_rows)
    cdef Py_ssize_t kernel_col_step = element_step(cnp.PyArray_STRIDE(kernel, 1), itemsize, kernel_cols)
    cdef Py_ssize_t padded_rows = out_rows + kernel_rows - 1
    cdef Py_ssize_t padded_cols = out_cols + kernel_cols - 1
    if padded_rows > (<Py_ssize_t> (SIZE_MAX // 2)) // padded_cols // itemsize:
        raise MemoryError("padded image too large")
    # Valid mode reads the caller's rows in place when each row is contiguous: every read stays
    # on an element of the array, whatever the row step.
    cdef bint direct_image = (mode == MODE_VALID and col_step == 1)

    cdef cnp.npy_intp out_shape[2]
    out_shape[0], out_shape[1] = out_rows, out_cols
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, out_shape, typenum, 0)
    cdef int status
    cdef float fill32 = _to_float32(fillvalue)
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            status = _pad_and_correlate(<float *> cnp.PyArray_DATA(image), height, width,
                                        row_step, col_step,
                                        <const float *> cnp.PyArray_DATA(kernel), kernel_rows,
                                        kernel_cols, kernel_row_step, kernel_col_step,
                                        <float *> cnp.PyArray_DATA(out), out_rows, out_cols,
                                        top, left, flip, direct_image, boundary, fill32)
    else:
        with nogil:
            status = _pad_and_correlate(<double *> cnp.PyArray_DATA(image), height, width,
                                        row_step, col_step,
                                        <const double *> cnp.PyArray_DATA(kernel), kernel_rows,
                                        kernel_cols, kernel_row_step, kernel_col_step,
                                        <double *> cnp.PyArray_DATA(out), out_rows, out_cols,
                                        top, left, flip, direct_image, boundary, fillvalue)
    if status != 0:
        raise MemoryError("out of memory in correlate_direct")
    return out
