"""Input checks shared by every public function.

Array arguments go through :func:`array`; the other helpers check scalars, options, shapes
and dtype arguments.  Each raises with a message that names the argument and says what was
expected.
"""
import math
import numbers

import numpy as np

NATIVE_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT32, _FLOAT64 = NATIVE_FLOATS
_ndarray = np.ndarray

# C's int: BLAS takes dimensions as ints, and window sizes, strides and paddings reach the
# kernels as ints.
INT_MAX = 2**31 - 1

_MAX_BYTES = np.iinfo(np.intp).max


def array(value, name, func, *, ndim=None, min_ndim=None, floating=False, like=None,
          layout=None, allow_empty=False):
    """``value`` as an ndarray checked for one function argument: the package's one entry point.

    Every array argument of a public function passes through here (or, on a measured hot path,
    through attribute checks that fall back to it to raise).  Each failed check raises with a
    message that starts with ``func``, names the argument and says what was expected.

    Parameters
    ----------
    value : array_like
        The argument; converted with ``np.asarray`` (an ndarray is taken as is).  What NumPy
        cannot convert, such as a ragged nested list, raises the same exception type, naming
        ``name``.
    name : str
        The argument's name in messages.
    func : str
        The public function's name in messages.
    ndim : int or tuple of int, optional
        The accepted number of dimensions; ValueError otherwise.
    min_ndim : int, optional
        The least number of dimensions, for arguments of shape (..., H, W); ValueError
        otherwise.
    floating : bool
        The dtype must be float32 or float64, in either byte order; TypeError otherwise (other
        dtypes are not converted: the kernels' dtype is the caller's choice).  The result is
        in native byte order and aligned, copied if need be (e.g. a byte-swapped array or a
        field of a packed record array), since the kernels read native, aligned elements.
    like : (numpy.dtype, str), optional
        ``(dtype, reference)``: implies ``floating`` and requires the float dtype of the
        argument named ``reference``.  Mixed float32/float64 arguments raise TypeError rather
        than being upcast: upcasting a float32 network's parameters would silently double
        their memory and hide the mix-up.
    layout : {None, 'C', 'blas'}
        None keeps the memory layout.  'C': C-contiguous, aligned and in native byte order,
        else a C-ordered copy.  'blas': an operand BLAS reads in place: ValueError for a
        dimension above 2**31 - 1 (BLAS indexes with C ints), then the array itself if it is
        C- or Fortran-contiguous (a Fortran array is passed as a transpose), aligned and
        native, else a C-ordered copy.  Copies have the canonical float dtype with
        ``floating`` or ``like``, else the argument's dtype in native byte order.
    allow_empty : bool
        False (the default) raises ValueError for an array with no elements.

    Returns
    -------
    numpy.ndarray
        The argument itself where the checks allow, otherwise a new array; never modified.

    Raises
    ------
    ValueError
        Unconvertible ``value`` (as NumPy raises), wrong ndim, an empty array, a dimension
        beyond BLAS.
    TypeError
        Unconvertible ``value`` (as NumPy raises), a dtype other than float32/float64 with
        ``floating`` or ``like``, or one that differs from ``like``'s.
    """
    if type(value) is not _ndarray:
        value = _convert(value, name, func)
    if ndim is not None and (value.ndim != ndim if type(ndim) is int else value.ndim not in ndim):
        wanted = " or ".join(f"{n}-D" for n in ((ndim,) if type(ndim) is int else ndim))
        raise ValueError(f"{func}: {name} must be a {wanted} array, got ndim={value.ndim}")
    if min_ndim is not None and value.ndim < min_ndim:
        axes = " (..., H, W)" if min_ndim == 2 else ""
        raise ValueError(f"{func}: {name} must have at least {min_ndim} dimensions{axes}, "
                         f"got ndim={value.ndim}")
    if not allow_empty and value.size == 0:
        raise ValueError(f"{func}: {name} must be non-empty, got shape {value.shape}")
    dtype = value.dtype
    native = dtype is _FLOAT32 or dtype is _FLOAT64
    if floating or like is not None:
        if not native:
            dtype = _float_dtype(dtype, name, func)
        if like is not None and dtype.itemsize != like[0].itemsize:
            # The sizes alone tell float32 and float64 apart, whatever the byte order or the
            # identity of the dtype objects.
            raise TypeError(f"{func}: {name} has dtype {dtype} but {like[1]} has "
                            f"{_float_dtype(like[0], like[1], func)}; all arguments must share "
                            "one dtype (mixed float32/float64 is not upcast)")
        if layout is None:
            if (native or value.dtype.isnative) and value.flags.aligned:
                return value
            return value.astype(dtype)
    elif layout is None:
        return value
    elif not native and not dtype.isnative:
        dtype = dtype.newbyteorder("=")
    if layout == "blas":
        if value.ndim and max(value.shape) > INT_MAX:
            raise ValueError(f"{func}: {name} has shape {value.shape}; dimensions above 2**31 - 1 "
                             "are beyond BLAS's int indexing")
        flags = value.flags
        if ((flags.c_contiguous or flags.f_contiguous) and flags.aligned
                and (native or value.dtype.isnative)):
            return value
    elif layout == "C":
        flags = value.flags
        if flags.c_contiguous and flags.aligned and (native or value.dtype.isnative):
            return value
    else:
        raise ValueError(f"layout must be None, 'C' or 'blas', got {layout!r}")
    # A forced copy: np.ascontiguousarray hands a misaligned contiguous array back unchanged.
    return np.array(value, dtype=dtype, order="C", copy=True)


