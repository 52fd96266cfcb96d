"""Weight initialisation."""
from __future__ import annotations

from typing import Union

import numpy as np

__all__ = ["INITS", "init_weights"]

INITS = ("he", "xavier")

Seed = Union[int, np.random.Generator, np.random.SeedSequence, None]


def check_init(init: str, func: str) -> str:
    if init not in INITS:
        raise ValueError(f"{func}: init must be one of {INITS}, got {init!r}")
    return init


def init_weights(shape: tuple[int, ...], fan_in: int, fan_out: int, init: str,
                 dtype: np.dtype, rng: Seed) -> np.ndarray:
    """He (normal, std sqrt(2/fan_in)) for ReLU networks, or Xavier/Glorot (uniform,
    limit sqrt(6/(fan_in+fan_out))) for sigmoid/tanh ones.

    Drawn in float64 so that a float32 and a float64 layer built from one seed start from the
    same weights, up to rounding.
    """
    rng = np.random.default_rng(rng)
    if init == "he":
        weights = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    else:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights = rng.uniform(-limit, limit, shape)
    return weights.astype(dtype)
