"""Cross-correlation and convolution with scipy.signal's semantics and bit-exact results.

``correlate2d`` and ``convolve2d`` take the same arguments as ``scipy.signal.correlate2d`` /
``convolve2d`` plus the keywords ``method`` and ``num_threads``; ``correlate`` and ``convolve``
(N-d) those of ``scipy.signal.correlate`` / ``convolve`` plus ``num_threads``.  For float32 and float64 inputs
``method='direct'`` runs cnnative's native kernels and returns arrays identical to scipy's to the
last bit (scipy >= 1.16 sums each output in a fixed order; the kernels repeat that order with SIMD
lanes running across output pixels, and large outputs are shared among threads by rows).
Integer, complex and long-double inputs are delegated to scipy itself, after the same
validation, so their results are scipy's by construction.

Rounding: scipy's loops are plain C, so how each multiply-add rounds depends on how its wheel was
compiled -- separately on x86-64, fused (FMA) on aarch64, where the compiler contracts them.  The
first float32/float64 call probes the installed scipy (one tiny correlation per dtype and family)
and sets the kernels to match it; a pattern the kernels do not know sends float calls to scipy
itself.  ``CNNATIVE_ROUNDING=separate|fused|scipy`` overrides the probe; ``cnnative info`` tells
which pattern is in use and why.

Deviations from scipy, on purpose:

* empty inputs raise ``ValueError`` (scipy returns an array of meaningless zeros);
* ``fillvalue`` must be a real number (or a one-element array); scipy also accepts strings and
  ``None``, which here raise ``TypeError``;
* ``correlate``/``convolve``: see their docstrings (1-D results equal numpy.correlate's only to
  rounding; bool, float16 and object arrays are refused whatever the method).
"""
from __future__ import annotations

import math
import numbers
import os
import threading
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _threads, _validation
from ._native import correlate as _correlate
from ._native import correlate_nd as _correlate_nd

__all__ = ["correlate2d", "convolve2d", "correlate", "convolve", "choose_method"]

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

# Cost model for method='auto', fitted by `python benchmarks/bench_signal_nd.py --fit` (which
# prints these lines) on the development machine: AMD EPYC with AVX-512, one thread, CPU time
# (the machine was shared, so wall time would have counted the waits).  Each direct kernel
# (correlate2d's and the N-d one) costs per output element a time per kernel tap plus a time
# per kernel row (the last axis: a loop's set-up and loads, which dominate short rows);
# scipy.signal.fftconvolve a fixed cost per call plus a time per n*log2(n), n the elements of
# the padded transform (fitted on large transforms, where the choice matters most).
_DIRECT_SECONDS_PER_TAP = {"2d": {"float32": 1.6e-11, "float64": 3.1e-11},
                           "nd": {"float32": 1.5e-11, "float64": 2.4e-11}}
_DIRECT_SECONDS_PER_ROW = {"2d": {"float32": 1.8e-11, "float64": 3.9e-11},
                           "nd": {"float32": 4.9e-11, "float64": 9.7e-11}}
_FFT_SECONDS_PER_NLOGN = {"float32": 7.1e-10, "float64": 1.3e-09}
_FFT_FIXED_SECONDS = 5e-06
_COMPLEX64 = np.dtype(np.complex64)
# Python ints up to this size convert to float exactly; larger ones take the checked path.
_EXACT_INT = 2**53

