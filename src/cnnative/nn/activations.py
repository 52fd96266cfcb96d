"""Element-wise activation layers."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation
from .base import Layer, register

__all__ = ["sigmoid", "ReLU", "Sigmoid", "Tanh", "LeakyReLU"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow for any x, in x's float dtype."""
    # Imported on first use: scipy.special takes longer to import than the rest of cnnative.
    from scipy.special import expit
    return expit(x)


class _OutputActivation(Layer):
    """An element-wise activation whose derivative is a function of its output, which is all
    ``backward`` keeps."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._y = self._activate(x)
        return self._y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self._input_grad(grad, self._cached("_y"))

    @staticmethod
    def _activate(x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _input_grad(grad: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@register
class ReLU(_OutputActivation):
    """max(x, 0); the gradient passes where the output is positive (0 at x == 0, as torch)."""

    @staticmethod
    def _activate(x):
        return np.maximum(x, 0)

    @staticmethod
    def _input_grad(grad, y):
        return np.multiply(grad, y > 0, dtype=y.dtype)


@register
class Sigmoid(_OutputActivation):
    """1 / (1 + exp(-x)), evaluated without overflow (:func:`sigmoid`)."""

    _activate = staticmethod(sigmoid)

    @staticmethod
    def _input_grad(grad, y):
        return grad * (y * (1 - y))


@register
class Tanh(_OutputActivation):
    """tanh(x); its derivative is 1 - tanh(x)**2."""

    _activate = staticmethod(np.tanh)

    @staticmethod
    def _input_grad(grad, y):
        return grad * (1 - y * y)


@register
class LeakyReLU(Layer):
    """x where x > 0, else ``negative_slope * x`` (``torch.nn.LeakyReLU``); the gradient is 1
    where x > 0, else negative_slope (at x == 0 too, as torch).

    Parameters
    ----------
    negative_slope : float
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        slope = _validation.real_scalar(negative_slope, "negative_slope", "LeakyReLU")
        if not np.isfinite(slope):
            raise ValueError(f"LeakyReLU: negative_slope must be finite, got {negative_slope!r}")
        self.negative_slope = float(slope)
        self._positive: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        x = np.asarray(x)
        self._positive = x > 0
        return np.where(self._positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, grad: np.ndarray) -> np.ndarray:
        positive = self._cached("_positive")
        return np.where(positive, grad, grad * grad.dtype.type(self.negative_slope))

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}
