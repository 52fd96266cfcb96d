"""Convolution the plain way: one kernel tap at a time, in float64."""
import numpy as np

__all__ = ["conv2d", "conv2d_backward"]


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0)):
    """Cross-correlation of x (N, C, H, W) with w (F, C, kh, kw), one kernel tap at a time."""
    (sh, sw), (ph, pw) = stride, padding
    n, _, height, width = x.shape
    filters, _, kh, kw = w.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out_h, out_w = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    y = np.zeros((n, filters, out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            patch = padded[:, :, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw]
            y += np.einsum("nchw,fc->nfhw", patch, w[:, :, i, j].astype(np.float64))
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_backward(grad_y, x, w, stride=(1, 1), padding=(0, 0)):
    """Gradients of conv2d by the adjoint of each tap's strided patch."""
    (sh, sw), (ph, pw) = stride, padding
    _, _, height, width = x.shape
    _, _, kh, kw = w.shape
    grad_y = grad_y.astype(np.float64)
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    grad_padded = np.zeros_like(padded)
    grad_w = np.zeros(w.shape)
    out_h, out_w = grad_y.shape[2:]
    for i in range(kh):
        for j in range(kw):
            window = (slice(None), slice(None), slice(i, i + sh * (out_h - 1) + 1, sh),
                      slice(j, j + sw * (out_w - 1) + 1, sw))
            grad_w[:, :, i, j] = np.einsum("nfhw,nchw->fc", grad_y, padded[window])
            grad_padded[window] += np.einsum("nfhw,fc->nchw", grad_y, w[:, :, i, j].astype(np.float64))
    grad_x = grad_padded[:, :, ph:ph + height, pw:pw + width]
    return grad_x, grad_w, grad_y.sum(axis=(0, 2, 3))