# Multiply-adds per thread below which waking another thread costs more than it saves (a
# wake-up is tens of microseconds on a busy machine; this is ~50-150 µs of kernel time).
# Calls below twice this never leave the calling thread, and take the native fast path.
_MIN_WORK_PER_THREAD = 1 << 21
_SMALL_WORK = float(2 * _MIN_WORK_PER_THREAD - 1)
# Threads claim output rows in pieces of 1/_CLAIM_PARTS_PER_THREAD of the rows left per thread
# (long runs of neighbouring rows first, which the row-walking kernels need to reuse what the
# rows before loaded; short ones last, so a thread that wakes late is not waited for), but at
# least _CLAIM_WORK multiply-adds and _CLAIM_ROWS rows: enough that a piece's border strips
# and kernel set-up stay a small part of it, and that the kernels' blocks of 2-4 rows stay
# whole.
_CLAIM_PARTS_PER_THREAD = 2
_CLAIM_WORK = 1 << 18
_CLAIM_ROWS = 4
_correlate_small = _correlate.correlate_small
_correlate_nd_small = _correlate_nd.correlate_small
# Multiply-adds below which method='auto' is direct whatever the shapes: the FFT's fixed cost
# alone exceeds the direct kernel's time even at its dearest (float64, one-tap kernel rows),
# so the fast path can decide these without the model.
_AUTO_DIRECT_WORK = _FFT_FIXED_SECONDS / (_DIRECT_SECONDS_PER_TAP["nd"]["float64"]
                                          + _DIRECT_SECONDS_PER_ROW["nd"]["float64"])


# -- rounding pattern ----------------------------------------------------------------------------
# Per family ("2d": correlate2d/convolve2d, "nd": correlate/convolve): (pattern, reason) once
# decided, pattern one of _PATTERNS.
_ROUNDING: dict[str, tuple[str, str]] = {}
_ROUNDING_LOCK = threading.Lock()
# Both modules take the same values (rounding.h); "undecided" is theirs before this decides.
_PATTERNS = {name: value for name, value in _correlate.ROUNDING_PATTERNS.items()
             if name != "undecided"}
_ROUNDING_ENV = "CNNATIVE_ROUNDING"
_FAMILY_MODULES = {"2d": _correlate, "nd": _correlate_nd}
# The probe's answer for each pattern the kernels implement, the same for float32 and float64.
_SIGNATURES = {"2d": {"0000": "separate", "1101": "fused"}, "nd": {"0": "separate", "1": "fused"}}
# A perturbation small enough that (1 + e)**2 rounds to 1 + 2e (the e*e term is below half an
# ulp, and no tie), so a product of two u = 1 + e fused into a sum with -u leaves e + e*e and a
# product rounded on its own leaves e; every other product of the probes is exact.
_PROBE_E = {"float32": 2.0 ** -13, "float64": 2.0 ** -30}


def _probe(family, dtype):
    """The installed scipy's rounding signature for one family and dtype: one character per
    probed output, '0' for separate rounding, '1' for fused, '?' for neither.

    2-D: correlate2d of a 4x5 image with a 1x5 kernel, 'valid'; each image row gives one output
    of one group of four taps plus one left-over tap, and the rows ask, in order: is the left-over
    tap fused into the sum; the first product of a group fused into the second; the second into
    the first; a later product into the group's chain?  scipy's aarch64 build answers 1101 (the
    pattern of corr_simd.h's fused variants), its x86-64 build 0000.  N-d: one output of two taps
    from correlate(method='direct') on 2-D inputs (1-D ones go to numpy.correlate instead),
    whose second tap is fused into the accumulator or not.
    """
    import scipy.signal

    t = np.dtype(dtype).type
    e = t(_PROBE_E[dtype])
    u = t(1) + e
    if family == "2d":
        kernel = np.full((1, 5), u, t)
        image = np.array([[0, 0, -1, 0, u], [u, -1, 0, 0, 0], [-1, u, 0, 0, 0],
                          [0, 0, -1, u, 0]], t)
        out = scipy.signal.correlate2d(image, kernel, "valid")
    else:
        out = scipy.signal.correlate(np.array([[-u, u]], t), np.array([[1, u]], t), "valid",
                                     method="direct")
    fused = e + t(e * e)
    return "".join("0" if v == e else "1" if v == fused else "?" for v in np.ravel(out))


