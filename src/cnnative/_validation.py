"""Input checks shared by every public function.

Each helper raises with a message that names the argument and says what was expected.
"""
import math
import numbers

import numpy as np

NATIVE_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

# BLAS takes dimensions as C ints.
BLAS_MAX_DIM = 2**31 - 1

# Window sizes, strides and paddings reach the kernels as C ints.
C_INT_MAX = 2**31 - 1

_MAX_BYTES = np.iinfo(np.intp).max


def to_array(value, name, func):
    """``np.asarray(value)``; what NumPy cannot convert (ragged nested lists) raises naming ``name``."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{func}: {name} could not be converted to an array: {exc}") from None


def as_2d_array(value, name, func):
    """``np.asarray(value)``, which must be 2-D and non-empty."""
    return as_array(value, name, func, (2,))


def as_array(value, name, func, ndims):
    """``np.asarray(value)``, whose ndim must be one of ``ndims`` and which must be non-empty."""
    array = to_array(value, name, func)
    if array.ndim not in ndims:
        wanted = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{func}: {name} must be a {wanted} array, got ndim={array.ndim}")
    if array.size == 0:
        raise ValueError(f"{func}: {name} must be non-empty, got shape {array.shape}")
    return array


def float_dtype(array, name, func):
    """The canonical float32/float64 dtype of ``array`` (any byte order); TypeError otherwise."""
    dtype = array.dtype
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


def same_float_dtype(array, name, dtype, reference, func):
    """TypeError unless ``array`` is of ``dtype`` (float32/float64), the dtype of ``reference``.

    Mixed float32/float64 arguments are refused rather than upcast: upcasting a float32
    network's parameters would silently double their memory and hide the mix-up.
    """
    own = float_dtype(array, name, func)
    # Both are float32 or float64 here; the size alone tells them apart, whatever the byte
    # order or identity of the dtype objects.
    if own.itemsize != dtype.itemsize:
        raise TypeError(f"{func}: {name} has dtype {own} but {reference} has {float_dtype(np.empty(0, dtype), reference, func)}; all "
                        "arguments must share one dtype (mixed float32/float64 is not upcast)")
    return own


def blas_dims(array, name, func):
    """ValueError if a dimension of ``array`` is beyond what BLAS can index (2**31 - 1)."""
    if max(array.shape) > BLAS_MAX_DIM:
        raise ValueError(f"{func}: {name} has shape {array.shape}; dimensions above 2**31 - 1 "
                         "are beyond BLAS's int indexing")


def blas_operand(array, dtype):
    """``array`` itself when BLAS can read it in place, else a C-contiguous copy of ``dtype``.

    In place means C- or Fortran-contiguous (a Fortran array is passed as a transpose),
    aligned and in native byte order.
    """
    flags = array.flags
    if (flags.c_contiguous or flags.f_contiguous) and flags.aligned and array.dtype.isnative:
        return array
    # A forced copy: ascontiguousarray would hand back a misaligned C-contiguous array as is.
    return np.array(array, dtype=dtype, order="C", copy=True)


def c_contiguous(array):
    """``array`` if the kernels can read it in place (C-contiguous and aligned), else a C copy.

    ``np.ascontiguousarray`` is not enough: it returns a misaligned contiguous array unchanged.
    """
    flags = array.flags
    if flags.c_contiguous and flags.aligned:
        return array
    return np.array(array, order="C", copy=True)


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
    array = to_array(value, name, func)
    if array.size != 1:
        raise ValueError(f"{func}: {name} must be a scalar, got an array of shape {array.shape}")
    if array.dtype.kind == "c":
        raise ValueError(f"{func}: {name} must be real for real inputs, got {value!r}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{func}: {name} must be a real number, got dtype {array.dtype}")
    return array.reshape(()).item()


def float_array(value, name, func, ndim, dtype=None, reference=None):
    """``value`` as a non-empty float32/float64 array in native byte order, ndim in ``ndim``.

    ``ndim`` is an int or a tuple of accepted values.  With ``dtype`` given, the array must
    already have it, as the argument named ``reference`` does (see same_float_dtype).
    """
    array = as_array(value, name, func, (ndim,) if isinstance(ndim, int) else ndim)
    if dtype is not None:
        same_float_dtype(array, name, dtype, reference, func)
    return as_float_array(array, name, func)


def as_float_array(value, name, func):
    """``np.asarray(value)`` as an aligned, native-byte-order float32 or float64 array.

    Other dtypes (integers, bool, float16, long double, complex, object) raise TypeError rather
    than being converted silently: the kernels' dtype is the caller's choice.  Byte-swapped or
    misaligned arrays (e.g. a field of a packed record array) are copied, since the kernels
    read native, aligned elements.
    """
    array = to_array(value, name, func)
    dtype = float_dtype(array, name, func)
    return array if array.dtype.isnative and array.flags.aligned else array.astype(dtype)


def check_spatial(array, name, func):
    """``array`` must have at least two dimensions (..., H, W) and no empty axis."""
    if array.ndim < 2:
        raise ValueError(f"{func}: {name} must have at least 2 dimensions (..., H, W), "
                         f"got ndim={array.ndim}")
    if array.size == 0:
        raise ValueError(f"{func}: {name} must be non-empty, got shape {array.shape}")


def int_pair(value, name, func, minimum, maximum=C_INT_MAX):
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
