# Shared declarations for every cnnative kernel module: the fused float type, the one argument
# check every entry point runs, and the small index helpers more than one kernel needs.  Only
# ctypedefs, enums and inline functions live here, so cimporting it creates no runtime module
# dependency.

cimport numpy as cnp
from libc.stdint cimport int64_t

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


cdef inline Py_ssize_t tree_split(Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Where the batch's reduction tree splits the blocks [lo, hi) (hi - lo >= 2): the left part
    takes the extra block of an odd count, as cnnative._reduce.tree_split."""
    return lo + (hi - lo + 1) // 2


# What check_array requires beyond ndim, dtype, byte order and alignment: flags to combine with
# |.  Without a layout flag any strides pass (the kernel steps through them, see element_step).
cdef enum:
    C_ORDER = 1         # C-contiguous
    C_OR_F_ORDER = 2    # C- or Fortran-contiguous (BLAS takes either)
    NONEMPTY = 4        # no dimension of length 0
    WRITEABLE = 8       # an output: a read-only array may sit on read-only memory

# check_array's typenum for "float32 or float64", whichever the caller then dispatches on.
cdef enum:
    ANY_FLOAT = -1


cdef inline int check_array(cnp.ndarray a, str name, int ndim, int typenum, int flags=0,
                            tuple shape=None) except -1:
    """Raises unless ``a`` is fit for a kernel to read (and, with WRITEABLE, write) directly.

    Checks, in this order: ndim, dtype (``typenum``, or ANY_FLOAT), native byte order,
    alignment, the layout flag, ``shape`` (if given), NONEMPTY, WRITEABLE.  TypeError for the
    dtype and byte order, ValueError for everything else; every message starts with ``name``.
    """
    cdef int d
    if cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got ndim={cnp.PyArray_NDIM(a)}")
    if typenum == ANY_FLOAT:
        if cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32 and cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT64:
            raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    elif cnp.PyArray_TYPE(a) != typenum:
        raise TypeError(f"{name} must have the dtype of the other arrays "
                        f"({cnp.PyArray_DescrFromType(typenum)}), got {a.dtype}")
    if not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{name} must be in native byte order")
    if not cnp.PyArray_ISALIGNED(a):
        raise ValueError(f"{name} must be aligned (data and strides multiples of the item size)")
    if flags & C_ORDER and not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{name} must be C-contiguous")
    if flags & C_OR_F_ORDER and not (cnp.PyArray_IS_C_CONTIGUOUS(a)
                                     or cnp.PyArray_IS_F_CONTIGUOUS(a)):
        raise ValueError(f"{name} must be C- or Fortran-contiguous")
    if shape is not None and (<object> a).shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {(<object> a).shape}")
    if flags & NONEMPTY:
        for d in range(ndim):
            if cnp.PyArray_DIM(a, d) < 1:
                raise ValueError(f"{name} must be non-empty, got shape {(<object> a).shape}")
    if flags & WRITEABLE and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name} must be writeable")
    return 0


cdef inline int64_t *claimed_work(object counter, Py_ssize_t *claim, int64_t *unshared,
                                  Py_ssize_t start, Py_ssize_t stop, Py_ssize_t count,
                                  str what) except NULL:
    """Where the threads of one call claim pieces of ``what`` [start, stop) out of ``count``.

    ``counter`` is a 1-D int64 array shared by the threads of the call (counter[0] = 0 at
    first), from which each claims ``*claim`` at a time; None means no sharing: ``unshared``
    is returned and ``*claim`` set to the whole range, one piece.
    """
    if not 0 <= start <= stop <= count:
        raise ValueError(f"{what} [{start}, {stop}) outside [0, {count})")
    if counter is None:
        claim[0] = max(1, stop - start)
        return unshared
    if not isinstance(counter, cnp.ndarray):
        raise TypeError("counter must be a numpy array")
    check_array(<cnp.ndarray> counter, "counter", 1, cnp.NPY_INT64, NONEMPTY | WRITEABLE)
    if claim[0] < 1:
        raise ValueError("claim must be >= 1")
    return <int64_t *> cnp.PyArray_DATA(<cnp.ndarray> counter)


cdef extern from "claim.h" nogil:
    int64_t cn_claim(int64_t *counter, int64_t n)
    int64_t cn_claim_guided(int64_t *counter, int64_t total, int64_t least, int64_t parts,
                            int64_t *piece)


cdef inline bint next_piece(int64_t *counter, Py_ssize_t claim, Py_ssize_t start,
                            Py_ssize_t stop, Py_ssize_t *first, Py_ssize_t *last) noexcept nogil:
    """Claims the next ``claim`` items of [start, stop) from ``counter`` as [first, last);
    False once none is left.  The claimed offset is checked before use: the counter comes
    from Python and could hold anything."""
    cdef int64_t taken = cn_claim(counter, claim)
    if taken < 0 or taken >= stop - start:
        return False
    first[0] = start + taken
    last[0] = first[0] + claim if stop - first[0] > claim else stop
    return True


cdef inline bint next_guided_piece(int64_t *counter, Py_ssize_t claim, Py_ssize_t parts,
                                   Py_ssize_t start, Py_ssize_t stop, Py_ssize_t *first,
                                   Py_ssize_t *last) noexcept nogil:
    """next_piece with pieces of 1/``parts`` of the items left, at least ``claim`` (claim.h's
    cn_claim_guided); ``parts`` < 1 means pieces of exactly ``claim``."""
    cdef int64_t piece = 0
    cdef int64_t taken
    if parts < 1:
        return next_piece(counter, claim, start, stop, first, last)
    taken = cn_claim_guided(counter, stop - start, claim, parts, &piece)
    if taken < 0 or taken >= stop - start:
        return False
    first[0] = start + taken
    last[0] = first[0] + piece
    return True
