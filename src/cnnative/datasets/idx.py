"""The IDX file format of the MNIST files: reading and writing.

An IDX file is a header followed by the array's elements in C order, big-endian:

    0x00 0x00 | type code (1 byte) | ndim (1 byte) | ndim x uint32 dimension sizes | data

with type codes 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32 and 0x0E float64.
Files may be gzip-compressed; the reader recognises gzip by its magic bytes, not by the name.

A damaged file must never cost more memory than the bytes it really holds: a raw file's declared
size is compared with its size on disk before anything is allocated, and a gzip stream is read
in chunks until it ends or the declared size is reached, so a header that declares terabytes
fails as soon as the stream runs out.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import stat
import zlib

import numpy as np
from numpy.typing import ArrayLike

from .._files import atomic_write

__all__ = ["IDXFormatError", "read_idx", "write_idx"]

# (kind, itemsize) -> type code, and back.
_CODES = {("u", 1): 0x08, ("i", 1): 0x09, ("i", 2): 0x0B, ("i", 4): 0x0C,
          ("f", 4): 0x0D, ("f", 8): 0x0E}
_DTYPES = {code: np.dtype(f">{kind}{size}") for (kind, size), code in _CODES.items()}
_ACCEPTED = "uint8, int8, int16, int32, float32 or float64"

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_MAX_BYTES = np.iinfo(np.intp).max  # NumPy's limit on an array's size, zero axes aside


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file (bad magic, truncated, wrong size, corrupt gzip)."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
        The file.  gzip compression is recognised by the file's first bytes, whatever its name.

    Returns
    -------
    ndarray, shape given by the header
        uint8, int8, int16, int32, float32 or float64 per the header's type code, in native
        byte order, C-contiguous and writable.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        The file cannot be opened.
    IDXFormatError (a ValueError)
        Bad magic bytes or type code, zero dimensions, a truncated header or data, bytes after
        the data, a corrupt gzip stream, or a shape NumPy cannot hold (zero elements, but the
        other dimensions' product overflows).  The message names the file.
    """
    return _read(path, want_digest=False)[0]


def read_idx_with_digest(path: str | os.PathLike) -> tuple[np.ndarray, str, int]:
    """``(array, sha256 hex digest, byte count)`` of the decompressed IDX content of ``path``."""
    return _read(path, want_digest=True)


def _read(path, want_digest):
    name = os.fspath(path)
    with open(name, "rb") as raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                try:
                    return _parse(stream, name, None, want_digest)
                except (OSError, EOFError, zlib.error) as error:
                    raise IDXFormatError(f"{name}: corrupt gzip stream ({error})") from None
        info = os.fstat(raw.fileno())
        size = info.st_size if stat.S_ISREG(info.st_mode) else None
        return _parse(raw, name, size, want_digest)


