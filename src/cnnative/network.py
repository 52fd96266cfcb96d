"""A sequential network of layers with a loss, trained by minibatch gradient descent.

Inputs: x is (N, C, H, W), (N, H, W) (a channel axis of 1 is added) or (N, features) for
networks that start with a dense layer.  uint8 images are scaled to [0, 1] (divided by 255);
float input is used as given, converted to the network's dtype.  Targets are class labels
(N,) of ints, or arrays of the output's shape (see :mod:`cnnative.nn.losses`).

A seeded ``fit`` is bit-reproducible at any thread count: the kernels' results do not depend
on threads, and the seed alone drives shuffling, augmentation and dropout masks.  The loop
itself (callbacks, checkpoints, exact resume) is :class:`cnnative.training.Trainer`.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from . import _validation
from .nn import Layer, Loss, MaxPool2D, ReLU, get_loss, named_layers, state_arrays
from .optim import Optimizer, Scheduler

if TYPE_CHECKING:
    from .training import Callback

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
            scheduler: Scheduler | None = None, callbacks: Sequence[Callback] | None = None,
            checkpoint: str | os.PathLike | None = None, checkpoint_every: int | None = None,
            resume: str | os.PathLike | None = None,
            divergence_factor: float | None = 1000.0, comm: Any = None,
            deterministic: bool = True) -> dict[str, list[float]]:
        """Train with minibatches; returns the history.

        Parameters
        ----------
        x : array, (N, C, H, W), (N, H, W) or (N, features); uint8 or float
        y : array, (N,) int labels or (N, K) targets
        epochs : int
            Train until this many epochs are done (a resumed run counts the ones before).
        batch_size : int
        optimizer : Optimizer, default ``SGD(lr=0.01, momentum=0.9)``
        validation_data : (x_val, y_val), optional
            Evaluated after each epoch.
        shuffle : bool
            Draw a new sample order every epoch.
        seed : int, optional
            Seeds shuffling, augmentation and every Dropout layer's masks: the same seed, data
            and initial weights give bit-identical weights, at any thread count.
        progress : bool
            Show a tqdm bar per epoch with the running loss and accuracy.
        augment : callable, optional
            ``augment(batch, rng) -> batch`` applied to each raw training batch (before uint8
            scaling), e.g. :class:`cnnative.datasets.augment.ShiftRotate`; ``rng`` is a Generator
            seeded from ``seed``.
        scheduler : cnnative.optim.Scheduler, optional
            Sets the optimizer's learning rate, stepped after every batch or every epoch (its
            ``interval``).
        callbacks : sequence of cnnative.training.Callback, optional
            E.g. ``EarlyStopping``, ``ModelCheckpoint``, ``CSVLogger``.
        checkpoint : str or PathLike, optional
            Write a checkpoint there (atomically) after every epoch: everything ``resume``
            needs.  With a checkpoint, Ctrl-C finishes the current batch, writes the checkpoint
            and raises :class:`cnnative.training.TrainingInterrupted`.
        checkpoint_every : int, optional
            Also write the checkpoint every this many batches within an epoch.
        resume : str or PathLike, optional
            Continue the fit saved in this checkpoint: the network, optimizer, scheduler and
            callbacks must be built as for the run that wrote it, and x, y, batch_size the same.
            The weights then end bit-identical to those of the uninterrupted run.
        divergence_factor : float or None
            Stop with :class:`cnnative.training.TrainingDiverged`, weights restored to the last
            completed epoch, when a loss is not finite or the epoch's running loss exceeds this
            many times the first batch's (see :class:`cnnative.training.DivergenceGuard`);
            None turns the guard off.
        comm : mpi4py communicator, optional
            Train data-parallel on its processes (``mpiexec -n R``; see
            :mod:`cnnative.distributed`): each global batch of ``batch_size`` is shared among
            the ranks, rank 0's initial weights are broadcast, and the weights end
            bit-identical to one process's.  Every rank passes the same data and arguments;
            only rank 0 shows progress and writes checkpoints and callback files.
        deterministic : bool
            With ``comm``: add the ranks' gradients in the single-process order (True), or
            with ``MPI_Allreduce`` (False: no longer the same bits as one process).

        Returns
        -------
        history : dict of lists
            One entry per epoch: ``loss``, ``accuracy`` (running means over the epoch's
            batches), ``lr`` (the learning rate at the epoch's start), ``seconds`` (training
            time of the epoch), and ``val_loss``, ``val_accuracy`` with validation_data.
        """
        from .training.loop import Trainer  # the loop imports what fit needs only when training

        trainer = Trainer(self, x, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                          scheduler=scheduler, validation_data=validation_data, shuffle=shuffle,
                          seed=seed, progress=progress, augment=augment, callbacks=callbacks,
                          checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                          divergence_factor=divergence_factor, comm=comm,
                          deterministic=deterministic)
        return trainer.run(resume)

    def _outputs(self, x: ArrayLike, batch_size: int, func: str) -> np.ndarray:
        """Network outputs for all of x, in inference mode, batch by batch."""
        batch_size = _validation.positive_int(batch_size, "batch_size", func)
        x = np.asarray(x)
        self.prepare(x[:1], func)
        return np.concatenate(self._batch_outputs(x, range(0, x.shape[0], batch_size),
                                                  batch_size, func))

    def _batch_outputs(self, x: np.ndarray, starts: Iterable[int], batch_size: int,
                       func: str) -> list[np.ndarray]:
        """Inference outputs of the batches x[first:first + batch_size] for first in starts."""
        return [self.forward(self.prepare(x[first:first + batch_size], func), training=False)
                for first in starts]

    def evaluate(self, x: ArrayLike, y: ArrayLike, batch_size: int = 256) -> tuple[float, float]:
        """(mean loss, accuracy) over x, y in inference mode (dropout off)."""
        func = "Network.evaluate"
        y = self._check_targets(x, y, func)
        return self._score(self._outputs(x, batch_size, func), y)

    def _score(self, output: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean loss, accuracy) of the outputs of all of a data set, checked targets y."""
        return self.loss.forward(output, y), self.loss.correct(output, y) / len(y)

    def predict_proba(self, x: ArrayLike, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, K): softmax (or sigmoid) of the outputs."""
        return self.loss.probabilities(self._outputs(x, batch_size, "Network.predict_proba"))

    def predict(self, x: ArrayLike, batch_size: int = 256) -> np.ndarray:
        """Predicted class labels (N,) as int64."""
        return self._outputs(x, batch_size, "Network.predict").argmax(axis=1)

    # -- PyTorch state dicts --------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed as ``torch.nn.Sequential.state_dict()``
        keys those of the same network built in torch.

        A key is "<layer name>.<array name>".  Layers are named as :meth:`named_layers` names
        them: by position in the network ("0", "1", ...) and in a :class:`~cnnative.nn.Sequential`
        ("2.0", "2.1", ...); a :class:`~cnnative.nn.Residual`'s body layers are "body.<i>" and
        its shortcut "shortcut" ("3.body.1", "3.shortcut.0").  Arrays take torch's names:
        Conv2D's and Dense's ``w``, ``b`` are ``weight``, ``bias``; batch norm's ``gamma``,
        ``beta`` are ``weight``, ``bias`` and its buffers ``running_mean``, ``running_var`` and
        ``num_batches_tracked`` (an int64 0-d array, as torch's) keep their names.  Layers
        without arrays (activations, pooling, Flatten, Dropout) give no entries but keep their
        position, as in torch.

        A torch module has the same keys when it is an ``nn.Sequential`` of the corresponding
        modules in the same order (``nn.Conv2d``, ``nn.Linear``, ``nn.BatchNorm2d``, ...), a
        GlobalAvgPool2D taking one position (``nn.Sequential(nn.AdaptiveAvgPool2d(1),
        nn.Flatten())``), and each Residual a module that holds its body as an
        ``nn.Sequential`` attribute named ``body`` and its shortcut as an attribute named
        ``shortcut`` (``nn.Identity()`` for none), its ``forward`` returning
        ``self.body(x) + self.shortcut(x)``.  :mod:`cnnative.models`' docstrings give theirs.

        Returns
        -------
        dict of str to numpy.ndarray
            In order: layers as :meth:`named_layers` lists them, each layer's parameters then
            its buffers (torch's order).
        """
        return {key: array.copy() for key, array in state_arrays(self.layers)}

    def load_state_dict(self, state: Mapping[str, ArrayLike],
                        strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy the arrays of ``state`` (keyed as :meth:`state_dict` keys them) into the
        network's parameters and buffers.

        Each array must have the shape of the one it replaces (ValueError) and a dtype of the
        same kind (TypeError otherwise): floats load into floats of any size (float64 into a
        float32 network is rounded, as torch's ``copy_`` does), integers into integers
        (``num_batches_tracked``); an integer array for a float parameter, or the reverse, is
        refused.  Everything is checked before anything is copied: on an error the network is
        unchanged.

        Parameters
        ----------
        state : mapping of str to array_like
            NumPy arrays, or anything ``np.asarray`` converts: a torch module's
            ``state_dict()`` (CPU tensors) as it is.
        strict : bool
            True: the keys must be exactly the network's (ValueError listing the missing and
            the unexpected ones).  False: only the keys both have are loaded.

        Returns
        -------
        (missing_keys, unexpected_keys) : (list of str, list)
            The network's keys ``state`` lacks and the keys of ``state`` the network lacks
            (both empty after a strict load), as torch's ``load_state_dict`` reports them.
        """
        func = "Network.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(f"{func}: state must be a mapping of names to arrays, got "
                            f"{type(state).__name__}")
        if not isinstance(strict, (bool, np.bool_)):
            raise TypeError(f"{func}: strict must be True or False, got {strict!r}")
        own = dict(state_arrays(self.layers))
        missing = [key for key in own if key not in state]
        unexpected = [key for key in state if key not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"{func}: state does not match the network's keys: missing "
                             f"{missing}, unexpected {unexpected}")
        values = {}
        for key, target in own.items():
            if key not in state:
                continue
            try:
                value = np.asarray(state[key])
            except (TypeError, ValueError, RuntimeError) as error:  # RuntimeError: torch's
                raise TypeError(f"{func}: state[{key!r}] could not be converted to an array "
                                f"({error})") from None
            if value.shape != target.shape:
                raise ValueError(f"{func}: state[{key!r}] has shape {value.shape}, the "
                                 f"network's {key} has {target.shape}")
            if value.dtype.kind not in ("f" if target.dtype.kind == "f" else "iu"):
                raise TypeError(f"{func}: state[{key!r}] has dtype {value.dtype}, which cannot "
                                f"load into the network's {target.dtype} {key} (floats load "
                                "into floats, integers into integers)")
            values[key] = value
        for key, value in values.items():
            np.copyto(own[key], value, casting="same_kind")
        return missing, unexpected

