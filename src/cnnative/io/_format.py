"""The container model files and training checkpoints share: a .npz archive that holds data only.

An archive holds a ``format`` marker, a ``version``, text members (JSON) and arrays.  Reading
takes raw bytes and refuses object arrays (which NumPy pickles), so a file can carry data only,
never code, and sizes are checked against what the file holds before anything that large is
allocated: a damaged file costs no more memory than its own size.
"""
# json, zipfile and zlib are imported where an archive is read or written: together they cost
# more than the rest of `import cnnative` after NumPy.
from __future__ import annotations

import math
import os
from typing import Any, Mapping

import numpy as np

from .._files import atomic_write
from ..nn import Layer, spec_of

__all__ = ["write_archive", "read_archive", "text_of", "write_model", "arrays_of", "FORMAT",
           "VERSION"]

# The model file's marker and version (cnnative.io.model_file reads them).
FORMAT = "cnnative-model"
VERSION = 1


def write_archive(path: str | os.PathLike, marker: str, version: int,
                  texts: Mapping[str, str], arrays: Mapping[str, np.ndarray], func: str) -> None:
    """Write an archive atomically (see :func:`cnnative._files.atomic_write`): a crash leaves
    the previous file or the complete new one."""
    members = {"format": np.array(marker), "version": np.array(version),
               **{name: np.array(text) for name, text in texts.items()}, **arrays}
    atomic_write(os.fspath(path), lambda stream: np.savez(stream, **members), func)


def read_archive(path: str | os.PathLike, marker: str, version: int, what: str,
                 func: str) -> dict[str, np.ndarray]:
    """The members of the archive at ``path``, its marker and version checked.

    Raises ``ValueError`` naming ``path`` for a file that is not a readable archive of this
    ``marker`` (``what`` names the kind in messages: "model", "checkpoint"), or of another
    version; ``FileNotFoundError`` when there is no file.
    """
    import zipfile
    import zlib

    path = os.fspath(path)
    where = f"{func}: path {path!r}"
    with open(path, "rb") as file:
        try:
            contents = _read_arrays(file)
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
                RuntimeError) as error:  # RuntimeError: zipfile's encrypted or unsupported members
            raise ValueError(f"{where}: not a readable cnnative {what} file ({error})") from None
    if text_of(contents.get("format")) != marker:
        raise ValueError(f"{where}: not a cnnative {what} file (no {marker!r} marker)")
    found = contents.get("version")
    if found is None or found.shape != () or found.dtype.kind not in "iu":
        raise ValueError(f"{where}: {what} file has no valid format version")
    if int(found) != version:
        raise ValueError(f"{where}: {what} format version {int(found)} is not supported "
                         f"(this cnnative reads version {version})")
    return contents


def write_model(path: str | os.PathLike, model: Any, func: str) -> None:
    """Write a model file of ``model``: anything shaped like a Network (``layers``, ``loss``,
    ``named_layers()``), or like an Ensemble (``members``, a sequence of those), whose file
    holds the architecture ``{"ensemble": [each member's]}`` and member i's arrays under
    "members.<i>.".  :func:`cnnative.io.save` checks its argument and calls this, and so does
    the trainer, which must not import Network."""
    import json

    if hasattr(model, "members"):
        parts = [_contents(member, f"members.{index}.")
                 for index, member in enumerate(model.members)]
        architecture: dict[str, Any] = {"ensemble": [member for member, _ in parts]}
        arrays = {key: array for _, member_arrays in parts for key, array in member_arrays.items()}
    else:
        architecture, arrays = _contents(model, "")
    write_archive(path, FORMAT, VERSION, {"architecture": json.dumps(architecture)}, arrays, func)


def _contents(network: Any, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A network's architecture and its arrays, named "<prefix><layer name>.<array name>"."""
    architecture = {"loss": network.loss.name,
                    "layers": [spec_of(layer) for layer in network.layers]}
    arrays = {f"{prefix}{name}.{key}": array for name, layer in network.named_layers()
              for key, array in arrays_of(layer).items()}
    return architecture, arrays


def arrays_of(layer: Layer) -> dict[str, np.ndarray]:
    """What a model file stores of a layer: its parameters and buffers."""
    return {**layer.params, **layer.buffers}


# The most a DEFLATE stream expands: 1032 bytes out per byte in.
_DEFLATE_RATIO = 1032


def _read_arrays(file):
    """name -> array for each member of the .npz archive open as ``file``.

    Each member's .npy header is checked against the bytes the member holds before NumPy reads
    it (NumPy allocates the declared shape first, so a damaged header could ask for terabytes),
    and the member's declared size against the file's.  Members must be stored or deflated, as
    ``np.savez`` and ``np.savez_compressed`` write them; pickled objects are refused.
    """
    import zipfile

    file_size = os.fstat(file.fileno()).st_size
    headers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    arrays = {}
    with zipfile.ZipFile(file) as archive:
        for info in archive.infolist():
            member = f"member {info.filename!r}"
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"{member} uses compression method {info.compress_type}")
            ratio = 1 if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_RATIO
            if info.compress_size > file_size or info.file_size > ratio * info.compress_size:
                raise ValueError(f"{member} declares more bytes than the file holds")
            with archive.open(info) as stream:
                version = np.lib.format.read_magic(stream)
                if version not in headers:
                    raise ValueError(f"{member} has .npy format version {version}")
                shape, fortran_order, dtype = headers[version](stream)
                if dtype.hasobject:
                    raise ValueError(f"{member} holds pickled Python objects")
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes != info.file_size - stream.tell():
                    raise ValueError(f"{member}: its header declares {dtype} {shape}, which does "
                                     f"not fit its {info.file_size} bytes")
                data = stream.read()  # to the end, where zipfile checks the CRC
            if len(data) != nbytes:
                raise ValueError(f"{member} holds {len(data)} data bytes, not {nbytes}")
            order = "F" if fortran_order else "C"
            array = (np.frombuffer(data, dtype).reshape(shape, order=order) if nbytes
                     else np.empty(shape, dtype, order=order))
            arrays[info.filename.removesuffix(".npy")] = array
    return arrays


def text_of(array: Any) -> str | None:
    """The string held by a 0-d unicode array, else None."""
    if array is None or array.shape != () or array.dtype.kind != "U":
        return None
    return str(array)