def _convert(value, name, func):
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{func}: {name} could not be converted to an array: {exc}") from None


def _float_dtype(dtype, name, func):
    """float32 or float64 (the canonical instance) for a float dtype of either byte order."""
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return NATIVE_FLOATS[dtype.itemsize == 8]
    raise TypeError(f"{func}: {name} must be float32 or float64, got dtype {dtype}")


def float_type(value, name, func):
    """A dtype argument (``np.float32``, ``"float64"``, ...) that must name float32 or float64."""
    try:
        # np.dtype(None) would silently mean float64.
        dtype = np.dtype(value) if value is not None else None
    except TypeError:
        dtype = None
    if dtype is None:
        raise TypeError(f"{func}: {name} must be float32 or float64, got {value!r}")
    if dtype not in NATIVE_FLOATS:
        raise TypeError(f"{func}: {name} must be float32 or float64, got {dtype}")
    return dtype


def choice(value, options, name, func):
    """``options[value]`` for a string option; ValueError listing the accepted values."""
    try:
        return options[value]
    except (KeyError, TypeError):
        accepted = ", ".join(repr(k) for k in options)
        raise ValueError(f"{func}: {name} must be one of {accepted}; got {value!r}") from None


def real_scalar(value, name, func):
    """A real number (Python or NumPy scalar, or a one-element real array) as a Python number."""
    if isinstance(value, (bool, np.bool_)) or isinstance(value, numbers.Real):
        return value
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{func}: {name} must be a real number, got {value!r}")
    array = _convert(value, name, func)
    if array.size != 1:
        raise ValueError(f"{func}: {name} must be a scalar, got an array of shape {array.shape}")
    if array.dtype.kind == "c":
        raise ValueError(f"{func}: {name} must be real for real inputs, got {value!r}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{func}: {name} must be a real number, got dtype {array.dtype}")
    return array.reshape(()).item()


def int_pair(value, name, func, minimum, maximum=INT_MAX):
    """An int or a pair of ints, each in [``minimum``, ``maximum``], as a tuple (a, b)."""
    # Plain ints and tuples of them skip the generic checks, whose ABC isinstance calls cost
    # more than a small pooling call's kernel when the interpreter's caches are cold.
    if type(value) is int:
        pair = (value, value)
    elif type(value) is tuple and len(value) == 2 and type(value[0]) is type(value[1]) is int:
        pair = value
    else:
        if isinstance(value, np.ndarray):
            value = value.tolist()
        items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
        if len(items) != 2:
            raise ValueError(f"{func}: {name} must be an int or a pair of ints, got {value!r}")
        for item in items:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Integral):
                raise TypeError(f"{func}: {name} must be an int or a pair of ints, got {value!r}")
        pair = (int(items[0]), int(items[1]))
    if min(pair) < minimum:
        raise ValueError(f"{func}: {name} must be >= {minimum}, got {value!r}")
    if max(pair) > maximum:
        raise ValueError(f"{func}: {name} must be <= {maximum}, got {value!r}")
    return pair


def positive_int(value, name, func):
    """``value`` as a Python int >= 1 (NumPy integers accepted, bools not)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{func}: {name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{func}: {name} must be a positive integer, got {value!r}")
    return int(value)


def check_array_size(shape, itemsize, what, func):
    """ValueError if an array of ``shape`` would exceed the largest size NumPy can address.

    ``what`` says which arguments decide the shape.  (An array that is merely larger than
    the memory available raises MemoryError when it is allocated, as in NumPy.)
    """
    if math.prod(shape) * itemsize > _MAX_BYTES:
        raise ValueError(f"{func}: {what} gives an array of shape {shape}, larger than the "
                         "largest possible array")


def shape_tuple(value, name, func):
    """A shape given as a sequence of non-negative ints, as a tuple of Python ints."""
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{func}: {name} must be a sequence of ints, got {value!r}") from None
    for item in items:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Integral):
            raise TypeError(f"{func}: {name} must be a sequence of ints, got {value!r}")
        if item < 0:
            raise ValueError(f"{func}: {name} must not contain negative sizes, got {value!r}")
    return tuple(int(item) for item in items)
