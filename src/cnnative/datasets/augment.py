"""Random augmentation of image batches, for ``Network.fit(augment=...)``.

Each class here is an ``augment`` callable, ``aug(images, rng) -> images``: ``images`` is a
raw batch, uint8 or float, of shape (N, H, W) or (N, C, H, W); ``rng`` a
``numpy.random.Generator`` from which all the randomness is drawn, so a seeded generator gives
the same result on every run.  The result is a new array of the input's dtype; the input is
never modified.  :class:`Compose` chains them.
"""
from __future__ import annotations

import numbers
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

from .. import _validation

__all__ = ["shift_and_rotate", "ShiftRotate", "RandomCrop", "RandomFlip", "Compose"]


def _image_batch(images: ArrayLike, func: str, *, one_channel: bool = False) -> np.ndarray:
    """``images`` as an array, checked to be a non-empty uint8 or float (N, H, W) or
    (N, C, H, W) batch, with C = 1 if ``one_channel``."""
    batch: np.ndarray = _validation.array(images, "images", func, allow_empty=True)
    four_d = "(N, 1, H, W)" if one_channel else "(N, C, H, W)"
    if (batch.ndim not in (3, 4) or batch.size == 0
            or (one_channel and batch.ndim == 4 and batch.shape[1] != 1)):
        raise ValueError(f"{func}: images must be a non-empty (N, H, W) or {four_d} array, "
                         f"got shape {batch.shape}")
    if batch.dtype != np.uint8 and batch.dtype.kind != "f":
        raise TypeError(f"{func}: images must be uint8 or float, got dtype {batch.dtype}")
    return batch


