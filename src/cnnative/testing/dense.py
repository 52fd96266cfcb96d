"""Dense layers the plain way, in float64."""
import numpy as np

__all__ = ["dense", "dense_backward"]


def dense(x, w, b=None):
    """``x @ w.T + b`` for x (N, in) or (in,), w (out, in), b (out,) or None."""
    y = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
    return y if b is None else y + np.asarray(b, np.float64)


def dense_backward(grad_y, x, w):
    """(grad_x, grad_w, grad_b) of :func:`dense`; a single sample counts as a batch of one."""
    grad_y = np.atleast_2d(np.asarray(grad_y, np.float64))
    x2 = np.atleast_2d(np.asarray(x, np.float64))
    grad_x = grad_y @ np.asarray(w, np.float64)
    return grad_x.reshape(np.shape(x)), grad_y.T @ x2, grad_y.sum(axis=0)
