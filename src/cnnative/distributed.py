"""Data-parallel training over MPI (mpi4py), bit-identical to one process.

``Network.fit(..., comm=MPI.COMM_WORLD)`` under ``mpiexec -n R`` trains on R processes: rank
0's initial weights are broadcast, every global batch is shared among the ranks, and every rank
takes the same optimiser step.  The weights after training are bit-identical to a run in one
process with the same seed and batch size, for any R.

Why that holds: every sum over a batch in cnnative's kernels (convolution and dense weight
gradients, dense bias gradients, batch-norm statistics and backward sums) is taken per block of
8 samples and the blocks are added by one fixed binary tree (``cnnative._reduce``).  Each rank
holds a node of that tree, a run of whole blocks, and computes the node's value exactly as one
process would; the ranks then add their nodes up the rest of the tree, in the tree's order:
when the R nodes are the tree's nodes at depth log2(R) (R a power of two, 8 * R samples
dividing the batch), by log2(R) pairwise exchanges in which both partners add left + right;
otherwise by point-to-point messages up the tree and a broadcast of the root.  Per-sample work (forward passes,
input gradients, pooling, activations) does not depend on which rank does it, every rank draws
the whole batch's random numbers (shuffling, augmentation, dropout masks) and keeps its own
rows, and the loss is computed from all ranks' outputs, gathered.  ``deterministic=False``
replaces the ordered additions by ``MPI_Allreduce`` (faster on many hosts, no longer the same
bits as one process).

Install with ``pip install 'cnnative[mpi]'`` (mpi4py and Open MPI's wheels), then for example
``mpiexec -n 2 cnnative train``.
"""
from __future__ import annotations

import os
import time
import zlib
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from . import _reduce, _validation
from ._reduce import BLOCK, tree_split

if TYPE_CHECKING:
    from .network import Network

__all__ = ["require_mpi", "launched_ranks", "world", "is_root", "broadcast_parameters",
           "partition", "DataParallel"]

_EXTRA = "pip install 'cnnative[mpi]'"


