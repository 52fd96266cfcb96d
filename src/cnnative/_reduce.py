"""The one order in which every sum over a training batch is taken, and the shard of a batch
this process holds when training is data-parallel.

A batch is cut into blocks of :data:`BLOCK` consecutive samples (the last may be shorter).  The
kernels compute a partial sum per block (a convolution's weight gradient, a dense layer's, the
batch-norm statistics) and add the blocks' partials by :func:`tree_sum`'s fixed binary tree.
A process that holds any node of that tree (a contiguous run of blocks that the tree splits off)
computes that node's value by itself, bit for bit as a whole-batch run would; the processes of
a data-parallel run then add their nodes up the top of the same tree (see
:mod:`cnnative.distributed`), so R processes end with the bits one process gets.

While a shard is active (:func:`shard`, set by the data-parallel training loop around a batch's
forward and backward passes), layers whose forward pass reduces over the batch (batch norm) or
draws per-sample random numbers (dropout) consult :func:`active_shard`.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np

__all__ = ["BLOCK", "tree_split", "tree_sum", "blocks", "Shard", "shard", "active_shard"]

#: Samples per leaf of the reduction tree.  Convolution chunks (at most 8 samples, a power of
#: two) nest inside blocks, so a shard boundary never cuts a chunk.
BLOCK = 8

_T = TypeVar("_T")


def tree_split(lo: int, hi: int) -> int:
    """Where the tree splits the leaves [lo, hi) (hi - lo >= 2): the left part has the extra
    leaf of an odd count."""
    return lo + (hi - lo + 1) // 2


def tree_sum(parts: Sequence[_T], add: Callable[[_T, _T], _T] | None = None) -> _T:
    """``parts`` added by the fixed tree: ``tree(lo, hi) = tree(lo, mid) + tree(mid, hi)`` with
    ``mid = tree_split(lo, hi)``; a leaf is its part.  ``add(left, right)`` defaults to ``+``
    into a new array (the parts are not modified)."""
    if not parts:
        raise ValueError("tree_sum needs at least one part")
    plus = add if add is not None else _add

    def tree(lo: int, hi: int) -> _T:
        if hi - lo == 1:
            return parts[lo]
        mid = tree_split(lo, hi)
        return plus(tree(lo, mid), tree(mid, hi))

    return tree(0, len(parts))


def _add(left, right):
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN quietly, as in a kernel
        return left + right


def blocks(n: int) -> list[tuple[int, int]]:
    """The blocks of a batch of ``n`` samples, as (start, stop) pairs."""
    return [(start, min(start + BLOCK, n)) for start in range(0, n, BLOCK)]


@dataclass(frozen=True)
class Shard:
    """This process's part of a global batch during data-parallel training.

    ``start``/``stop``: the global sample range held here (a node of the reduction tree);
    ``total``: samples in the global batch; ``combine(node_value)``: the global tree total of
    a per-channel (or any) array whose value here is this node's, the same bits on every
    process (a collective call: every process of the run makes it, in the same order).
    """

    start: int
    stop: int
    total: int
    combine: Callable[[np.ndarray], np.ndarray]


# Per thread: the training loop's thread sets it, and the layers it runs read it there.
_local = threading.local()


@contextlib.contextmanager
def shard(part: Shard) -> Iterator[Shard]:
    """Make ``part`` this thread's active shard for the duration of the block."""
    previous = active_shard()
    _local.shard = part
    try:
        yield part
    finally:
        _local.shard = previous


def active_shard() -> Shard | None:
    """The shard of the batch being trained, or None outside data-parallel training."""
    return getattr(_local, "shard", None)