def _decide_rounding(family, choice=None):
    """Decides the family's pattern (``choice``, else $CNNATIVE_ROUNDING, else the probe), sets
    its native module to it and records it; returns the pattern."""
    if choice is None:
        choice = os.environ.get(_ROUNDING_ENV, "").strip().lower() or "probe"
    if choice == "probe":
        signatures = {dtype: _probe(family, dtype) for dtype in ("float32", "float64")}
        said = ", ".join(f"{dtype} {sig}" for dtype, sig in signatures.items())
        known = {_SIGNATURES[family].get(sig) for sig in signatures.values()}
        pattern = known.pop() if len(known) == 1 else None
        if pattern is None:
            pattern, reason = "scipy", (f"probe of scipy: {said}, a pattern the kernels do not "
                                        "repeat, so float calls go to scipy itself")
        else:
            reason = f"probe of scipy: {said}"
    elif choice in _PATTERNS:
        pattern, reason = choice, f"${_ROUNDING_ENV}={choice}"
    else:
        raise ValueError(f"${_ROUNDING_ENV} must be one of separate, fused, scipy or probe, got "
                         f"{choice!r}")
    module = _FAMILY_MODULES[family]
    if pattern == "fused" and not module.fused_available():
        pattern, reason = "scipy", (f"{reason}; the fused kernels need FMA instructions, which "
                                    "this CPU lacks, so float calls go to scipy itself")
    module.set_rounding(_PATTERNS[pattern])
    _ROUNDING[family] = (pattern, reason)
    return pattern


def _rounding(family):
    """The family's pattern, decided on first use (thread-safe; the probe runs once)."""
    decided = _ROUNDING.get(family)
    if decided is not None:
        return decided[0]
    with _ROUNDING_LOCK:
        decided = _ROUNDING.get(family)
        return decided[0] if decided is not None else _decide_rounding(family)


def _rounding_info() -> dict[str, tuple[str, str]]:
    """How the float kernels round each multiply-add, and why: ``{"correlate2d": (pattern,
    reason), "correlate": (pattern, reason)}`` for correlate2d/convolve2d and
    correlate/convolve.

    pattern is 'separate' (each product rounded, then added: scipy's x86-64 wheels), 'fused'
    (multiply-adds fused as scipy's aarch64 wheels' compiler contracts them) or 'scipy' (the
    installed scipy follows neither, so float calls are handed to it).  Decides the patterns
    (probing scipy, which imports scipy.signal) if no call has yet.
    """
    return {name: (_rounding(family), _ROUNDING[family][1])
            for name, family in (("correlate2d", "2d"), ("correlate", "nd"))}


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


def correlate(in1: ArrayLike, in2: ArrayLike, mode: str = "full", method: str = "auto", *,
              num_threads: int | None = None) -> np.ndarray:
    """Cross-correlate two N-d arrays, exactly like ``scipy.signal.correlate``.

    Parameters
    ----------
    in1 : array_like, shape (n_1, ..., n_d)
        The first input.
    in2 : array_like, shape (k_1, ..., k_d)
        The second input, of the same number of dimensions; conjugated for complex input.
    mode : {'full', 'valid', 'same'}
        Output shape: 'full' (n_i + k_i - 1, ...); 'valid' (n_i - k_i + 1, ...), where one input
        must be at least as large as the other in every dimension (when in2 is the larger the
        inputs are swapped and the result reversed in every axis, as scipy does); 'same'
        (n_1, ..., n_d), the centred part of 'full' starting at (k_i - 1) // 2 (one before
        correlate2d's k_i // 2 for even k_i, as in scipy).
    method : {'auto', 'direct', 'fft'}
        'direct' sums each output's products one at a time over in2's elements in C order,
        as scipy's N-d direct method does, and for float32/float64 is bit-identical to
        ``scipy.signal.correlate(..., method='direct')``, except for 1-D inputs in 'full',
        'valid' and 'same' with len(in1) >= len(in2), which scipy hands to numpy.correlate (a
        BLAS dot whose summation order depends on the CPU): there the results agree to
        rounding, and an inf or NaN in in2 also reaches the outputs where it meets the zero
        padding (0 * inf is NaN), as in scipy's N-d method, whereas numpy.correlate leaves
        those products out.  'fft' uses ``scipy.signal.fftconvolve``: within about 1e-12 of the largest
        output magnitude for float64.  'auto' (the default) picks the faster of the two from a
        cost model (see :func:`choose_method`).
    num_threads : int, optional
        Threads for the direct method on float32/float64 (default
        :func:`cnnative.get_num_threads`) and for FFTs; large outputs are split among them by
        rows (all axes but the last), with results bit-identical whatever the count.  Calls
        too small to gain from it run on the calling thread.

    Returns
    -------
    out : ndarray, d-D
        Of NumPy's common dtype of in1 and in2.  Swapped inputs give a reversed view.

    Raises
    ------
    ValueError
        Inputs of different dimensionality, empty inputs, incompatible 'valid' shapes, unknown
        mode or method, bool/float16/object dtypes.
    TypeError
        Non-numeric dtypes, a non-integer num_threads (ValueError if it is below 1).

    Notes
    -----
    float32 and float64 inputs of 1 to 64 dimensions run on cnnative's kernel; integer, complex
    and long-double inputs, and 0-d ones, are passed on to scipy after the same validation (in
    native byte order: scipy's FFT refuses some byte-swapped dtypes).
    Unlike scipy, empty inputs and bool/float16/object arrays raise whatever the method (scipy
    accepts some of them in 1-D, or with method='fft'), non-numeric dtypes raise TypeError (scipy:
    ValueError), and FFTs over NaN or inf stay quiet instead of warning.
    """
    # Calls small enough to stay on one thread whatever num_threads says (a valid one).
    if num_threads is None or (type(num_threads) is int and num_threads > 0):
        out = _correlate_nd_small(in1, in2, mode, method, False, _SMALL_WORK, _AUTO_DIRECT_WORK)
        if out is not None:
            return out
    return _correlate_or_convolve_nd("correlate", in1, in2, mode, method, False, num_threads)


