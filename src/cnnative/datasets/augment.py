"""Random geometric augmentation of image batches, for ``Network.fit(augment=...)``."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .. import _validation

__all__ = ["shift_and_rotate", "ShiftRotate"]


def shift_and_rotate(images: ArrayLike, rng: np.random.Generator, max_shift: float = 2.0,
                     max_degrees: float = 10.0) -> np.ndarray:
    """Rotate each image about its centre and shift it, by random amounts, in one call.

    Parameters
    ----------
    images : array, (N, H, W) or (N, 1, H, W), uint8 or float
    rng : numpy.random.Generator
    max_shift : float
        Shifts are uniform in [-max_shift, max_shift] pixels, per axis.
    max_degrees : float
        Angles are uniform in [-max_degrees, max_degrees].

    Returns
    -------
    ndarray of the input's shape and dtype: bilinear resampling in float32, zero outside the
    image (uint8 results are rounded).
    """
    func = "shift_and_rotate"
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 1:
        return shift_and_rotate(images[:, 0], rng, max_shift, max_degrees)[:, np.newaxis]
    if images.ndim != 3 or images.size == 0:
        raise ValueError(f"{func}: images must be a non-empty (N, H, W) or (N, 1, H, W) array, "
                         f"got shape {images.shape}")
    if images.dtype != np.uint8 and images.dtype.kind != "f":
        raise TypeError(f"{func}: images must be uint8 or float, got dtype {images.dtype}")
    max_shift = float(_validation.real_scalar(max_shift, "max_shift", func))
    max_degrees = float(_validation.real_scalar(max_degrees, "max_degrees", func))
    n, height, width = images.shape
    angles = np.deg2rad(rng.uniform(-max_degrees, max_degrees, n))[:, None, None]
    shifts = rng.uniform(-max_shift, max_shift, (n, 2))
    centre_r, centre_c = (height - 1) / 2, (width - 1) / 2
    rows, cols = np.mgrid[0:height, 0:width]
    rows, cols = rows - centre_r, cols - centre_c
    # Each output pixel samples the input at the inverse transform of its position.
    cos, sin = np.cos(angles), np.sin(angles)
    source_r = cos * rows - sin * cols + centre_r - shifts[:, 0, None, None]
    source_c = sin * rows + cos * cols + centre_c - shifts[:, 1, None, None]
    return _bilinear(images, source_r, source_c)


def _bilinear(images: np.ndarray, source_r: np.ndarray, source_c: np.ndarray) -> np.ndarray:
    """images (N, H, W) sampled at (N, H, W) fractional positions, zero outside, bilinear."""
    n, height, width = images.shape
    # A zero border (one pixel before, two after) lets every sample read its four neighbours
    # without bounds checks; positions further out are clamped onto the border, whose
    # neighbours are all zero (or carry zero weight).
    padded = np.zeros((n, height + 3, width + 3), np.float32)
    padded[:, 1:height + 1, 1:width + 1] = images
    source_r = np.clip(source_r + 1, 0, height + 1)
    source_c = np.clip(source_c + 1, 0, width + 1)
    r0 = np.floor(source_r).astype(np.intp)
    c0 = np.floor(source_c).astype(np.intp)
    fr = (source_r - r0).astype(np.float32)
    fc = (source_c - c0).astype(np.float32)
    flat = padded.reshape(-1)
    base = (np.arange(n)[:, None, None] * (height + 3) + r0) * (width + 3) + c0
    top = flat[base] * (1 - fc) + flat[base + 1] * fc
    bottom = flat[base + width + 3] * (1 - fc) + flat[base + width + 4] * fc
    out = top * (1 - fr) + bottom * fr
    if images.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(images.dtype)


class ShiftRotate:
    """``augment`` callable for :meth:`cnnative.Network.fit`: :func:`shift_and_rotate` with
    fixed limits."""

    def __init__(self, max_shift: float = 2.0, max_degrees: float = 10.0) -> None:
        self.max_shift = max_shift
        self.max_degrees = max_degrees

    def __call__(self, images: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        return shift_and_rotate(images, rng, self.max_shift, self.max_degrees)

    def __repr__(self) -> str:
        return f"ShiftRotate(max_shift={self.max_shift}, max_degrees={self.max_degrees})"
