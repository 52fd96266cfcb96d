# Shared declarations for every cnnative kernel module: the fused float type and the small
# index helpers more than one kernel needs.  Only ctypedefs and inline functions live here, so
# cimporting it creates no runtime module dependency.

ctypedef fused floating:
    float
    double


cdef inline Py_ssize_t wrap_index(Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Periodic extension: maps any integer i into [0, n) (n > 0)."""
    cdef Py_ssize_t r = i % n
    # C's % keeps the dividend's sign, so a negative i needs one period added.
    return r + n if r < 0 else r


cdef inline Py_ssize_t symmetric_index(Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Mirror extension repeating the edge sample (... 1 0 | 0 1 ... n-1 | n-1 n-2 ...)."""
    cdef Py_ssize_t period = 2 * n
    cdef Py_ssize_t k = wrap_index(i, period)
    return period - 1 - k if k >= n else k


cdef inline Py_ssize_t element_step(Py_ssize_t stride, Py_ssize_t itemsize,
                                    Py_ssize_t length) except? -1:
    """The byte stride of an axis of ``length`` elements as a step in elements.

    ValueError if it is not a multiple of the item size, except on a length-1 axis: that one is
    never stepped along and NumPy leaves its stride arbitrary (a field of a packed record array
    has stride 5 for float32, say, yet counts as aligned), so it gets step 1.
    """
    if stride % itemsize:
        if length <= 1:
            return 1
        raise ValueError("array strides must be multiples of the item size")
    return stride // itemsize
