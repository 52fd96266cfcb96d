"""Fuzz targets for every public kernel, and the registry tools/fuzz.py and test_fuzz.py run.

Calls are mostly valid (so results get checked) with random shapes including 0 and 1, every
dtype, non-contiguous, misaligned, byte-swapped, read-only and zero-stride layouts, NaN and inf;
many break one rule or several.  Whether a call is valid is decided by each target's ``spec``
from the documented rules, not by running the wrapper's own checks; a valid call must match
scipy.signal (correlate2d/convolve2d), cnnative.testing (conv2d and
pooling) or NumPy (dense), bit for bit where the function promises it.  The oracle itself is
in tests/fuzz_support.py; the raw kernels' targets are in tests/fuzz_native.py, the file
readers' (read_idx, load) in tests/fuzz_files.py.

Adding a target takes a function ``make(rng) -> Call`` and a ``spec(call)`` returning
``Value(check)``, ``ERROR`` or ``TOO_BIG`` (raising ``Invalid`` counts as ERROR), plus one
``Target`` line in ``TARGETS``; tests/test_fuzz.py and tools/fuzz.py pick it up from there.
"""
import functools
import numbers
import warnings

import numpy as np
from cnnative import testing
import scipy.signal

import cnnative
import fuzz_files
import fuzz_native
import fuzz_support
from fuzz_support import (BAD_SCALARS, BIG_BYTES, FLOATS, LAYOUTS, SEEDS, TOO_BIG, Call, Invalid,  # noqa: F401 (SEEDS: for the runners)
                          Target, Value, array_arg, as_array, assert_same_array,
                          assert_sums_close, bound_arguments, chance, float_array,
                          float_or_other_dtype, int_pair, int_param, integer, is_int, nbytes,
                          num_threads, pick, size, spell_pair, threads_kwarg, values, with_layout)


# -------------------------------------------------------------------- correlate2d / convolve2d

MODES = ["full", "same", "valid"]
BOUNDARIES = ["fill", "pad", "symm", "symmetric", "wrap", "circular"]
METHODS = ["direct", "fft", "auto"]
BAD_OPTIONS = ["bogus", "FULL", "", None, 1, ["full"], b"full", np.str_("same"), ("valid",)]
FILL_VALUES = [0, 1, -2.5, 0.1, np.nan, np.inf, -np.inf, 1e39, -1e39, 3.4028235677973366e38,
               True, np.float32(2.5), np.int64(3), np.uint8(7), np.float16(1.5), np.array(2.0),
               np.array([1.5]), np.array([[4]]), 2**70, -(2**63), 10**400, 1j, 2 + 0j,
               np.complex64(1 - 1j), "3", b"3", None, [1, 2], np.array([]), object(),
               np.longdouble(2.5), np.datetime64(1, "s")]
GOOD_FILL_VALUES = [0, 1, -2.5, 0.1, np.nan, np.inf, np.float32(2.5), np.int64(3), np.array(2.0)]


def signal_call(rng, func):
    dtype1 = float_or_other_dtype(rng, 0.3)
    dtype2 = dtype1 if chance(rng, 0.7) else float_or_other_dtype(rng, 0.3)
    shape1 = (size(rng, 40), size(rng, 40))
    big_kernel = chance(rng, 0.15)
    shape2 = (size(rng, 50 if big_kernel else 12), size(rng, 50 if big_kernel else 12))
    special = pick(rng, [0.0, 0.0, 0.02, 0.3])
    in1 = array_arg(rng, shape1, dtype1, special)
    in2 = array_arg(rng, shape2, dtype2, special)
    kwargs = {}
    if chance(rng, 0.95):
        kwargs["mode"] = pick(rng, MODES) if chance(rng, 0.95) else pick(rng, BAD_OPTIONS)
    if chance(rng, 0.9):
        kwargs["boundary"] = pick(rng, BOUNDARIES) if chance(rng, 0.95) else pick(rng, BAD_OPTIONS)
    if chance(rng, 0.8):
        kwargs["fillvalue"] = pick(rng, FILL_VALUES if chance(rng, 0.3) else GOOD_FILL_VALUES)
    if chance(rng, 0.3):
        kwargs["method"] = pick(rng, METHODS) if chance(rng, 0.9) else pick(rng, BAD_OPTIONS)
    threads_kwarg(rng, kwargs)
    if chance(rng, 0.1):  # positional spelling
        args = (in1, in2, kwargs.pop("mode", "full"), kwargs.pop("boundary", "fill"))
    else:
        args = (in1, in2)
    return Call(func, args, kwargs)


def _option(value, options):
    try:
        if value in options:  # an equal str subclass (np.str_) counts, as a dict lookup would
            return value
    except TypeError:
        pass
    raise Invalid


def _signal_fill(fillvalue, dtype):
    """The documented fill value rule: a real number or one-element real array (complex allowed
    for complex inputs), handed to scipy as a scalar; scipy decides what the output dtype holds."""
    if fillvalue is None or isinstance(fillvalue, (str, bytes)):
        raise Invalid
    if not isinstance(fillvalue, numbers.Number):  # arrays, lists, NumPy bools and datetimes
        array = np.asarray(fillvalue)
        if array.size != 1 or array.dtype.kind not in "biufc":
            raise Invalid
        fillvalue = array.reshape(()).item()
    if isinstance(fillvalue, numbers.Complex) and not isinstance(fillvalue, numbers.Real):
        if dtype.kind != "c":
            raise Invalid
    if dtype.kind in "fc" and isinstance(fillvalue, int):  # whatever the boundary, unlike scipy
        try:
            float(fillvalue)
        except OverflowError:
            raise Invalid from None
    return fillvalue


