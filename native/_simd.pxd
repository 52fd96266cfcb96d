# The run-time dispatch of simd_dispatch.h as seen from Cython, and the one implementation of
# the simd_info() / set_simd_cap() pair that every kernel module with SIMD variants exposes.
# The cap is a static of the header, so each module that cimports this gets its own: these
# helpers, inlined into that module, read and lower that module's cap only.

cdef extern from "simd_dispatch.h" nogil:
    ctypedef Py_ssize_t cn_idx
    enum:
        CN_SIMD_SCALAR, CN_SIMD_VEC128, CN_SIMD_AVX2, CN_SIMD_AVX512
    int cn_simd_level()
    int cn_simd_active()
    const char *cn_simd_name(int level)
    int cn_simd_cap


cdef inline tuple simd_info_of_module():
    """(detected, active) instruction-set names."""
    return cn_simd_name(cn_simd_level()).decode(), cn_simd_name(cn_simd_active()).decode()


cdef inline int set_simd_cap_of_module(int level) except -1:
    """Caps the module's kernels at ``level``; returns the old cap."""
    global cn_simd_cap
    if not CN_SIMD_SCALAR <= level <= CN_SIMD_AVX512:
        raise ValueError(f"level must be in [0, 3], got {level}")
    cdef int old = cn_simd_cap
    cn_simd_cap = level
    return old
