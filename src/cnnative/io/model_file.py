"""Model files: a network's (or an ensemble's) architecture as JSON plus its arrays, in one .npz.

The file (an archive of :mod:`cnnative.io._format`: data only, never pickled objects) holds
``format`` ("cnnative-model"), ``version``, ``architecture`` (JSON text: the loss name and each
layer's type and ``get_config()``, a container's config holding its layers' in turn) and one
array per parameter or buffer named ``"<layer name>.<array name>"``, the layer named as
:meth:`cnnative.Network.named_layers` names it ("0", "3.body.1", ...).  An
:class:`~cnnative.Ensemble`'s file (same format and version) holds the architecture
``{"ensemble": [each member's]}`` and member i's arrays named ``"members.<i>.<layer
name>.<array name>"``.  Everything read is checked against the architecture before use.
"""
# json is imported where a model is saved or loaded, to keep `import cnnative` quick.
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._format import FORMAT, VERSION, arrays_of, read_archive, text_of, write_model
from ..ensemble import Ensemble
from ..network import Network
from ..nn import Layer, layer_class
from ..nn.base import check_config

__all__ = ["save", "load", "FORMAT", "VERSION"]


def save(network: Network | Ensemble, path: str | os.PathLike) -> None:
    """Write ``network`` (a Network, or an Ensemble) to ``path`` (exactly that name; no suffix is
    added), atomically (see :func:`cnnative._files.atomic_write`): a crash never leaves a
    half-written model behind.

    :func:`load` gives back a model with identical parameters and predictions.
    """
    if not isinstance(network, (Network, Ensemble)):
        raise TypeError(f"save: network must be a cnnative.Network or cnnative.Ensemble, got "
                        f"{network!r}")
    write_model(path, network, "save")


def load(path: str | os.PathLike) -> Network | Ensemble:
    """The :class:`~cnnative.Network` (or :class:`~cnnative.Ensemble`) saved at ``path``.

    Raises ``ValueError`` for a file that is not a cnnative model (foreign, truncated or
    corrupt), for another format version, or when its arrays do not fit its architecture;
    ``FileNotFoundError`` when there is no file.
    """
    import json

    contents = read_archive(path, FORMAT, VERSION, "model", "load")
    where = f"load: path {os.fspath(path)!r}"
    model: Network | Ensemble
    try:
        architecture = json.loads(text_of(contents.get("architecture")) or "")
        if isinstance(architecture, dict) and "ensemble" in architecture:
            members = architecture["ensemble"]
            if not isinstance(members, list):
                raise TypeError(f"'ensemble' must be a list of member architectures, got "
                                f"{type(members).__name__}")
            model = Ensemble([_network(member, contents, f"members.{index}.")
                              for index, member in enumerate(members)])
            networks = [(f"members.{index}.", member) for index, member in enumerate(model)]
        else:
            model = _network(architecture, contents, "")
            networks = [("", model)]
    except _ParameterError as error:
        raise ValueError(f"{where}: {error}") from None
    except (ValueError, TypeError, KeyError, RecursionError) as error:  # RecursionError: deep JSON
        raise ValueError(f"{where}: model file has an invalid architecture ({error})") from None

    expected = {"format", "version", "architecture"}
    for prefix, network in networks:
        for name, layer in network.named_layers():
            for array_name, array in arrays_of(layer).items():
                key = f"{prefix}{name}.{array_name}"
                expected.add(key)
                problem = _param_problem(contents, key, array.shape, array.dtype)
                if problem:
                    raise ValueError(f"{where}: {problem}")
                array[...] = contents[key]
    unexpected = set(contents) - expected
    if unexpected:
        raise ValueError(f"{where}: model file has arrays its architecture does not use: "
                         f"{sorted(unexpected)}")
    return model


def _network(architecture: Any, contents: dict[str, np.ndarray], prefix: str) -> Network:
    """The network an architecture describes, its arrays (named "<prefix><layer name>.<array
    name>" in ``contents``) checked for shape and dtype but not yet copied in."""

    def build(spec: Any, name: str) -> Layer:
        cls = layer_class(spec["type"])
        config = check_config(spec["type"], spec["config"])
        # Checked before the layer is built: a damaged config could ask for terabytes.
        for array_name, (shape, dtype) in {**cls.param_shapes(config),
                                           **cls.buffer_shapes(config)}.items():
            problem = _param_problem(contents, f"{prefix}{name}.{array_name}", shape, dtype)
            if problem:
                raise _ParameterError(problem)
        return cls.from_config(config,
                               lambda child, child_name: build(child, f"{name}.{child_name}"))

    layers = [build(spec, str(index)) for index, spec in enumerate(architecture["layers"])]
    return Network(layers, loss=architecture["loss"])


class _ParameterError(ValueError):
    """A stored parameter does not fit the layer the architecture describes."""


def _param_problem(contents, key, shape, dtype):
    """What keeps ``contents[key]`` from being a parameter of ``shape`` and ``dtype``, or None."""
    stored = contents.get(key)
    if stored is None or stored.shape != tuple(shape) or stored.dtype != dtype:
        found = "missing" if stored is None else f"{stored.dtype} {stored.shape}"
        return f"parameter {key} should be {dtype} {tuple(shape)}, found {found}"
    return None