def signal_spec(call):
    arguments = bound_arguments(call)
    in1, in2 = as_array(arguments["in1"]), as_array(arguments["in2"])
    if in1.ndim != 2 or in2.ndim != 2 or in1.size == 0 or in2.size == 0:
        raise Invalid
    mode = _option(arguments["mode"], MODES)
    boundary = _option(arguments["boundary"], BOUNDARIES)
    method = _option(arguments["method"], METHODS)
    num_threads(arguments)
    if in1.dtype.kind not in "biufcO" or in2.dtype.kind not in "biufcO":
        raise Invalid
    dtype = np.result_type(in1.dtype, in2.dtype)
    if dtype.kind in "bO" or dtype == np.float16:
        raise Invalid
    fillvalue = _signal_fill(arguments["fillvalue"], dtype)
    (m, n), (j, k) = in1.shape, in2.shape
    if mode == "valid" and not ((m >= j and n >= k) or (j >= m and k >= n)):
        raise Invalid
    if method == "fft" and dtype.kind not in "fc":
        raise Invalid
    reference_func = getattr(scipy.signal, call.func)
    with warnings.catch_warnings():
        # scipy routes fill values through complex (ComplexWarning) and casts them unchecked
        # before refusing the ones the output dtype cannot hold (RuntimeWarning).
        warnings.simplefilter("ignore")
        try:
            expected = reference_func(in1, in2, mode, boundary, fillvalue)
        except (ValueError, OverflowError):
            raise Invalid from None
    expected = expected.astype(expected.dtype.newbyteorder("="))
    exact = method == "direct" or (method == "auto" and dtype.kind not in "fc")
    fill = complex(fillvalue) if boundary in ("fill", "pad") else 0

    def check_result(ours):
        if exact:
            assert_same_array(ours, expected)
        else:
            assert_fft_close(ours, expected, in1, in2, dtype, fill)

    return Value(check_result)


def assert_fft_close(ours, expected, in1, in2, dtype, fill=0):
    """An FFT result within its rounding of the direct one: 1e-10 (1e-4 single precision) of
    the largest possible output magnitude; nothing to check where NaN or inf took part."""
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    fill = np.asarray(fill)
    if not (np.isfinite(in1).all() and np.isfinite(in2).all() and np.isfinite(fill).all()
            and np.isfinite(expected).all()):
        return  # an FFT spreads any NaN or inf over the whole output
    with np.errstate(all="ignore"):
        scale = (max(float(np.abs(in1).max()), float(np.abs(fill).max()))
                 * float(np.abs(in2).sum()))
    single = np.dtype(dtype).itemsize <= (8 if dtype.kind == "c" else 4)
    # Plus one unit of the output's smallest subnormal: tiny inputs give results that only
    # that resolution can tell apart.
    real = np.float32 if single else np.float64
    tolerance = (1e-4 if single else 1e-10) * scale + np.finfo(real).smallest_subnormal
    difference = np.abs(ours.astype(np.clongdouble if dtype.itemsize > 16 else np.complex128)
                        - expected)
    assert np.all(difference <= tolerance), (difference.max(), tolerance)


# ------------------------------------------------------------------------- correlate / convolve


def signal_nd_call(rng, func):
    ndim = pick(rng, [1, 1, 2, 3, 3, 4])
    dtype1 = float_or_other_dtype(rng, 0.25)
    dtype2 = dtype1 if chance(rng, 0.7) else float_or_other_dtype(rng, 0.25)
    shape1 = tuple(size(rng, 30 if ndim == 1 else 9) for _ in range(ndim))
    shape2 = tuple(size(rng, 40 if ndim == 1 else 6) for _ in range(ndim))
    special = pick(rng, [0.0, 0.0, 0.02, 0.3])
    in1 = array_arg(rng, shape1, dtype1, special)
    in2 = array_arg(rng, shape2, dtype2, special)
    kwargs = {}
    if chance(rng, 0.9):
        kwargs["mode"] = pick(rng, MODES) if chance(rng, 0.95) else pick(rng, BAD_OPTIONS)
    if chance(rng, 0.6):
        kwargs["method"] = pick(rng, METHODS) if chance(rng, 0.93) else pick(rng, BAD_OPTIONS)
    threads_kwarg(rng, kwargs)
    return Call(func, (in1, in2), kwargs)


def signal_nd_spec(call):
    """scipy.signal.correlate/convolve's rules, with the documented differences: empty inputs
    and bool, float16 and object arrays are refused; 1-D float results are held to scipy's N-d
    summation order (cnnative.testing), since scipy hands those to numpy's BLAS dot; what goes
    to scipy goes in native byte order (its FFT refuses some byte-swapped dtypes)."""
    arguments = bound_arguments(call)
    in1, in2 = as_array(arguments["in1"]), as_array(arguments["in2"])
    mode = _option(arguments["mode"], MODES)
    method = _option(arguments["method"], METHODS)
    num_threads(arguments)
    if in1.ndim != in2.ndim or in1.size == 0 or in2.size == 0:
        raise Invalid
    if in1.dtype.kind not in "biufcO" or in2.dtype.kind not in "biufcO":
        raise Invalid
    dtype = np.result_type(in1.dtype, in2.dtype)
    if dtype.kind in "bO" or dtype == np.float16:
        raise Invalid
    if in1.ndim and valid_refused(in1.shape, in2.shape, mode):
        raise Invalid
    native = dtype in FLOATS and in1.ndim > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            # What cnnative hands to scipy must be scipy's result for the same method, or
            # scipy's refusal (its 'auto' converts the inputs' extremes to int: a NaN among
            # complex values makes it raise).
            try:
                expected = np.asarray(getattr(scipy.signal, call.func)(
                    *(a.astype(a.dtype.newbyteorder("=")) for a in (in1, in2)), mode,
                    "direct" if native else method))
            except ValueError:
                if native:
                    raise
                raise Invalid from None
    if native and in1.ndim == 1 and method == "direct":
        slow = testing.correlate if call.func == "correlate" else testing.convolve
        expected = slow(in1, in2, mode)
    expected = expected.astype(expected.dtype.newbyteorder("="))
    exact = method == "direct" or not native or (method == "auto" and dtype.kind not in "fc")

    def check_result(ours):
        if in1.ndim == 0:
            ours = np.asarray(ours)  # scipy multiplies 0-d inputs into a NumPy scalar
        if exact:
            assert_same_array(ours, expected)
        else:
            assert_fft_close(ours, expected, in1, in2, dtype)

    return Value(check_result)


