"""Model files: a network's architecture as JSON plus its parameter arrays, in one .npz.

The file holds ``format`` ("cnnative-model"), ``version``, ``architecture`` (JSON text: the
loss name and each layer's type and ``get_config()``, a container's config holding its
layers' in turn) and one array per parameter or buffer named ``"<layer name>.<array name>"``,
the layer named as :meth:`cnnative.Network.named_layers` names it ("0", "3.body.1", ...).  Loading reads the arrays' raw bytes and refuses object
arrays (which NumPy pickles), so a file can carry data only, never code.  Everything read is
checked against the architecture before use, and sizes against what the file holds before
anything that large is allocated: a damaged file costs no more memory than its own size.
"""
# json, zipfile and zlib are imported where a model is saved or loaded: together they cost
# more than the rest of `import cnnative` after NumPy.
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .._files import atomic_write
from ..network import Network
from ..nn import Layer, layer_class, spec_of
from ..nn.base import check_config

__all__ = ["save", "load", "FORMAT", "VERSION"]

FORMAT = "cnnative-model"
VERSION = 1


def save(network: Network, path: str | os.PathLike) -> None:
    """Write ``network`` to ``path`` (exactly that name; no suffix is added), atomically (see
    :func:`cnnative._files.atomic_write`): a crash never leaves a half-written model behind.

    :func:`load` gives back a network with identical parameters and predictions.
    """
    import json

    if not isinstance(network, Network):
        raise TypeError(f"save: network must be a cnnative.Network, got {network!r}")
    architecture = {"loss": network.loss.name,
                    "layers": [spec_of(layer) for layer in network.layers]}
    arrays = {f"{prefix}.{name}": array for prefix, layer in network.named_layers()
              for name, array in _arrays_of(layer).items()}
    atomic_write(os.fspath(path),
                 lambda stream: np.savez(stream, format=np.array(FORMAT),
                                         version=np.array(VERSION),
                                         architecture=np.array(json.dumps(architecture)),
                                         **arrays),  # type: ignore[arg-type]  # no allow_pickle key
                 "save")


def load(path: str | os.PathLike) -> Network:
    """The :class:`~cnnative.Network` saved at ``path``.

    Raises ``ValueError`` for a file that is not a cnnative model (foreign, truncated or
    corrupt), for another format version, or when its arrays do not fit its architecture;
    ``FileNotFoundError`` when there is no file.
    """
    import json
    import zipfile
    import zlib

    path = os.fspath(path)
    where = f"load: path {path!r}"
    with open(path, "rb") as file:
        try:
            contents = _read_arrays(file)
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
                RuntimeError) as error:  # RuntimeError: zipfile's encrypted or unsupported members
            raise ValueError(f"{where}: not a readable cnnative model file ({error})") from None

    if _text(contents.get("format")) != FORMAT:
        raise ValueError(f"{where}: not a cnnative model file (no {FORMAT!r} marker)")
    version = contents.get("version")
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise ValueError(f"{where}: model file has no valid format version")
    if int(version) != VERSION:
        raise ValueError(f"{where}: model format version {int(version)} is not supported "
                         f"(this cnnative reads version {VERSION})")

    def build(spec: Any, prefix: str) -> Layer:
        cls = layer_class(spec["type"])
        config = check_config(spec["type"], spec["config"])
        # Checked before the layer is built: a damaged config could ask for terabytes.
        for name, (shape, dtype) in {**cls.param_shapes(config),
                                     **cls.buffer_shapes(config)}.items():
            problem = _param_problem(contents, f"{prefix}.{name}", shape, dtype)
            if problem:
                raise _ParameterError(problem)
        return cls.from_config(config, lambda child, name: build(child, f"{prefix}.{name}"))

    try:
        architecture = json.loads(_text(contents.get("architecture")) or "")
        layers = [build(spec, str(index)) for index, spec in enumerate(architecture["layers"])]
        network = Network(layers, loss=architecture["loss"])
    except _ParameterError as error:
        raise ValueError(f"{where}: {error}") from None
    except (ValueError, TypeError, KeyError, RecursionError) as error:  # RecursionError: deep JSON
        raise ValueError(f"{where}: model file has an invalid architecture ({error})") from None

    expected = set()
    for prefix, layer in network.named_layers():
        for name, array in _arrays_of(layer).items():
            key = f"{prefix}.{name}"
            expected.add(key)
            problem = _param_problem(contents, key, array.shape, array.dtype)
            if problem:
                raise ValueError(f"{where}: {problem}")
            array[...] = contents[key]
    unexpected = set(contents) - expected - {"format", "version", "architecture"}
    if unexpected:
        raise ValueError(f"{where}: model file has arrays its architecture does not use: "
                         f"{sorted(unexpected)}")
    return network


def _arrays_of(layer: Layer) -> dict[str, np.ndarray]:
    """What a model file stores of a layer: its parameters and buffers."""
    return {**layer.params, **layer.buffers}


class _ParameterError(ValueError):
    """A stored parameter does not fit the layer the architecture describes."""


def _param_problem(contents, key, shape, dtype):
    """What keeps ``contents[key]`` from being a parameter of ``shape`` and ``dtype``, or None."""
    stored = contents.get(key)
    if stored is None or stored.shape != tuple(shape) or stored.dtype != dtype:
        found = "missing" if stored is None else f"{stored.dtype} {stored.shape}"
        return f"parameter {key} should be {dtype} {tuple(shape)}, found {found}"
    return None


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


def _text(array):
    """The string held by a 0-d unicode array, else None."""
    if array is None or array.shape != () or array.dtype.kind != "U":
        return None
    return str(array)