def require_mpi(func: str = "cnnative.distributed") -> Any:
    """mpi4py's ``MPI`` module, or ImportError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"{func}: data-parallel training needs mpi4py and an MPI library: "
                          f"{_EXTRA} (mpi4py and Open MPI), or mpi4py built against your "
                          f"system's MPI ({error})") from None
    return MPI


def launched_ranks() -> int:
    """How many processes ``mpiexec`` (Open MPI, MPICH, Intel MPI, Slurm) started, from the
    environment, without importing MPI; 1 outside ``mpiexec``."""
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 1


def world() -> Any:
    """``MPI.COMM_WORLD`` (ImportError naming ``cnnative[mpi]`` without mpi4py)."""
    return require_mpi("cnnative.distributed.world").COMM_WORLD


def is_root(comm: Any = None) -> bool:
    """True on rank 0 of ``comm`` (and without a communicator): the process that prints,
    writes checkpoints, models and logs."""
    return comm is None or comm.Get_rank() == 0


def broadcast_parameters(network: Network, comm: Any, root: int = 0) -> None:
    """Copy ``root``'s parameters and buffers (batch-norm statistics) into every rank's
    ``network``, in place.  The networks must have the same architecture and dtype."""
    from .io._format import arrays_of
    for _, layer in network.named_layers():
        for array in arrays_of(layer).values():
            comm.Bcast(array, root=root)


def partition(n: int, ranks: int) -> list[tuple[int, int]]:
    """Each rank's (start, stop) share of a batch of ``n`` samples: nodes of the batch's
    reduction tree over blocks of 8, the largest split first, rank order = sample order.

    With R a power of two and 8 * R dividing n the shares are equal.  When the batch has
    fewer blocks than ranks, the last ranks get empty shares (start == stop == n).
    """
    n = _validation.positive_int(n, "n", "partition")
    ranks = _validation.positive_int(ranks, "ranks", "partition")
    nodes = [(0, -(-n // BLOCK))]
    while len(nodes) < ranks:
        widest = max(range(len(nodes)), key=lambda i: (nodes[i][1] - nodes[i][0], -i))
        lo, hi = nodes[widest]
        if hi - lo < 2:
            break
        mid = tree_split(lo, hi)
        nodes[widest:widest + 1] = [(lo, mid), (mid, hi)]
    shares = [(lo * BLOCK, min(hi * BLOCK, n)) for lo, hi in nodes]
    return shares + [(n, n)] * (ranks - len(shares))


class DataParallel:
    """The communication of one data-parallel ``fit``: shares, ordered sums, gathers.

    Used by :class:`cnnative.training.Trainer`; a training script of its own can use it too
    (``shard(n)`` around a batch's forward and backward passes, then ``reduce_gradients``).
    ``seconds`` counts the time spent in this rank's gradient reductions (waiting for the
    others included), ``bytes`` the bytes it hands to MPI for all sums over the batch (gradients
    and batch-norm statistics; what ``benchmarks/bench_distributed.py`` reports).
    """

    def __init__(self, comm: Any, *, deterministic: bool = True) -> None:
        self.MPI = require_mpi("Network.fit(comm=...)")
        if not isinstance(comm, self.MPI.Comm):
            raise TypeError(f"Network.fit: comm must be an mpi4py communicator (for example "
                            f"MPI.COMM_WORLD), got {comm!r}")
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.deterministic = bool(deterministic)
        self.seconds = 0.0
        self.bytes = 0
        self._subcomms: dict[int, Any] = {}
        self._shares: dict[int, list[tuple[int, int]]] = {}

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # -- shares and the ordered sum ------------------------------------------------------

    def shares(self, n: int) -> list[tuple[int, int]]:
        """:func:`partition` of a batch of ``n`` among the ranks (a step asks four times; an
        epoch has at most two batch sizes)."""
        if n not in self._shares:
            self._shares[n] = partition(n, self.size)
        return self._shares[n]

    def _active_comm(self, active: int) -> Any:
        """The communicator of the first ``active`` ranks (all of them: ``comm``).  Every rank
        must call it at the same point (splitting is collective)."""
        if active == self.size:
            return self.comm
        if active not in self._subcomms:
            color = 0 if self.rank < active else self.MPI.UNDEFINED
            self._subcomms[active] = self.comm.Split(color, self.rank)
        return self._subcomms[active]

    def shard(self, n: int) -> _reduce.Shard:
        """This rank's shard of a batch of ``n`` samples, for :func:`cnnative._reduce.shard`.

        A rank without a share (a batch of fewer blocks than ranks) gets a stand-in shard of
        one sample, whose sums are not combined: running its forward pass draws the batch's
        random numbers (dropout masks) as the other ranks do; its results are not used, and
        :meth:`reduce_gradients` gives it rank 0's gradients and buffers.
        """
        shares = self.shares(n)
        active = sum(stop > start for start, stop in shares)
        comm = self._active_comm(active)
        start, stop = shares[self.rank]
        if start == stop:
            return _reduce.Shard(0, 1, n, lambda value: value)

        def combine(value: np.ndarray) -> np.ndarray:
            return self._combine(comm, value, shares[:active], n)

        return _reduce.Shard(start, stop, n, combine)

    def holds_share(self, n: int) -> bool:
        """Whether this rank has samples of a batch of ``n``."""
        start, stop = self.shares(n)[self.rank]
        return stop > start

    def _combine(self, comm: Any, value: np.ndarray, shares: Sequence[tuple[int, int]],
                 n: int) -> np.ndarray:
        """The tree total over the batch of per-node values (one per active rank), on every
        active rank."""
        value = np.ascontiguousarray(value)
        if len(shares) == 1:
            return value
        if not self.deterministic:
            total = np.empty_like(value)
            comm.Allreduce(value, total, op=self.MPI.SUM)
            self.bytes += value.nbytes
            return total
        nodes = [(start // BLOCK, -(-stop // BLOCK)) for start, stop in shares]
        depths = _depths(nodes, -(-n // BLOCK))
        if len(set(depths)) == 1 and len(nodes) == 1 << depths[0]:
            self.bytes += depths[0] * value.nbytes
            return _butterfly(comm, value, depths[0])
        self.bytes += value.nbytes  # one send up the tree, or rank 0's broadcast
        return _up_the_tree(comm, value, nodes, -(-n // BLOCK))

    # -- what the training loop calls ----------------------------------------------------

    def reduce_gradients(self, network: Network, n: int) -> None:
        """After a batch of ``n`` samples: replace this rank's gradients (its shard's sums) by
        the whole batch's, in place, the same on every rank.  Gradients a layer computed for
        the whole batch already (its ``whole_batch_grads``) are left as they are."""
        start_time = time.perf_counter()
        shares = self.shares(n)
        active = sum(stop > start for start, stop in shares)
        params = [(layer, name) for _, layer in network.named_layers() for name in layer.params]
        parts = [(layer, name) for layer, name in params
                 if name not in layer.whole_batch_grads]
        if active > 1 and parts and self.rank < active:
            flat = np.concatenate([np.ravel(layer.grads[name]) for layer, name in parts])
            _unflatten(self._combine(self._active_comm(active), flat, shares[:active], n),
                       parts)
        if active < self.size:
            # Ranks without a share of this (small) batch take rank 0's gradients, all of them,
            # and its buffers (their batch norm's running statistics saw no data).
            for _, layer in network.named_layers():
                for buffer in layer.buffers.values():
                    self.comm.Bcast(buffer, root=0)
            if self.rank == 0:
                flat = np.concatenate([np.ravel(layer.grads[name]) for layer, name in params])
            else:
                flat = np.empty(sum(layer.params[name].size for layer, name in params),
                                network.dtype)
            self.comm.Bcast(flat, root=0)
            _unflatten(flat, params)
        self.seconds += time.perf_counter() - start_time

    def gather_rows(self, local: np.ndarray, n: int) -> np.ndarray:
        """Every rank's rows of a batch (its shard's outputs), concatenated in rank order."""
        counts = [(stop - start) * int(np.prod(local.shape[1:], dtype=np.int64))
                  for start, stop in self.shares(n)]
        result = np.empty((n, *local.shape[1:]), local.dtype)
        self.comm.Allgatherv(np.ascontiguousarray(local), [result, counts])
        return result

    def agree(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any (a Ctrl-C seen by some ranks)."""
        return bool(self.comm.allreduce(bool(flag), op=self.MPI.LOR))

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (a small picklable object) on every rank."""
        return self.comm.bcast(value, root=0)

    def check_same_data(self, x: np.ndarray, y: np.ndarray, what: str, func: str) -> None:
        """ValueError on every rank unless every rank holds data of the same shape and labels
        (a CRC-32 of the labels)."""
        mine = (tuple(x.shape), tuple(y.shape), zlib.crc32(np.ascontiguousarray(y).tobytes()))
        everyone = self.comm.allgather(mine)
        if any(other != everyone[0] for other in everyone):
            lines = "; ".join(f"rank {rank}: shape {shape}, labels {labels_shape} with CRC-32 "
                              f"{crc:08x}" for rank, (shape, labels_shape, crc)
                              in enumerate(everyone))
            raise ValueError(f"{func}: the ranks loaded different {what} ({lines}); every "
                             f"rank must load the same data")

    def outputs(self, network: Network, x: np.ndarray, batch_size: int,
                func: str) -> np.ndarray:
        """``network``'s inference outputs for all of x, the ranks sharing its batches of
        ``batch_size`` (whole batches, so each output row has the bits one process computes),
        gathered on every rank."""
        starts = list(range(0, x.shape[0], batch_size))
        local = network._batch_outputs(x, starts[self.rank::self.size], batch_size, func)
        parts = self.comm.allgather(local)
        ordered = [parts[index % self.size][index // self.size] for index in range(len(starts))]
        return np.concatenate(ordered)


def _unflatten(flat: np.ndarray, grads: Sequence[tuple[Any, str]]) -> None:
    """Set each (layer, name)'s gradient to its run of ``flat``, in order."""
    offset = 0
    for layer, name in grads:
        shape = layer.params[name].shape
        size = layer.params[name].size
        layer.grads[name] = flat[offset:offset + size].reshape(shape)
        offset += size


