"""Batched 2-D convolution layers: forward and backward in one native call per batch.

Cross-correlation as in ``torch.nn.functional.conv2d`` (no kernel flip), NCHW layout.  The batch
is cut into chunks of a size fixed by the layer's shape alone; chunks run on
:func:`cnnative.set_num_threads` threads and their weight/bias gradients are added in a fixed
order (in order within each block of 8 samples, then the blocks by the batch's reduction tree,
see ``cnnative._reduce``), so every result is bit-identical whatever the thread count, and a
process holding a node of that tree computes its part exactly as a whole-batch call would.

dtype rule: x, w, b (and grad_y) must all be float32 or all float64; mixing them raises
``TypeError`` rather than silently upcasting a float32 network to float64.
"""
from typing import NamedTuple

import numpy as np

from . import _threads, _validation
from ._reduce import BLOCK, tree_sum
from ._native import LazyModule

_conv = LazyModule("conv")

__all__ = ["conv2d", "conv2d_backward", "same_padding"]

# Upper bound on the unrolled-input buffer of one chunk (elements; chunks hold at most BLOCK
# samples): large enough for efficient matrix products, small enough to stay near the caches
# and to give both cores work on a batch of 64.
_CHUNK_ELEMENTS = 1 << 20


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, num_threads=None):
    """Cross-correlate a batch of images with a bank of filters (``torch.nn.functional.conv2d``).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W) or (C, H, W)
    w : ndarray, shape (F, C // groups, kh, kw)
    b : ndarray, shape (F,), optional
    stride : int or (int, int)
        Stride >= 1 per (height, width).
    padding : int, (int, int), 'valid' or 'same'
        Zero padding >= 0 on both sides of each axis, per (height, width); 'valid' is 0;
        'same' (stride 1 only) pads each axis by ``dilation * (k - 1)`` in total so that the
        output has the input's size, the odd one at the bottom/right as in torch.
    dilation : int or (int, int)
        Spacing >= 1 between kernel taps; the kernel then spans ``dilation * (k - 1) + 1``.
    groups : int
        Number >= 1 of groups, dividing both C and F: group g's F // groups filters see only
        channels ``g * C // groups`` to ``(g + 1) * C // groups - 1``.  ``groups == C`` is a
        depthwise layer.
    num_threads : int, optional
        Defaults to :func:`cnnative.get_num_threads`.

    Returns
    -------
    y : ndarray, shape (N, F, Ho, Wo), or (F, Ho, Wo) for a single image
        With Ho = (H + pad_top + pad_bottom - dh * (kh - 1) - 1) // sh + 1 and Wo likewise.

    Notes
    -----
    Stride, padding and dilation are each at most 2**31 - 1.
    """
    x, w, single, geometry = _prepare("conv2d", x, w, stride, padding, dilation, groups)
    threads = _threads.thread_count(num_threads, "conv2d")
    dtype = x.dtype
    if b is not None:
        b = _validation.array(b, "b", "conv2d", ndim=1, like=(dtype, "w"), layout="C")
        if b.shape != (w.shape[0],):
            raise ValueError(f"conv2d: b must have shape ({w.shape[0]},) to match w, got {b.shape}")
    n, (out_h, out_w) = x.shape[0], geometry.out
    out_shape = (n, w.shape[0], out_h, out_w)
    _validation.check_array_size(out_shape, dtype.itemsize, "x, w, stride and padding", "conv2d")
    y = np.empty(out_shape, dtype)

    def forward_chunk(start, stop):
        _conv.forward(x, w, b, y, geometry.stride, geometry.padding, geometry.dilation,
                      geometry.groups, start, stop)

    _threads.run_chunks(forward_chunk, n, _chunk_size(w, out_h, out_w), threads)
    return y[0] if single else y


def conv2d_backward(grad_y, x, w, stride=1, padding=0, dilation=1, groups=1, *, need_grad_x=True,
                    num_threads=None):
    """Gradients of :func:`conv2d` with respect to x, w and b.

    Parameters
    ----------
    grad_y : ndarray, shape (N, F, Ho, Wo) (or (F, Ho, Wo) with a single image x)
    x : ndarray, shape (N, C, H, W) or (C, H, W)
    w : ndarray, shape (F, C // groups, kh, kw)
    stride, padding, dilation, groups : as given to :func:`conv2d`
    need_grad_x : bool
        False skips the input gradient (a network's first layer never needs it) and returns
        None in its place.
    num_threads : int, optional
        Defaults to :func:`cnnative.get_num_threads`.

    Returns
    -------
    grad_x : ndarray, shape of x (or None)
        The transposed convolution of grad_y with w (each group's filters onto its channels).
    grad_w : ndarray, shape (F, C // groups, kh, kw)
        The correlation of x with grad_y, summed over the batch.
    grad_b : ndarray, shape (F,)
        grad_y summed over batch and positions.
    """
    x, w, single, geometry = _prepare("conv2d_backward", x, w, stride, padding, dilation, groups)
    threads = _threads.thread_count(num_threads, "conv2d_backward")
    dtype = x.dtype
    n, (out_h, out_w) = x.shape[0], geometry.out
    grad_y = _validation.array(grad_y, "grad_y", "conv2d_backward", ndim=3 if single else 4,
                               like=(dtype, "x"), layout="C")
    expected = (w.shape[0], out_h, out_w) if single else (n, w.shape[0], out_h, out_w)
    if grad_y.shape != expected:
        raise ValueError(f"conv2d_backward: grad_y must have shape {expected} (the output of "
                         f"conv2d for these x, w, stride, padding and dilation), got {grad_y.shape}")
    grad_y = grad_y.reshape(n, *expected[-3:])
    grad_x = np.empty_like(x) if need_grad_x else None

    def backward_chunk(start, stop):
        grad_w = np.empty_like(w)
        grad_b = np.empty(w.shape[0], dtype)
        _conv.backward(grad_y, x, w, grad_x, grad_w, grad_b, geometry.stride, geometry.padding,
                       geometry.dilation, geometry.groups, start, stop)
        return grad_w, grad_b

    chunk = _chunk_size(w, out_h, out_w)
    partials = _threads.run_chunks(backward_chunk, n, chunk, threads)
    # A block's chunks are added in order, then the blocks by the batch's reduction tree.
    per_block = BLOCK // chunk
    grad_w, grad_b = tree_sum([_in_order(partials[first:first + per_block])
                               for first in range(0, len(partials), per_block)], _add_in_place)
    if grad_x is not None and single:
        grad_x = grad_x[0]
    return grad_x, grad_w, grad_b


