"""Dense layers the plain way, in float64."""
import numpy as np

__all__ = ["dense", "dense_backward", "batch_sum"]


def dense(x, w, b=None):
    """``x @ w.T + b`` for x (N, in) or (in,), w (out, in), b (out,) or None."""
    y = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
    return y if b is None else y + np.asarray(b, np.float64)


def dense_backward(grad_y, x, w):
    """(grad_x, grad_w, grad_b) of :func:`dense`; a single sample counts as a batch of one."""
    grad_y = np.atleast_2d(np.asarray(grad_y, np.float64))
    x2 = np.atleast_2d(np.asarray(x, np.float64))
    grad_x = grad_y @ np.asarray(w, np.float64)
    return grad_x.reshape(np.shape(x)), grad_y.T @ x2, grad_y.sum(axis=0)


def batch_sum(rows):
    """The sum over axis 0 of ``rows`` (N, ...) in the order of cnnative's batch reductions.

    Rows are added one by one within blocks of 8, in the rows' dtype; the block sums are then
    added by a binary tree that halves the blocks, the left half taking the extra block of an
    odd count (``cnnative._reduce``).  This is ``dense_backward``'s grad_b bit for bit, and
    the order data-parallel training keeps across processes.
    """
    rows = np.asarray(rows)

    def tree(parts):
        if len(parts) == 1:
            return parts[0]
        middle = (len(parts) + 1) // 2
        return tree(parts[:middle]) + tree(parts[middle:])

    blocks = []
    for start in range(0, len(rows), 8):
        total = rows[start]
        for row in rows[start + 1:start + 8]:
            total = total + row
        blocks.append(total)
    return tree(blocks)
