"""Ready-made networks."""
from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from .nn import Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU
from .network import Network

__all__ = ["nielsen"]


def nielsen(dtype: DTypeLike = np.float32, seed: int | None = 0, dropout: float = 0.0) -> Network:
    """Nielsen's MNIST network ("Neural Networks and Deep Learning", chapter 6), for
    (N, 1, 28, 28) digits and 10 classes, with ReLU and softmax cross-entropy.

    Conv2D(1, 20, 5) + ReLU + MaxPool2D(2) -> Conv2D(20, 40, 5) + ReLU + MaxPool2D(2) ->
    Flatten -> Dense(640, 100) + ReLU -> Dense(100, 10).  ``dropout`` > 0 puts a Dropout layer
    before each dense layer.  ``seed`` fixes the He-initialised weights.  In torch::

        nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(20, 40, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Dropout(dropout), nn.Linear(640, 100), nn.ReLU(),
                      nn.Dropout(dropout), nn.Linear(100, 10))
    """
    seeds = np.random.SeedSequence(seed).spawn(4)

    def drop() -> list[Layer]:
        return [Dropout(dropout)] if dropout else []

    return Network([
        Conv2D(1, 20, 5, dtype=dtype, rng=seeds[0]), ReLU(), MaxPool2D(2),
        Conv2D(20, 40, 5, dtype=dtype, rng=seeds[1]), ReLU(), MaxPool2D(2),
        Flatten(),
        *drop(), Dense(640, 100, dtype=dtype, rng=seeds[2]), ReLU(),
        *drop(), Dense(100, 10, dtype=dtype, rng=seeds[3]),
    ])
