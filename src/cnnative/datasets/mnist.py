"""MNIST-format directories: MNIST or Fashion-MNIST from their four canonical IDX files."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .. import _validation
from . import _mnist_files
from .idx import read_idx, read_idx_with_digest

__all__ = ["MNIST_FILES", "load_mnist", "download_mnist", "FASHION_MNIST_CLASSES",
           "FASHION_MNIST_DIR", "load_fashion_mnist"]

# Split -> (images file, labels file), without the optional .gz.
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Where Debian's ``dataset-fashion-mnist`` package installs the four .gz files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

#: Fashion-MNIST's class names, indexed by label.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def load_mnist(directory: str | os.PathLike, *, verify: bool = True
               ) -> tuple[tuple[np.ndarray, np.ndarray] | None, tuple[np.ndarray, np.ndarray]]:
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
    return _load_directory(os.fspath(directory), verify, "load_mnist", None)


def load_fashion_mnist(directory: str | os.PathLike | None = None, *, verify: bool = True
                       ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST: 70,000 28x28 greyscale images of clothes in ten classes.

    Reads the four canonical files as :func:`load_mnist` does, all four required.  Nothing is
    downloaded: on Debian and Ubuntu, ``apt-get install dataset-fashion-mnist`` puts the files
    in :data:`FASHION_MNIST_DIR`, the default; elsewhere, download them from the Fashion-MNIST
    project (https://github.com/zalandoresearch/fashion-mnist, folder ``data/fashion``), for
    instance with ``download_mnist(directory, dataset="fashion-mnist")``, and pass the
    directory.  Class names are in :data:`FASHION_MNIST_CLASSES`.

    Checksum rule: that of :func:`load_mnist`, except that a file of a published size must be
    Fashion-MNIST's, so that a directory of MNIST files is refused rather than loaded as
    clothes.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        Defaults to :data:`FASHION_MNIST_DIR` (``/usr/share/datasets/fashion-mnist``).
    verify : bool
        False skips the checksum rule (and the hashing, about 0.1 s).

    Returns
    -------
    train : (x_train, y_train)
        x_train uint8 (60000, 28, 28), y_train int64 (60000,) with values 0..9, for the
        published files.
    test : (x_test, y_test)
        x_test uint8 (10000, 28, 28), y_test int64 (10000,).

    Raises
    ------
    FileNotFoundError
        The directory or one of the four files is missing; the message says how to get them.
    IDXFormatError, ChecksumError (both ValueError)
        A malformed file, or a file of a published size whose contents are not Fashion-MNIST's
        (damaged, or the MNIST digits).
    ValueError
        Contents of the wrong dtype or shape, as for :func:`load_mnist`.
    """
    func = "load_fashion_mnist"
    directory = FASHION_MNIST_DIR if directory is None else os.fspath(directory)
    stems = (*MNIST_FILES["train"], *MNIST_FILES["test"])
    where: str | None
    if not os.path.isdir(directory):
        where = f"directory {directory!r} does not exist"
    else:
        missing = [f"{stem}[.gz]" for stem in stems if _find(directory, stem)[0] is None]
        where = f"{directory!r} has no {', '.join(missing)}" if missing else None
    if where is not None:
        names = ", ".join(stem + ".gz" for stem in stems)
        raise FileNotFoundError(
            f"{func}: Fashion-MNIST not found: {where}. On Debian or Ubuntu, "
            f"`apt-get install dataset-fashion-mnist` installs it in {FASHION_MNIST_DIR}, the "
            f"default. Elsewhere, download the four files {names} from the Fashion-MNIST "
            "project (https://github.com/zalandoresearch/fashion-mnist, folder data/fashion; "
            "datasets.download_mnist(directory, dataset='fashion-mnist') does this) into a "
            "directory and pass it: load_fashion_mnist(directory)")
    return _load_directory(directory, verify, func, "Fashion-MNIST")


def _load_directory(directory: str, verify: bool, func: str, dataset: str | None):
    """load_mnist's work; ``dataset`` names the only published contents accepted, if given."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{func}: directory {directory!r} does not exist")
    test = _load_pair(directory, MNIST_FILES["test"], verify, func, dataset)
    train_paths = [_find(directory, stem)[0] for stem in MNIST_FILES["train"]]
    train = None
    if any(train_paths):
        train = _load_pair(directory, MNIST_FILES["train"], verify, func, dataset)
        if train[0].shape[1:] != test[0].shape[1:]:
            raise ValueError(f"{func}: training images are {train[0].shape[1:]} but test images "
                             f"are {test[0].shape[1:]} in {directory!r}")
    return train, test


def _find(directory: str, stem: str) -> tuple[str | None, tuple[str, str]]:
    """``(path or None, names tried)`` for a canonical file, raw preferred over .gz."""
    names = (stem, stem + ".gz")
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path, names
    return None, names


def _load_pair(directory: str, stems: tuple[str, str], verify: bool, func: str,
               dataset: str | None) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for stem in stems:
        path, names = _find(directory, stem)
        if path is None:
            raise FileNotFoundError(f"{func}: no {' or '.join(names)} in {directory!r}")
        if verify:
            array, digest, size = read_idx_with_digest(path)
            _mnist_files.check_standard(path, stem, size, digest, dataset)
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


def download_mnist(directory: str | os.PathLike, *, dataset: str = "mnist",
                   mirrors: Sequence[str] | None = None, timeout: float = 60) -> str:
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