def _chunk_size(w, out_h, out_w):
    """Samples per chunk: a power of two up to BLOCK, so that chunks nest in the blocks of
    the batch's reduction tree."""
    taps = w.shape[1] * w.shape[2] * w.shape[3]
    fits = max(1, min(BLOCK, _CHUNK_ELEMENTS // (taps * out_h * out_w)))
    return 1 << (fits.bit_length() - 1)


def _in_order(parts):
    """(grad_w, grad_b) chunk partials added in order, into the first's arrays."""
    total = parts[0]
    for part in parts[1:]:
        total = _add_in_place(total, part)
    return total


def _add_in_place(left, right):
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN quietly, as in a chunk
        left[0].__iadd__(right[0])
        left[1].__iadd__(right[1])
    return left


class _Geometry(NamedTuple):
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]
    groups: int
    out: tuple[int, int]


_PADDING_STRINGS = ("valid", "same")


def same_padding(kernel_size, dilation):
    """(top, bottom, left, right) zero padding of ``padding='same'`` for a (kh, kw) kernel with
    (dh, dw) dilation: ``dilation * (k - 1)`` rows (columns) in all, the odd one at the bottom
    (right), as torch pads; model exports spell it out with this."""
    total_h, total_w = dilation[0] * (kernel_size[0] - 1), dilation[1] * (kernel_size[1] - 1)
    return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)


def _prepare(func, x, w, stride, padding, dilation, groups):
    """Validated C-contiguous (N, C, H, W) x and w, whether x was one image, and the geometry."""
    w = _validation.array(w, "w", func, ndim=4, floating=True, layout="C")
    x = _validation.array(x, "x", func, ndim=(3, 4), like=(w.dtype, "w"), layout="C")
    single = x.ndim == 3
    if single:
        x = x[np.newaxis]
    channels, filters = x.shape[1], w.shape[0]
    groups = _validation.positive_int(groups, "groups", func)
    if channels % groups or filters % groups:
        raise ValueError(f"{func}: groups={groups} must divide both x's {channels} channels and "
                         f"w's {filters} filters")
    if w.shape[1] != channels // groups:
        if groups == 1:
            raise ValueError(f"{func}: x has {channels} channels but w expects {w.shape[1]} "
                             f"(x shape {x.shape}, w shape {w.shape})")
        raise ValueError(f"{func}: w must have C // groups = {channels // groups} input channels "
                         f"(x has {channels}, groups={groups}), got w shape {w.shape}")
    stride = _validation.int_pair(stride, "stride", func, minimum=1)
    dilation = _validation.int_pair(dilation, "dilation", func, minimum=1)
    kernel_h, kernel_w = w.shape[2:]
    extent = (dilation[0] * (kernel_h - 1) + 1, dilation[1] * (kernel_w - 1) + 1)
    if isinstance(padding, str):
        if padding not in _PADDING_STRINGS:
            raise ValueError(f"{func}: padding must be an int, a pair of ints, 'valid' or 'same', "
                             f"got {padding!r}")
        if padding == "valid":
            pads = (0, 0, 0, 0)
        else:
            if stride != (1, 1):
                raise ValueError(f"{func}: padding='same' needs stride 1, got stride={stride}")
            pads = same_padding((kernel_h, kernel_w), dilation)
            if max(pads) > _validation.INT_MAX:
                raise ValueError(f"{func}: padding='same' needs a padding of "
                                 f"{max(pads)} (dilation * (k - 1) / 2), above 2147483647")
    else:
        pad_h, pad_w = _validation.int_pair(padding, "padding", func, minimum=0)
        pads = (pad_h, pad_h, pad_w, pad_w)
    height, width = x.shape[2] + pads[0] + pads[1], x.shape[3] + pads[2] + pads[3]
    if extent[0] > height or extent[1] > width:
        dilated = "" if dilation == (1, 1) else f" (dilated to {extent[0]}x{extent[1]})"
        raise ValueError(f"{func}: w's kernel {kernel_h}x{kernel_w}{dilated} is larger than the "
                         f"padded input {height}x{width} (x's height and width plus padding)")
    out = ((height - extent[0]) // stride[0] + 1, (width - extent[1]) // stride[1] + 1)
    return x, w, single, _Geometry(stride, pads, dilation, groups, out)
