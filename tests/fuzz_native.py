"""Fuzz targets for the raw kernels in cnnative._native, which promise to re-check everything
their memory safety depends on, whatever a Python caller passes.

Each call starts from consistent arguments (as the wrappers would pass them) and, most of the
time, spoils one or two: another dtype, byte order, alignment, contiguity, ndim or shape, a
read-only output, a start/stop outside the batch, a zero, negative or huge geometry integer.
The oracle: the kernel raises ValueError/TypeError (any message: these are internal), or it
returns and then (1) it wrote nothing outside the part of its outputs it owns: outputs live
between guard bands of the same allocation, and rows outside [start, stop) keep a sentinel;
(2) what it wrote is right for the arguments it was actually given (scipy.signal,
cnnative.testing, NumPy).  Under tools/sanitize.sh, AddressSanitizer
catches reads and writes past the allocations themselves.
"""
import dataclasses
import functools
import warnings

import numpy as np
import scipy.signal

from cnnative._native import conv as native_conv
from cnnative._native import correlate as native_correlate
from cnnative._native import dense as native_dense
from cnnative._native import norm as native_norm
from cnnative._native import pool as native_pool
from cnnative import testing
from fuzz_support import (FLOATS, assert_same_array, assert_sums_close, chance, describe, integer,
                          pick, size, values, with_layout)

GUARD = 16  # elements of sentinel on each side of every output
SENTINEL = 7.25


@dataclasses.dataclass
class NativeCall:
    """kernel(*args); ``outputs`` maps the positions of the arrays it writes to (guarded buffer,
    view, None if it owns all of it or the positions of the start and stop arguments that say
    which rows it owns), or to None once spoiled (no longer in its guards)."""

    name: str
    kernel: object
    args: list
    outputs: dict
    seed: object = None

    def __repr__(self):
        return f"[seed {self.seed}] {self.name}({', '.join(describe(a) for a in self.args)})"


def guarded(shape, dtype):
    """A C-contiguous array of ``shape`` inside a buffer with GUARD sentinel elements each side."""
    count = int(np.prod(shape))
    buffer = np.full(count + 2 * GUARD, SENTINEL, dtype)
    return buffer, buffer[GUARD:GUARD + count].reshape(shape)


def untouched(array):
    return (array == array.dtype.type(SENTINEL)).all()


def spoil_array(rng, array):
    """``array`` made unacceptable in one way (or acceptable after all: the oracle decides)."""
    how = pick(rng, ["dtype", "dtype", "swapped", "misaligned", "strided", "fortran", "ndim",
                     "shape", "empty", "readonly", "none"])
    if how == "dtype":
        with np.errstate(invalid="ignore", over="ignore"):
            return array.astype(pick(rng, [np.float32, np.float64, np.int64, np.float16, np.int32]))
    if how == "swapped":
        return array.astype(array.dtype.newbyteorder())
    if how == "misaligned":
        return with_layout(array, "misaligned")
    if how == "strided" and array.ndim:
        big = np.repeat(array, 2, axis=-1)
        return big[..., ::2]
    if how == "fortran":
        return np.asfortranarray(array)
    if how == "ndim":
        return array.reshape(array.shape[1:]) if array.ndim and array.shape[0] == 1 else array[np.newaxis]
    if how == "shape" and array.ndim:
        axis = integer(rng, 0, array.ndim - 1)
        grown = list(array.shape)
        grown[axis] += pick(rng, [-1, 1])
        return np.zeros([max(0, n) for n in grown], array.dtype)
    if how == "empty" and array.ndim:
        return array[..., :0]
    if how == "readonly":
        out = array.copy()
        out.flags.writeable = False
        return out
    if how == "none":
        return None
    return array


def spoil_int(rng, value):
    """``value`` (an int, or an (h, w) pair of which one gets spoiled) made suspicious."""
    if isinstance(value, tuple):
        i = integer(rng, 0, len(value) - 1)
        return value[:i] + (spoil_int(rng, value[i]),) + value[i + 1:]
    return pick(rng, [0, -1, value + 1, value - 1, 2**31, 2**31 - 1, 2**62, 2**63 - 1, -(2**63)])


