"""Pooling the plain way, window by window: max (PyTorch's CPU rule for the argmax), average
(float64 sums) and global average."""
import math

import numpy as np

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "global_avg_pool2d", "global_avg_pool2d_backward"]


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """(y, indices) for x of shape (..., H, W), scanning each window row by row."""
    x = np.asarray(x)
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    *lead, height, width = x.shape
    out_h = (height + 2 * ph - kh) // sh + 1
    out_w = (width + 2 * pw - kw) // sw + 1
    planes = x.reshape(-1, height, width)
    y = np.empty((len(planes), out_h, out_w), x.dtype)
    indices = np.empty((len(planes), out_h, out_w), np.int64)
    for p, plane in enumerate(planes):
        for oh in range(out_h):
            for ow in range(out_w):
                # The window's rows and columns that lie inside the plane.
                rows = range(max(0, oh * sh - ph), min(height, oh * sh - ph + kh))
                cols = range(max(0, ow * sw - pw), min(width, ow * sw - pw + kw))
                best, where = -math.inf, rows[0] * width + cols[0]
                for ih in rows:
                    for iw in cols:
                        value = plane[ih, iw]
                        if value > best or math.isnan(value):
                            best, where = value, ih * width + iw
                y[p, oh, ow] = best
                indices[p, oh, ow] = where
    return y.reshape(*lead, out_h, out_w), indices.reshape(*lead, out_h, out_w)


def max_pool2d_backward(grad_y, indices, input_shape):
    """grad_x with grad_y added at indices, output positions in row-major order per plane."""
    height, width = input_shape[-2:]
    grad_y = np.asarray(grad_y)
    # Counted, not reshape(-1, ...): that is ambiguous when the planes are empty.
    planes = math.prod(grad_y.shape[:-2])
    grads = grad_y.reshape(planes, grad_y.shape[-2] * grad_y.shape[-1])
    where = np.asarray(indices).reshape(grads.shape)
    grad_x = np.zeros((len(grads), height * width), grads.dtype)
    for p in range(len(grads)):
        for o in range(grads.shape[1]):
            grad_x[p, where[p, o]] += grads[p, o]
    return grad_x.reshape(input_shape)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Average pooling window by window, in float64: the sum of the window's real elements
    divided by kH * kW (count_include_pad) or by their number; returned in x's dtype."""
    x = np.asarray(x)
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    *lead, height, width = x.shape
    out_h = (height + 2 * ph - kh) // sh + 1
    out_w = (width + 2 * pw - kw) // sw + 1
    planes = x.reshape(-1, height, width).astype(np.float64)
    y = np.empty((len(planes), out_h, out_w))
    for p, plane in enumerate(planes):
        for oh in range(out_h):
            for ow in range(out_w):
                rows = slice(max(0, oh * sh - ph), min(height, oh * sh - ph + kh))
                cols = slice(max(0, ow * sw - pw), min(width, ow * sw - pw + kw))
                window = plane[rows, cols]
                y[p, oh, ow] = window.sum() / (kh * kw if count_include_pad else window.size)
    return y.astype(x.dtype).reshape(*lead, out_h, out_w)


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True):
    """grad_x in float64: each output's gradient divided by its divisor, added to every real
    element of its window; returned in grad_y's dtype."""
    grad_y = np.asarray(grad_y)
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    height, width = input_shape[-2:]
    out_h, out_w = grad_y.shape[-2:]
    grads = grad_y.reshape(-1, out_h, out_w).astype(np.float64)
    grad_x = np.zeros((len(grads), height, width))
    for p in range(len(grads)):
        for oh in range(out_h):
            for ow in range(out_w):
                rows = slice(max(0, oh * sh - ph), min(height, oh * sh - ph + kh))
                cols = slice(max(0, ow * sw - pw), min(width, ow * sw - pw + kw))
                count = (rows.stop - rows.start) * (cols.stop - cols.start)
                grad_x[p, rows, cols] += grads[p, oh, ow] / (kh * kw if count_include_pad
                                                             else count)
    return grad_x.astype(grad_y.dtype).reshape(input_shape)


def global_avg_pool2d(x):
    """(N, C, H, W) -> (N, C): each plane's mean in float64, returned in x's dtype."""
    x = np.asarray(x)
    return x.astype(np.float64).mean(axis=(2, 3)).astype(x.dtype)


def global_avg_pool2d_backward(grad_y, input_shape):
    """Each plane filled with grad_y[n, c] / (H * W), in grad_y's dtype."""
    grad_y = np.asarray(grad_y)
    height, width = input_shape[-2:]
    grad = grad_y.astype(np.float64) / (height * width)
    return np.broadcast_to(grad[:, :, None, None], tuple(input_shape)).astype(grad_y.dtype)
