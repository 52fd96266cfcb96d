"""Input checks shared by every public function.

Each helper raises with a message that names the argument and says what was expected.
"""
import numbers

import numpy as np

NATIVE_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def as_2d_array(value, name, func):
    """``np.asarray(value)``, which must be 2-D and non-empty."""
    array = np.asarray(value)
    if array.ndim != 2:
        raise ValueError(f"{func}: {name} must be a 2-D array, got ndim={array.ndim}")
    if array.size == 0:
        raise ValueError(f"{func}: {name} must be non-empty, got shape {array.shape}")
    return array


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
    array = np.asarray(value)
    if array.size != 1:
        raise ValueError(f"{func}: {name} must be a scalar, got an array of shape {array.shape}")
    if array.dtype.kind == "c":
        raise ValueError(f"{func}: {name} must be real for real inputs, got {value!r}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{func}: {name} must be a real number, got dtype {array.dtype}")
    return array.reshape(()).item()


def float_array(value, name, func, dtype, ndim):
    """``value`` as a non-empty float32/float64 array of the given ndim (an int or a tuple).

    With ``dtype`` given, the array must already have it: mixing float32 and float64 raises
    TypeError instead of silently upcasting.
    """
    array = np.asarray(value)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if array.ndim not in ndims:
        expected = " or ".join(str(d) for d in ndims)
        raise ValueError(f"{func}: {name} must be {expected}-D, got ndim={array.ndim} (shape {array.shape})")
    if array.dtype not in NATIVE_FLOATS:
        raise TypeError(f"{func}: {name} must be float32 or float64, got {array.dtype}")
    if dtype is not None and array.dtype != dtype:
        raise TypeError(f"{func}: {name} is {array.dtype} but the other arrays are {dtype}; "
                        "convert explicitly (mixed precision is not upcast silently)")
    if array.size == 0:
        raise ValueError(f"{func}: {name} must be non-empty, got shape {array.shape}")
    return array


def int_pair(value, name, func, minimum):
    """An int or a pair of ints, each >= minimum, as a tuple (height, width)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        first, second = pair
    except (TypeError, ValueError):
        raise TypeError(f"{func}: {name} must be an int or a pair of ints, got {value!r}") from None
    for item in (first, second):
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            raise TypeError(f"{func}: {name} must be an int or a pair of ints, got {value!r}")
        if item < minimum:
            raise ValueError(f"{func}: {name} must be >= {minimum}, got {value!r}")
    return int(first), int(second)