def _depths(nodes: Sequence[tuple[int, int]], blocks: int) -> list[int]:
    """The depth in the tree over ``blocks`` blocks of each of ``nodes`` (block ranges)."""
    found: dict[tuple[int, int], int] = {}

    def walk(lo: int, hi: int, depth: int) -> None:
        if (lo, hi) in wanted:
            found[lo, hi] = depth
        elif hi - lo > 1:
            mid = tree_split(lo, hi)
            walk(lo, mid, depth + 1)
            walk(mid, hi, depth + 1)

    wanted = set(nodes)
    walk(0, blocks, 0)
    return [found[node] for node in nodes]


def _butterfly(comm: Any, value: np.ndarray, levels: int) -> np.ndarray:
    """The tree total when the 2**levels ranks' nodes are all at depth ``levels``: at level j
    each rank swaps its subtree's value with the rank whose number differs in bit j, and both
    add left + right (the lower rank's value on the left), the same operands in the same order
    on both, so every rank ends with the root's bits after ``levels`` exchanges."""
    rank = comm.Get_rank()
    received = np.empty_like(value)
    for level in range(levels):
        partner = rank ^ (1 << level)
        comm.Sendrecv(value, dest=partner, sendtag=level, recvbuf=received, source=partner,
                      recvtag=level)
        with np.errstate(invalid="ignore", over="ignore"):
            value = value + received if rank < partner else received + value
    return value


def _up_the_tree(comm: Any, value: np.ndarray, nodes: Sequence[tuple[int, int]],
                 blocks: int) -> np.ndarray:
    """The tree total for any cut: each internal node is added on the rank owning its left
    child, which receives the right child's value from its owner; then rank 0 (the root's
    owner) broadcasts it."""
    owners = {node: owner for owner, node in enumerate(nodes)}
    rank = comm.Get_rank()

    def up(lo: int, hi: int) -> tuple[int, np.ndarray | None]:
        """(owner, value here or None) of the tree node over blocks [lo, hi)."""
        if (lo, hi) in owners:
            owner = owners[lo, hi]
            return owner, (value if owner == rank else None)
        mid = tree_split(lo, hi)
        left_owner, left = up(lo, mid)
        right_owner, right = up(mid, hi)
        if rank == right_owner:
            comm.Send(right, dest=left_owner, tag=lo)
        if rank == left_owner:
            received = np.empty_like(value)
            comm.Recv(received, source=right_owner, tag=lo)
            with np.errstate(invalid="ignore", over="ignore"):
                return left_owner, left + received
        return left_owner, None

    _, total = up(0, blocks)
    if total is None:
        total = np.empty_like(value)
    comm.Bcast(total, root=0)
    return total
