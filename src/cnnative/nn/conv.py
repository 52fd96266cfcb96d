"""Convolution layers."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from .. import _validation
from ..conv import conv2d, conv2d_backward
from .base import Layer, ParamShapes, register
from .init import Seed, check_init

__all__ = ["Conv2D"]


@register
class Conv2D(Layer):
    """2-D convolution (cross-correlation, like ``torch.nn.Conv2d``) of an NCHW batch.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : int or (int, int)
        Window (kh, kw), step (>= 1) and zero padding (>= 0) per (height, width).
    init : {"he", "xavier"}
        Weight initialisation (biases start at zero).
    dtype : float32 (default) or float64
    rng : int, numpy.random.Generator or None
        Seed or generator for the initial weights.

    ``params``: ``w`` of shape (out_channels, in_channels, kh, kw) and ``b`` of shape
    (out_channels,).  ``forward`` maps (N, in_channels, H, W) to (N, out_channels, Ho, Wo) with
    Ho = (H + 2*ph - kh) // sh + 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0, *,
                 init: str = "he", dtype: DTypeLike = np.float32, rng: Seed = None) -> None:
        super().__init__()
        self._configure(in_channels, out_channels, kernel_size, stride, padding, init=init,
                        dtype=dtype)
        self._allocate(rng)
        self._x: np.ndarray | None = None

    def _configure(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
                   init="he", dtype=np.float32, rng=None):
        func = "Conv2D"
        self.in_channels = _validation.positive_int(in_channels, "in_channels", func)
        self.out_channels = _validation.positive_int(out_channels, "out_channels", func)
        self.kernel_size = _validation.int_pair(kernel_size, "kernel_size", func, minimum=1)
        self.stride = _validation.int_pair(stride, "stride", func, minimum=1)
        self.padding = _validation.int_pair(padding, "padding", func, minimum=0)
        self.dtype = _validation.float_type(dtype, "dtype", func)
        self.init = check_init(init, func)

    def _shapes(self) -> ParamShapes:
        return {"w": ((self.out_channels, self.in_channels, *self.kernel_size), self.dtype),
                "b": ((self.out_channels,), self.dtype)}

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._x = x
        return conv2d(x, self.params["w"], self.params["b"], self.stride, self.padding)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        grad_x, self.grads["w"], self.grads["b"] = conv2d_backward(
            grad, self._cached("_x"), self.params["w"], self.stride, self.padding,
            need_grad_x=self.input_grad)
        return grad_x

    def get_config(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "init": self.init, "dtype": self.dtype.name}
