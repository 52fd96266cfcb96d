"""Pooling layers."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation
from ..pooling import (avg_pool2d, avg_pool2d_backward, global_avg_pool2d,
                       global_avg_pool2d_backward, max_pool2d, max_pool2d_backward)
from .base import Layer, register

__all__ = ["MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"]


@register
class MaxPool2D(Layer):
    """Max pooling over the last two axes, with PyTorch's argmax rule (see
    :func:`cnnative.max_pool2d`); the gradient goes back only to each window's maximum.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size`` (non-overlapping windows).
    padding : int or (int, int)
        Implicit -inf border, at most half the window.
    """

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        func = "MaxPool2D"
        self.kernel_size = _validation.int_pair(kernel_size, "kernel_size", func, minimum=1)
        self.stride = (self.kernel_size if stride is None
                       else _validation.int_pair(stride, "stride", func, minimum=1))
        self.padding = _validation.int_pair(padding, "padding", func, minimum=0)
        self._indices: np.ndarray | None = None
        self._input_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        y, self._indices = max_pool2d(x, self.kernel_size, self.stride, self.padding)
        self._input_shape = np.shape(x)
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return max_pool2d_backward(grad, self._cached("_indices"), self._input_shape)

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}


@register
class AvgPool2D(Layer):
    """Average pooling over the last two axes (``torch.nn.AvgPool2d``, floor mode); see
    :func:`cnnative.avg_pool2d`.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Zero border, at most half the window.
    count_include_pad : bool
        Whether the padding's zeros count in each window's divisor.
    """

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0, count_include_pad: bool = True) -> None:
        super().__init__()
        func = "AvgPool2D"
        self.kernel_size = _validation.int_pair(kernel_size, "kernel_size", func, minimum=1)
        self.stride = (self.kernel_size if stride is None
                       else _validation.int_pair(stride, "stride", func, minimum=1))
        self.padding = _validation.int_pair(padding, "padding", func, minimum=0)
        if not isinstance(count_include_pad, (bool, np.bool_)):
            raise TypeError(f"{func}: count_include_pad must be True or False, got "
                            f"{count_include_pad!r}")
        self.count_include_pad = bool(count_include_pad)
        self._input_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        y = avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)
        self._input_shape = np.shape(x)
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return avg_pool2d_backward(grad, self._cached("_input_shape"), self.kernel_size,
                                   self.stride, self.padding, self.count_include_pad)

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "count_include_pad": self.count_include_pad}


@register
class GlobalAvgPool2D(Layer):
    """The mean over H and W of each channel: (N, C, H, W) -> (N, C); see
    :func:`cnnative.global_avg_pool2d` (``torch.nn.AdaptiveAvgPool2d(1)`` then flattening)."""

    def __init__(self) -> None:
        super().__init__()
        self._input_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        y = global_avg_pool2d(x)
        self._input_shape = np.shape(x)
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return global_avg_pool2d_backward(grad, self._cached("_input_shape"))