def spoil(rng, call, arrays, ints):
    """Spoils 0-2 of the arguments at positions ``arrays`` and ``ints``; returns how many."""
    spoiled = 0
    for _ in range(pick(rng, [0, 0, 1, 1, 1, 2])):
        if ints and chance(rng, 0.4):
            i = pick(rng, ints)
            call.args[i] = spoil_int(rng, call.args[i])
        else:
            i = pick(rng, arrays)
            if call.args[i] is None:
                continue
            call.args[i] = spoil_array(rng, call.args[i])
            if i in call.outputs:
                call.outputs[i] = None  # a spoiled output is no longer inside its guards
        spoiled += 1
    return spoiled


def check_native(call, reference_of):
    """Runs a NativeCall; returns 'value' or 'error', or raises AssertionError."""
    inputs = [(a, a.tobytes()) for i, a in enumerate(call.args)
              if isinstance(a, np.ndarray) and i not in call.outputs]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            result = call.kernel(*call.args)
        except (ValueError, TypeError, OverflowError):  # OverflowError: a C integer argument
            outcome = "error"
        else:
            outcome = "value"
    for array, saved in inputs:
        assert array.tobytes() == saved, "an input was modified"
    for position, guard in call.outputs.items():
        if guard is None:
            continue
        buffer, view, rows = guard
        assert untouched(buffer[:GUARD]) and untouched(buffer[-GUARD:]), \
            f"argument {position}: write outside the output"
        if rows is not None or outcome == "error":
            outside = np.ones(view.shape[0], bool)
            if outcome == "value":
                outside[call.args[rows[0]]:call.args[rows[1]]] = False
            assert untouched(view[outside]), f"argument {position}: write outside its part"
    if outcome == "value":
        try:
            check = reference_of(call)
        except Exception as exc:  # noqa: BLE001 - the arguments made no sense, yet were accepted
            raise AssertionError(f"accepted arguments the reference cannot interpret: {exc!r}") from exc
        check(result)
    return outcome


# --------------------------------------------------------------------------- correlate_direct


def correlate_call(rng):
    dtype = pick(rng, FLOATS)
    # Now and then large enough that the interior is read in place and the borders go through
    # strips (above 64 KiB of padded frame).
    limit = 12 if chance(rng, 0.8) else 150
    image = values(rng, (size(rng, limit), size(rng, limit)), dtype, special=0.05)
    kernel = values(rng, (size(rng, 6), size(rng, 6)), dtype, special=0.05)
    mode, boundary = integer(rng, 0, 2), integer(rng, 0, 2)
    flip = chance(rng, 0.5)
    args = [image, kernel, flip, mode, boundary, pick(rng, [0.0, 1.5, np.nan])]
    if chance(rng, 0.5):
        call = NativeCall("correlate_direct", native_correlate.correlate_direct, args, {})
        spoil(rng, call, [0, 1], [3, 4])
        return call
    # Rows [start, stop) of a given output, claimed a few at a time from a counter.
    (m, n), (j, k) = image.shape, kernel.shape
    shape = [(m - j + 1, n - k + 1), (m, n), (m + j - 1, n + k - 1)][mode]
    shape = (max(shape[0], 1), max(shape[1], 1))  # empty inputs are refused anyway
    out_buffer, out = guarded(shape, dtype)
    start = integer(rng, 0, shape[0])
    stop = integer(rng, start, shape[0])
    counter = np.zeros(1, np.int64) if chance(rng, 0.5) else None
    args += [out, start, stop, counter, integer(rng, 1, 4), integer(rng, 0, 4)]
    # The counter is written too (claims add to it); None: nothing to guard.
    call = NativeCall("correlate_direct(out)", native_correlate.correlate_direct, args,
                      {6: (out_buffer, out, (7, 8)), 9: None})
    spoil(rng, call, [0, 1, 6], [3, 4, 7, 8, 10, 11])
    return call


def correlate_reference(call):
    image, kernel, flip, mode, boundary, fill = call.args[:6]
    func = scipy.signal.convolve2d if flip else scipy.signal.correlate2d
    expected = func(np.array(image), np.array(kernel), ("valid", "same", "full")[mode],
                    ("fill", "symm", "wrap")[boundary], fill)
    expected = expected.astype(expected.dtype.newbyteorder("="))
    if mode == 0:
        assert kernel.shape[0] <= image.shape[0] and kernel.shape[1] <= image.shape[1]
    if len(call.args) == 6:
        return functools.partial(assert_same_array, expected=expected)
    out, start, stop = call.args[6:9]

    def check(result):
        if out is None:  # spoiled to None: a new array, and it must be all of the output
            assert_same_array(result, expected)
            return
        assert result is out
        assert_same_array(np.array(out[start:stop]), expected[start:stop])

    return check


