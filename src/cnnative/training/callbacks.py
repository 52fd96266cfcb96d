"""Callbacks: code that ``Network.fit`` runs at fixed points of training.

A callback overrides any of the hooks below; each receives the :class:`~cnnative.training.
Trainer` running the fit, whose ``network``, ``optimizer``, ``history``, ``epoch`` (counted
from 0) and ``batch`` it may read, and whose ``stop(reason)`` ends training after the current
epoch.  A callback that keeps state across epochs returns it from ``state_dict`` (JSON values
and NumPy arrays) and takes it back in ``load_state_dict``, so that a resumed run behaves as if
it had never stopped.
"""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _validation
from .._files import atomic_write
from ..io._format import write_model

if TYPE_CHECKING:
    from .loop import Trainer

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "CSVLogger", "DivergenceGuard",
           "TrainingDiverged"]


def _loaded_number(value: Any, name: str, optional: bool = True) -> float | None:
    """A float (or None) read back from a checkpoint, checked: ValueError otherwise."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _loaded_count(value: Any, name: str, optional: bool = False) -> int | None:
    """An int >= 0 (or None) read back from a checkpoint, checked: ValueError otherwise."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


class TrainingDiverged(RuntimeError):
    """Training stopped because the loss became non-finite or grew far past its start."""


class Callback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first batch (of the run, or of the resumed part of it)."""

    def on_epoch_begin(self, trainer: Trainer) -> None:
        """Before an epoch's first batch."""

    def on_batch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        """After each optimiser step; ``logs``: ``loss`` (the batch's) and ``running_loss``
        (the epoch's mean so far)."""

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        """After an epoch and its validation; ``logs``: the epoch's row of the history."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last epoch, or when training stopped early."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of this callback: JSON values and arrays.  An entry whose
        name ends in "weights" holds a :meth:`Trainer.snapshot` (or None), which the trainer
        checks against the network when it resumes."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned; ValueError if it is not such a state."""

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in vars(self).items()
                             if not key.startswith("_"))
        return f"{type(self).__name__}({settings})"


class _Monitor:
    """A logged quantity to minimise (names containing "loss") or maximise (the rest)."""

    def __init__(self, monitor: Any, min_delta: Any, func: str) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"{func}: monitor must be a history column's name, e.g. "
                            f"'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.min_delta = _validation.real_scalar(min_delta, "min_delta", func)
        if not math.isfinite(self.min_delta) or self.min_delta < 0:
            raise ValueError(f"{func}: min_delta must be a finite number >= 0, got {min_delta!r}")
        self.minimise = "loss" in monitor
        self.best: float | None = None
        self._func = func

    def check_logged(self, trainer: Trainer) -> None:
        if self.monitor not in trainer.history:
            raise ValueError(f"{self._func}: monitor {self.monitor!r} is not logged by this fit; "
                             f"it logs {sorted(trainer.history)} (val_* need validation_data)")

    def improved(self, logs: dict[str, float]) -> bool:
        """Whether logs' value beats the best so far by more than min_delta (and records it)."""
        value = float(logs[self.monitor])
        if math.isnan(value):
            return False
        if self.best is not None:
            margin = self.best - value if self.minimise else value - self.best
            if margin <= self.min_delta:
                return False
        self.best = value
        return True


