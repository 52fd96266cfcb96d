"""2-D pooling over the last two axes, with PyTorch's CPU semantics.

Max pooling (values and argmax indices), average pooling and global average pooling, each with
its backward pass.

``max_pool2d`` returns the pooled maxima and, for each, the flat position ``ih * W + iw`` of the
chosen element within its (H, W) plane; ``max_pool2d_backward`` scatters output gradients back
to those positions.  Leading axes ((C, H, W), (N, C, H, W), ...) are independent planes, which
are shared among threads; each plane is pooled the same way whichever thread takes it.

The rule for the chosen element is PyTorch's: each window is scanned row by row, and an element
replaces the running maximum when it is larger or NaN.  So the first maximum wins ties, the last
NaN of a window wins, and padding (which acts as -inf) is never chosen; a window whose real
elements are all -inf picks the first of them.
"""
import functools
import math

import numpy as np

from . import _threads, _validation
from ._native import pool as _pool

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "global_avg_pool2d", "global_avg_pool2d_backward"]

# Input elements per piece of work a thread claims.  Threads claim pieces inside the kernel
# (an atomic add, no return to Python, whose GIL the caller's thread would keep re-taking), so
# pieces can be small and a thread that wakes late still finds work.  Planes are independent,
# so results do not depend on which thread pools which plane.
_CLAIM_ELEMENTS = 1 << 13

# Work per thread (window taps forward, elements read and written backward) below which waking
# a second thread costs more than it saves (benchmarks/bench_pool.py measures both counts).
_MIN_WORK_PER_THREAD = 1 << 19


