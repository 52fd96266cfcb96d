"""Max pooling the plain way, window by window, with PyTorch's CPU rule for the argmax."""
import math

import numpy as np

__all__ = ["max_pool2d", "max_pool2d_backward"]


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
