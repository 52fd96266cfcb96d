"""Model files: a network's architecture as JSON plus its parameter arrays, in one .npz.

The file holds ``format`` ("cnnative-model"), ``version``, ``architecture`` (JSON text: the
loss name and each layer's type and ``get_config()``) and one array per parameter named
``"<layer index>.<param name>"``.  Loading uses ``allow_pickle=False``, so a file can carry
data only, never code; everything read is checked against the architecture before use.
"""
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

from .layers import layer_from_config

__all__ = ["save", "load", "FORMAT", "VERSION"]

FORMAT = "cnnative-model"
VERSION = 1


def save(network, path):
    """Write ``network`` to ``path`` (exactly that name; no suffix is added), atomically: a
    temporary file in the same directory is renamed over ``path`` once complete, so a crash
    never leaves a half-written model behind."""
    architecture = {
        "loss": network.loss.name,
        "layers": [{"type": type(layer).__name__, "config": layer.get_config()}
                   for layer in network.layers],
    }
    arrays = {f"{index}.{name}": param
              for index, layer in enumerate(network.layers)
              for name, param in layer.params.items()}
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".cnnative-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, format=np.array(FORMAT), version=np.array(VERSION),
                     architecture=np.array(json.dumps(architecture)), **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def load(path):
    """The :class:`~cnnative.Network` saved at ``path``.

    Raises ``ValueError`` for a file that is not a cnnative model (foreign, truncated or
    corrupt), for another format version, or when its arrays do not fit its architecture;
    ``FileNotFoundError`` when there is no file.
    """
    from .network import Network

    path = os.fspath(path)
    where = f"load: path {path!r}"
    # Our own handle: np.load leaves its file open when the archive turns out to be corrupt.
    with open(path, "rb") as file:
        try:
            with np.load(file, allow_pickle=False) as archive:
                contents = {name: archive[name] for name in archive.files}
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
            raise ValueError(f"{where}: not a readable cnnative model file ({error})") from None

    if _text(contents.get("format")) != FORMAT:
        raise ValueError(f"{where}: not a cnnative model file (no {FORMAT!r} marker)")
    version = contents.get("version")
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise ValueError(f"{where}: model file has no valid format version")
    if int(version) != VERSION:
        raise ValueError(f"{where}: model format version {int(version)} is not supported "
                         f"(this cnnative reads version {VERSION})")
    try:
        architecture = json.loads(_text(contents.get("architecture")) or "")
        layers = [layer_from_config(spec["type"], spec["config"])
                  for spec in architecture["layers"]]
        network = Network(layers, loss=architecture["loss"])
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{where}: model file has an invalid architecture ({error})") from None

    expected = set()
    for index, layer in enumerate(layers):
        for name, param in layer.params.items():
            key = f"{index}.{name}"
            expected.add(key)
            stored = contents.get(key)
            if stored is None or stored.shape != param.shape or stored.dtype != param.dtype:
                found = "missing" if stored is None else f"{stored.dtype} {stored.shape}"
                raise ValueError(f"{where}: parameter {key} should be {param.dtype} "
                                 f"{param.shape}, found {found}")
            param[...] = stored
    unexpected = set(contents) - expected - {"format", "version", "architecture"}
    if unexpected:
        raise ValueError(f"{where}: model file has arrays its architecture does not use: "
                         f"{sorted(unexpected)}")
    return network


def _text(array):
    """The string held by a 0-d unicode array, else None."""
    if array is None or array.shape != () or array.dtype.kind != "U":
        return None
    return str(array)
