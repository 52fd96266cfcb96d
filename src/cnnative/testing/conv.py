"""Convolution the plain way: one kernel tap at a time, in float64.

``stride`` and ``dilation`` are (h, w) pairs; ``padding`` is (h, w) (both sides alike) or
(top, bottom, left, right); ``groups`` splits channels and filters into that many groups, each
group's filters seeing only its channels (w is (F, C // groups, kh, kw)).
"""
import numpy as np

__all__ = ["conv2d", "conv2d_backward"]


def _pads(padding):
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    return tuple(padding)


def _window(i, j, stride, dilation, out_h, out_w):
    """The (strided) slice of the padded input tap (i, j) multiplies into every output."""
    (sh, sw), (dh, dw) = stride, dilation
    return (slice(None), slice(None), slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw))


def _output_size(x_shape, w_shape, stride, pads, dilation):
    (sh, sw), (dh, dw) = stride, dilation
    top, bottom, left, right = pads
    kh, kw = w_shape[2:]
    return ((x_shape[2] + top + bottom - dh * (kh - 1) - 1) // sh + 1,
            (x_shape[3] + left + right - dw * (kw - 1) - 1) // sw + 1)


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Cross-correlation of x (N, C, H, W) with w (F, C // groups, kh, kw), one tap at a time."""
    top, bottom, left, right = pads = _pads(padding)
    n, channels = x.shape[:2]
    filters, group_channels, kh, kw = w.shape
    group_filters = filters // groups
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_h, out_w = _output_size(x.shape, w.shape, stride, pads, dilation)
    y = np.zeros((n, filters, out_h, out_w))
    for g in range(groups):
        inputs = padded[:, g * group_channels:(g + 1) * group_channels]
        kernels = w[g * group_filters:(g + 1) * group_filters].astype(np.float64)
        outputs = y[:, g * group_filters:(g + 1) * group_filters]
        for i in range(kh):
            for j in range(kw):
                patch = inputs[_window(i, j, stride, dilation, out_h, out_w)]
                outputs += np.einsum("nchw,fc->nfhw", patch, kernels[:, :, i, j])
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_backward(grad_y, x, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Gradients of conv2d by the adjoint of each tap's strided patch."""
    top, bottom, left, right = _pads(padding)
    _, _, height, width = x.shape
    filters, group_channels, kh, kw = w.shape
    group_filters = filters // groups
    grad_y = grad_y.astype(np.float64)
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    grad_padded = np.zeros_like(padded)
    grad_w = np.zeros(w.shape)
    out_h, out_w = grad_y.shape[2:]
    for g in range(groups):
        channels = slice(g * group_channels, (g + 1) * group_channels)
        members = slice(g * group_filters, (g + 1) * group_filters)
        delta = grad_y[:, members]
        kernels = w[members].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                window = _window(i, j, stride, dilation, out_h, out_w)
                grad_w[members, :, i, j] = np.einsum("nfhw,nchw->fc", delta,
                                                     padded[:, channels][window])
                grad_padded[:, channels][window] += np.einsum("nfhw,fc->nchw", delta,
                                                              kernels[:, :, i, j])
    grad_x = grad_padded[:, :, top:top + height, left:left + width]
    return grad_x, grad_w, grad_y.sum(axis=(0, 2, 3))