def convolve(in1: ArrayLike, in2: ArrayLike, mode: str = "full", method: str = "auto", *,
             num_threads: int | None = None) -> np.ndarray:
    """Convolve two N-d arrays, exactly like ``scipy.signal.convolve``.

    Arguments, shapes, dtypes, errors and bit-exactness are those of :func:`correlate`
    (``numpy.convolve`` stands for numpy.correlate in 1-D), except that in2 is neither reversed
    nor conjugated, 'same' is the same window of 'full' (convolution's, starting at
    (k_i - 1) // 2), and swapped 'valid' inputs are not reversed.  As in scipy, it is
    ``correlate(in1, in2 reversed in every axis)``, to the bit.
    """
    # Calls small enough to stay on one thread whatever num_threads says (a valid one).
    if num_threads is None or (type(num_threads) is int and num_threads > 0):
        out = _correlate_nd_small(in1, in2, mode, method, True, _SMALL_WORK, _AUTO_DIRECT_WORK)
        if out is not None:
            return out
    return _correlate_or_convolve_nd("convolve", in1, in2, mode, method, True, num_threads)


def choose_method(in1: ArrayLike, in2: ArrayLike, mode: str = "full", *,
                  function: str | None = None) -> str:
    """'direct' or 'fft': which ``method`` the cost model expects to be faster for these inputs.

    Parameters
    ----------
    in1, in2 : array_like
        The inputs as they would be passed to `function`.
    mode : {'full', 'valid', 'same'}
    function : {'correlate2d', 'convolve2d', 'correlate', 'convolve'}, optional
        The function whose ``method='auto'`` is asked about; default 'correlate2d' for 2-D
        inputs, 'correlate' otherwise.  (The two families have different direct kernels, so
        for 2-D inputs the answer can differ.)

    Direct costs one multiply-add per output element and kernel tap; FFT costs about n*log2(n)
    for a transform of n elements plus a fixed overhead.  Integer inputs always give 'direct',
    and so do N-d inputs that the functions hand to scipy (0-d, bool, float16, object).
    """
    if function is None:
        in1 = _validation.array(in1, "in1", "choose_method", allow_empty=True)
        function = "correlate2d" if in1.ndim == 2 else "correlate"
    function = _validation.choice(function, _FUNCTIONS, "function", "choose_method")
    two_d = function.endswith("2d")
    in1 = _validation.array(in1, "in1", "choose_method", ndim=2 if two_d else None)
    in2 = _validation.array(in2, "in2", "choose_method", ndim=2 if two_d else None)
    mode_code = _validation.choice(mode, _MODES, "mode", "choose_method")
    if in1.ndim != in2.ndim:
        raise ValueError(f"choose_method: in1 and in2 must have the same number of dimensions, "
                         f"got in1 ndim={in1.ndim} and in2 ndim={in2.ndim}")
    dtype = np.result_type(in1.dtype, in2.dtype)
    if dtype.kind not in "fc" or in1.ndim == 0 or dtype.itemsize < 4:
        return "direct"
    if mode_code is _VALID and _valid_inputs_swapped("choose_method", in1.shape, in2.shape):
        in1, in2 = in2, in1
    return _cheaper_method(in1.shape, in2.shape, mode_code, dtype, "2d" if two_d else "nd")