# ------------------------------------------------------------------------------ conv kernels


def conv_call(rng, backward):
    dtype = pick(rng, FLOATS)
    groups = pick(rng, [1, 1, 2, 3])
    n, c, f = integer(rng, 1, 5), groups * integer(rng, 1, 3), groups * integer(rng, 1, 3)
    if groups > 1 and chance(rng, 0.5):
        c = groups  # depthwise
    kh, kw = integer(rng, 1, 4), integer(rng, 1, 4)
    sh, sw = integer(rng, 1, 3), integer(rng, 1, 3)
    dh, dw = (integer(rng, 1, 3), integer(rng, 1, 3)) if chance(rng, 0.4) else (1, 1)
    pt, pb, pl, pr = (integer(rng, 0, 2) for _ in range(4))
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    h, w_ = max(1, eh - pt - pb) + integer(rng, 0, 6), max(1, ew - pl - pr) + integer(rng, 0, 6)
    oh, ow = (h + pt + pb - eh) // sh + 1, (w_ + pl + pr - ew) // sw + 1
    x, w = values(rng, (n, c, h, w_), dtype, 0.02), values(rng, (f, c // groups, kh, kw), dtype, 0.02)
    start = integer(rng, 0, n)
    stop = integer(rng, start, n)
    geometry = [(sh, sw), (pt, pb, pl, pr), (dh, dw), groups]
    if backward:
        grad_x_buffer, grad_x = guarded((n, c, h, w_), dtype)
        grad_w_buffer, grad_w = guarded((f, c // groups, kh, kw), dtype)
        grad_b_buffer, grad_b = guarded((f,), dtype)
        args = [values(rng, (n, f, oh, ow), dtype, 0.02), x, w,
                None if chance(rng, 0.2) else grad_x, grad_w, grad_b, *geometry, start, stop]
        outputs = {4: (grad_w_buffer, grad_w, None), 5: (grad_b_buffer, grad_b, None)}
        if args[3] is not None:
            outputs[3] = (grad_x_buffer, grad_x, (10, 11))
        call = NativeCall("conv.backward", native_conv.backward, args, outputs)
        spoil(rng, call, [0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11])
    else:
        y_buffer, y = guarded((n, f, oh, ow), dtype)
        args = [x, w, None if chance(rng, 0.3) else values(rng, (f,), dtype), y, *geometry,
                start, stop]
        call = NativeCall("conv.forward", native_conv.forward, args,
                          {3: (y_buffer, y, (8, 9))})
        spoil(rng, call, [0, 1, 2, 3], [4, 5, 6, 7, 8, 9])
    return call


def _sums_check(ours, expected, scale, terms):
    with np.errstate(all="ignore"):
        assert_sums_close(ours, expected, scale, terms, ours.dtype)


def conv_forward_reference(call):
    x, w, bias, y, stride, padding, dilation, groups, start, stop = call.args
    assert x.dtype == w.dtype == y.dtype and (bias is None or bias.dtype == x.dtype)
    with np.errstate(all="ignore"):
        expected = testing.conv2d(x[start:stop], w, bias, stride, padding, dilation, groups)
        scale = testing.conv2d(np.abs(x[start:stop]), np.abs(w),
                                 None if bias is None else np.abs(bias), stride, padding, dilation,
                                 groups)
    terms = w.shape[1] * w.shape[2] * w.shape[3] + 1
    return lambda result: (result is None and
                           _sums_check(np.array(y[start:stop]), expected, scale, terms))


def conv_backward_reference(call):
    grad_y, x, w, grad_x, grad_w, grad_b, stride, padding, dilation, groups, start, stop = call.args
    assert x.dtype == w.dtype == grad_y.dtype == grad_w.dtype == grad_b.dtype
    options = (stride, padding, dilation, groups)
    with np.errstate(all="ignore"):
        expected = testing.conv2d_backward(grad_y[start:stop], x[start:stop], w, *options)
        scales = testing.conv2d_backward(np.abs(grad_y[start:stop]), np.abs(x[start:stop]),
                                           np.abs(w), *options)
    pixels = (stop - start) * grad_y.shape[2] * grad_y.shape[3]

    def check(result):
        assert result is None
        if grad_x is not None:
            _sums_check(np.array(grad_x[start:stop]), expected[0], scales[0],
                        w.shape[0] * w.shape[2] * w.shape[3])
        if stop > start:
            _sums_check(np.array(grad_w), expected[1], scales[1], pixels)
            _sums_check(np.array(grad_b), expected[2], scales[2], pixels)
        else:
            assert not grad_w.any() and not grad_b.any()

    return check


# ------------------------------------------------------------------------------ pool kernels


def pool_call(rng, backward):
    dtype = pick(rng, FLOATS)
    planes, h, w = integer(rng, 1, 5), integer(rng, 1, 9), integer(rng, 1, 9)
    kh, kw = integer(rng, 1, min(h + 1, 5)), integer(rng, 1, min(w + 1, 5))
    ph, pw = integer(rng, 0, kh // 2), integer(rng, 0, kw // 2)
    kh, kw = min(kh, h + 2 * ph), min(kw, w + 2 * pw)
    sh, sw = integer(rng, 1, 3), integer(rng, 1, 3)
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    start = integer(rng, 0, planes)
    stop = integer(rng, start, planes)
    x = values(rng, (planes, h, w), dtype, pool=[-1, 0, 1, np.nan, -np.inf])
    if backward:
        indices = testing.max_pool2d(x, (kh, kw), (sh, sw), (ph, pw))[1]
        if chance(rng, 0.2):
            indices.flat[integer(rng, 0, indices.size - 1)] = pick(rng, [h * w, -1, 2**62])
        grad_x_buffer, grad_x = guarded((planes, h, w), dtype)
        call = NativeCall("pool.max_pool2d_backward_planes", native_pool.max_pool2d_backward_planes,
                          [values(rng, (planes, oh, ow), dtype), indices, grad_x, start, stop],
                          {2: (grad_x_buffer, grad_x, (3, 4))})
        spoil(rng, call, [0, 1, 2], [3, 4])
    else:
        y_buffer, y = guarded((planes, oh, ow), dtype)
        i_buffer, indices = guarded((planes, oh, ow), np.int64)
        call = NativeCall("pool.max_pool2d_planes", native_pool.max_pool2d_planes,
                          [x, y, indices, (kh, kw), (sh, sw), (ph, pw), start, stop],
                          {1: (y_buffer, y, (6, 7)), 2: (i_buffer, indices, (6, 7))})
        spoil(rng, call, [0, 1, 2], [3, 4, 5, 6, 7])
    return call


def pool_forward_reference(call):
    x, y, indices, (kh, kw), (sh, sw), (ph, pw), start, stop = call.args
    expected_y, expected_i = testing.max_pool2d(x[start:stop], (kh, kw), (sh, sw), (ph, pw))

    def check(result):
        assert result is None
        assert_same_array(np.array(indices[start:stop]), expected_i)
        assert_same_array(np.array(y[start:stop]), expected_y.astype(expected_y.dtype.newbyteorder("=")))

    return check


def pool_backward_reference(call):
    grad_y, indices, grad_x, start, stop = call.args
    assert grad_y.dtype == grad_x.dtype and indices.shape == grad_y.shape
    chunk = indices[start:stop]
    bad = bool(((chunk < 0) | (chunk >= grad_x.shape[1] * grad_x.shape[2])).any())
    if not bad:
        with np.errstate(all="ignore"):
            expected = testing.max_pool2d_backward(grad_y[start:stop], chunk,
                                                          (stop - start, *grad_x.shape[1:]))

    def check(status):
        Status = native_pool.Status
        assert status == (Status.STATUS_BAD_INDEX if bad else Status.STATUS_OK), status
        if not bad:
            assert_same_array(np.array(grad_x[start:stop]), expected)

    return check


# ----------------------------------------------------------------------------- dense kernels


def dense_call(rng, sums):
    dtype = pick(rng, FLOATS)
    m, k, n = integer(rng, 1, 6), integer(rng, 1, 6), integer(rng, 1, 6)
    a = values(rng, (m, k), dtype, 0.02)
    if sums:
        call = NativeCall("dense.column_sums", native_dense.column_sums, [a], {})
        spoil(rng, call, [0], [])
    else:
        args = [a, values(rng, (k, n), dtype, 0.02), None if chance(rng, 0.3) else values(rng, (n,), dtype),
                pick(rng, [0, 0, 1, 3, 8])]
        call = NativeCall("dense.matmul", native_dense.matmul, args, {})
        spoil(rng, call, [0, 1, 2], [3])
    return call


def block_gram_sum_call(rng):
    dtype = pick(rng, FLOATS)
    m, k, n = integer(rng, 1, 40), integer(rng, 1, 5), integer(rng, 1, 5)
    call = NativeCall("dense.block_gram_sum", native_dense.block_gram_sum,
                      [values(rng, (m, n), dtype, 0.02), values(rng, (m, k), dtype, 0.02),
                       pick(rng, [8, 8, 1, 3])], {})
    spoil(rng, call, [0, 1], [2])
    return call


def block_gram_sum_reference(call):
    g, x, rows = call.args
    assert g.dtype == x.dtype and g.shape[0] == x.shape[0] and rows >= 1
    g64, x64 = g.astype(np.float64), x.astype(np.float64)
    with np.errstate(all="ignore"):
        expected, scale = g64.T @ x64, np.abs(g64).T @ np.abs(x64)

    def check(out):
        assert out.shape == (g.shape[1], x.shape[1])
        _sums_check(out, expected, scale, g.shape[0])
    return check


def channel_sums_call(rng):
    dtype = pick(rng, FLOATS)
    n, c, s = integer(rng, 1, 20), integer(rng, 1, 4), pick(rng, [1, 1, 3, 17, 40])
    kind = pick(rng, [0, 1, 2])
    a = values(rng, (n, c, s), dtype, 0.02)
    b = values(rng, (n, c, s), dtype, 0.02) if kind == 2 or chance(rng, 0.1) else None
    center = rng.standard_normal(c) if kind or chance(rng, 0.1) else None
    call = NativeCall("norm.channel_sums", native_norm.channel_sums,
                      [pick(rng, [kind] * 8 + [3, -1]), a, b, center], {})
    spoil(rng, call, [1, 2, 3], [])
    return call


def channel_sums_reference(call):
    kind, a, b, center = call.args
    assert kind in (0, 1, 2) and a.ndim == 3
    a64 = a.astype(np.float64)
    with np.errstate(all="ignore"):
        if kind == 0:
            expected, scale = a64.sum(axis=(0, 2)), np.abs(a64).sum(axis=(0, 2))
        elif kind == 1:
            deviations = (a64 - center[None, :, None]) ** 2
            expected = scale = deviations.sum(axis=(0, 2))
        else:
            product = a64 * (b.astype(np.float64) - center[None, :, None])
            expected = np.stack([a64.sum(axis=(0, 2)), product.sum(axis=(0, 2))])
            scale = np.stack([np.abs(a64).sum(axis=(0, 2)), np.abs(product).sum(axis=(0, 2))])
    terms = a.shape[0] * a.shape[2]

    def check(out):
        assert out.dtype == np.float64 and out.shape == expected.shape
        finite = np.isfinite(expected)
        np.testing.assert_array_equal(np.isfinite(out), finite)
        with np.errstate(invalid="ignore"):
            error = np.abs(out - expected)[finite]
        assert np.all(error <= 1e-13 * terms * scale[finite] + 1e-300)
    return check


def matmul_reference(call):
    a, b, bias, row_block = call.args
    assert a.dtype == b.dtype and (bias is None or bias.dtype == a.dtype) and row_block >= 0
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(all="ignore"):
        expected, scale = a64 @ b64, np.abs(a64) @ np.abs(b64)
        if bias is not None:
            expected, scale = expected + bias, scale + np.abs(bias.astype(np.float64))
    return lambda out: _sums_check(out, expected, scale, a.shape[1] + 1)


def column_sums_reference(call):
    (a,) = call.args
    with np.errstate(all="ignore"):
        expected = functools.reduce(np.add, a.astype(a.dtype.newbyteorder("=")))
    return functools.partial(assert_same_array, expected=expected)


# Name -> (make(rng) -> NativeCall, reference(call) -> check(result))
NATIVE = {
    "native.correlate_direct": (correlate_call, correlate_reference),
    "native.conv_forward": (functools.partial(conv_call, backward=False), conv_forward_reference),
    "native.conv_backward": (functools.partial(conv_call, backward=True), conv_backward_reference),
    "native.max_pool2d_planes": (functools.partial(pool_call, backward=False), pool_forward_reference),
    "native.max_pool2d_backward_planes": (functools.partial(pool_call, backward=True), pool_backward_reference),
    "native.matmul": (functools.partial(dense_call, sums=False), matmul_reference),
    "native.column_sums": (functools.partial(dense_call, sums=True), column_sums_reference),
    "native.block_gram_sum": (block_gram_sum_call, block_gram_sum_reference),
    "native.channel_sums": (channel_sums_call, channel_sums_reference),
}
