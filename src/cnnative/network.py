"""A sequential network of layers with a loss, trained by minibatch gradient descent.

Inputs: x is (N, C, H, W), (N, H, W) (a channel axis of 1 is added) or (N, features) for
networks that start with a dense layer.  uint8 images are scaled to [0, 1] (divided by 255);
float input is used as given, converted to the network's dtype.  Targets are class labels
(N,) of ints, or arrays of the output's shape (see :mod:`cnnative.nn.losses`).

A seeded ``fit`` is bit-reproducible at any thread count: the kernels' results do not depend
on threads, and the seed alone drives shuffling and dropout masks.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import numpy as np
from numpy.typing import ArrayLike

from . import _validation
from .nn import Layer, Loss, MaxPool2D, ReLU, get_loss, named_layers
from .optim import SGD, Optimizer

__all__ = ["Network"]


class Network:
    """Layers applied in order, ending in logits (or activations) that ``loss`` consumes.

    Parameters
    ----------
    layers : sequence of Layer
    loss : str or Loss
        ``"softmax_cross_entropy"`` (default; the network outputs logits),
        ``"sigmoid_cross_entropy"`` or ``"quadratic"``.
    """

    def __init__(self, layers: Iterable[Layer], loss: str | Loss = "softmax_cross_entropy") -> None:
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("Network: layers must be a non-empty sequence of Layer objects")
        self.layers: list[Layer] = layers
        self.loss: Loss = get_loss(loss)
        dtypes = {param.dtype for _, layer in named_layers(layers)
                  for param in layer.params.values()}
        if len(dtypes) > 1:
            raise TypeError(f"Network: all layers must share one dtype, got {sorted(map(str, dtypes))}")
        self.dtype: np.dtype[np.floating[Any]] = dtypes.pop() if dtypes else np.dtype(np.float64)
        # Nothing consumes the gradient of the network's input.
        layers[0].input_grad = False

    def __repr__(self) -> str:
        inner = ",\n".join(map(repr, self.layers)).replace("\n", "\n    ")
        return f"Network([\n    {inner}\n], loss={self.loss.name!r})"

    def named_layers(self) -> list[tuple[str, Layer]]:
        """(dotted name, layer) of every layer, containers and their contents included, in a
        fixed order: "0", "1", "2.body.0", ... (the names model files give their arrays)."""
        return list(named_layers(self.layers))

    # -- running the layers ---------------------------------------------------------------

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(parameter, gradient) pairs in a fixed order; gradients are those of the last
        ``backward`` (None before it)."""
        return [(layer.params[name], layer.grads.get(name))
                for _, layer in named_layers(self.layers) for name in layer.params]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Output of the last layer for a prepared float batch (see :meth:`prepare`)."""
        for layer in self._order:
            x = layer.forward(x, training=training)
        return x

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        """Back-propagate the gradient of the loss wrt the output; fills every layer's grads."""
        for layer in reversed(self._order):
            grad = layer.backward(grad)  # type: ignore[assignment]  # None: first layer only
        return grad

    @property
    def _order(self) -> list[Layer]:
        """The layers in the order they run: a ReLU followed by a max pool runs after it.

        max(relu(x)) == relu(max(x)) exactly, and so are the gradients: where a window's
        maximum is positive it is the same element either way (relu keeps positive values and
        their order), and elsewhere the gradient is zero.  Pooling first leaves the ReLU a
        quarter of the elements (for 2x2 windows) to do, forward and backward.
        """
        order = list(self.layers)
        for i in range(len(order) - 1):
            if type(order[i]) is ReLU and type(order[i + 1]) is MaxPool2D:
                order[i], order[i + 1] = order[i + 1], order[i]
        return order

    def prepare(self, x: ArrayLike, func: str = "Network") -> np.ndarray:
        """x as a float array of the network's dtype: uint8 scaled by 1/255, (N, H, W) given a
        channel axis."""
        x = np.asarray(x)
        if x.ndim not in (2, 3, 4):
            raise ValueError(f"{func}: x must be (N, features), (N, H, W) or (N, C, H, W), got "
                             f"shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{func}: x must hold at least one sample, got shape {x.shape}")
        if x.dtype == np.uint8:
            x = x.astype(self.dtype) * self.dtype.type(1 / 255)
        elif x.dtype.kind == "f":
            x = x.astype(self.dtype, copy=False)
        else:
            raise TypeError(f"{func}: x must be uint8 images or floats, got dtype {x.dtype}")
        # x is an ndarray: numpy's stubs type the uint8 branch's product as Any.
        return x[:, np.newaxis] if x.ndim == 3 else x  # type: ignore[index, union-attr, return-value]

    def _check_targets(self, x: ArrayLike, y: ArrayLike, func: str) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != np.shape(x)[0]:
            raise ValueError(f"{func}: y must have one target per sample of x "
                             f"({np.shape(x)[0]}), got shape {y.shape}")
        return y

    # -- training and inference -----------------------------------------------------------

    def fit(self, x: ArrayLike, y: ArrayLike, epochs: int = 1, batch_size: int = 64,
            optimizer: Optimizer | None = None,
            validation_data: tuple[ArrayLike, ArrayLike] | None = None, shuffle: bool = True,
            seed: int | None = None, progress: bool = True,
            augment: Callable[[np.ndarray, np.random.Generator], ArrayLike] | None = None,
            lr_schedule: Callable[[int], float] | None = None) -> dict[str, list[float]]:
        """Train with minibatches; returns the history.

        Parameters
        ----------
        x : array, (N, C, H, W), (N, H, W) or (N, features); uint8 or float
        y : array, (N,) int labels or (N, K) targets
        epochs, batch_size : int
        optimizer : Optimizer, default ``SGD(lr=0.01, momentum=0.9)``
        validation_data : (x_val, y_val), optional
            Evaluated after each epoch.
        shuffle : bool
            Draw a new sample order every epoch.
        seed : int, optional
            Seeds shuffling and every Dropout layer's masks: the same seed, data and initial
            weights give bit-identical weights, at any thread count.
        progress : bool
            Show a tqdm bar per epoch with the running loss and accuracy.
        augment : callable, optional
            ``augment(batch, rng) -> batch`` applied to each raw training batch (before uint8
            scaling), e.g. :class:`cnnative.datasets.augment.ShiftRotate`; ``rng`` is a Generator
            seeded from ``seed``.
        lr_schedule : callable, optional
            ``lr_schedule(epoch) -> lr`` (epoch counted from 0) sets the optimizer's learning
            rate before each epoch, e.g. :func:`cnnative.optim.cosine_schedule`.

        Returns
        -------
        history : dict of lists, one entry per epoch: ``loss``, ``accuracy`` (running means
        over the epoch's batches), ``val_loss``, ``val_accuracy`` (with validation_data) and
        ``seconds`` (training time of the epoch).
        """
        func = "Network.fit"
        epochs = _validation.positive_int(epochs, "epochs", func)
        batch_size = _validation.positive_int(batch_size, "batch_size", func)
        optimizer = SGD(lr=0.01, momentum=0.9) if optimizer is None else optimizer
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{func}: optimizer must be an Optimizer, got {optimizer!r}")
        x = np.asarray(x)
        y = self._check_targets(x, y, func)
        self.prepare(x[:1], func)  # reject bad input before the first epoch, not mid-way
        if augment is not None and not callable(augment):
            raise TypeError(f"{func}: augment must be a callable (batch, rng) -> batch, got "
                            f"{augment!r}")
        if lr_schedule is not None and not callable(lr_schedule):
            raise TypeError(f"{func}: lr_schedule must be a callable epoch -> lr, got "
                            f"{lr_schedule!r}")
        seeds = np.random.SeedSequence(seed)
        order_rng = np.random.default_rng(seeds.spawn(1)[0])
        augment_rng = np.random.default_rng(seeds.spawn(1)[0])
        for _, layer in named_layers(self.layers):
            if hasattr(layer, "rng"):
                layer.rng = np.random.default_rng(seeds.spawn(1)[0])

        from tqdm import tqdm  # imported on first use, to keep `import cnnative` quick

        history: dict[str, list[float]] = {"loss": [], "accuracy": [], "seconds": []}
        if validation_data is not None:
            history.update(val_loss=[], val_accuracy=[])
        n = x.shape[0]
        for epoch in range(epochs):
            start = time.perf_counter()
            if lr_schedule is not None:
                optimizer.lr = float(lr_schedule(epoch))
            order = order_rng.permutation(n) if shuffle else np.arange(n)
            total_loss = total_correct = seen = 0
            batches = range(0, n, batch_size)
            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                       disable=not progress, leave=True)
            for first in bar:
                index = order[first:first + batch_size]
                batch_y = y[index]
                batch_x = x[index] if augment is None else augment(x[index], augment_rng)
                output = self.forward(self.prepare(batch_x, func), training=True)
                loss = self.loss.forward(output, batch_y)
                self.backward(self.loss.backward())
                optimizer.step(self.parameters())  # type: ignore[arg-type]  # all set by backward
                total_loss += loss * len(index)
                total_correct += _correct(output, batch_y)
                seen += len(index)
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{total_correct / seen:.4f}",
                                refresh=False)
            history["seconds"].append(time.perf_counter() - start)
            history["loss"].append(total_loss / seen)
            history["accuracy"].append(total_correct / seen)
            if validation_data is not None:
                val_loss, val_accuracy = self.evaluate(*validation_data)
                history["val_loss"].append(val_loss)
                history["val_accuracy"].append(val_accuracy)
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{total_correct / seen:.4f}",
                                val_loss=f"{val_loss:.4f}", val_acc=f"{val_accuracy:.4f}")
            bar.close()
        return history

    def _outputs(self, x: ArrayLike, batch_size: int, func: str) -> np.ndarray:
        """Network outputs for all of x, in inference mode, batch by batch."""
        batch_size = _validation.positive_int(batch_size, "batch_size", func)
        x = np.asarray(x)
        self.prepare(x[:1], func)
        parts = [self.forward(self.prepare(x[first:first + batch_size], func), training=False)
                 for first in range(0, x.shape[0], batch_size)]
        return np.concatenate(parts)

    def evaluate(self, x: ArrayLike, y: ArrayLike, batch_size: int = 256) -> tuple[float, float]:
        """(mean loss, accuracy) over x, y in inference mode (dropout off)."""
        func = "Network.evaluate"
        y = self._check_targets(x, y, func)
        output = self._outputs(x, batch_size, func)
        return self.loss.forward(output, y), _correct(output, y) / len(y)

    def predict_proba(self, x: ArrayLike, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, K): softmax (or sigmoid) of the outputs."""
        return self.loss.probabilities(self._outputs(x, batch_size, "Network.predict_proba"))

    def predict(self, x: ArrayLike, batch_size: int = 256) -> np.ndarray:
        """Predicted class labels (N,) as int64."""
        return self._outputs(x, batch_size, "Network.predict").argmax(axis=1)


def _correct(output: np.ndarray, target: np.ndarray) -> int:
    """How many rows' argmax matches the label (or the target's argmax)."""
    labels = target if target.ndim == 1 else target.argmax(axis=1)
    return int(np.count_nonzero(output.argmax(axis=1) == labels))
