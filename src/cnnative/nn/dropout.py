"""Dropout."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation
from .._reduce import active_shard
from .base import Layer, register
from .init import Seed

__all__ = ["Dropout"]


@register
class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    rest by 1 / (1 - p), so inference (``training=False``) is the identity.

    ``rng`` (seed or Generator) draws the masks; :meth:`cnnative.Network.fit` reseeds it from
    its own ``seed`` so a seeded run is reproducible (in data-parallel training too: each
    process draws the whole batch's masks and applies its shard's).
    """

    def __init__(self, p: float = 0.5, *, rng: Seed = None) -> None:
        super().__init__()
        p = _validation.real_scalar(p, "p", "Dropout")
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = np.random.default_rng(rng)
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        x = np.asarray(x)
        if not training or self.p == 0:
            self._mask = None
            return x
        dtype = x.dtype if x.dtype == np.float32 else np.float64
        shard = active_shard()
        if shard is None:
            keep = self.rng.random(x.shape, dtype=dtype)
        else:
            # Every process draws the whole batch's masks (the same generator state on each)
            # and keeps its rows: the masks do not depend on how the batch is shared.
            keep = self.rng.random((shard.total, *x.shape[1:]), dtype=dtype)[shard.start:shard.stop]
        self._mask = (keep >= self.p).astype(x.dtype) / x.dtype.type(1 - self.p)
        return x * self._mask

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad if self._mask is None else grad * self._mask

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p}
