"""Training checkpoints: everything a run needs to continue bit-exactly, in one data-only file.

A checkpoint is an archive of :mod:`cnnative.io._format` (no pickled objects, a format marker
"cnnative-checkpoint" and a version) holding one JSON text, ``state``, and arrays.  The state
is a nested structure of JSON values and NumPy arrays (the trainer's position, history, random
states, optimiser and callback states, the network's parameters and buffers); each array is
stored as an archive member and stands in the JSON as ``{"__array__": member name}``.

Writing is atomic (temporary file, fsync, rename): a crash or SIGKILL at any moment leaves the
previous checkpoint or the complete new one.
"""
# json is imported where a checkpoint is read or written, to keep `import cnnative` quick.
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._format import read_archive, text_of, write_archive

__all__ = ["write_checkpoint", "read_checkpoint", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "cnnative-checkpoint"
CHECKPOINT_VERSION = 1

_ARRAY = "__array__"


def write_checkpoint(path: str | os.PathLike, state: dict[str, Any], func: str) -> None:
    """Write ``state`` (nested dicts and lists of JSON values and ndarrays) to ``path``."""
    import json

    arrays: dict[str, np.ndarray] = {}

    def split(value: Any, name: str) -> Any:
        if isinstance(value, np.ndarray):
            arrays[name] = value
            return {_ARRAY: name}
        if isinstance(value, dict):
            return {key: split(item, f"{name}.{key}") for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [split(item, f"{name}.{index}") for index, item in enumerate(value)]
        return value

    text = json.dumps(split(state, "state"), allow_nan=True)
    write_archive(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, {"state": text}, arrays, func)


def read_checkpoint(path: str | os.PathLike, func: str) -> dict[str, Any]:
    """The state written by :func:`write_checkpoint`.

    Raises ``ValueError`` naming ``path`` for a file that is not a complete checkpoint
    (truncated, corrupt, foreign, another version) and ``FileNotFoundError`` when there is none.
    """
    import json

    contents = read_archive(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "checkpoint", func)
    where = f"{func}: path {os.fspath(path)!r}"

    def join(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {_ARRAY}:
                member = value[_ARRAY]
                if not isinstance(member, str) or member not in contents:
                    raise ValueError(f"array {member!r} is missing")
                # Writable copies: the trainer restores them into live objects.
                return np.array(contents[member])
            return {key: join(item) for key, item in value.items()}
        if isinstance(value, list):
            return [join(item) for item in value]
        return value

    try:
        state = join(json.loads(text_of(contents.get("state")) or ""))
    except (ValueError, RecursionError) as error:  # RecursionError: deeply nested JSON
        raise ValueError(f"{where}: checkpoint has an invalid state ({error})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{where}: checkpoint has an invalid state (not a mapping)")
    return state