def valid_refused(shape1, shape2, mode):
    return mode == "valid" and not (all(a >= b for a, b in zip(shape1, shape2))
                                    or all(b >= a for a, b in zip(shape1, shape2)))


# --------------------------------------------------------------------- conv2d / conv2d_backward


def _intended_pair(value, fallback):
    try:
        return int_pair(value, 0)
    except Invalid:
        return fallback


def _intended_padding(padding, kernel, dilation):
    """(top, bottom, left, right) the call means, bad spellings read as 0."""
    if isinstance(padding, str):
        if padding == "same":
            totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
            return (totals[0] // 2, totals[0] - totals[0] // 2, totals[1] // 2, totals[1] - totals[1] // 2)
        return (0, 0, 0, 0)
    ph, pw = _intended_pair(padding, (0, 0))
    return (ph, ph, pw, pw)


def conv_call(rng, backward):
    dtype = pick(rng, FLOATS)
    # Batches above 8 are split into chunks whose gradients are added up afterwards.
    n = size(rng, 20) if chance(rng, 0.1) else size(rng, 4)
    groups = pick(rng, [1, 1, 1, 2, 3, np.int64(2)]) if chance(rng, 0.96) else pick(rng, BAD_SCALARS)
    per_group = int(groups) if is_int(groups) and 1 <= groups <= 3 else 1
    channels = per_group * size(rng, 3)
    # Depthwise (one channel per group) often, with F = C or F = 2C.
    filters = per_group * (pick(rng, [1, 2]) if chance(rng, 0.3) else size(rng, 4))
    if chance(rng, 0.03):
        filters = size(rng, 5)
    kernel = (size(rng, 5), size(rng, 5))
    height, width = size(rng, 10, one=0.05), size(rng, 10, one=0.05)
    stride, padding = int_param(rng, 1, 3, 0.06), int_param(rng, 0, 2, 0.06)
    if chance(rng, 0.15):
        stride = pick(rng, [1, 1, (1, 1), stride])
        padding = pick(rng, ["same", "same", "valid", "full", "SAME", np.str_("same"), b"same"])
    dilation = int_param(rng, 1, 3, 0.06) if chance(rng, 0.4) else 1
    single = chance(rng, 0.2)
    special = pick(rng, [0.0, 0.0, 0.02, 0.2])
    x_shape = (channels, height, width) if single else (n, channels, height, width)
    w_channels = channels // per_group if chance(rng, 0.97) else size(rng, 4)

    def dtype_of():
        return dtype if chance(rng, 0.95) else float_or_other_dtype(rng, 0.5)

    x = array_arg(rng, x_shape, dtype_of(), special)
    w = array_arg(rng, (filters, w_channels, *kernel), dtype_of(), special)
    kwargs = {}
    if backward:
        (sh, sw), (dh, dw) = _intended_pair(stride, (1, 1)), _intended_pair(dilation, (1, 1))
        top, bottom, left, right = _intended_padding(padding, kernel, (dh, dw))
        out = (max(0, (height + top + bottom - dh * (kernel[0] - 1) - 1) // max(sh, 1) + 1),
               max(0, (width + left + right - dw * (kernel[1] - 1) - 1) // max(sw, 1) + 1))
        if out[0] * out[1] > 10**5:  # a huge padding: no call with it can have a grad_y
            out = (size(rng, 4), size(rng, 4))
        if chance(rng, 0.05):
            out = (max(0, out[0] + pick(rng, [-1, 1])), out[1])
        g_shape = (filters, *out) if single else (n, filters, *out)
        grad_y = array_arg(rng, g_shape, dtype_of(), special)
        named = [("grad_y", grad_y), ("x", x), ("w", w), ("stride", stride), ("padding", padding),
                 ("dilation", dilation), ("groups", groups)]
        if chance(rng, 0.3):
            kwargs["need_grad_x"] = pick(rng, [False, True, 0, np.bool_(False)])
    else:
        b = None
        if chance(rng, 0.7):
            b_len = filters if chance(rng, 0.95) else filters + 1
            b = array_arg(rng, (b_len,), dtype_of(), special)
        named = [("x", x), ("w", w), ("b", b), ("stride", stride), ("padding", padding),
                 ("dilation", dilation), ("groups", groups)]
    positional = pick(rng, [7, 5, 5, 3, 2])
    args = tuple(value for _, value in named[:positional])
    kwargs.update(named[positional:])
    threads_kwarg(rng, kwargs)
    return Call("conv2d_backward" if backward else "conv2d", args, kwargs)


def _conv_geometry(arguments):
    """x as 4-D, w, whether x was one image, stride, (top, bottom, left, right), dilation,
    groups and the output size, or Invalid.  The rules: groups an int >= 1 dividing C and F,
    w (F, C // groups, kh, kw); stride and dilation ints or pairs >= 1; padding an int or pair
    >= 0, 'valid' or 'same' ('same' only with stride 1: dilation * (k - 1) in total per axis,
    the odd one at the bottom/right); the dilated kernel dilation * (k - 1) + 1 within the
    padded input."""
    w = float_array(arguments["w"], (4,))
    x = float_array(arguments["x"], (3, 4), w.dtype.itemsize)
    single = x.ndim == 3
    x4 = x[np.newaxis] if single else x
    groups = arguments["groups"]
    if not is_int(groups) or groups < 1:
        raise Invalid
    groups = int(groups)
    if x4.shape[1] % groups or w.shape[0] % groups or w.shape[1] != x4.shape[1] // groups:
        raise Invalid
    stride, dilation = int_pair(arguments["stride"], 1), int_pair(arguments["dilation"], 1)
    extent = (dilation[0] * (w.shape[2] - 1) + 1, dilation[1] * (w.shape[3] - 1) + 1)
    padding = arguments["padding"]
    if isinstance(padding, str):
        if padding not in ("valid", "same") or (padding == "same" and stride != (1, 1)):
            raise Invalid
        padding = _intended_padding(padding, w.shape[2:], dilation)
        if max(padding) > 2**31 - 1:
            raise Invalid
    else:
        ph, pw = int_pair(padding, 0)
        padding = (ph, ph, pw, pw)
    height, width = x4.shape[2] + padding[0] + padding[1], x4.shape[3] + padding[2] + padding[3]
    if extent[0] > height or extent[1] > width:
        raise Invalid
    out = ((height - extent[0]) // stride[0] + 1, (width - extent[1]) // stride[1] + 1)
    num_threads(arguments)
    return x4, w, single, (stride, padding, dilation, groups), out


def _reference_too_big(x4, options):
    """Whether the reference's padded copy of x would not fit (a huge padding with a huge
    stride can leave a small output): the call is valid, but cannot be checked."""
    top, bottom, left, right = options[1]
    return nbytes((*x4.shape[:2], x4.shape[2] + top + bottom, x4.shape[3] + left + right), 8) > BIG_BYTES


def conv2d_spec(call):
    arguments = bound_arguments(call)
    x4, w, single, options, out = _conv_geometry(arguments)
    b = arguments["b"]
    if b is not None:
        b = float_array(b, (1,), w.dtype.itemsize)
        if b.shape != (w.shape[0],):
            raise Invalid
    if (nbytes((x4.shape[0], w.shape[0], *out), w.dtype.itemsize) > BIG_BYTES
            or _reference_too_big(x4, options)):
        return TOO_BIG
    dtype = w.dtype.newbyteorder("=")
    with np.errstate(all="ignore"):
        expected = testing.conv2d(x4, w, b, *options)
        scale = testing.conv2d(np.abs(x4), np.abs(w), None if b is None else np.abs(b), *options)
    terms = w.shape[1] * w.shape[2] * w.shape[3] + 1

    def check_result(y):
        assert_sums_close(y, expected[0] if single else expected, scale[0] if single else scale,
                          terms, dtype)

    return Value(check_result)


def conv2d_backward_spec(call):
    arguments = bound_arguments(call)
    x4, w, single, options, out = _conv_geometry(arguments)
    grad_y = float_array(arguments["grad_y"], (3,) if single else (4,), w.dtype.itemsize)
    g4 = grad_y[np.newaxis] if single else grad_y
    if g4.shape != (x4.shape[0], w.shape[0], *out):
        raise Invalid
    if _reference_too_big(x4, options):
        return TOO_BIG
    dtype = w.dtype.newbyteorder("=")
    with np.errstate(all="ignore"):
        expected = testing.conv2d_backward(g4, x4, w, *options)
        scales = testing.conv2d_backward(np.abs(g4), np.abs(x4), np.abs(w), *options)
    batch_terms = x4.shape[0] * out[0] * out[1]
    terms = (w.shape[0] // options[3] * w.shape[2] * w.shape[3], batch_terms, batch_terms)
    need_grad_x = arguments["need_grad_x"]

    def check_result(result):
        assert isinstance(result, tuple) and len(result) == 3
        for i, (ours, wanted, scale, count) in enumerate(zip(result, expected, scales, terms)):
            if i == 0:
                if not need_grad_x:
                    assert ours is None
                    continue
                if single:
                    wanted, scale = wanted[0], scale[0]
            assert_sums_close(ours, wanted, scale, count, dtype)

    return Value(check_result)


# ------------------------------------------------------------ max_pool2d / max_pool2d_backward

# Few distinct values, so windows tie; NaN, infinities, extremes and a denormal among them.
POOL_VALUES = [-2, -1, 0, 1, 2, 2, np.nan, np.inf, -np.inf, -np.inf, 3e38, -3e38, 1e-45, -0.0]


def _lead(rng):
    return tuple(size(rng, 3) for _ in range(pick(rng, [0, 0, 1, 1, 2, 3])))


def max_pool2d_call(rng):
    dtype = float_or_other_dtype(rng, 0.05)
    shape = (*_lead(rng), size(rng, 10, one=0.08), size(rng, 10, one=0.08))
    x = array_arg(rng, shape, dtype, pool=POOL_VALUES, p_reshape=0.03)
    if chance(rng, 0.03):
        # A window far larger than the plane, made valid by half its size in padding.
        kernel = pick(rng, [2**31 - 1, 10**6, 2**20 + 1])
        kernel_size, stride, padding = kernel, pick(rng, [None, 1, 2, kernel]), kernel // 2
    else:
        kernel = (integer(rng, 1, 5), integer(rng, 1, 5))
        kernel_size = spell_pair(rng, *kernel)
        if isinstance(kernel_size, (int, np.integer)) or np.ndim(kernel_size) == 0:
            kernel = (int(kernel_size), int(kernel_size))
        stride = None if chance(rng, 0.3) else int_param(rng, 1, 4, 0.05)
        if chance(rng, 0.9):
            padding = (integer(rng, 0, kernel[0] // 2), integer(rng, 0, kernel[1] // 2))
            padding = padding if chance(rng, 0.5) else min(padding)
        else:
            padding = int_param(rng, 0, 2, 0.3)
        if chance(rng, 0.05):
            kernel_size = pick(rng, BAD_SCALARS)
    named = [("x", x), ("kernel_size", kernel_size), ("stride", stride), ("padding", padding)]
    positional = pick(rng, [4, 2, 2, 3])
    kwargs = dict(named[positional:])
    if kwargs.get("stride", 0) is None and chance(rng, 0.5):
        del kwargs["stride"]
    threads_kwarg(rng, kwargs)
    return Call("max_pool2d", tuple(v for _, v in named[:positional]), kwargs)


def _stack(value):
    """A non-empty float32/float64 array of at least 2 dimensions (..., H, W)."""
    array = as_array(value)
    if array.ndim < 2:
        raise Invalid
    return float_array(array, (array.ndim,))


def _native(array):
    return array.astype(array.dtype.newbyteorder("="))


def max_pool2d_spec(call):
    arguments = bound_arguments(call)
    x = _stack(arguments["x"])
    kernel = int_pair(arguments["kernel_size"], 1)
    stride = kernel if arguments["stride"] is None else int_pair(arguments["stride"], 1)
    padding = int_pair(arguments["padding"], 0)
    num_threads(arguments)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise Invalid
    if kernel[0] > x.shape[-2] + 2 * padding[0] or kernel[1] > x.shape[-1] + 2 * padding[1]:
        raise Invalid
    y, indices = testing.max_pool2d(x, kernel, stride, padding)
    y = _native(y)

    def check_result(result):
        assert isinstance(result, tuple) and len(result) == 2
        assert_same_array(result[1], indices)
        assert_same_array(result[0], y)

    return Value(check_result)


def max_pool2d_backward_call(rng):
    dtype = pick(rng, FLOATS)
    lead = _lead(rng)
    height, width = size(rng, 9, 0.02), size(rng, 9, 0.02)
    if chance(rng, 0.6) and height and width:
        # Indices of a real pooling: overlapping windows send several outputs to one input.
        k = (integer(rng, 1, height + 1), integer(rng, 1, width + 1))
        p = (integer(rng, 0, k[0] // 2), integer(rng, 0, k[1] // 2))
        if k[0] > height + 2 * p[0] or k[1] > width + 2 * p[1]:
            p = (k[0] // 2, k[1] // 2)
        s = (integer(rng, 1, 3), integer(rng, 1, 3))
        source = values(rng, (*lead, height, width), dtype, pool=POOL_VALUES)
        indices = testing.max_pool2d(source, k, s, p)[1]
    else:
        out = (size(rng, 6, 0.02), size(rng, 6, 0.02))
        indices = rng.integers(0, max(1, height * width), (*lead, *out))
    if chance(rng, 0.08) and indices.size:
        indices.flat[integer(rng, 0, indices.size - 1)] = pick(
            rng, [height * width, -1, 2**40, -(2**63), 2**63 - 1])
    if chance(rng, 0.08):
        indices = indices.astype(pick(rng, [np.int32, np.uint64, np.float64, object, bool,
                                             np.int16, ">i8"]))
    if chance(rng, 0.04):
        indices = indices[..., :-1] if indices.shape[-1] else indices[..., None]
    indices = with_layout(indices, pick(rng, LAYOUTS))
    grad_y = array_arg(rng, np.shape(indices), float_or_other_dtype(rng, 0.05) if
                       chance(rng, 0.1) else dtype, special=0.05, p_reshape=0.03)
    input_shape = (*lead, height, width)
    if chance(rng, 0.15):
        input_shape = pick(rng, [
            (*lead, 2**40, 2**40), (*lead, 2**31, width), (3, *input_shape), input_shape[1:],
            (*lead, -height, width), (*lead, 0, width), (*lead, float(height), width),
            np.array(input_shape), list(input_shape), tuple(np.int32(v) for v in input_shape),
            "ab", None, height * width, (*lead, True, width)])
    args = (grad_y, indices, input_shape)
    kwargs = {}
    threads_kwarg(rng, kwargs)
    return Call("max_pool2d_backward", args, kwargs)


def max_pool2d_backward_spec(call):
    arguments = bound_arguments(call)
    grad_y = _stack(arguments["grad_y"])
    indices = as_array(arguments["indices"])
    if indices.dtype.kind != "i" or indices.dtype.itemsize != 8 or indices.shape != grad_y.shape:
        raise Invalid
    try:
        input_shape = tuple(arguments["input_shape"])
    except TypeError:
        raise Invalid from None
    if not all(is_int(v) and v >= 0 for v in input_shape):
        raise Invalid
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != grad_y.ndim or input_shape[:-2] != grad_y.shape[:-2]:
        raise Invalid
    if input_shape[-2] == 0 or input_shape[-1] == 0:
        raise Invalid
    num_threads(arguments)
    if nbytes(input_shape, grad_y.dtype.itemsize) > BIG_BYTES:
        return TOO_BIG
    if indices.min() < 0 or indices.max() >= input_shape[-2] * input_shape[-1]:
        raise Invalid
    with np.errstate(all="ignore"):
        expected = _native(testing.max_pool2d_backward(grad_y, indices, input_shape))
    return Value(functools.partial(assert_same_array, expected=expected))


# ------------------------------------------------------------------------ dense / dense_backward


def dense_call(rng, backward):
    dtype = pick(rng, FLOATS)
    n, n_in, n_out = size(rng, 6), size(rng, 8), size(rng, 6)
    single = chance(rng, 0.2)
    special = pick(rng, [0.0, 0.0, 0.02, 0.2])

    def dtype_of():
        return dtype if chance(rng, 0.95) else float_or_other_dtype(rng, 0.5)

    x_shape = (n_in,) if single else (n, n_in)
    x = array_arg(rng, x_shape, dtype_of(), special)
    w_in = n_in if chance(rng, 0.96) else n_in + 1
    w = array_arg(rng, (n_out, w_in), dtype_of(), special)
    if backward:
        g_shape = x_shape[:-1] + (n_out,)
        if chance(rng, 0.04):
            g_shape = pick(rng, [(n_out,), (n + 1, n_out), (n, n_out + 1)])
        grad_y = array_arg(rng, g_shape, dtype_of(), special)
        return Call("dense_backward", (grad_y, x, w))
    kwargs = {}
    if chance(rng, 0.4):
        kwargs["block_rows"] = pick(rng, [True, False, True, 1, "yes", None])
    if chance(rng, 0.3):
        return Call("dense", (x, w), kwargs)
    b_len = n_out if chance(rng, 0.95) else n_out + 1
    b = None if chance(rng, 0.1) else array_arg(rng, (b_len,), dtype_of(), special)
    return Call("dense", (x, w, b), kwargs)


def _dense_operands(arguments):
    x = float_array(arguments["x"], (1, 2))
    w = float_array(arguments["w"], (2,), x.dtype.itemsize)
    if x.shape[-1] != w.shape[1]:
        raise Invalid
    return x, w, x.dtype.newbyteorder("=")


def dense_spec(call):
    arguments = bound_arguments(call)
    if not isinstance(arguments["block_rows"], bool):
        raise Invalid
    x, w, dtype = _dense_operands(arguments)
    b = arguments["b"]
    if b is not None:
        b = float_array(b, (1,), x.dtype.itemsize)
        if b.shape != (w.shape[0],):
            raise Invalid
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    with np.errstate(all="ignore"):
        expected = x64 @ w64.T
        scale = np.abs(x64) @ np.abs(w64).T
        if b is not None:
            expected = expected + b
            scale = scale + np.abs(b.astype(np.float64))
    return Value(functools.partial(assert_sums_close, expected=expected, scale=scale,
                                   terms=x.shape[-1] + 1, dtype=dtype))


def dense_backward_spec(call):
    arguments = bound_arguments(call)
    x, w, dtype = _dense_operands(arguments)
    grad_y = float_array(arguments["grad_y"], (1, 2), x.dtype.itemsize)
    if grad_y.shape != x.shape[:-1] + (w.shape[0],):
        raise Invalid
    g64, x64, w64 = (a.astype(np.float64) for a in (grad_y, x, w))
    rows = np.atleast_2d(grad_y.astype(dtype))
    with np.errstate(all="ignore"):
        expected = (g64 @ w64, np.atleast_2d(g64).T @ np.atleast_2d(x64))
        scales = (np.abs(g64) @ np.abs(w64), np.abs(np.atleast_2d(g64)).T @ np.abs(np.atleast_2d(x64)))
        grad_b = testing.batch_sum(rows)

    def check_result(result):
        assert isinstance(result, tuple) and len(result) == 3
        assert_sums_close(result[0], expected[0], scales[0], w.shape[0], dtype)
        assert_sums_close(result[1], expected[1], scales[1], rows.shape[0], dtype)
        assert_same_array(result[2], grad_b)

    return Value(check_result)



# ------------------------------------- avg_pool2d / global_avg_pool2d / batch_norm (issue 15)


def _avg_close(ours, expected, sum_abs=None, terms=1):
    """ours (computed in its dtype) against a float64 reference, within rounding; entries whose
    window sums |x| to near the dtype's largest value may overflow in the dtype (as in torch)
    and are not compared."""
    assert isinstance(ours, np.ndarray) and ours.dtype == expected.dtype, (type(ours), expected.dtype)
    assert ours.shape == expected.shape, (ours.shape, expected.shape)
    tol = 1e-5 if expected.dtype == np.float32 else 1e-12
    if sum_abs is None:
        with np.errstate(all="ignore"):
            assert np.allclose(ours, expected, rtol=tol, atol=tol, equal_nan=True), (ours, expected)
        return
    # A sum of terms in any order: within (terms + 1) eps of the sum of their magnitudes.
    keep = ~(sum_abs > np.finfo(ours.dtype).max / 4)
    allowed = tol * np.abs(expected) + terms * np.finfo(ours.dtype).eps * sum_abs + tol
    with np.errstate(all="ignore"):
        ours64, expected64 = ours.astype(np.float64), expected.astype(np.float64)
        same = (np.abs(ours64 - expected64) <= allowed) | (ours64 == expected64)
        same |= np.isnan(ours64) & np.isnan(expected64)
    assert same[keep].all(), (ours, expected)


def avg_pool2d_call(rng):
    call = max_pool2d_call(rng)
    call.func = "avg_pool2d"
    if chance(rng, 0.5):
        call.kwargs["count_include_pad"] = pick(rng, [True, False, np.bool_(False), 1, None, "no"]
                                                if chance(rng, 0.1) else [True, False])
    return call


def avg_pool2d_spec(call):
    arguments = bound_arguments(call)
    x = _stack(arguments["x"])
    kernel = int_pair(arguments["kernel_size"], 1)
    stride = kernel if arguments["stride"] is None else int_pair(arguments["stride"], 1)
    padding = int_pair(arguments["padding"], 0)
    num_threads(arguments)
    if not isinstance(arguments["count_include_pad"], (bool, np.bool_)):
        raise Invalid
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise Invalid
    if kernel[0] > x.shape[-2] + 2 * padding[0] or kernel[1] > x.shape[-1] + 2 * padding[1]:
        raise Invalid
    if kernel[0] * kernel[1] > 10**4:
        return Value(lambda y: None)  # huge windows: the slow reference would take minutes
    with np.errstate(all="ignore"):
        expected = _native(testing.avg_pool2d(x, kernel, stride, padding,
                                              bool(arguments["count_include_pad"])))
        sum_abs = testing.avg_pool2d(np.abs(x.astype(np.float64)), kernel, stride, padding)
        sum_abs = sum_abs * (kernel[0] * kernel[1])
    return Value(functools.partial(_avg_close, expected=expected, sum_abs=sum_abs,
                                   terms=kernel[0] * kernel[1] + 1))


def avg_pool2d_backward_call(rng):
    dtype = float_or_other_dtype(rng, 0.05)
    lead = _lead(rng)
    height, width = size(rng, 9, 0.02), size(rng, 9, 0.02)
    k = (integer(rng, 1, 4), integer(rng, 1, 4))
    s = (integer(rng, 1, 3), integer(rng, 1, 3))
    p = (integer(rng, 0, k[0] // 2), integer(rng, 0, k[1] // 2)) if chance(rng, 0.95) else (2, 2)
    out = (max(0, (height + 2 * p[0] - k[0]) // s[0] + 1), max(0, (width + 2 * p[1] - k[1]) // s[1] + 1))
    if chance(rng, 0.05):
        out = (out[0] + 1, out[1])
    grad_y = array_arg(rng, (*lead, *out), dtype, special=0.02, p_reshape=0.03)
    input_shape = (*lead, height, width)
    if chance(rng, 0.1):
        input_shape = pick(rng, [(*lead, 2**40, 2**40), (3, *input_shape), input_shape[1:],
                                 (*lead, -height, width), list(input_shape), "ab", None])
    kwargs = {"count_include_pad": pick(rng, [True, False])}
    threads_kwarg(rng, kwargs)
    return Call("avg_pool2d_backward", (grad_y, input_shape, spell_pair(rng, *k), s, p), kwargs)


def _input_shape_of(value, lead):
    try:
        input_shape = tuple(value)
    except TypeError:
        raise Invalid from None
    if not all(is_int(v) and v >= 0 for v in input_shape):
        raise Invalid
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != len(lead) + 2 or input_shape[:len(lead)] != lead:
        raise Invalid
    if input_shape[-2] == 0 or input_shape[-1] == 0:
        raise Invalid
    return input_shape


def avg_pool2d_backward_spec(call):
    arguments = bound_arguments(call)
    grad_y = _stack(arguments["grad_y"])
    input_shape = _input_shape_of(arguments["input_shape"], grad_y.shape[:-2])
    kernel = int_pair(arguments["kernel_size"], 1)
    stride = kernel if arguments["stride"] is None else int_pair(arguments["stride"], 1)
    padding = int_pair(arguments["padding"], 0)
    num_threads(arguments)
    height, width = input_shape[-2:]
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise Invalid
    if kernel[0] > height + 2 * padding[0] or kernel[1] > width + 2 * padding[1]:
        raise Invalid
    if nbytes(input_shape, grad_y.dtype.itemsize) > BIG_BYTES:
        return TOO_BIG
    out = ((height + 2 * padding[0] - kernel[0]) // stride[0] + 1,
           (width + 2 * padding[1] - kernel[1]) // stride[1] + 1)
    if grad_y.shape[-2:] != out:
        raise Invalid
    with np.errstate(all="ignore"):
        expected = _native(testing.avg_pool2d_backward(grad_y, input_shape, kernel, stride,
                                                       padding, arguments["count_include_pad"]))
    return Value(functools.partial(_avg_close, expected=expected))


def global_avg_pool2d_call(rng, backward):
    dtype = float_or_other_dtype(rng, 0.05)
    shape = (size(rng, 4), size(rng, 4), size(rng, 9), size(rng, 9))
    kwargs = {}
    threads_kwarg(rng, kwargs)
    if not backward:
        return Call("global_avg_pool2d", (array_arg(rng, shape, dtype, special=0.02),), kwargs)
    grad_y = array_arg(rng, shape[:2], dtype, special=0.02)
    input_shape = shape
    if chance(rng, 0.1):
        input_shape = pick(rng, [(*shape[:2], 2**40, 2**40), shape[1:], (shape[0] + 1, *shape[1:]),
                                 list(shape), "abcd", (*shape[:3], -1)])
    return Call("global_avg_pool2d_backward", (grad_y, input_shape), kwargs)


def global_avg_pool2d_spec(call):
    arguments = bound_arguments(call)
    x = float_array(arguments["x"], (4,))
    num_threads(arguments)
    with np.errstate(all="ignore"):
        expected = _native(testing.global_avg_pool2d(x))
    return Value(functools.partial(_avg_close, expected=expected))


def global_avg_pool2d_backward_spec(call):
    arguments = bound_arguments(call)
    grad_y = float_array(arguments["grad_y"], (2,))
    input_shape = _input_shape_of(arguments["input_shape"], grad_y.shape)
    num_threads(arguments)
    if nbytes(input_shape, grad_y.dtype.itemsize) > BIG_BYTES:
        return TOO_BIG
    with np.errstate(all="ignore"):
        expected = _native(testing.global_avg_pool2d_backward(grad_y, input_shape))
    return Value(functools.partial(_avg_close, expected=expected))


def batch_norm_call(rng, backward=False):
    dtype = float_or_other_dtype(rng, 0.04)
    n, c = size(rng, 5), size(rng, 4)
    shape = pick(rng, [(n, c), (n, c, size(rng, 5), size(rng, 5))])
    x = array_arg(rng, shape, dtype, special=0.02)
    c_arg = c if chance(rng, 0.95) else c + 1

    def param(positive=False, running=False):
        d = dtype if chance(rng, 0.95) else float_or_other_dtype(rng, 0.5)
        value = values(rng, (c_arg,), d)
        if positive and value.dtype.kind == "f":
            value = np.abs(value) + value.dtype.type(0.5)
        if running:
            value = value.copy() if chance(rng, 0.95) else value.tolist()
            return value
        return with_layout(value, pick(rng, LAYOUTS))

    training = pick(rng, [True, False, True, np.bool_(True)]) if chance(rng, 0.95) else pick(rng, [1, None])
    kwargs = {}
    if chance(rng, 0.4):
        kwargs["momentum"] = pick(rng, [0.0, 0.1, 0.5, 1.0, 1.5, -0.1, np.float32(0.3), "0.1", None])
    if chance(rng, 0.3):
        kwargs["eps"] = pick(rng, [1e-5, 1e-3, 0.0, -1.0, np.nan, np.inf, 1])
    threads_kwarg(rng, kwargs)
    args = (x, param(), param(), param(running=True), param(positive=True, running=True), training)
    call = Call("batch_norm", args, kwargs)
    if not backward:
        return call
    try:
        if dtype.kind != "f" or dtype.itemsize not in (4, 8):
            raise TypeError("no float cache for this dtype")
        x_ok = np.asarray(x, dtype=dtype)
        channels = x_ok.shape[1] if x_ok.ndim in (2, 4) and x_ok.size else 1
        ones = np.ones(channels, x_ok.dtype)
        _, cache = cnnative.batch_norm(x_ok, ones * 1.5, ones * 0.5, ones * 0, ones * 1,
                                       bool(training), num_threads=1)
    except (ValueError, TypeError):
        return Call("batch_norm_backward", (np.ones(3), pick(rng, [None, (1, 2), "cache"])))
    g_shape = x_ok.shape if chance(rng, 0.95) else (*x_ok.shape[:-1], x_ok.shape[-1] + 1)
    g_dtype = x_ok.dtype if chance(rng, 0.95) else float_or_other_dtype(rng, 0.5)
    grad_y = array_arg(rng, g_shape, g_dtype, special=0.02)
    kwargs = {}
    threads_kwarg(rng, kwargs)
    return Call("batch_norm_backward", (grad_y, cache), kwargs)


def batch_norm_spec(call):
    arguments = bound_arguments(call)
    x = float_array(arguments["x"], (2, 4))
    channels = x.shape[1]
    params = []
    for name in ("gamma", "beta", "running_mean", "running_var"):
        value = arguments[name]
        if name.startswith("running") and not isinstance(value, np.ndarray):
            raise Invalid
        array = float_array(value, (1,), x.dtype.itemsize)
        if array.shape != (channels,):
            raise Invalid
        params.append(array)
    training = arguments["training"]
    if not isinstance(training, (bool, np.bool_)):
        raise Invalid
    momentum, eps = arguments["momentum"], arguments["eps"]
    for value in (momentum, eps):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise Invalid
    if not 0 <= momentum <= 1 or not 0 < eps < np.inf:
        raise Invalid
    num_threads(arguments)
    if training and x.size // channels < 2:
        raise Invalid
    if training and not all(a.flags.writeable for a in params[2:]):
        raise Invalid
    with np.errstate(all="ignore"):
        y, rm, rv, _ = testing.batch_norm(x, *params, bool(training), float(momentum), float(eps))
    dtype = x.dtype.newbyteorder("=")

    def check_result(result):
        assert isinstance(result, tuple) and len(result) == 2
        y_ours = result[0]
        assert isinstance(y_ours, np.ndarray) and y_ours.dtype == dtype and y_ours.shape == x.shape
        if not (np.isfinite(x).all() and all(np.isfinite(p).all() for p in params)):
            return
        tol = 1e-3 if dtype == np.float32 else 1e-9
        with np.errstate(all="ignore"):
            assert np.allclose(y_ours, y, rtol=tol, atol=tol * max(1, float(np.abs(y).max()))), \
                np.abs(y_ours - y).max()
            for ours, expected in ((params[2], rm), (params[3], rv)):
                assert np.allclose(ours, expected, rtol=tol, atol=tol * max(1, float(np.abs(expected).max())))

    return Value(check_result)


def batch_norm_backward_spec(call):
    arguments = bound_arguments(call)
    cache = arguments["cache"]
    if not isinstance(cache, cnnative.norm.BatchNormCache):
        raise Invalid
    x = cache._x
    grad_y = float_array(arguments["grad_y"], (2, 4), x.dtype.itemsize)
    if grad_y.shape != cache._shape:
        raise Invalid
    num_threads(arguments)
    dtype = x.dtype

    def check_result(result):
        assert isinstance(result, tuple) and len(result) == 3
        for ours, shape in zip(result, (cache._shape, (x.shape[1],), (x.shape[1],))):
            assert isinstance(ours, np.ndarray) and ours.dtype == dtype and ours.shape == shape

    return Value(check_result)


def batch_norm_check(call, spec):
    """fuzz_support.check, except that a valid training call updates the running statistics
    in place (documented), and the returned cache is no array."""
    expected = spec_outcome = None
    try:
        expected = spec(call)
    except Invalid:
        spec_outcome = "error"
    inputs = [a for a in (*call.args, *call.kwargs.values()) if isinstance(a, np.ndarray)]
    before = [a.tobytes() for a in inputs]
    running = [id(a) for a in call.args[3:5]] if call.func == "batch_norm" else []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            result = getattr(cnnative, call.func)(*call.args, **call.kwargs)
        except (ValueError, TypeError) as exc:
            assert spec_outcome == "error", f"raised {exc!r} on a valid call"
            fuzz_support._check_message(call.func, exc)
            outcome = "error"
        else:
            assert spec_outcome is None, f"accepted an invalid call, returned {result!r}"
            expected.check(result)
            arrays = [r for r in result if isinstance(r, np.ndarray)]
            fuzz_support._check_fresh(arrays, inputs)
            outcome = "value"
    for array, saved in zip(inputs, before):
        if outcome == "value" and id(array) in running:
            continue
        assert array.tobytes() == saved, "an input was modified"
    return outcome


# ------------------------------------------------------------------------------- the registry

TARGETS = {target.name: target for target in [
    Target("correlate2d", functools.partial(signal_call, func="correlate2d"), signal_spec),
    Target("convolve2d", functools.partial(signal_call, func="convolve2d"), signal_spec),
    Target("correlate", functools.partial(signal_nd_call, func="correlate"), signal_nd_spec),
    Target("convolve", functools.partial(signal_nd_call, func="convolve"), signal_nd_spec),
    Target("conv2d", functools.partial(conv_call, backward=False), conv2d_spec),
    Target("conv2d_backward", functools.partial(conv_call, backward=True), conv2d_backward_spec),
    Target("max_pool2d", max_pool2d_call, max_pool2d_spec),
    Target("max_pool2d_backward", max_pool2d_backward_call, max_pool2d_backward_spec),
    Target("dense", functools.partial(dense_call, backward=False), dense_spec),
    Target("dense_backward", functools.partial(dense_call, backward=True), dense_backward_spec),
]}
TARGETS.update({target.name: target for target in [
    Target("avg_pool2d", avg_pool2d_call, avg_pool2d_spec),
    Target("avg_pool2d_backward", avg_pool2d_backward_call, avg_pool2d_backward_spec),
    Target("global_avg_pool2d", functools.partial(global_avg_pool2d_call, backward=False),
           global_avg_pool2d_spec),
    Target("global_avg_pool2d_backward", functools.partial(global_avg_pool2d_call, backward=True),
           global_avg_pool2d_backward_spec),
    Target("batch_norm", batch_norm_call, batch_norm_spec, batch_norm_check),
    Target("batch_norm_backward", functools.partial(batch_norm_call, backward=True),
           batch_norm_backward_spec, batch_norm_check),
]})
TARGETS.update((name, Target(name, make, reference_of, fuzz_native.check_native))
               for name, (make, reference_of) in fuzz_native.NATIVE.items())
TARGETS.update((name, Target(name, make, spec, fuzz_files.check_file))
               for name, (make, spec) in fuzz_files.FILES.items())
