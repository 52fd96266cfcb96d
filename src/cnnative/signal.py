"""2-D cross-correlation and convolution with scipy.signal's semantics and bit-exact results.

``correlate2d`` and ``convolve2d`` take the same arguments as ``scipy.signal.correlate2d`` /
``convolve2d`` plus the keywords ``method`` and ``num_threads``.  For float32 and float64 inputs
``method='direct'`` runs cnnative's native kernels and returns arrays identical to scipy's to the
last bit (scipy >= 1.16 sums each output in a fixed order; the kernels repeat that order with SIMD
lanes running across output pixels, and large outputs are shared among threads by rows).
Integer, complex and long-double inputs are delegated to scipy itself, after the same
validation, so their results are scipy's by construction.

Deviations from scipy, on purpose:

* empty inputs raise ``ValueError`` (scipy returns an array of meaningless zeros);
* ``fillvalue`` must be a real number (or a one-element array); scipy also accepts strings and
  ``None``, which here raise ``TypeError``.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _threads, _validation
from ._native import correlate as _correlate

__all__ = ["correlate2d", "convolve2d", "choose_method"]

_VALID, _SAME, _FULL = (_correlate.Mode.MODE_VALID, _correlate.Mode.MODE_SAME,
                         _correlate.Mode.MODE_FULL)
_FILL, _SYMM, _WRAP = (_correlate.Boundary.BOUNDARY_FILL, _correlate.Boundary.BOUNDARY_SYMM,
                       _correlate.Boundary.BOUNDARY_WRAP)
_MODES = {"valid": _VALID, "same": _SAME, "full": _FULL}
_BOUNDARIES = {
    "fill": _FILL, "pad": _FILL, "symm": _SYMM, "symmetric": _SYMM, "wrap": _WRAP,
    "circular": _WRAP,
}
_METHODS = {"direct": "direct", "fft": "fft", "auto": "auto"}
_FLOAT32, _FLOAT64 = _validation.NATIVE_FLOATS

# Cost model for method='auto', from timings on the development machine (AMD Zen 4, portable
# build, one thread; benchmarks/bench_signal.py reports both methods per cell): seconds per
# multiply-add of the direct kernel, and per element*log2(element) of the padded FFT plus a
# fixed cost per FFT call.
_DIRECT_SECONDS_PER_TAP_F32, _DIRECT_SECONDS_PER_TAP_F64 = 2.5e-11, 4.5e-11
_FFT_SECONDS_PER_NLOGN_F32, _FFT_SECONDS_PER_NLOGN_F64 = 2.0e-9, 2.5e-9
_FFT_FIXED_SECONDS = 40e-6
_COMPLEX64 = np.dtype(np.complex64)
# Python ints up to this size convert to float exactly; larger ones take the checked path.
_EXACT_INT = 2**53

# Multiply-adds per thread below which waking another thread costs more than it saves (a
# wake-up is tens of microseconds on a busy machine; this is ~50-150 µs of kernel time).
# Calls below twice this never leave the calling thread, and take the native fast path.
_MIN_WORK_PER_THREAD = 1 << 21
_SMALL_WORK = float(2 * _MIN_WORK_PER_THREAD - 1)
# Multiply-adds per piece of output rows a thread claims: pieces of a few hundred microseconds
# at most, so a thread that wakes late still finds work, each big enough that its border
# strips and kernel set-up stay a small part of it.
_CLAIM_WORK = 1 << 19
_correlate_small = _correlate.correlate_small


def correlate2d(in1: ArrayLike, in2: ArrayLike, mode: str = "full", boundary: str = "fill",
                fillvalue: Any = 0, *, method: str = "direct",
                num_threads: int | None = None) -> np.ndarray:
    """Cross-correlate two 2-D arrays, exactly like ``scipy.signal.correlate2d``.

    Parameters
    ----------
    in1 : array_like, shape (M, N)
        The image.
    in2 : array_like, shape (J, K)
        The template; it is conjugated for complex input.
    mode : {'full', 'valid', 'same'}
        Output shape: 'full' (M+J-1, N+K-1); 'valid' (M-J+1, N-K+1), where one input must be at
        least as large as the other in every dimension (the inputs are swapped when in2 is the
        larger, and the result is reversed in both axes, as scipy does); 'same' (M, N), the
        centred part of 'full' starting at (J//2, K//2).
    boundary : {'fill', 'wrap', 'symm'}
        How in1 is extended: padded with `fillvalue`, periodically, or mirrored with the edge
        sample repeated (also when in2 is larger than in1). Aliases 'pad', 'circular',
        'symmetric' are accepted.
    fillvalue : real scalar
        Padding value for boundary='fill'; padded positions are real multiply-adds, so a
        non-finite kernel tap against padding gives NaN as in scipy.
    method : {'direct', 'fft', 'auto'}
        'direct' is bit-exact with scipy. 'fft' pads in1 per `boundary` and uses
        ``scipy.signal.fftconvolve``: within about 1e-12 of the largest output magnitude for
        float64 (float32 to its own precision); it does not apply to integer inputs. 'auto'
        picks the faster of the two from a cost model (see :func:`choose_method`).
    num_threads : int, optional
        Threads for method='direct' on float32/float64 (default
        :func:`cnnative.get_num_threads`); large outputs are split among them by rows, with
        results bit-identical whatever the count.  Calls too small to gain from it run on the
        calling thread.

    Returns
    -------
    out : ndarray, 2-D
        Of NumPy's common dtype of in1 and in2.

    Raises
    ------
    ValueError
        Inputs not 2-D or empty, incompatible 'valid' shapes, unknown mode/boundary/method,
        a non-scalar or (for real inputs) complex fillvalue, bool/float16/object dtypes.
    TypeError
        Non-numeric dtypes, a non-numeric fillvalue, a non-integer num_threads (ValueError if
        it is below 1).
    """
    # Calls small enough to stay on one thread whatever num_threads says (a valid one).
    if num_threads is None or (type(num_threads) is int and num_threads > 0):
        out = _correlate_small(in1, in2, mode, boundary, fillvalue, method, False, _SMALL_WORK)
        if out is not None:
            return out
    return _correlate_or_convolve("correlate2d", in1, in2, mode, boundary, fillvalue, method,
                                  False, num_threads)


def convolve2d(in1: ArrayLike, in2: ArrayLike, mode: str = "full", boundary: str = "fill",
               fillvalue: Any = 0, *, method: str = "direct",
               num_threads: int | None = None) -> np.ndarray:
    """Convolve two 2-D arrays, exactly like ``scipy.signal.convolve2d``.

    Arguments, shapes, dtypes and errors are those of :func:`correlate2d`, except that in2 is
    not conjugated, 'same' starts at ((J-1)//2, (K-1)//2) of 'full', and swapped 'valid' inputs
    are not reversed.  The image is walked in the opposite direction to correlation, so the
    result is not bit-identical to correlating with a rotated kernel (it is equal to rounding).
    """
    # Calls small enough to stay on one thread whatever num_threads says (a valid one).
    if num_threads is None or (type(num_threads) is int and num_threads > 0):
        out = _correlate_small(in1, in2, mode, boundary, fillvalue, method, True, _SMALL_WORK)
        if out is not None:
            return out
    return _correlate_or_convolve("convolve2d", in1, in2, mode, boundary, fillvalue, method,
                                  True, num_threads)


def choose_method(in1: ArrayLike, in2: ArrayLike, mode: str = "full") -> str:
    """'direct' or 'fft': which ``method`` the cost model expects to be faster for these inputs.

    Direct costs one multiply-add per output pixel and kernel tap; FFT costs about
    n*log2(n) per padded transform plus a fixed overhead.  Integer inputs always give 'direct'.
    """
    in1 = _validation.array(in1, "in1", "choose_method", ndim=2)
    in2 = _validation.array(in2, "in2", "choose_method", ndim=2)
    mode_code = _validation.choice(mode, _MODES, "mode", "choose_method")
    dtype = np.result_type(in1.dtype, in2.dtype)
    if dtype.kind not in "fc":
        return "direct"
    return _cheaper_method(in1.shape, in2.shape, mode_code, dtype)


def _cheaper_method(shape1, shape2, mode_code, dtype):
    (m, n), (j, k) = shape1, shape2
    if mode_code is _VALID:
        out_rows, out_cols = abs(m - j) + 1, abs(n - k) + 1
    elif mode_code is _SAME:
        out_rows, out_cols = m, n
    else:
        out_rows, out_cols = m + j - 1, n + k - 1
    single = dtype is _FLOAT32 or dtype is _COMPLEX64
    direct = out_rows * out_cols * j * k * (_DIRECT_SECONDS_PER_TAP_F32 if single else _DIRECT_SECONDS_PER_TAP_F64)
    if dtype.kind == "c":
        direct *= 4  # a complex multiply-add is four real ones
    fft_size = (out_rows + j - 1) * (out_cols + k - 1)
    fft = _FFT_FIXED_SECONDS + fft_size * math.log2(max(fft_size, 2)) * (
        _FFT_SECONDS_PER_NLOGN_F32 if single else _FFT_SECONDS_PER_NLOGN_F64)
    return "fft" if fft < direct else "direct"


def _correlate_or_convolve(func, in1, in2, mode, boundary, fillvalue, method, convolve,
                           num_threads):
    # Small calls of the common kind (two float arrays of one dtype, str options, a Python
    # number as fill value, no or a plain int num_threads) never get here: correlate_small
    # does all of them natively.
    threads = _threads.thread_count(num_threads, func)
    try:
        in1 = np.asarray(in1)
        in2 = np.asarray(in2)
    except (ValueError, TypeError):
        in1 = _validation.array(in1, "in1", func, allow_empty=True)
        in2 = _validation.array(in2, "in2", func, allow_empty=True)
    if in1.ndim != 2 or in2.ndim != 2 or in1.size == 0 or in2.size == 0:
        _validation.array(in1, "in1", func, ndim=2)
        _validation.array(in2, "in2", func, ndim=2)
    try:
        mode_code = _MODES[mode]
        boundary_code = _BOUNDARIES[boundary]
        method = _METHODS[method]
    except (KeyError, TypeError):
        _validation.choice(mode, _MODES, "mode", func)
        _validation.choice(boundary, _BOUNDARIES, "boundary", func)
        _validation.choice(method, _METHODS, "method", func)
    dtype = in1.dtype
    if dtype is not in2.dtype:
        dtype = _common_dtype(func, in1, in2)
    native = dtype is _FLOAT64 or dtype is _FLOAT32
    if not (native and (type(fillvalue) is float
                        or (type(fillvalue) is int and -_EXACT_INT <= fillvalue <= _EXACT_INT))):
        fillvalue = _fill_value(func, fillvalue, dtype)

    swapped = (mode_code is _VALID
               and _valid_inputs_swapped(func, in1.shape, in2.shape))
    if swapped:
        in1, in2 = in2, in1
    if method == "auto":
        method = _cheaper_method(in1.shape, in2.shape, mode_code, dtype) if dtype.kind in "fc" else "direct"

    if method == "fft":
        out = _fft_correlate(func, in1, in2, mode_code, boundary_code, fillvalue, convolve, dtype)
    elif native:
        if in1.dtype is not dtype or not in1.flags.aligned:
            in1 = in1.astype(dtype)  # also re-aligns: astype allocates a fresh array
        if in2.dtype is not dtype or not in2.flags.aligned:
            in2 = in2.astype(dtype)
        out = _direct(in1, in2, convolve, mode_code, boundary_code, fillvalue, threads)
    else:
        # Imported on first use: scipy.signal pulls in scipy.stats, interpolate, optimize...,
        # most of `import cnnative`'s time, and only this fallback and method='fft' need it.
        import scipy.signal

        reference = scipy.signal.convolve2d if convolve else scipy.signal.correlate2d
        # Already validated; scipy swaps for itself, so hand it the original order.
        if swapped:
            in1, in2 = in2, in1
        with warnings.catch_warnings():
            # scipy converts every fill value through complex and warns about discarding the
            # (zero) imaginary part for real output; complex fill values were refused above.
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            # It casts the fill value to the output dtype before checking that the dtype can
            # hold it, which warns for NaN or out-of-range values; the check then raises.
            warnings.filterwarnings("ignore", "(invalid value|overflow) encountered in cast",
                                    RuntimeWarning)
            try:
                return reference(in1, in2, mode, boundary, fillvalue)
            except (ValueError, OverflowError) as exc:
                raise ValueError(f"{func}: fillvalue {fillvalue!r} does not fit the inputs' "
                                 f"dtype {dtype} ({exc})") from None
    if swapped and not convolve:
        out = out[::-1, ::-1]
    return out


def _direct(image, kernel, convolve, mode_code, boundary_code, fillvalue, threads):
    """The native kernel on ``threads`` threads at most, as many as the work pays for."""
    (m, n), (j, k) = image.shape, kernel.shape
    if mode_code is _VALID:
        out_rows, out_cols = m - j + 1, n - k + 1
    elif mode_code is _SAME:
        out_rows, out_cols = m, n
    else:
        out_rows, out_cols = m + j - 1, n + k - 1
    row_work = out_cols * j * k
    workers = min(threads, out_rows, out_rows * row_work // _MIN_WORK_PER_THREAD)
    if workers <= 1:
        return _correlate.correlate_direct(image, kernel, convolve, mode_code, boundary_code,
                                           fillvalue)
    # Rows are claimed inside the kernel (an atomic add), so a thread that starts late simply
    # finds fewer left; every output element is computed the same way whoever claims it.
    claim = max(1, _CLAIM_WORK // row_work)
    out = np.empty((out_rows, out_cols), image.dtype)
    counter = np.zeros(1, np.int64)

    def rows(start, stop):
        _correlate.correlate_direct(image, kernel, convolve, mode_code, boundary_code, fillvalue,
                                    out, 0, out_rows, counter, claim)

    _threads.run_chunks(rows, workers, 1, workers, calls_blas=False)
    return out


def _common_dtype(func, in1, in2):
    for name, array in (("in1", in1), ("in2", in2)):
        kind = array.dtype.kind
        if kind not in "biufcO":
            raise TypeError(f"{func}: {name} must have a numeric dtype, got {array.dtype}")
    dtype = np.result_type(in1.dtype, in2.dtype)
    if not dtype.isnative:
        dtype = dtype.newbyteorder("=")
    if dtype in (_FLOAT32, _FLOAT64):
        # Canonical instances, so the identity checks on the hot path hold.
        dtype = _FLOAT32 if dtype == _FLOAT32 else _FLOAT64
    return dtype


def _fill_value(func, fillvalue, dtype):
    """The fill value as a Python scalar the kernels accept; checks the dtype is supported.

    For float32/float64 the native module rounds it to the dtype.  For floating and complex
    inputs it must convert to a Python float (complex), whatever the boundary.
    """
    native = dtype is _FLOAT64 or dtype is _FLOAT32
    kind = dtype.kind
    if kind == "b" or dtype == np.float16 or kind == "O":
        raise ValueError(f"{func}: in1 and in2 have the common dtype {dtype}, which is not "
                         "supported (bool, float16 and object arrays are rejected, as in scipy)")
    if kind not in "iufc":
        raise TypeError(f"{func}: in1 and in2 must have a numeric dtype, got {dtype}")
    if kind == "c":
        if isinstance(fillvalue, (str, bytes)) or fillvalue is None:
            raise TypeError(f"{func}: fillvalue must be a number, got {fillvalue!r}")
        if not isinstance(fillvalue, numbers.Number):
            array = _validation.array(fillvalue, "fillvalue", func, allow_empty=True)
            if array.size != 1:
                raise ValueError(f"{func}: fillvalue must be a scalar, got an array of shape {array.shape}")
            if array.dtype.kind not in "biufc":
                raise TypeError(f"{func}: fillvalue must be a number, got dtype {array.dtype}")
            fillvalue = array.reshape(()).item()
        _check_float_range(func, complex, fillvalue, dtype)
        return fillvalue
    value = _validation.real_scalar(fillvalue, "fillvalue", func)
    if kind == "f":
        converted = _check_float_range(func, float, value, dtype)
        if native:
            return converted
    return value


def _check_float_range(func, convert, value, dtype):
    try:
        return convert(value)
    except OverflowError:  # an int beyond float range; NumPy refuses it too
        raise ValueError(f"{func}: fillvalue is too large for {dtype} ({convert.__name__}() "
                         "overflows)") from None


def _valid_inputs_swapped(func, shape1, shape2):
    """scipy's rule for 'valid': keep in1 if it dominates, swap if in2 does, else refuse."""
    if shape1[0] >= shape2[0] and shape1[1] >= shape2[1]:
        return False
    if shape2[0] >= shape1[0] and shape2[1] >= shape1[1]:
        return True
    raise ValueError(f"{func}: for 'valid' mode, one must be at least as large as the other "
                     f"in every dimension; got in1 shape {shape1} and in2 shape {shape2}")


def _fft_correlate(func, image, kernel, mode_code, boundary_code, fillvalue, convolve, dtype):
    if dtype.kind not in "fc":
        raise ValueError(f"{func}: method='fft' needs floating-point or complex input, got "
                         f"{dtype}; use method='direct' for integer arrays")
    (m, n), (j, k) = image.shape, kernel.shape
    if mode_code is _VALID:
        top = left = 0
        out_rows, out_cols = m - j + 1, n - k + 1
    elif mode_code is _SAME:
        top = j // 2 if convolve else (j - 1) // 2
        left = k // 2 if convolve else (k - 1) // 2
        out_rows, out_cols = m, n
    else:
        top, left = j - 1, k - 1
        out_rows, out_cols = m + j - 1, n + k - 1
    padded = _padded(image.astype(dtype, copy=False), top, out_rows + j - 1 - m - top,
                     left, out_cols + k - 1 - n - left, boundary_code, fillvalue)
    kernel = kernel.astype(dtype, copy=False)
    if not convolve:
        kernel = kernel[::-1, ::-1].conj()
    import scipy.signal

    with np.errstate(invalid="ignore", over="ignore"):
        # NaN or inf anywhere turns the whole transform to NaN; quietly, like direct's NaNs.
        out = scipy.signal.fftconvolve(padded, kernel, mode="valid")
    return out.astype(dtype, copy=False)


def _padded(image, top, bottom, left, right, boundary_code, fillvalue):
    if boundary_code is _FILL:
        with np.errstate(over="ignore"):  # beyond float32's range is inf, as for 'direct'
            return np.pad(image, ((top, bottom), (left, right)), constant_values=fillvalue)
    # Index maps handle pads wider than the image, which np.pad's reflect/wrap do not all do.
    m, n = image.shape
    rows = np.arange(-top, m + bottom)
    cols = np.arange(-left, n + right)
    if boundary_code is _WRAP:
        rows, cols = rows % m, cols % n
    else:
        rows, cols = _symmetric(rows, m), _symmetric(cols, n)
    return image[np.ix_(rows, cols)]


def _symmetric(index, n):
    k = index % (2 * n)
    return np.where(k >= n, 2 * n - 1 - k, k)
