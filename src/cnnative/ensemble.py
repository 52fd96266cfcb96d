"""Ensembles: several trained networks voting with their class probabilities.

Averaging the probabilities of networks trained from different seeds (or on different data)
usually beats each of them: their errors are partly independent.  An :class:`Ensemble` saves
to one model file (:func:`cnnative.save`) and exports to one ONNX graph
(:func:`cnnative.io.export_onnx`).
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
from numpy.typing import ArrayLike

from .network import Network
from .nn import BatchNorm1D, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Tanh

__all__ = ["Ensemble"]

# The losses whose probabilities can be averaged: Network.predict_proba is the softmax or the
# sigmoid of the outputs.  A quadratic-cost network's outputs are not probabilities.
_FAMILIES = {"softmax_cross_entropy": "softmax", "sigmoid_cross_entropy": "sigmoid"}

# Layers that keep the number of features of their input: after the last Dense of a network
# only these leave its output size at the Dense's out_features.
_FEATURE_PRESERVING = (ReLU, LeakyReLU, Sigmoid, Tanh, Dropout, BatchNorm1D)


class Ensemble:
    """The mean of its member networks' class probabilities.

    Inputs are those of :meth:`cnnative.Network.predict_proba`: x is (N, C, H, W), (N, H, W) or
    (N, features), uint8 images (scaled by 1/255) or floats, and every member must accept it.

    Parameters
    ----------
    networks : iterable of cnnative.Network
        One or more networks with the same number of outputs, the same float dtype and the
        same kind of probabilities: all softmax (``loss="softmax_cross_entropy"``) or all
        sigmoid (``"sigmoid_cross_entropy"``) networks.  They are used, not copied.  The
        numbers of outputs are compared here where the layers tell them (a network ending in a
        Dense layer), otherwise at the first prediction.
    """

    def __init__(self, networks: Iterable[Network]) -> None:
        func = "Ensemble"
        try:
            members = tuple(networks)
        except TypeError:
            raise TypeError(f"{func}: networks must be an iterable of cnnative.Network, got "
                            f"{type(networks).__name__}") from None
        if not members:
            raise ValueError(f"{func}: networks must hold at least one cnnative.Network")
        for index, member in enumerate(members):
            if not isinstance(member, Network):
                raise TypeError(f"{func}: networks[{index}] must be a cnnative.Network, got "
                                f"{type(member).__name__}")
        losses = [str(member.loss.name) for member in members]
        if any(loss not in _FAMILIES for loss in losses):
            raise ValueError(f"{func}: members must give softmax or sigmoid probabilities "
                             "(loss 'softmax_cross_entropy' or 'sigmoid_cross_entropy'), got "
                             f"losses {losses}")
        if len({_FAMILIES[loss] for loss in losses}) > 1:
            raise ValueError(f"{func}: members must all give softmax or all sigmoid "
                             f"probabilities, got a mix: losses {losses}")
        dtypes = [str(member.dtype) for member in members]
        if len(set(dtypes)) > 1:
            raise TypeError(f"{func}: members must share one dtype, got {dtypes}")
        sizes = [_output_size(member) for member in members]
        if len({size for size in sizes if size is not None}) > 1:
            raise ValueError(f"{func}: members must have the same number of outputs, got "
                             f"{sizes}")
        self._members = members
        #: ``"softmax"`` or ``"sigmoid"``: how each member turns its outputs into probabilities.
        self.activation = _FAMILIES[losses[0]]
        self.dtype = members[0].dtype

    @property
    def members(self) -> tuple[Network, ...]:
        """The member networks, in order."""
        return self._members

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Network]:
        return iter(self._members)

    def __repr__(self) -> str:
        inner = ",\n".join(map(repr, self._members)).replace("\n", "\n    ")
        return f"Ensemble([\n    {inner}\n])"

    def predict_proba(self, x: ArrayLike, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, K): the mean over the members of their
        :meth:`~cnnative.Network.predict_proba`, in the members' dtype.

        ``batch_size`` samples go through a member at a time.
        """
        return self._probabilities(x, batch_size, "Ensemble.predict_proba")

    def predict(self, x: ArrayLike, batch_size: int = 256) -> np.ndarray:
        """Predicted class labels (N,) as int64: the argmax of :meth:`predict_proba`."""
        return self._probabilities(x, batch_size, "Ensemble.predict").argmax(axis=1)

    def evaluate(self, x: ArrayLike, y: ArrayLike, batch_size: int = 256) -> tuple[float, float]:
        """(mean loss, accuracy) over x and its integer labels y, (N,) in [0, K).

        The loss is the cross-entropy of the averaged probabilities p (N, K): for softmax
        members the mean of ``-log p[n, y[n]]``, for sigmoid members the mean over samples of
        the summed binary cross-entropies ``-sum_k(t log p + (1 - t) log(1 - p))`` with t the
        one-hot labels, as :meth:`cnnative.Network.evaluate` computes them for one network.
        Every logarithm's argument (p, or 1 - p) is clipped from below at the dtype's smallest
        normal number, so that a confident wrong answer costs a large finite loss (at most
        87.3 per term in float32, 708.4 in float64) instead of infinity.
        Accuracy is the fraction of samples whose :meth:`predict` is the label.
        """
        func = "Ensemble.evaluate"
        labels = np.asarray(y)
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise TypeError(f"{func}: y must be integer class labels of shape (N,), got "
                            f"{labels.dtype} {labels.shape}")
        if labels.shape[0] != np.shape(x)[0]:
            raise ValueError(f"{func}: y must have one label per sample of x "
                             f"({np.shape(x)[0]}), got {labels.shape[0]}")
        p = self._probabilities(x, batch_size, func)
        classes = p.shape[1]
        if labels.min() < 0 or labels.max() >= classes:
            raise ValueError(f"{func}: labels must lie in [0, {classes}), got values in "
                             f"[{labels.min()}, {labels.max()}]")
        accuracy = int(np.count_nonzero(p.argmax(axis=1) == labels)) / len(labels)
        tiny = np.finfo(p.dtype).tiny
        rows = np.arange(len(labels))
        if self.activation == "softmax":
            losses = -np.log(np.maximum(p[rows, labels], tiny))
        else:
            truth = np.zeros(p.shape, bool)
            truth[rows, labels] = True
            losses = -np.log(np.maximum(np.where(truth, p, 1 - p), tiny)).sum(axis=1)
        return float(losses.mean()), accuracy

    def _probabilities(self, x: ArrayLike, batch_size: int, func: str) -> np.ndarray:
        x = np.asarray(x)
        # Each member's predict_proba, with errors naming the ensemble's method.
        probabilities = [member.loss.probabilities(member._outputs(x, batch_size, func))
                         for member in self._members]
        shapes = {p.shape for p in probabilities}
        if len(shapes) > 1:
            raise ValueError(f"{func}: members gave outputs of different shapes "
                             f"{[p.shape for p in probabilities]}")
        return np.mean(probabilities, axis=0)


def _output_size(network: Network) -> int | None:
    """How many outputs ``network`` gives, where its layers alone tell (its last Dense's
    out_features when only feature-preserving layers follow it), else None."""
    layers = [layer for _, layer in network.named_layers() if not layer.sublayers()]
    for layer in reversed(layers):
        if isinstance(layer, Dense):
            return layer.out_features
        if not isinstance(layer, _FEATURE_PRESERVING):
            return None
    return None
