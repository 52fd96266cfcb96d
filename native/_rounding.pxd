# The rounding setting of rounding.h as seen from Cython, and the one implementation of the
# rounding() / set_rounding() / fused_available() trio that each correlation module exposes.
# The setting is a static of the header, so each module that cimports this gets its own.

cdef extern from "rounding.h" nogil:
    enum:
        CN_ROUNDING_UNDECIDED, CN_ROUNDING_SEPARATE, CN_ROUNDING_FUSED, CN_ROUNDING_SCIPY
    int cn_rounding
    int cn_fused_available()


cdef inline dict rounding_patterns():
    """The values set_rounding takes, by cnnative.signal's names for them."""
    return {"undecided": CN_ROUNDING_UNDECIDED, "separate": CN_ROUNDING_SEPARATE,
            "fused": CN_ROUNDING_FUSED, "scipy": CN_ROUNDING_SCIPY}


cdef inline bint fast_path_rounding() noexcept nogil:
    """Whether the module's own kernels compute float calls (the rounding is decided and not
    scipy's own), so a small-call fast path may take them."""
    return cn_rounding == CN_ROUNDING_SEPARATE or cn_rounding == CN_ROUNDING_FUSED


cdef inline int set_rounding_of_module(int rounding) except -2:
    """Sets the module's rounding; returns the old one.  FUSED raises ValueError where the CPU
    cannot run the fused variants."""
    global cn_rounding
    if not CN_ROUNDING_UNDECIDED <= rounding <= CN_ROUNDING_SCIPY:
        raise ValueError(f"rounding must be in [-1, 2], got {rounding}")
    if rounding == CN_ROUNDING_FUSED and not cn_fused_available():
        raise ValueError("the fused variants need FMA instructions, which this CPU lacks")
    cdef int old = cn_rounding
    cn_rounding = rounding
    return old
