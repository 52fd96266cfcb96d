"""Stratified, seeded splits of a labelled dataset: train / validation (/ holdout)."""
from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["stratified_split"]


def stratified_split(x: ArrayLike, y: ArrayLike, validation_size: int | float, seed: int = 0
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split ``x, y`` into a training and a validation part, class by class.

    Each class contributes to the validation part in proportion to its share of ``y`` (the
    rule of :func:`load_digits_5k`); the result is a pure function of the arguments, each part
    in a seeded random order.

    Parameters
    ----------
    x : array, (N, ...)
    y : array of int labels, (N,)
    validation_size : int or float
        Number of validation samples, or a fraction of N in [0, 1).
    seed : int

    Returns
    -------
    (x_train, y_train), (x_val, y_val)
    """
    func = "stratified_split"
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu" or (y.size and y.min() < 0):
        raise ValueError(f"{func}: y must be a 1-D array of int labels >= 0, got "
                         f"{y.dtype} {y.shape}")
    if x.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{func}: x must have one sample per label ({y.shape[0]}), got shape "
                         f"{x.shape}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{func}: seed must be an int, got {seed!r}")
    n_val = split_size(validation_size, len(y), "validation_size", func)
    train, val, _ = stratified_parts(y, n_val, 0, int(seed), func)
    return (x[train], y[train]), (x[val], y[val])


def split_size(value: int | float, total: int, name: str, func: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be an int or a float fraction, got {value!r}")
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise ValueError(f"{func}: {name} must be >= 0, got {value!r}")
        return int(value)
    if isinstance(value, numbers.Real):
        if not 0 <= value < 1:
            raise ValueError(f"{func}: {name} as a fraction must be in [0, 1), got {value!r}")
        return int(np.floor(float(value) * total + 0.5))
    raise TypeError(f"{func}: {name} must be an int or a float fraction, got {value!r}")


def _allocate(size: int, counts: np.ndarray) -> np.ndarray:
    """Per-class shares of ``size`` proportional to ``counts``, summing exactly to ``size``.

    Largest remainders get the leftover units; equal remainders go to the lower class first.
    Integer arithmetic, so the result does not depend on floating-point rounding.
    """
    total = int(counts.sum())
    base, remainder = np.divmod(size * counts, total)
    leftover = size - int(base.sum())
    order = np.argsort(-remainder, kind="stable")
    base[order[:leftover]] += 1
    return base


def stratified_parts(labels: np.ndarray, n_val: int, n_hold: int, seed: int,
                      func: str) -> list[np.ndarray]:
    """Index arrays (train, validation, holdout), each in a seeded random order."""
    counts = np.bincount(labels)
    val = _allocate(n_val, counts)
    hold = _allocate(n_hold, counts)
    short = np.flatnonzero(val + hold >= counts)
    if short.size:
        digit = short[0]
        raise ValueError(f"{func}: validation_size={n_val} and holdout_size={n_hold} would take "
                         f"{val[digit] + hold[digit]} of the {counts[digit]} images of class "
                         f"{digit}; at least one per class must remain for training")
    rng = np.random.default_rng(seed)
    # Both draws are independent of the sizes, which keeps the validation part fixed for a
    # given validation_size and seed whatever the holdout.
    rank_key = rng.random(len(labels))
    order_key = rng.random(len(labels))
    by_class = np.lexsort((rank_key, labels))
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(labels), np.int64)
    rank[by_class] = np.arange(len(labels)) - np.repeat(starts, counts)
    part = np.where(rank < val[labels], 1, np.where(rank < (val + hold)[labels], 2, 0))
    return [index[np.argsort(order_key[index], kind="stable")]
            for index in (np.flatnonzero(part == p) for p in (0, 1, 2))]
