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

import fuzz_files
import fuzz_native
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

    def check_result(ours):
        if exact:
            assert_same_array(ours, expected)
            return
        assert ours.dtype == expected.dtype and ours.shape == expected.shape
        fill = np.asarray(complex(fillvalue) if boundary in ("fill", "pad") else 0)
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

    return Value(check_result)


# --------------------------------------------------------------------- conv2d / conv2d_backward


def _intended_pair(value, fallback):
    try:
        return int_pair(value, 0)
    except Invalid:
        return fallback


def conv_call(rng, backward):
    dtype = pick(rng, FLOATS)
    # Batches above 8 are split into chunks whose gradients are added up afterwards.
    n = size(rng, 20) if chance(rng, 0.1) else size(rng, 4)
    channels, filters = size(rng, 3), size(rng, 4)
    kernel = (size(rng, 5), size(rng, 5))
    height, width = size(rng, 10, one=0.05), size(rng, 10, one=0.05)
    stride, padding = int_param(rng, 1, 3, 0.06), int_param(rng, 0, 2, 0.06)
    single = chance(rng, 0.2)
    special = pick(rng, [0.0, 0.0, 0.02, 0.2])
    x_shape = (channels, height, width) if single else (n, channels, height, width)
    w_channels = channels if chance(rng, 0.97) else size(rng, 4)

    def dtype_of():
        return dtype if chance(rng, 0.95) else float_or_other_dtype(rng, 0.5)

    x = array_arg(rng, x_shape, dtype_of(), special)
    w = array_arg(rng, (filters, w_channels, *kernel), dtype_of(), special)
    kwargs = {}
    if backward:
        (sh, sw), (ph, pw) = _intended_pair(stride, (1, 1)), _intended_pair(padding, (0, 0))
        out = (max(0, (height + 2 * ph - kernel[0]) // max(sh, 1) + 1),
               max(0, (width + 2 * pw - kernel[1]) // max(sw, 1) + 1))
        if out[0] * out[1] > 10**5:  # a huge padding: no call with it can have a grad_y
            out = (size(rng, 4), size(rng, 4))
        if chance(rng, 0.05):
            out = (max(0, out[0] + pick(rng, [-1, 1])), out[1])
        g_shape = (filters, *out) if single else (n, filters, *out)
        grad_y = array_arg(rng, g_shape, dtype_of(), special)
        named = [("grad_y", grad_y), ("x", x), ("w", w), ("stride", stride), ("padding", padding)]
        if chance(rng, 0.3):
            kwargs["need_grad_x"] = pick(rng, [False, True, 0, np.bool_(False)])
    else:
        b = None
        if chance(rng, 0.7):
            b_len = filters if chance(rng, 0.95) else filters + 1
            b = array_arg(rng, (b_len,), dtype_of(), special)
        named = [("x", x), ("w", w), ("b", b), ("stride", stride), ("padding", padding)]
    positional = pick(rng, [5, 5, 3, 2])
    args = tuple(value for _, value in named[:positional])
    kwargs.update(named[positional:])
    threads_kwarg(rng, kwargs)
    return Call("conv2d_backward" if backward else "conv2d", args, kwargs)


def _conv_geometry(arguments):
    w = float_array(arguments["w"], (4,))
    x = float_array(arguments["x"], (3, 4), w.dtype.itemsize)
    single = x.ndim == 3
    x4 = x[np.newaxis] if single else x
    if x4.shape[1] != w.shape[1]:
        raise Invalid
    stride, padding = int_pair(arguments["stride"], 1), int_pair(arguments["padding"], 0)
    height, width = x4.shape[2] + 2 * padding[0], x4.shape[3] + 2 * padding[1]
    if w.shape[2] > height or w.shape[3] > width:
        raise Invalid
    out = ((height - w.shape[2]) // stride[0] + 1, (width - w.shape[3]) // stride[1] + 1)
    num_threads(arguments)
    return x4, w, single, stride, padding, out


def conv2d_spec(call):
    arguments = bound_arguments(call)
    x4, w, single, stride, padding, out = _conv_geometry(arguments)
    b = arguments["b"]
    if b is not None:
        b = float_array(b, (1,), w.dtype.itemsize)
        if b.shape != (w.shape[0],):
            raise Invalid
    if nbytes((x4.shape[0], w.shape[0], *out), w.dtype.itemsize) > BIG_BYTES:
        return TOO_BIG
    dtype = w.dtype.newbyteorder("=")
    with np.errstate(all="ignore"):
        expected = testing.conv2d(x4, w, b, stride, padding)
        scale = testing.conv2d(np.abs(x4), np.abs(w), None if b is None else np.abs(b), stride,
                                 padding)
    terms = w.shape[1] * w.shape[2] * w.shape[3] + 1

    def check_result(y):
        assert_sums_close(y, expected[0] if single else expected, scale[0] if single else scale,
                          terms, dtype)

    return Value(check_result)


def conv2d_backward_spec(call):
    arguments = bound_arguments(call)
    x4, w, single, stride, padding, out = _conv_geometry(arguments)
    grad_y = float_array(arguments["grad_y"], (3,) if single else (4,), w.dtype.itemsize)
    g4 = grad_y[np.newaxis] if single else grad_y
    if g4.shape != (x4.shape[0], w.shape[0], *out):
        raise Invalid
    dtype = w.dtype.newbyteorder("=")
    with np.errstate(all="ignore"):
        expected = testing.conv2d_backward(g4, x4, w, stride, padding)
        scales = testing.conv2d_backward(np.abs(g4), np.abs(x4), np.abs(w), stride, padding)
    batch_terms = x4.shape[0] * out[0] * out[1]
    terms = (w.shape[0] * w.shape[2] * w.shape[3], batch_terms, batch_terms)
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
    if chance(rng, 0.3):
        return Call("dense", (x, w))
    b_len = n_out if chance(rng, 0.95) else n_out + 1
    b = None if chance(rng, 0.1) else array_arg(rng, (b_len,), dtype_of(), special)
    return Call("dense", (x, w, b))


def _dense_operands(arguments):
    x = float_array(arguments["x"], (1, 2))
    w = float_array(arguments["w"], (2,), x.dtype.itemsize)
    if x.shape[-1] != w.shape[1]:
        raise Invalid
    return x, w, x.dtype.newbyteorder("=")


def dense_spec(call):
    arguments = bound_arguments(call)
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
        grad_b = functools.reduce(np.add, rows)  # row by row, in the arguments' dtype

    def check_result(result):
        assert isinstance(result, tuple) and len(result) == 3
        assert_sums_close(result[0], expected[0], scales[0], w.shape[0], dtype)
        assert_sums_close(result[1], expected[1], scales[1], rows.shape[0], dtype)
        assert_same_array(result[2], grad_b)

    return Value(check_result)


# ------------------------------------------------------------------------------- the registry

TARGETS = {target.name: target for target in [
    Target("correlate2d", functools.partial(signal_call, func="correlate2d"), signal_spec),
    Target("convolve2d", functools.partial(signal_call, func="convolve2d"), signal_spec),
    Target("conv2d", functools.partial(conv_call, backward=False), conv2d_spec),
    Target("conv2d_backward", functools.partial(conv_call, backward=True), conv2d_backward_spec),
    Target("max_pool2d", max_pool2d_call, max_pool2d_spec),
    Target("max_pool2d_backward", max_pool2d_backward_call, max_pool2d_backward_spec),
    Target("dense", functools.partial(dense_call, backward=False), dense_spec),
    Target("dense_backward", functools.partial(dense_call, backward=True), dense_backward_spec),
]}
TARGETS.update((name, Target(name, make, reference_of, fuzz_native.check_native))
               for name, (make, reference_of) in fuzz_native.NATIVE.items())
TARGETS.update((name, Target(name, make, spec, fuzz_files.check_file))
               for name, (make, spec) in fuzz_files.FILES.items())