def _check_rng(rng: object, func: str) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{func}: rng must be a numpy.random.Generator (np.random.default_rng"
                        f"(seed)), got {rng!r}")


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
    ndarray of the input's shape and dtype
        Bilinear resampling in float32, zero outside the image (uint8 results are rounded).
    """
    func = "shift_and_rotate"
    images = _image_batch(images, func, one_channel=True)
    if images.ndim == 4:
        return shift_and_rotate(images[:, 0], rng, max_shift, max_degrees)[:, np.newaxis]
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


class RandomCrop:
    """``augment`` callable: pad each image with zeros, then cut out a window at a random place.

    The same as torchvision's ``RandomCrop(size, padding)`` (fill 0, no ``pad_if_needed``), for
    a whole batch in one call; every channel of an image is cut at the same place.

    Parameters
    ----------
    size : int or (int, int)
        The window's (height, width), each >= 1; an int gives a square.
    padding : int
        Zeros added on every side of each image before cutting, >= 0.  With ``size`` equal to
        the image size, this shifts each image by up to ``padding`` pixels per axis.

    Examples
    --------
    >>> import numpy as np
    >>> crop = RandomCrop(28, padding=2)
    >>> crop(np.ones((5, 28, 28), np.uint8), np.random.default_rng(0)).shape
    (5, 28, 28)
    """

    def __init__(self, size: int | tuple[int, int], padding: int = 0) -> None:
        func = "RandomCrop"
        self.size = _validation.int_pair(size, "size", func, 1)
        if isinstance(padding, (bool, np.bool_)) or not isinstance(padding, numbers.Integral):
            raise TypeError(f"{func}: padding must be a non-negative int, got {padding!r}")
        if padding < 0:
            raise ValueError(f"{func}: padding must be a non-negative int, got {padding!r}")
        self.padding: int = int(padding)

    def __call__(self, images: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        """Crop each image of a batch at its own random place.

        Parameters
        ----------
        images : array, (N, H, W) or (N, C, H, W), uint8 or float
            H + 2 * padding must be at least the window's height, W + 2 * padding its width.
        rng : numpy.random.Generator
            Gives the N row offsets, then the N column offsets, each by one
            ``rng.integers(0, H + 2 * padding - height, N, endpoint=True)`` call (``W`` and
            ``width`` for columns).

        Returns
        -------
        ndarray, (N, height, width) or (N, C, height, width), the input's dtype

        Raises
        ------
        ValueError, TypeError
            Images of another shape or dtype, padded images smaller than the window, or
            ``rng`` not a Generator.
        """
        func = "RandomCrop"
        images = _image_batch(images, func)
        _check_rng(rng, func)
        height, width = self.size
        pad = self.padding
        rows, cols = images.shape[-2] + 2 * pad, images.shape[-1] + 2 * pad
        if rows < height or cols < width:
            raise ValueError(f"{func}: images of {images.shape[-2]}x{images.shape[-1]} padded by "
                             f"{pad} are {rows}x{cols}, smaller than size {self.size}")
        count = len(images)
        tops = rng.integers(0, rows - height, count, endpoint=True)
        lefts = rng.integers(0, cols - width, count, endpoint=True)
        batch = images if images.ndim == 4 else images[:, np.newaxis]
        if pad:
            padded = np.zeros(batch.shape[:2] + (rows, cols), batch.dtype)
            padded[:, :, pad:rows - pad, pad:cols - pad] = batch
            batch = padded
        # Every window as a view, (N, C, offsets down, offsets across, height, width); indexing
        # copies only the chosen one of each image.
        windows = sliding_window_view(batch, (height, width), axis=(2, 3))
        out = windows[np.arange(count), :, tops, lefts]
        return out if images.ndim == 4 else out[:, 0]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomFlip:
    """``augment`` callable: mirror each image left to right with probability ``p``.

    Parameters
    ----------
    p : float
        The probability of flipping each image, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> flip = RandomFlip(p=1.0)
    >>> flip(np.array([[[1, 2, 3]]], np.uint8), np.random.default_rng(0))
    array([[[3, 2, 1]]], dtype=uint8)
    """

    def __init__(self, p: float = 0.5) -> None:
        func = "RandomFlip"
        if isinstance(p, (bool, np.bool_)):
            raise TypeError(f"{func}: p must be a probability in [0, 1], got {p!r}")
        p = _validation.real_scalar(p, "p", func)
        if not 0 <= p <= 1:
            raise ValueError(f"{func}: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, images: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        """Flip each image of a batch along its last axis, or not, at random.

        Parameters
        ----------
        images : array, (N, H, W) or (N, C, H, W), uint8 or float
        rng : numpy.random.Generator
            Image i is flipped when ``rng.random(N)[i] < p``, one call per batch.

        Returns
        -------
        ndarray of the input's shape and dtype

        Raises
        ------
        ValueError, TypeError
            Images of another shape or dtype, or ``rng`` not a Generator.
        """
        func = "RandomFlip"
        images = _image_batch(images, func)
        _check_rng(rng, func)
        flips = rng.random(len(images)) < self.p
        out = images.copy()
        out[flips] = images[flips, ..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p})"


class Compose:
    """``augment`` callable: apply several in order, all drawing from the same generator.

    Parameters
    ----------
    *transforms : callable
        At least one ``augment`` callable, ``(images, rng) -> images``, such as
        :class:`RandomCrop` or :class:`RandomFlip` instances.  Each receives the previous one's
        output, so shapes follow them (a crop changes H and W).

    Examples
    --------
    >>> augment = Compose(RandomCrop(28, padding=4), RandomFlip())
    >>> augment
    Compose(RandomCrop(size=(28, 28), padding=4), RandomFlip(p=0.5))
    """

    def __init__(self, *transforms: Callable[[ArrayLike, np.random.Generator], ArrayLike]
                 ) -> None:
        func = "Compose"
        if not transforms:
            raise ValueError(f"{func}: transforms must hold at least one callable; for no "
                             "augmentation, pass augment=None")
        for position, transform in enumerate(transforms):
            if isinstance(transform, type):
                raise TypeError(f"{func}: transforms[{position}] is the class "
                                f"{transform.__name__}; pass an instance, "
                                f"{transform.__name__}(...)")
            if not callable(transform):
                hint = (" (pass the callables as separate arguments, Compose(a, b), not as "
                        "one sequence)" if isinstance(transform, (list, tuple)) else "")
                raise TypeError(f"{func}: transforms[{position}] must be a callable (images, "
                                f"rng) -> images, got {transform!r}{hint}")
        self.transforms = transforms

    def __call__(self, images: ArrayLike, rng: np.random.Generator) -> ArrayLike:
        """``images`` through each transform in turn.

        Parameters
        ----------
        images : array, (N, H, W) or (N, C, H, W), uint8 or float
        rng : numpy.random.Generator

        Returns
        -------
        ndarray (or what the last transform returns)
            The last transform's output.
        """
        for transform in self.transforms:
            images = transform(images, rng)
        return images

    def __repr__(self) -> str:
        return f"Compose({', '.join(repr(transform) for transform in self.transforms)})"
