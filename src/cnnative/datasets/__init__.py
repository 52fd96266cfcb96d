"""Data for training and evaluating: IDX files, MNIST-format directories, a built-in subset.

- ``read_idx`` / ``write_idx``: the IDX format of the MNIST files, raw or gzip-compressed.
- ``load_mnist(directory)``: MNIST or Fashion-MNIST from the four canonical file names,
  checked against the published contents (see its docstring for the rule).
- ``load_fashion_mnist(directory=None)``: Fashion-MNIST from Debian's ``dataset-fashion-mnist``
  (``FASHION_MNIST_DIR``) or a directory, refusing files of another dataset; its class names
  are ``FASHION_MNIST_CLASSES``.
- ``download_mnist(directory)``: fetch the published .gz files (never called implicitly).
- ``load_digits_5k()``: 5,000 real MNIST training images shipped inside the package, with a
  seeded, stratified train / validation (/ holdout) split.  No file or network needed.
- ``stratified_split(x, y, validation_size)``: a seeded, class-stratified validation split.
- ``augment``: random augmentation of image batches for ``Network.fit(augment=...)``:
  ``ShiftRotate``, ``RandomCrop``, ``RandomFlip``, chained by ``Compose``.

Images are uint8 arrays of shape (N, rows, columns), as stored; scale them yourself
(e.g. ``x.astype(np.float32) / 255``).  Labels are int64 of shape (N,), ready for indexing
and one-hot encoding (the files store them as uint8).

This subpackage stands alone: it uses nothing of cnnative's layers or kernels.
"""
from . import augment
from ._mnist_files import ChecksumError
from .augment import Compose, RandomCrop, RandomFlip, ShiftRotate, shift_and_rotate
from .digits import DIGITS_5K_FILES, DIGITS_5K_SHA256, load_digits_5k
from .idx import IDXFormatError, read_idx, write_idx
from .split import stratified_split
from .mnist import (FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, MNIST_FILES, download_mnist,
                    load_fashion_mnist, load_mnist)

__all__ = [
    "read_idx", "write_idx", "IDXFormatError", "ChecksumError",
    "load_mnist", "load_fashion_mnist", "FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR",
    "download_mnist", "load_digits_5k", "augment", "ShiftRotate", "shift_and_rotate",
    "RandomCrop", "RandomFlip", "Compose", "stratified_split",
]
