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
