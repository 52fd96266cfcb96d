"""Batched 2-D convolution layers: forward and backward in one native call per batch.

Cross-correlation as in ``torch.nn.functional.conv2d`` (no kernel flip), NCHW layout.  The batch
is cut into chunks of a size fixed by the layer's shape alone; chunks run on
:func:`cnnative.set_num_threads` threads and their weight/bias gradients are added in chunk
order, so every result is bit-identical whatever the thread count.

dtype rule: x, w, b (and grad_y) must all be float32 or all float64; mixing them raises
``TypeError`` rather than silently upcasting a float32 network to float64.
"""
import numpy as np

from . import _threads, _validation
from ._native import LazyModule

_conv = LazyModule("conv")

__all__ = ["conv2d", "conv2d_backward"]

# Upper bound on the unrolled-input buffer of one chunk (elements), and on samples per chunk:
# large enough for efficient matrix products, small enough to stay near the caches and to give
# both cores work on a batch of 64.
_CHUNK_ELEMENTS = 1 << 20
_MAX_CHUNK = 8


def conv2d(x, w, b=None, stride=1, padding=0, *, num_threads=None):
    """Cross-correlate a batch of images with a bank of filters.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W) or (C, H, W)
    w : ndarray, shape (F, C, kh, kw)
    b : ndarray, shape (F,), optional
    stride, padding : int or (int, int)
        Stride >= 1 and zero padding >= 0, per (height, width); each at most 2**31 - 1.
    num_threads : int, optional
        Defaults to :func:`cnnative.get_num_threads`.

    Returns
    -------
    y : ndarray, shape (N, F, Ho, Wo) (or (F, Ho, Wo) for a single image), with
        Ho = (H + 2*ph - kh) // sh + 1 and Wo likewise.
    """
    x, w, single, geometry = _prepare("conv2d", x, w, stride, padding)
    threads = _threads.thread_count(num_threads, "conv2d")
    dtype = x.dtype
    if b is not None:
        b = _validation.array(b, "b", "conv2d", ndim=1, like=(dtype, "w"), layout="C")
        if b.shape != (w.shape[0],):
            raise ValueError(f"conv2d: b must have shape ({w.shape[0]},) to match w, got {b.shape}")
    n, out_h, out_w = x.shape[0], geometry[4], geometry[5]
    out_shape = (n, w.shape[0], out_h, out_w)
    _validation.check_array_size(out_shape, dtype.itemsize, "x, w, stride and padding", "conv2d")
    y = np.empty(out_shape, dtype)

    def forward_chunk(start, stop):
        _conv.forward(x, w, b, y, geometry[0:2], geometry[2:4], start, stop)

    _threads.run_chunks(forward_chunk, n, _chunk_size(w, out_h, out_w), threads)
    return y[0] if single else y


def conv2d_backward(grad_y, x, w, stride=1, padding=0, *, need_grad_x=True, num_threads=None):
    """Gradients of :func:`conv2d` with respect to x, w and b.

    Parameters
    ----------
    grad_y : ndarray, shape (N, F, Ho, Wo) (or (F, Ho, Wo) with a single image x)
    x, w, stride, padding : as given to :func:`conv2d`
    need_grad_x : bool
        False skips the input gradient (a network's first layer never needs it) and returns
        None in its place.

    Returns
    -------
    grad_x : ndarray, shape of x (or None)
        The full convolution of w with grad_y, summed over filters.
    grad_w : ndarray, shape (F, C, kh, kw)
        The valid correlation of x with grad_y, summed over the batch.
    grad_b : ndarray, shape (F,)
        grad_y summed over batch and positions.
    """
    x, w, single, geometry = _prepare("conv2d_backward", x, w, stride, padding)
    threads = _threads.thread_count(num_threads, "conv2d_backward")
    dtype = x.dtype
    n, out_h, out_w = x.shape[0], geometry[4], geometry[5]
    grad_y = _validation.array(grad_y, "grad_y", "conv2d_backward", ndim=3 if single else 4,
                               like=(dtype, "x"), layout="C")
    expected = (w.shape[0], out_h, out_w) if single else (n, w.shape[0], out_h, out_w)
    if grad_y.shape != expected:
        raise ValueError(f"conv2d_backward: grad_y must have shape {expected} (the output of "
                         f"conv2d for these x, w, stride and padding), got {grad_y.shape}")
    grad_y = grad_y.reshape(n, *expected[-3:])
    grad_x = np.empty_like(x) if need_grad_x else None

    def backward_chunk(start, stop):
        grad_w = np.empty_like(w)
        grad_b = np.empty(w.shape[0], dtype)
        _conv.backward(grad_y, x, w, grad_x, grad_w, grad_b, geometry[0:2], geometry[2:4],
                       start, stop)
        return grad_w, grad_b

    partials = _threads.run_chunks(backward_chunk, n, _chunk_size(w, out_h, out_w), threads)
    grad_w, grad_b = partials[0]
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN quietly, as in a chunk
        for chunk_w, chunk_b in partials[1:]:
            grad_w += chunk_w
            grad_b += chunk_b
    if grad_x is not None and single:
        grad_x = grad_x[0]
    return grad_x, grad_w, grad_b


def _chunk_size(w, out_h, out_w):
    taps = w.shape[1] * w.shape[2] * w.shape[3]
    return max(1, min(_MAX_CHUNK, _CHUNK_ELEMENTS // (taps * out_h * out_w)))


def _prepare(func, x, w, stride, padding):
    """Validated C-contiguous (N, C, H, W) x and w, whether x was one image, and the geometry
    (stride_h, stride_w, pad_h, pad_w, out_h, out_w)."""
    w = _validation.array(w, "w", func, ndim=4, floating=True, layout="C")
    x = _validation.array(x, "x", func, ndim=(3, 4), like=(w.dtype, "w"), layout="C")
    single = x.ndim == 3
    if single:
        x = x[np.newaxis]
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"{func}: x has {x.shape[1]} channels but w expects {w.shape[1]} "
                         f"(x shape {x.shape}, w shape {w.shape})")
    stride_h, stride_w = _validation.int_pair(stride, "stride", func, minimum=1)
    pad_h, pad_w = _validation.int_pair(padding, "padding", func, minimum=0)
    kernel_h, kernel_w = w.shape[2:]
    height, width = x.shape[2] + 2 * pad_h, x.shape[3] + 2 * pad_w
    if kernel_h > height or kernel_w > width:
        raise ValueError(f"{func}: w's kernel {kernel_h}x{kernel_w} is larger than the padded input "
                         f"{height}x{width} (x's height and width plus twice padding)")
    out_h = (height - kernel_h) // stride_h + 1
    out_w = (width - kernel_w) // stride_w + 1
    return x, w, single, (stride_h, stride_w, pad_h, pad_w, out_h, out_w)