def _parse(stream, name, file_size, want_digest):
    """Header and data from ``stream``; ``file_size`` is the raw file's size, if known."""
    head = stream.read(4)
    if len(head) < 4:
        raise IDXFormatError(f"{name}: not an IDX file: truncated header ({len(head)} of 4 bytes)")
    if head[:2] != b"\0\0":
        raise IDXFormatError(f"{name}: not an IDX file: it starts with bytes 0x{head[0]:02X} "
                             f"0x{head[1]:02X}, expected 0x00 0x00 (or gzip's 0x1F 0x8B)")
    code, ndim = head[2], head[3]
    if code not in _DTYPES:
        known = ", ".join(f"0x{c:02X} ({d.newbyteorder('=').name})" for c, d in _DTYPES.items())
        raise IDXFormatError(f"{name}: unknown IDX type code 0x{code:02X}; known codes: {known}")
    if ndim == 0:
        raise IDXFormatError(f"{name}: IDX header declares 0 dimensions")
    dims_bytes = stream.read(4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise IDXFormatError(f"{name}: truncated header: {ndim} dimensions need {4 + 4 * ndim} "
                             f"header bytes, the file has {4 + len(dims_bytes)}")
    shape = tuple(int(d) for d in np.frombuffer(dims_bytes, ">u4"))
    dtype = _DTYPES[code]
    nbytes = dtype.itemsize
    for dim in shape:
        nbytes *= dim  # Python ints: a header of absurd dimensions cannot overflow this
    header_len = 4 + 4 * ndim

    def mismatch(held, at_least=False):
        what = "truncated data" if held < nbytes else "trailing bytes after the data"
        return IDXFormatError(f"{name}: {what}: the header declares shape {shape} of "
                              f"{dtype.newbyteorder('=').name}, i.e. {nbytes} data bytes, but the "
                              f"file holds {'at least ' if at_least else ''}{held}")

    if file_size is not None:
        # Checked before allocating, so absurd dimensions fail here at no cost.
        if file_size - header_len != nbytes:
            raise mismatch(file_size - header_len)
        data = np.empty(nbytes, np.uint8)
        filled = _read_into(stream, memoryview(data))
        if filled != nbytes:  # the file shrank while being read
            raise mismatch(filled)
    else:
        data = _read_capped(stream, nbytes)
        if len(data) < nbytes:
            raise mismatch(len(data))
        # Reading past the data also makes gzip check the stream's CRC and length.
        extra = len(stream.read(_CHUNK))
        if extra:
            raise mismatch(nbytes + extra, at_least=extra == _CHUNK)
    if math.prod(d for d in shape if d) * dtype.itemsize > _MAX_BYTES:
        # Zero bytes of data, but the other dimensions overflow NumPy's size arithmetic.
        raise IDXFormatError(f"{name}: the header declares shape {shape}, beyond the largest "
                             "array NumPy can hold")
    digest = None
    if want_digest:
        hasher = hashlib.sha256(head)
        hasher.update(dims_bytes)
        hasher.update(data)
        digest = hasher.hexdigest()
    return _native_array(data, dtype, shape), digest, header_len + nbytes


def _read_into(stream, view):
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def _read_capped(stream, limit):
    """Up to ``limit`` bytes from ``stream``, in chunks, so memory follows what the stream holds."""
    buffer = bytearray()
    while len(buffer) < limit:
        piece = stream.read(min(_CHUNK, limit - len(buffer)))
        if not piece:
            break
        buffer += piece
    return buffer


def _native_array(buffer, dtype, shape):
    array = np.frombuffer(buffer, dtype)
    if not array.flags.aligned:
        array = array.copy()
    if not dtype.isnative:
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array.reshape(shape)


def write_idx(path: str | os.PathLike, array: ArrayLike) -> None:
    """Write ``array`` to ``path`` as an IDX file, gzip-compressed if the name ends with ``.gz``.

    The file is written under a temporary name in the same directory and moved into place
    (``os.replace``), so readers never see a partial file and a failed write leaves any old
    file untouched.  gzip output is reproducible: the header's timestamp is zero.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; its directory must exist.
    array : array_like, at least 1-D
        dtype uint8, int8, int16, int32, float32 or float64 (any byte order, any memory
        layout); each dimension below 2**32.

    Raises
    ------
    TypeError
        The dtype is one IDX cannot store (e.g. int64, uint16, bool, complex); cast first.
    ValueError
        The array is 0-D, has more than 255 dimensions or a dimension of 2**32 or more.
    FileNotFoundError
        The destination directory does not exist.
    """
    func = "write_idx"
    array = np.asarray(array)
    code = _CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None or array.dtype.fields is not None:
        raise TypeError(f"{func}: array has dtype {array.dtype}, which IDX cannot store; "
                        f"expected {_ACCEPTED}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"{func}: array must have 1 to 255 dimensions, got ndim={array.ndim}")
    if max(array.shape) >= 2**32:
        raise ValueError(f"{func}: IDX stores dimensions as uint32; got shape {array.shape}")
    name = os.fspath(path)
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    big_endian = _DTYPES[code]

    def write(stream):
        stream.write(header)
        if array.size == 0:
            return
        # Blocks along the first axis bound the big-endian copy's memory.
        rows = max(1, _CHUNK // max(1, array[0].nbytes))
        for start in range(0, array.shape[0], rows):
            block = np.ascontiguousarray(array[start:start + rows], dtype=big_endian)
            stream.write(block.reshape(-1).view(np.uint8))

    if name.lower().endswith(".gz"):
        def write_gzip(stream):
            with gzip.GzipFile(filename=os.path.basename(name), mode="wb", fileobj=stream,
                               mtime=0) as compressed:
                write(compressed)
        atomic_write(name, write_gzip, func)
    else:
        atomic_write(name, write, func)
