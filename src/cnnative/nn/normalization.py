"""Normalisation layers."""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from .. import _validation
from ..norm import batch_norm, batch_norm_backward
from .base import Layer, ParamShapes, register

__all__ = ["BatchNorm2D", "BatchNorm1D"]


class _BatchNorm(Layer):
    """Batch normalisation over every axis but the channels' (axis 1), as torch's BatchNorm.

    In training (``forward(x, training=True)``) each channel is normalised with the batch's
    mean and biased variance, and the running statistics move towards the batch's (with the
    unbiased variance): ``running = (1 - momentum) * running + momentum * batch``; otherwise
    the running statistics normalise.  Then ``gamma * x_hat + beta``.

    ``params``: ``gamma`` (ones) and ``beta`` (zeros), shape (num_features,).  ``buffers``:
    ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked`` (an int64
    scalar array counting training batches), saved and loaded with the model.  In state dicts
    ``gamma`` and ``beta`` are ``weight`` and ``bias``, as in torch; the buffers keep their
    names.
    """

    torch_names = {"gamma": "weight", "beta": "bias"}
    whole_batch_grads = frozenset({"gamma", "beta"})  # from combined sums (cnnative.norm)

    _ndim: int
    _shape_text: str

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *,
                 dtype: DTypeLike = np.float32) -> None:
        super().__init__()
        self._configure(num_features, eps, momentum, dtype=dtype)
        for name, (shape, dtype_) in self._shapes().items():
            self.params[name] = (np.ones if name == "gamma" else np.zeros)(shape, dtype_)
        (c,), float_type = (self.num_features,), self.dtype
        self.buffers.update(running_mean=np.zeros(c, float_type), running_var=np.ones(c, float_type),
                            num_batches_tracked=np.zeros((), np.int64))
        self._cache: Any = None

    def _configure(self, num_features, eps=1e-5, momentum=0.1, *, dtype=np.float32):
        func = type(self).__name__
        self.num_features = _validation.positive_int(num_features, "num_features", func)
        eps = float(_validation.real_scalar(eps, "eps", func))
        if not 0 < eps < float("inf"):
            raise ValueError(f"{func}: eps must be > 0 and finite, got {eps!r}")
        momentum = float(_validation.real_scalar(momentum, "momentum", func))
        if not 0 <= momentum <= 1:
            raise ValueError(f"{func}: momentum must be in [0, 1], got {momentum!r}")
        self.eps, self.momentum = eps, momentum
        self.dtype = _validation.float_type(dtype, "dtype", func)

    def _shapes(self) -> ParamShapes:
        return {"gamma": ((self.num_features,), self.dtype),
                "beta": ((self.num_features,), self.dtype)}

    @classmethod
    def buffer_shapes(cls, config: dict[str, Any]) -> ParamShapes:
        shapes = cls.param_shapes(config)
        shape, dtype = shapes["gamma"]
        return {"running_mean": (shape, dtype), "running_var": (shape, dtype),
                "num_batches_tracked": ((), np.dtype(np.int64))}

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        if np.ndim(x) != self._ndim:
            raise ValueError(f"{type(self).__name__}: x must be {self._shape_text}, got shape "
                             f"{np.shape(x)}")
        y, self._cache = batch_norm(x, self.params["gamma"], self.params["beta"],
                                    self.buffers["running_mean"], self.buffers["running_var"],
                                    training, self.momentum, self.eps)
        if training:
            self.buffers["num_batches_tracked"] += 1
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        grad_x, self.grads["gamma"], self.grads["beta"] = batch_norm_backward(
            grad, self._cached("_cache"))
        return grad_x if self.input_grad else None

    def get_config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "dtype": self.dtype.name}


def _with_shared_notes(doc: str | None) -> str:
    """A subclass's docstring followed by _BatchNorm's as its Notes section ("" under -OO)."""
    if not doc or not _BatchNorm.__doc__:
        return doc or ""
    return (inspect.cleandoc(doc) + "\n\nNotes\n-----\n"
            + inspect.cleandoc(_BatchNorm.__doc__) + "\n")


@register
class BatchNorm2D(_BatchNorm):
    """Batch normalisation of (N, C, H, W) feature maps, per channel (``torch.nn.BatchNorm2d``).

    Parameters
    ----------
    num_features : int
        C.
    eps : float
        Added to the variance, > 0.
    momentum : float
        Weight of the batch's statistics in the running ones, in [0, 1].
    dtype : float32 (default) or float64
    """

    _ndim, _shape_text = 4, "(N, C, H, W)"
    __doc__ = _with_shared_notes(__doc__)


@register
class BatchNorm1D(_BatchNorm):
    """Batch normalisation of (N, C) features, per feature (``torch.nn.BatchNorm1d``).

    Parameters are those of :class:`BatchNorm2D`.
    """

    _ndim, _shape_text = 2, "(N, C)"
    __doc__ = _with_shared_notes(__doc__)
