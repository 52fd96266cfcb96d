"""Numerical derivatives."""
import numpy as np

__all__ = ["numeric_gradient"]


def numeric_gradient(loss, x, h=1e-6):
    """Central differences of ``loss()`` with respect to every element of ``x`` (changed in
    place, then restored)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + h
        up = loss()
        x[index] = saved - h
        down = loss()
        x[index] = saved
        grad[index] = (up - down) / (2 * h)
    return grad
