"""Loss functions: the batch mean of a per-sample cost, and its gradient wrt the network output.

Each loss has ``forward(output, target) -> float``, ``backward() -> grad`` (for the last
forward, same shape and dtype as ``output``) and ``probabilities(output)`` (what
``Network.predict_proba`` reports).  ``target`` is either class labels, shape (N,) of ints in
[0, K), or an array of output's shape (N, K) (one-hot rows, soft labels, or regression targets
for the quadratic cost).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .. import _validation
from .activations import sigmoid

__all__ = ["Loss", "SoftmaxCrossEntropy", "QuadraticCost", "SigmoidCrossEntropy", "get_loss"]


class Loss:
    """Base class: ``forward`` (the batch mean of the cost), ``backward`` (its gradient with
    respect to the output of the last ``forward``), ``probabilities``."""

    name: str | None = None

    def __init__(self) -> None:
        self._grad = None

    def forward(self, output: ArrayLike, target: ArrayLike) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._grad

    def probabilities(self, output: ArrayLike) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def correct(output: np.ndarray, target: np.ndarray) -> int:
        """How many rows of ``output`` have their argmax at the label (or the target's argmax)."""
        labels = target if target.ndim == 1 else target.argmax(axis=1)
        return int(np.count_nonzero(output.argmax(axis=1) == labels))

    def __call__(self, output, target):
        return self.forward(output, target)


def _output_and_target(output, target, func):
    """Validated (N, K) output and a dense target of its shape and dtype (labels one-hot)."""
    output = _validation.array(output, "output", func, ndim=2, floating=True)
    target = np.asarray(target)
    n, classes = output.shape
    if target.ndim == 1 and target.dtype.kind in "iu":
        if target.shape[0] != n:
            raise ValueError(f"{func}: target has {target.shape[0]} labels for {n} outputs")
        if target.min() < 0 or target.max() >= classes:
            raise ValueError(f"{func}: labels must lie in [0, {classes}), got values in "
                             f"[{target.min()}, {target.max()}]")
        dense = np.zeros_like(output)
        dense[np.arange(n), target] = 1
        return output, dense
    if target.dtype.kind not in "biuf":
        raise TypeError(f"{func}: target must be integer labels or a real array, got dtype "
                        f"{target.dtype}")
    if target.shape != output.shape:
        raise ValueError(f"{func}: target must be (N,) integer labels or an array of output's "
                         f"shape {output.shape}, got shape {target.shape}")
    return output, target.astype(output.dtype, copy=False)


def _log_softmax(logits):
    """Row-wise log softmax of (N, K) logits, shifted by each row's maximum so exp never
    overflows."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused: ``mean(logsumexp(z) - sum(t * z))``.

    Computed from shifted logits, so it neither overflows nor takes log(0); its gradient is
    ``(softmax(z) - t) / N``.  ``output`` holds logits (N, K).
    """

    name = "softmax_cross_entropy"

    def forward(self, output: ArrayLike, target: ArrayLike) -> float:
        logits, target = _output_and_target(output, target, "SoftmaxCrossEntropy")
        log_probs = _log_softmax(logits)
        n = logits.shape[0]
        self._grad = (np.exp(log_probs) - target) / logits.dtype.type(n)
        return float(-(target * log_probs).sum() / n)

    def probabilities(self, output: ArrayLike) -> np.ndarray:
        return np.exp(_log_softmax(np.asarray(output)))


class QuadraticCost(Loss):
    """The primer's (and Nielsen's) quadratic cost ``mean(0.5 * sum((a - t)**2))`` on the
    network's output activations a; gradient ``(a - t) / N``."""

    name = "quadratic"

    def forward(self, output: ArrayLike, target: ArrayLike) -> float:
        output, target = _output_and_target(output, target, "QuadraticCost")
        n = output.shape[0]
        difference = output - target
        self._grad = difference / output.dtype.type(n)
        return float(0.5 * (difference * difference).sum() / n)

    def probabilities(self, output: ArrayLike) -> np.ndarray:
        return np.asarray(output)


class SigmoidCrossEntropy(Loss):
    """Sigmoid followed by binary cross-entropy on each output, fused:
    ``mean(sum(max(z, 0) - z * t + log1p(exp(-|z|))))``, stable for any logit; gradient
    ``(sigmoid(z) - t) / N``."""

    name = "sigmoid_cross_entropy"

    def forward(self, output: ArrayLike, target: ArrayLike) -> float:
        logits, target = _output_and_target(output, target, "SigmoidCrossEntropy")
        n = logits.shape[0]
        self._grad = (sigmoid(logits) - target) / logits.dtype.type(n)
        losses = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
        return float(losses.sum() / n)

    def probabilities(self, output: ArrayLike) -> np.ndarray:
        return sigmoid(output)


_LOSSES = {cls.name: cls for cls in (SoftmaxCrossEntropy, QuadraticCost, SigmoidCrossEntropy)}


def get_loss(loss: str | Loss) -> Loss:
    """A Loss instance from a name (``"softmax_cross_entropy"``, ``"quadratic"``,
    ``"sigmoid_cross_entropy"``) or an instance itself."""
    if isinstance(loss, Loss):
        return loss
    return _validation.choice(loss, _LOSSES, "loss", "get_loss")()
