"""Fully connected layers, and Flatten, which feeds them from convolutional ones."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from .. import _validation
from ..dense import dense, dense_backward
from .base import Layer, ParamShapes, register
from .init import Seed, check_init

__all__ = ["Dense", "Flatten"]


@register
class Dense(Layer):
    """Fully connected layer ``y = x @ w.T + b`` on BLAS (like ``torch.nn.Linear``).

    Parameters
    ----------
    in_features, out_features : int
    init, dtype, rng : as for :class:`~cnnative.nn.Conv2D`

    Notes
    -----
    ``params``: ``w`` of shape (out_features, in_features) and ``b`` of shape (out_features,).
    ``forward`` maps (N, in_features) to (N, out_features).  In state dicts ``w`` and ``b`` are
    ``weight`` and ``bias``, as in ``torch.nn.Linear``.
    """

    torch_names = {"w": "weight", "b": "bias"}

    def __init__(self, in_features: int, out_features: int, *, init: str = "he",
                 dtype: DTypeLike = np.float32, rng: Seed = None) -> None:
        super().__init__()
        self._configure(in_features, out_features, init=init, dtype=dtype)
        self._allocate(rng)
        self._x: np.ndarray | None = None

    def _configure(self, in_features, out_features, *, init="he", dtype=np.float32, rng=None):
        func = "Dense"
        self.in_features = _validation.positive_int(in_features, "in_features", func)
        self.out_features = _validation.positive_int(out_features, "out_features", func)
        self.dtype = _validation.float_type(dtype, "dtype", func)
        self.init = check_init(init, func)

    def _shapes(self) -> ParamShapes:
        return {"w": ((self.out_features, self.in_features), self.dtype),
                "b": ((self.out_features,), self.dtype)}

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        self._x = x
        # Training multiplies in blocks of rows, so that a data-parallel shard of the batch
        # computes its rows' exact bits (cnnative.dense's block_rows).
        return dense(x, self.params["w"], self.params["b"], block_rows=training)

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        grad_x, self.grads["w"], self.grads["b"] = dense_backward(grad, self._cached("_x"),
                                                                  self.params["w"])
        return grad_x if self.input_grad else None

    def get_config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "init": self.init, "dtype": self.dtype.name}


@register
class Flatten(Layer):
    """(N, ...) -> (N, prod(...)), a view when the input is contiguous."""

    def __init__(self) -> None:
        super().__init__()
        self._input_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"Flatten: x must have a batch axis, got ndim={x.ndim}")
        self._input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return np.reshape(grad, self._cached("_input_shape"))