class EarlyStopping(Callback):
    """Stop when a logged quantity has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        A history column: ``"val_loss"`` (minimised), ``"val_accuracy"`` (maximised), ``"loss"``,
        ``"accuracy"``; names containing "loss" are minimised, others maximised.
    patience : int
        Epochs without improvement before stopping.
    min_delta : float
        An improvement must exceed this.
    restore_best : bool
        When training ends (stopped or not), put back the weights of the best epoch.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True) -> None:
        self._monitor = _Monitor(monitor, min_delta, "EarlyStopping")
        self.monitor = monitor
        self.patience = _validation.positive_int(patience, "patience", "EarlyStopping")
        self.min_delta = self._monitor.min_delta
        self.restore_best = bool(restore_best)
        self.best_epoch: int | None = None
        self._wait = 0
        self._best_weights: dict[str, np.ndarray] | None = None

    @property
    def best(self) -> float | None:
        """The best value seen so far."""
        return self._monitor.best

    def on_train_begin(self, trainer: Trainer) -> None:
        self._monitor.check_logged(trainer)

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if self._monitor.improved(logs):
            self.best_epoch, self._wait = trainer.epoch, 0
            if self.restore_best:
                self._best_weights = trainer.snapshot()
            return
        self._wait += 1
        if self._wait >= self.patience:
            trainer.stop(f"early stopping: {self.monitor} has not improved for {self._wait} "
                         f"epochs (best {self.best:.4f} after epoch {self.best_epoch + 1})")

    def on_train_end(self, trainer: Trainer) -> None:
        if self._best_weights is not None:
            trainer.restore(self._best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self._wait,
                "best_weights": self._best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._monitor.best = _loaded_number(state["best"], "best")
        self.best_epoch = _loaded_count(state["best_epoch"], "best_epoch", optional=True)
        if (self.best is None) != (self.best_epoch is None):
            raise ValueError(f"best {self.best!r} and best_epoch {self.best_epoch!r} disagree")
        self._wait = _loaded_count(state["wait"], "wait")
        self._best_weights = state["best_weights"]


class ModelCheckpoint(Callback):
    """Save the model (a :func:`cnnative.save` file) after epochs, or only after the best ones.

    Parameters
    ----------
    path : str or PathLike
        The model file, written atomically; ``{epoch}`` in it is replaced by the epoch number
        (from 1).
    monitor : str
        The history column that decides which epoch is best (see :class:`EarlyStopping`).
    save_best_only : bool
        Save only after an epoch that improved ``monitor``; otherwise after every epoch.
    """

    def __init__(self, path: str | os.PathLike, monitor: str = "val_accuracy",
                 save_best_only: bool = True) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"ModelCheckpoint: path must be a str or path, got {path!r}")
        self.path = os.fspath(path)
        self._monitor = _Monitor(monitor, 0.0, "ModelCheckpoint")
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)

    def on_train_begin(self, trainer: Trainer) -> None:
        self._monitor.check_logged(trainer)

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if (self._monitor.improved(logs) or not self.save_best_only) and trainer.is_root:
            write_model(self.path.replace("{epoch}", str(trainer.epoch + 1)), trainer.network,
                        "ModelCheckpoint")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self._monitor.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._monitor.best = _loaded_number(state["best"], "best")


class CSVLogger(Callback):
    """Write the history to a CSV file after every epoch: a header, then one row per epoch.

    The whole file is rewritten atomically from the history each time, so it always matches
    the run, resumed runs included.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"CSVLogger: path must be a str or path, got {path!r}")
        self.path = os.fspath(path)

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if not trainer.is_root:  # data-parallel: rank 0 writes
            return
        columns = list(trainer.history)
        rows = [",".join(["epoch", *columns])]
        for epoch in range(len(trainer.history[columns[0]])):
            rows.append(",".join([str(epoch + 1),
                                  *(repr(float(trainer.history[name][epoch])) for name in columns)]))
        text = "\n".join(rows) + "\n"
        atomic_write(self.path, lambda stream: stream.write(text.encode()), "CSVLogger")


class DivergenceGuard(Callback):
    """Stop training at once when it diverges, and put back the last good epoch's weights.

    Diverged means: a batch's loss is not finite, or the epoch's running loss exceeds
    ``factor`` times the loss of the run's first batch.  :meth:`cnnative.Network.fit` adds one
    (``divergence_factor=1000``) unless told not to.

    Raises
    ------
    TrainingDiverged
        Naming the epoch and batch, after restoring the weights of the last completed epoch
        (the initial weights during the first).
    """

    def __init__(self, factor: float = 1000.0) -> None:
        factor = _validation.real_scalar(factor, "factor", "DivergenceGuard")
        if not factor > 1:
            raise ValueError(f"DivergenceGuard: factor must be a number > 1, got {factor!r}")
        self.factor = float(factor)
        self.first_loss: float | None = None
        self._good: dict[str, np.ndarray] | None = None
        self._good_epoch = 0

    def on_train_begin(self, trainer: Trainer) -> None:
        if self._good is None:
            self._good, self._good_epoch = trainer.snapshot(), trainer.epoch

    def on_batch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        loss, running = logs["loss"], logs["running_loss"]
        if self.first_loss is None and math.isfinite(loss):
            self.first_loss = loss
        if math.isfinite(loss) and running <= self.factor * (self.first_loss or math.inf):
            return
        problem = (f"the loss is {loss}" if not math.isfinite(loss) else
                   f"the running loss is {running}" if not math.isfinite(running) else
                   f"the running loss {running:.6g} is more than {self.factor:g} times the first "
                   f"batch's {self.first_loss:.6g}")
        assert self._good is not None
        trainer.restore(self._good)
        raise TrainingDiverged(
            f"training diverged in epoch {trainer.epoch + 1}, batch {trainer.batch + 1}: "
            f"{problem}; try a lower learning rate (it is {trainer.optimizer.lr:g}). The weights "
            + ("are back to their initial values" if self._good_epoch == 0 else
               f"are back to the end of epoch {self._good_epoch}") + ".")

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self._good, self._good_epoch = trainer.snapshot(), trainer.epoch + 1

    def state_dict(self) -> dict[str, Any]:
        return {"first_loss": self.first_loss, "good_weights": self._good,
                "good_epoch": self._good_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.first_loss = _loaded_number(state["first_loss"], "first_loss")
        if self.first_loss is not None and not math.isfinite(self.first_loss):
            raise ValueError(f"first_loss must be finite, got {self.first_loss!r}")
        self._good, self._good_epoch = state["good_weights"], _loaded_count(state["good_epoch"],
                                                                           "good_epoch")