def _run_shared(kernel, n_planes, plane_size, threads, work):
    """Calls ``kernel(0, n_planes, counter, claim)`` on up to ``threads`` threads (a checked
    count), as many as ``work`` (see _MIN_WORK_PER_THREAD) pays for; returns their results.

    The threads claim ``claim`` planes at a time from ``counter`` until every plane is taken.
    """
    claim = max(1, _CLAIM_ELEMENTS // plane_size)
    workers = min(threads, -(-n_planes // claim), max(1, work // _MIN_WORK_PER_THREAD))
    counter = np.zeros(1, np.int64)
    return _threads.run_chunks(lambda start, stop: kernel(0, n_planes, counter, claim),
                               workers, 1, workers, calls_blas=False)


def max_pool2d(x, kernel_size, stride=None, padding=0, *, num_threads=None):
    """Max pooling over the last two axes of ``x``, returning values and argmax indices.

    Parameters
    ----------
    x : array_like, shape (..., H, W)
        float32 or float64, any memory layout; it is not modified.  Every leading index
        selects an independent (H, W) plane.
    kernel_size : int or (int, int)
        Window size (kH, kW), each >= 1.
    stride : int or (int, int), optional
        Step between windows (sH, sW), each >= 1; defaults to ``kernel_size``.  Strides
        smaller than the window give overlapping windows.
    padding : int or (int, int)
        Implicit -inf border (pH, pW) on both sides, each in [0, k // 2].
    num_threads : int, optional
        Threads to split the planes over; defaults to :func:`cnnative.get_num_threads`.
        Results are identical for every thread count.

    Returns
    -------
    y : ndarray, shape (..., Ho, Wo), dtype of x
        ``Ho = (H + 2*pH - kH) // sH + 1`` and likewise ``Wo``.
    indices : ndarray of int64, shape (..., Ho, Wo)
        Position ``ih * W + iw`` of each maximum within its input plane, chosen as PyTorch's
        CPU kernel does (see the module docstring).

    Raises
    ------
    TypeError
        x is not float32/float64; kernel_size, stride or padding are not ints.
    ValueError
        x has fewer than 2 dimensions or is empty; kernel or stride < 1; padding < 0 or
        > k // 2; kernel, stride or padding above 2**31 - 1; the window is larger than the
        padded input.
    """
    func = "max_pool2d"
    x = _validation.array(x, "x", func, min_ndim=2, floating=True)
    (kernel_h, kernel_w), stride, padding, (out_h, out_w) = _window(func, x.shape, kernel_size,
                                                                     stride, padding)
    threads = _threads.thread_count(num_threads, func)
    *lead, height, width = x.shape

    planes = x.reshape(-1, height, width)
    n_planes = planes.shape[0]
    y, indices = _pair_of_outputs((n_planes, out_h, out_w), x.dtype)
    kernel = functools.partial(_pool.max_pool2d_planes, planes, y, indices, (kernel_h, kernel_w),
                               stride, padding)
    _run_shared(kernel, n_planes, height * width, threads,
                n_planes * out_h * out_w * kernel_h * kernel_w)
    out_shape = (*lead, out_h, out_w)
    return y.reshape(out_shape), indices.reshape(out_shape)


def _pair_of_outputs(shape, dtype):
    """(y, indices): new arrays of `shape`, of `dtype` and int64, carved from one allocation.

    Allocated apart, two equal blocks freed together can reach glibc's trim threshold, so the
    memory goes back to the OS after every call and the next call faults it in again; one block
    of their total size stays under it.  The price: either array keeps both alive.
    """
    size = math.prod(shape)
    block = np.empty(size * (8 + np.dtype(dtype).itemsize), np.uint8)
    indices = block[:size * 8].view(np.int64).reshape(shape)
    y = block[size * 8:].view(dtype).reshape(shape)
    return y, indices


def max_pool2d_backward(grad_y, indices, input_shape, *, num_threads=None):
    """Gradient of :func:`max_pool2d` with respect to its input.

    Parameters
    ----------
    grad_y : array_like, shape (..., Ho, Wo)
        float32 or float64 gradient of the pooled output.
    indices : array_like of int64, shape (..., Ho, Wo)
        The indices returned by :func:`max_pool2d`; each in [0, H*W).
    input_shape : sequence of int, (..., H, W)
        Shape of the pooled input; its leading dimensions must equal grad_y's.
    num_threads : int, optional
        As for :func:`max_pool2d`; results are identical for every thread count.

    Returns
    -------
    grad_x : ndarray, shape input_shape, dtype of grad_y
        Zero except at chosen positions, which receive the sum of the gradients of every
        output that chose them (overlapping windows), added in row-major output order.

    Raises
    ------
    TypeError
        grad_y is not float32/float64; indices is not int64; input_shape is not a sequence of
        ints.
    ValueError
        grad_y has fewer than 2 dimensions or is empty; indices has another shape than grad_y
        or an entry outside [0, H*W); input_shape's leading dimensions differ from grad_y's, or
        H or W is 0, or it describes an array too large to address.
    """
    func = "max_pool2d_backward"
    grad_y = _validation.array(grad_y, "grad_y", func, min_ndim=2, floating=True, layout="C")
    # Its shape is checked against grad_y's below, which reports an empty one too.
    indices = _validation.array(indices, "indices", func, allow_empty=True)
    if indices.dtype.kind != "i" or indices.dtype.itemsize != 8:
        raise TypeError(f"{func}: indices must be int64, got dtype {indices.dtype}")
    if indices.shape != grad_y.shape:
        raise ValueError(f"{func}: indices must have grad_y's shape {grad_y.shape}, got "
                         f"{indices.shape}")
    input_shape = _validation.shape_tuple(input_shape, "input_shape", func)
    if len(input_shape) != grad_y.ndim or input_shape[:-2] != grad_y.shape[:-2]:
        raise ValueError(f"{func}: input_shape {input_shape} must have grad_y's leading "
                         f"dimensions {grad_y.shape[:-2]} followed by (H, W)")
    height, width = input_shape[-2:]
    if height == 0 or width == 0:
        raise ValueError(f"{func}: input_shape {input_shape} has an empty (H, W) plane")
    _validation.check_array_size(input_shape, grad_y.dtype.itemsize, "input_shape", func)
    threads = _threads.thread_count(num_threads, func)

    out_h, out_w = grad_y.shape[-2:]
    grad_planes = grad_y.reshape(-1, out_h, out_w)
    # The kernel checks for int64's own type number, which an equivalent long long array lacks;
    # asarray relabels one without copying.
    index_planes = _validation.array(np.asarray(indices, dtype=np.int64), "indices", func,
                                     layout="C").reshape(-1, out_h, out_w)
    n_planes = grad_planes.shape[0]
    grad_x = np.empty((n_planes, height, width), grad_y.dtype)  # the kernel zeroes it
    kernel = functools.partial(_pool.max_pool2d_backward_planes, grad_planes, index_planes,
                               grad_x)
    statuses = _run_shared(kernel, n_planes, height * width, threads,
                           n_planes * (height * width + out_h * out_w))
    if any(status != _pool.Status.STATUS_OK for status in statuses):
        bad = index_planes[(index_planes < 0) | (index_planes >= height * width)]
        raise ValueError(f"{func}: indices must lie in [0, H*W) = [0, {height * width}) for "
                         f"input_shape {input_shape}; found {bad.flat[0]}")
    return grad_x.reshape(input_shape)


# ------------------------------------------------------------------------------ average pooling


def _window(func, shape, kernel_size, stride, padding):
    """((kH, kW), (sH, sW), (pH, pW), (Ho, Wo)) for planes of ``shape[-2:]``, checked."""
    kernel = _validation.int_pair(kernel_size, "kernel_size", func, minimum=1)
    stride = kernel if stride is None else _validation.int_pair(stride, "stride", func, minimum=1)
    pad = _validation.int_pair(padding, "padding", func, minimum=0)
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{func}: padding must be at most half the kernel size, got "
                         f"padding={pad} for kernel_size={kernel}")
    height, width = shape[-2:]
    if kernel[0] > height + 2 * pad[0] or kernel[1] > width + 2 * pad[1]:
        raise ValueError(f"{func}: kernel_size {kernel} is larger than the padded input "
                         f"({height + 2 * pad[0]}, {width + 2 * pad[1]})")
    out = ((height + 2 * pad[0] - kernel[0]) // stride[0] + 1,
           (width + 2 * pad[1] - kernel[1]) // stride[1] + 1)
    return kernel, stride, pad, out


def _flag(value, name, func):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be a bool, got {value!r}")
    return bool(value)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True, *,
               num_threads=None):
    """Average pooling over the last two axes of ``x``, as ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    x : array_like, shape (..., H, W)
        float32 or float64, any memory layout; it is not modified.  Every leading index
        selects an independent (H, W) plane.
    kernel_size : int or (int, int)
        Window size (kH, kW), each >= 1.
    stride : int or (int, int), optional
        Step between windows (sH, sW), each >= 1; defaults to ``kernel_size``.
    padding : int or (int, int)
        Implicit zero border (pH, pW) on both sides, each in [0, k // 2].
    count_include_pad : bool
        Divide by the window's area kH * kW (True, torch's default) or by the number of its
        elements inside the input (False).
    num_threads : int, optional
        Threads to split the planes over; defaults to :func:`cnnative.get_num_threads`.
        Results are identical for every thread count.

    Returns
    -------
    y : ndarray, shape (..., Ho, Wo), dtype of x
        ``Ho = (H + 2*pH - kH) // sH + 1`` and likewise ``Wo`` (floor mode).  Each output is
        the sum of its window's elements, added from zero in row-major order in x's dtype,
        divided by the divisor: PyTorch's CPU arithmetic.

    Raises
    ------
    TypeError
        x is not float32/float64; kernel_size, stride or padding are not ints;
        count_include_pad is not a bool.
    ValueError
        x has fewer than 2 dimensions or is empty; kernel or stride < 1; padding < 0 or
        > k // 2; kernel, stride or padding above 2**31 - 1; the window is larger than the
        padded input.
    """
    func = "avg_pool2d"
    x = _validation.array(x, "x", func, min_ndim=2, floating=True, layout="C")
    kernel, stride, pad, (out_h, out_w) = _window(func, x.shape, kernel_size, stride, padding)
    include = _flag(count_include_pad, "count_include_pad", func)
    threads = _threads.thread_count(num_threads, func)
    *lead, height, width = x.shape
    planes = x.reshape(-1, height, width)
    n_planes = planes.shape[0]
    y = np.empty((n_planes, out_h, out_w), x.dtype)
    kernel_call = functools.partial(_pool.avg_pool2d_planes, planes, y, kernel, stride, pad,
                                    include)
    _run_shared(kernel_call, n_planes, height * width, threads,
                n_planes * (out_h * out_w * kernel[0] * kernel[1] + height * width) // 2)
    return y.reshape(*lead, out_h, out_w)


def _input_shape(input_shape, lead, grad_y, func):
    """input_shape checked: ``lead`` (some of grad_y's dimensions) then a non-empty (H, W)."""
    input_shape = _validation.shape_tuple(input_shape, "input_shape", func)
    if len(input_shape) != len(lead) + 2 or input_shape[:len(lead)] != lead:
        raise ValueError(f"{func}: input_shape {input_shape} must have grad_y's leading "
                         f"dimensions {lead} followed by (H, W)")
    if input_shape[-1] == 0 or input_shape[-2] == 0:
        raise ValueError(f"{func}: input_shape {input_shape} has an empty (H, W) plane")
    _validation.check_array_size(input_shape, grad_y.dtype.itemsize, "input_shape", func)
    return input_shape


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True, *, num_threads=None):
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Parameters
    ----------
    grad_y : array_like, shape (..., Ho, Wo)
        float32 or float64 gradient of the pooled output; (Ho, Wo) must be the output size of
        the window on input_shape's planes.
    input_shape : sequence of int, (..., H, W)
        Shape of the pooled input; its leading dimensions must equal grad_y's.
    kernel_size, stride, padding, count_include_pad :
        As given to :func:`avg_pool2d`.
    num_threads : int, optional
        As for :func:`avg_pool2d`; results are identical for every thread count.

    Returns
    -------
    grad_x : ndarray, shape input_shape, dtype of grad_y
        Each output adds ``grad / divisor`` to every input element of its window (padding
        excluded), outputs in row-major order, into zeros: PyTorch's CPU arithmetic.

    Raises
    ------
    TypeError
        grad_y is not float32/float64; input_shape is not a sequence of ints; kernel_size,
        stride or padding are not ints; count_include_pad is not a bool.
    ValueError
        grad_y has fewer than 2 dimensions or is empty; input_shape's leading dimensions
        differ from grad_y's, H or W is 0, or it describes an array too large to address; the
        window is invalid for the input (as in :func:`avg_pool2d`); grad_y's (Ho, Wo) differ
        from the window's output size.
    """
    func = "avg_pool2d_backward"
    grad_y = _validation.array(grad_y, "grad_y", func, min_ndim=2, floating=True, layout="C")
    input_shape = _input_shape(input_shape, grad_y.shape[:-2], grad_y, func)
    kernel, stride, pad, out = _window(func, input_shape, kernel_size, stride, padding)
    include = _flag(count_include_pad, "count_include_pad", func)
    threads = _threads.thread_count(num_threads, func)
    if grad_y.shape[-2:] != out:
        raise ValueError(f"{func}: grad_y's last two dimensions {grad_y.shape[-2:]} must be "
                         f"the pooled size {out} of input_shape {input_shape}")
    height, width = input_shape[-2:]
    grad_planes = grad_y.reshape(-1, *out)
    n_planes = grad_planes.shape[0]
    grad_x = np.empty((n_planes, height, width), grad_y.dtype)  # the kernel writes all of it
    kernel_call = functools.partial(_pool.avg_pool2d_backward_planes, grad_planes, grad_x,
                                    kernel, stride, pad, include)
    _run_shared(kernel_call, n_planes, height * width, threads,
                n_planes * (out[0] * out[1] * kernel[0] * kernel[1] + height * width) // 2)
    return grad_x.reshape(input_shape)


# ----------------------------------------------------------------------- global average pooling


def global_avg_pool2d(x, *, num_threads=None):
    """Mean of each (H, W) plane: (N, C, H, W) -> (N, C).

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        float32 or float64, non-empty, any memory layout; it is not modified.
    num_threads : int, optional
        Threads to split the planes over; results are identical for every thread count.

    Returns
    -------
    y : ndarray, shape (N, C), dtype of x
        Each plane's sum, taken in double in a fixed order (8 interleaved partial sums
        added by a fixed tree), divided by H * W and rounded once to x's dtype.

    Raises
    ------
    TypeError
        x is not float32/float64.
    ValueError
        x is not 4-D, or is empty.
    """
    func = "global_avg_pool2d"
    x = _validation.array(x, "x", func, ndim=4, floating=True, layout="C")
    threads = _threads.thread_count(num_threads, func)
    n, c, height, width = x.shape
    planes = x.reshape(n * c, height * width)
    y = np.empty(n * c, x.dtype)
    _run_shared(functools.partial(_pool.global_avg_pool_planes, planes, y), n * c,
                height * width, threads, x.size)
    return y.reshape(n, c)


def global_avg_pool2d_backward(grad_y, input_shape, *, num_threads=None):
    """Gradient of :func:`global_avg_pool2d`: each plane filled with its ``grad / (H * W)``.

    Parameters
    ----------
    grad_y : array_like, shape (N, C)
        float32 or float64 gradient of the pooled output.
    input_shape : sequence of int, (N, C, H, W)
        Shape of the pooled input; (N, C) must equal grad_y's shape, H and W >= 1.
    num_threads : int, optional
        As for :func:`global_avg_pool2d`.

    Returns
    -------
    grad_x : ndarray, shape input_shape, dtype of grad_y
        ``0 + grad_y[n, c] / (H * W)`` in grad_y's dtype (PyTorch's arithmetic) everywhere in
        plane (n, c).

    Raises
    ------
    TypeError
        grad_y is not float32/float64; input_shape is not a sequence of ints.
    ValueError
        grad_y is not 2-D or is empty; input_shape is not (N, C, H, W) with grad_y's (N, C),
        H or W is 0, or it describes an array too large to address.
    """
    func = "global_avg_pool2d_backward"
    grad_y = _validation.array(grad_y, "grad_y", func, ndim=2, floating=True, layout="C")
    input_shape = _input_shape(input_shape, grad_y.shape, grad_y, func)
    threads = _threads.thread_count(num_threads, func)
    n, c, height, width = input_shape
    grad_x = np.empty((n * c, height * width), grad_y.dtype)
    _run_shared(functools.partial(_pool.global_avg_pool_backward_planes, grad_y.reshape(-1),
                                  grad_x), n * c, height * width, threads, grad_x.size)
    return grad_x.reshape(input_shape)
