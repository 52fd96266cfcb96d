"""Random crops and flips the plain way, image by image and pixel by pixel.

Each function draws from ``rng`` exactly what the fast class in
:mod:`cnnative.datasets.augment` draws, in the same order, so that for one generator state
both give the same images.
"""
import numpy as np

__all__ = ["random_crop", "random_flip"]


def random_crop(images, rng, size, padding=0):
    """What ``RandomCrop(size, padding)(images, rng)`` computes, for (N, H, W) or (N, C, H, W)."""
    images = np.asarray(images)
    height, width = (size, size) if np.ndim(size) == 0 else size
    count, rows, cols = len(images), images.shape[-2], images.shape[-1]
    tops = rng.integers(0, rows + 2 * padding - height, count, endpoint=True)
    lefts = rng.integers(0, cols + 2 * padding - width, count, endpoint=True)
    out = np.zeros(images.shape[:-2] + (height, width), images.dtype)
    for i in range(count):
        for r in range(height):
            for c in range(width):
                # The window pixel's place in the unpadded image; outside it, padding's zero.
                source_r = tops[i] + r - padding
                source_c = lefts[i] + c - padding
                if 0 <= source_r < rows and 0 <= source_c < cols:
                    out[i, ..., r, c] = images[i, ..., source_r, source_c]
    return out


def random_flip(images, rng, p=0.5):
    """What ``RandomFlip(p)(images, rng)`` computes, for (N, H, W) or (N, C, H, W)."""
    images = np.asarray(images)
    flips = rng.random(len(images)) < p
    out = images.copy()
    width = images.shape[-1]
    for i in range(len(images)):
        if flips[i]:
            for c in range(width):
                out[i, ..., c] = images[i, ..., width - 1 - c]
    return out