_FUNCTIONS = {name: name for name in ("correlate2d", "convolve2d", "correlate", "convolve")}


def _output_shape(shape1, shape2, mode_code):
    """The output shape for in1 dominating in2 (the caller has swapped them for 'valid')."""
    if mode_code is _VALID:
        return tuple(n - k + 1 for n, k in zip(shape1, shape2))
    if mode_code is _SAME:
        return tuple(shape1)
    return tuple(n + k - 1 for n, k in zip(shape1, shape2))


def _cheaper_method(shape1, shape2, mode_code, dtype, family="2d", padded=False):
    """'fft' or 'direct' for float or complex inputs, in1 dominating in2 for 'valid'.

    family: whose direct kernel, '2d' (correlate2d's) or 'nd'; padded: whether the FFT runs on
    an image padded for a boundary other than zeros (correlate2d's 'wrap', 'symm', a non-zero
    fill value), which then takes a 'valid' convolution of the larger frame.
    """
    single = dtype is _FLOAT32 or dtype is _COMPLEX64
    precision = "float32" if single else "float64"
    out_shape = _output_shape(shape1, shape2, mode_code)
    taps = math.prod(shape2)
    per_output = (taps * _DIRECT_SECONDS_PER_TAP[family][precision]
                  + taps // shape2[-1] * _DIRECT_SECONDS_PER_ROW[family][precision])
    direct = math.prod(out_shape) * per_output
    if dtype.kind == "c":
        direct *= 4  # a complex multiply-add is four real ones
    fft_size = math.prod(o + 2 * (k - 1) if padded else n + k - 1
                         for o, n, k in zip(out_shape, shape1, shape2))
    fft = _FFT_FIXED_SECONDS + fft_size * math.log2(max(fft_size, 2)) * (
        _FFT_SECONDS_PER_NLOGN[precision])
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
        padded = not (boundary_code is _FILL and fillvalue == 0)
        method = (_cheaper_method(in1.shape, in2.shape, mode_code, dtype, "2d", padded)
                  if dtype.kind in "fc" else "direct")

    if method == "fft":
        out = _fft_correlate(func, in1, in2, mode_code, boundary_code, fillvalue, convolve, dtype,
                             threads)
    elif native and _rounding("2d") != "scipy":
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


def _correlate_or_convolve_nd(func, in1, in2, mode, method, convolve, num_threads):
    threads = _threads.thread_count(num_threads, func)
    in1 = _validation.array(in1, "in1", func, allow_empty=True)
    in2 = _validation.array(in2, "in2", func, allow_empty=True)
    mode_code = _validation.choice(mode, _MODES, "mode", func)
    method = _validation.choice(method, _METHODS, "method", func)
    if in1.ndim != in2.ndim:
        raise ValueError(f"{func}: in1 and in2 must have the same number of dimensions, got "
                         f"in1 ndim={in1.ndim} and in2 ndim={in2.ndim}")
    if in1.size == 0 or in2.size == 0:
        _validation.array(in1, "in1", func)
        _validation.array(in2, "in2", func)
    dtype = _common_dtype(func, in1, in2)
    _check_supported(func, dtype)
    swapped = mode_code is _VALID and in1.ndim > 0 and _valid_inputs_swapped(func, in1.shape,
                                                                        in2.shape)
    if dtype not in _validation.NATIVE_FLOATS or in1.ndim == 0:
        # scipy gives 0-d inputs' product as a NumPy scalar; an array like every other result.
        return np.asarray(_scipy_nd(func, in1, in2, mode, method))
    given = in1, in2
    if convolve and swapped:
        # scipy's convolve swaps first, then correlates with the (new) kernel reversed.
        in1, in2, swapped = in2, in1, False
    if convolve:
        in2 = in2[(slice(None, None, -1),) * in2.ndim]
    if method == "auto":
        shapes = (in2.shape, in1.shape) if swapped else (in1.shape, in2.shape)
        method = _cheaper_method(*shapes, mode_code, dtype, "nd")
    if method == "direct" and _rounding("nd") == "scipy":
        return np.asarray(_scipy_nd(func, *given, mode, "direct"))
    if method == "fft":
        return _fftconvolve(in1.astype(dtype, copy=False),
                            in2[(slice(None, None, -1),) * in2.ndim].astype(dtype, copy=False),
                            mode, threads).astype(dtype, copy=False)
    # scipy's direct method swaps 'full' inputs when in2 is the larger, too (its loop is
    # slower that way round), and undoes it by reversing the output.
    if mode_code is _FULL and in2.size > in1.size:
        swapped = True
    if swapped:
        in1, in2 = in2, in1
    if in1.dtype is not dtype or not in1.flags.aligned:
        in1 = in1.astype(dtype)  # also re-aligns: astype allocates a fresh array
    if in2.dtype is not dtype or not in2.flags.aligned:
        in2 = in2.astype(dtype)
    out = _direct_nd(_frame(in1, in2.shape, mode_code), in2, threads)
    return out[(slice(None, None, -1),) * out.ndim] if swapped else out


def _frame(image, kernel_shape, mode_code):
    """What the 'valid' kernel reads: the image zero-padded as scipy pads it for 'same' and
    'full', or the image itself for 'valid' where its last axis is unit-step."""
    if mode_code is _VALID:
        if image.shape[-1] == 1 or image.strides[-1] == image.itemsize:
            return image
        before = after = (0,) * image.ndim
    elif mode_code is _SAME:
        before = tuple(k // 2 for k in kernel_shape)
        after = tuple(k - 1 - k // 2 for k in kernel_shape)
    else:
        before = after = tuple(k - 1 for k in kernel_shape)
    return _correlate_nd.padded(image, before, after)


def _direct_nd(frame, kernel, threads):
    """The N-d native kernel on ``threads`` threads at most, as many as the work pays for."""
    out_shape = tuple(n - k + 1 for n, k in zip(frame.shape, kernel.shape))
    row_work = out_shape[-1] * kernel.size
    return _run_rows(lambda *shared: _correlate_nd.correlate_valid(frame, kernel, False, *shared),
                     out_shape, math.prod(out_shape[:-1]), row_work, frame.dtype, threads)


def _run_rows(compute, out_shape, out_rows, row_work, dtype, threads):
    """``compute()`` on the calling thread, or, when the work pays for several threads,
    ``compute(out, 0, out_rows, counter, claim)`` on each of them sharing the output rows."""
    workers = min(threads, out_rows, out_rows * row_work // _MIN_WORK_PER_THREAD)
    if workers <= 1:
        return compute()
    # Rows are claimed inside the kernel (an atomic update), so a thread that starts late
    # simply finds fewer left; every output element is computed the same way whoever claims it.
    claim = max(_CLAIM_ROWS, _CLAIM_WORK // row_work)
    parts = _CLAIM_PARTS_PER_THREAD * workers
    out = np.empty(out_shape, dtype)
    counter = np.zeros(1, np.int64)

    def rows(start, stop):
        compute(out, 0, out_rows, counter, claim, parts)

    _threads.run_chunks(rows, workers, 1, workers, calls_blas=False)
    return out


def _scipy_nd(func, in1, in2, mode, method):
    """scipy.signal's correlate/convolve itself, for what the native kernel does not do."""
    # Imported on first use: scipy.signal pulls in scipy.stats, interpolate, optimize...
    import scipy.signal

    # Its FFT refuses some byte-swapped inputs (a big-endian float16 beside complex values:
    # "unsupported data type"); the same values in native byte order it takes.
    in1, in2 = (a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))
                for a in (in1, in2))
    with warnings.catch_warnings():
        # Its FFT warns about NaN or inf in the output; direct's NaNs pass quietly.
        warnings.filterwarnings("ignore", "Use of fft convolution", RuntimeWarning)
        # Its direct method casts an uninitialised output buffer (in1's dtype) to the result
        # dtype before filling it, which can warn about whatever garbage the buffer held.
        warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf in an FFT: quietly
            try:
                return getattr(scipy.signal, func)(in1, in2, mode, method)
            except ValueError as error:
                # Its 'auto' converts integer inputs' extremes with int(), which a NaN among
                # the other (complex) input's values makes fail.
                raise ValueError(f"{func}: scipy.signal.{func} refused in1 and in2: "
                                 f"{error}") from None


def _direct(image, kernel, convolve, mode_code, boundary_code, fillvalue, threads):
    """The native kernel on ``threads`` threads at most, as many as the work pays for."""
    (m, n), (j, k) = image.shape, kernel.shape
    out_shape = _output_shape((m, n), (j, k), mode_code)
    return _run_rows(lambda *shared: _correlate.correlate_direct(
                         image, kernel, convolve, mode_code, boundary_code, fillvalue, *shared),
                     out_shape, out_shape[0], out_shape[1] * j * k, image.dtype, threads)


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
    _check_supported(func, dtype)
    kind = dtype.kind
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


def _check_supported(func, dtype):
    """Refuses common dtypes scipy's direct methods do not compute."""
    kind = dtype.kind
    if kind == "b" or dtype == np.float16 or kind == "O":
        raise ValueError(f"{func}: in1 and in2 have the common dtype {dtype}, which is not "
                         "supported (bool, float16 and object arrays are rejected, as in scipy)")
    if kind not in "iufc":
        raise TypeError(f"{func}: in1 and in2 must have a numeric dtype, got {dtype}")


def _check_float_range(func, convert, value, dtype):
    try:
        return convert(value)
    except OverflowError:  # an int beyond float range; NumPy refuses it too
        raise ValueError(f"{func}: fillvalue is too large for {dtype} ({convert.__name__}() "
                         "overflows)") from None


def _valid_inputs_swapped(func, shape1, shape2):
    """scipy's rule for 'valid': keep in1 if it dominates, swap if in2 does, else refuse."""
    if all(a >= b for a, b in zip(shape1, shape2)):
        return False
    if all(b >= a for a, b in zip(shape1, shape2)):
        return True
    raise ValueError(f"{func}: for 'valid' mode, one must be at least as large as the other "
                     f"in every dimension; got in1 shape {shape1} and in2 shape {shape2}")


def _fft_correlate(func, image, kernel, mode_code, boundary_code, fillvalue, convolve, dtype,
                   threads):
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
    image = image.astype(dtype, copy=False)
    if boundary_code is _FILL and fillvalue == 0:
        # Zero padding is the full convolution's own: no padded copy, a smaller transform.
        frame, row, col = image, j - 1 - top, k - 1 - left
    else:
        frame = _padded(image, top, out_rows + j - 1 - m - top, left,
                        out_cols + k - 1 - n - left, boundary_code, fillvalue)
        row, col = j - 1, k - 1
    kernel = kernel.astype(dtype, copy=False)
    if not convolve:
        kernel = kernel[::-1, ::-1].conj()
    full = _fftconvolve(frame, kernel, "full", threads)
    return full[row:row + out_rows, col:col + out_cols].astype(dtype)


def _fftconvolve(in1, in2, mode, threads):
    """scipy.signal.fftconvolve on up to ``threads`` threads, quiet about non-finite values."""
    import scipy.fft
    import scipy.signal

    # NaN or inf anywhere turns the whole transform to NaN; quietly, like direct's NaNs.
    with np.errstate(invalid="ignore", over="ignore"), scipy.fft.set_workers(threads):
        return scipy.signal.fftconvolve(in1, in2, mode=mode)


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
