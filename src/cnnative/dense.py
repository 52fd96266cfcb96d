"""Fully connected (dense) layer: forward pass and gradients, on BLAS through native kernels.

Conventions: a layer maps ``in`` features to ``out`` features with weights ``w`` of shape
(out, in), the W of the column-vector notation ``y = W x + b``, applied here to a batch of row
vectors: ``y = x @ w.T + b`` with x of shape (N, in).

dtype rule: every argument must be float32 or float64, all of one dtype, and results have that
dtype.  Mixing float32 and float64 raises ``TypeError`` naming the odd argument instead of
upcasting as NumPy would, because an upcast float32 network silently doubles its memory and
hides the mix-up.  Integer, bool, float16, long double and complex arrays raise ``TypeError``.

Any memory layout is accepted: C- and Fortran-ordered arrays (including transposed views such
as ``w.T.T``) go to BLAS in place; other strided views, misaligned or byte-swapped arrays are
copied first.  Inputs are never modified and outputs never share memory with them.  NaN and
inf propagate through the products as in NumPy's matmul, but without NumPy's floating-point
warnings (BLAS does not report them).

The products run on the OpenBLAS bundled with scipy, one BLAS thread per product: the batch's
rows are split into chunks of a fixed size, shared by :func:`cnnative.set_num_threads` threads,
as in the other layer kernels.  Besides making results independent of the thread count, this
keeps the network's BLAS calls in one mode: switching scipy's BLAS between one thread (inside
the convolution kernels) and several costs milliseconds per switch, as its pool wakes up.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _threads, _validation
from ._native import LazyModule
from ._reduce import BLOCK, blocks, tree_sum

_dense = LazyModule("dense")

__all__ = ["dense", "dense_backward"]

# Rows of x per product handed to one thread: a batch of a typical size is one product, while
# large inputs (inference over a data set) are shared by the threads.
_ROWS_PER_CHUNK = 256


def _row_chunked_matmul(a, b, bias, num_threads, row_block=0):
    """``a @ b (+ bias)``, a's rows cut into fixed chunks run on the threads, BLAS one thread
    each, one product per ``row_block`` rows within a chunk (0: per chunk); operands as
    accepted by ``_dense.matmul`` (a row slice of a Fortran-ordered a is copied)."""
    if a.shape[0] <= _ROWS_PER_CHUNK:
        # One chunk: the thread machinery would only add its overhead to a small product.
        with _threads.single_threaded_blas():
            return _dense.matmul(a, b, bias, row_block)
    parts = _threads.run_chunks(
        lambda start, stop: _dense.matmul(
            _validation.array(a[start:stop], "a", "_row_chunked_matmul", layout="blas"), b, bias,
            row_block),
        a.shape[0], _ROWS_PER_CHUNK, num_threads)
    return np.concatenate(parts)


def dense(x: ArrayLike, w: ArrayLike, b: ArrayLike | None = None, *,
          num_threads: int | None = None, block_rows: bool = False) -> np.ndarray:
    """Forward pass of a dense layer: ``x @ w.T + b``.

    Parameters
    ----------
    x : array_like, shape (N, in) or (in,)
        A batch of N samples, or a single sample.
    w : array_like, shape (out, in)
        Weights.
    b : array_like, shape (out,), or None
        Bias, added to every output row; None for no bias.  It is folded into the matrix
        product (BLAS accumulates onto it), not added in a second pass.
    num_threads : int, optional
        Defaults to :func:`cnnative.get_num_threads`; results are the same for every count.
    block_rows : bool
        Multiply in products of 8 rows (the blocks of the batch's reduction tree), so that
        each row's bits do not depend on how many rows the call has: what training uses,
        where a data-parallel process holds a slice of the batch.  False: products of up to
        256 rows (BLAS picks its kernels by size, and the last bits of a row follow).

    Returns
    -------
    y : ndarray, shape (N, out), or (out,) for a single sample
        New C-contiguous array of the arguments' dtype.

    Raises
    ------
    TypeError
        An argument that is not float32/float64, or whose dtype differs from x's; block_rows
        not a bool.
    ValueError
        Wrong ndim, an empty argument, x's in-features not matching w's, b not of shape
        (out,), or a dimension above 2**31 - 1.  Messages name the argument.
    """
    func = "dense"
    if not isinstance(block_rows, (bool, np.bool_)):
        raise TypeError(f"{func}: block_rows must be a bool, got {block_rows!r}")
    x = _validation.array(x, "x", func, ndim=(1, 2), floating=True, layout="blas")
    like_x = (x.dtype, "x")
    w = _validation.array(w, "w", func, ndim=2, like=like_x, layout="blas")
    _check_features(func, x, w)
    if b is not None:
        # 1-D, so C order is what BLAS reads in place; its length is checked against w's below.
        b = _validation.array(b, "b", func, ndim=1, like=like_x, layout="C")
        if b.shape != (w.shape[0],):
            raise ValueError(f"{func}: b must have shape ({w.shape[0]},) to match w of shape "
                             f"{w.shape}, got {b.shape}")

    single = x.ndim == 1
    rows = x[np.newaxis] if single else x
    y = _row_chunked_matmul(rows, w.T, b, num_threads, BLOCK if block_rows else 0)
    return y[0] if single else y


def dense_backward(grad_y: ArrayLike, x: ArrayLike, w: ArrayLike, *,
                   num_threads: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a dense layer ``y = x @ w.T + b`` given the gradient of the loss wrt y.

    Parameters
    ----------
    grad_y : array_like, shape (N, out), or (out,) when x is a single sample
        Gradient of the loss with respect to the layer's output.
    x : array_like, shape (N, in) or (in,)
        The layer's input in the forward pass.
    w : array_like, shape (out, in)
        Weights.
    num_threads : int, optional
        As for :func:`dense`.

    Returns
    -------
    grad_x : ndarray, shape (N, in), or (in,)
        ``grad_y @ w``, in products of 8 rows as ``dense(..., block_rows=True)``.
    grad_w : ndarray, shape (out, in)
        ``grad_y.T @ x`` (summed over the batch).
    grad_b : ndarray, shape (out,)
        ``grad_y.sum(0)``.

    The sums over the batch are taken per block of 8 samples (one product for grad_w, the
    rows in order for grad_b), then the blocks are added by a fixed binary tree, so they are
    deterministic, the same for every memory layout and thread count, and a process holding a
    node of that tree (see :mod:`cnnative.distributed`) computes its part exactly.

    Notes
    -----
    All are new arrays of the arguments' dtype; the dtype rule and errors are those of
    :func:`dense`, plus ``ValueError`` when grad_y does not have shape (N, out).
    """
    func = "dense_backward"
    x = _validation.array(x, "x", func, ndim=(1, 2), floating=True, layout="blas")
    like_x = (x.dtype, "x")
    w = _validation.array(w, "w", func, ndim=2, like=like_x, layout="blas")
    grad_y = _validation.array(grad_y, "grad_y", func, ndim=(1, 2), like=like_x, layout="blas")
    _check_features(func, x, w)
    expected = x.shape[:-1] + (w.shape[0],)
    if grad_y.shape != expected:
        raise ValueError(f"{func}: grad_y must have shape {expected} (x's samples by w's "
                         f"outputs, x {x.shape}, w {w.shape}), got {grad_y.shape}")

    single = x.ndim == 1
    if single:
        x, grad_y = x[np.newaxis], grad_y[np.newaxis]
    # One BLAS setting for both products (setting it costs microseconds, a good part of a
    # small layer's backward pass).
    with _threads.single_threaded_blas():
        grad_x = _row_chunked_matmul(grad_y, w, None, num_threads, BLOCK)
        if grad_y.flags.c_contiguous != x.flags.c_contiguous:
            grad_y, x = np.ascontiguousarray(grad_y), np.ascontiguousarray(x)
        grad_w = _dense.block_gram_sum(grad_y, x, BLOCK)
    rows = np.ascontiguousarray(grad_y)  # blocks of rows must be contiguous for column_sums
    grad_b = tree_sum([_dense.column_sums(rows[start:stop]) for start, stop in blocks(len(rows))])
    return (grad_x[0] if single else grad_x), grad_w, grad_b


def _check_features(func, x, w):
    if x.shape[-1] != w.shape[1]:
        raise ValueError(f"{func}: x has {x.shape[-1]} input features (shape {x.shape}) but w "
                         f"of shape {w.shape} expects {w.shape[1]}")
