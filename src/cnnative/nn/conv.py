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
    kernel_size, stride : int or (int, int)
        Window (kh, kw) and step (>= 1) per (height, width).
    padding : int, (int, int), 'valid' or 'same'
        Zero padding (>= 0) per side, or as in :func:`cnnative.conv2d` ('same' needs stride 1).
    dilation : int or (int, int)
        Spacing of the window's taps (>= 1).
    groups : int
        Channels and filters fall into ``groups`` independent groups (it must divide both);
        ``groups == in_channels`` is a depthwise convolution.
    bias : bool
        False: no ``b`` parameter (the usual choice before a batch norm).
    init : {"he", "xavier"}
        Weight initialisation (biases start at zero).
    dtype : float32 (default) or float64
    rng : int, numpy.random.Generator or None
        Seed or generator for the initial weights.

    Notes
    -----
    ``params``: ``w`` of shape (out_channels, in_channels // groups, kh, kw) and, with bias,
    ``b`` of shape (out_channels,).  ``forward`` maps (N, in_channels, H, W) to
    (N, out_channels, Ho, Wo) with Ho = (H + pad_top + pad_bottom - dh*(kh-1) - 1) // sh + 1.
    In state dicts ``w`` and ``b`` are ``weight`` and ``bias``, as in ``torch.nn.Conv2d``.
    """

    torch_names = {"w": "weight", "b": "bias"}

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True, *,
                 init: str = "he", dtype: DTypeLike = np.float32, rng: Seed = None) -> None:
        super().__init__()
        self._configure(in_channels, out_channels, kernel_size, stride, padding, dilation,
                        groups, bias, init=init, dtype=dtype)
        self._allocate(rng)
        self._x: np.ndarray | None = None

    def _configure(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                   dilation=1, groups=1, bias=True, *, init="he", dtype=np.float32, rng=None):
        func = "Conv2D"
        self.in_channels = _validation.positive_int(in_channels, "in_channels", func)
        self.out_channels = _validation.positive_int(out_channels, "out_channels", func)
        self.kernel_size = _validation.int_pair(kernel_size, "kernel_size", func, minimum=1)
        self.stride = _validation.int_pair(stride, "stride", func, minimum=1)
        if isinstance(padding, str):
            _validation.choice(padding, {"valid": 0, "same": 0}, "padding", func)
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"{func}: padding='same' needs stride 1, got stride={stride!r}")
            self.padding: tuple[int, int] | str = padding
        else:
            self.padding = _validation.int_pair(padding, "padding", func, minimum=0)
        self.dilation = _validation.int_pair(dilation, "dilation", func, minimum=1)
        self.groups = _validation.positive_int(groups, "groups", func)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{func}: groups={self.groups} must divide in_channels="
                             f"{self.in_channels} and out_channels={self.out_channels}")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"{func}: bias must be True or False, got {bias!r}")
        self.bias = bool(bias)
        self.dtype = _validation.float_type(dtype, "dtype", func)
        self.init = check_init(init, func)

    def _shapes(self) -> ParamShapes:
        shapes = {"w": ((self.out_channels, self.in_channels // self.groups, *self.kernel_size),
                        self.dtype)}
        if self.bias:
            shapes["b"] = ((self.out_channels,), self.dtype)
        return shapes

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._x = x
        return conv2d(x, self.params["w"], self.params.get("b"), self.stride, self.padding,
                      self.dilation, self.groups)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        grad_x, self.grads["w"], grad_b = conv2d_backward(
            grad, self._cached("_x"), self.params["w"], self.stride, self.padding, self.dilation,
            self.groups, need_grad_x=self.input_grad)
        if self.bias:
            self.grads["b"] = grad_b
        return grad_x

    def get_config(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": (self.padding if isinstance(self.padding, str)
                            else list(self.padding)),
                "dilation": list(self.dilation), "groups": self.groups, "bias": self.bias,
                "init": self.init, "dtype": self.dtype.name}
