"""The training loop behind :meth:`cnnative.Network.fit`, with checkpoints and exact resume.

Everything that decides what the next batch does lives in the :class:`Trainer`: the position
(epoch, batch, the epoch's sample order and running totals), the random generators (shuffling,
augmentation, each dropout layer's masks), the optimiser and scheduler, the history and the
callbacks.  A checkpoint holds all of it with the network's parameters and buffers, so a run
resumed from a checkpoint takes exactly the steps the uninterrupted run took: its weights end
bit-identical, at any thread count (the kernels' results do not depend on threads).

The loop does not import :class:`~cnnative.Network` (the network imports the loop); it uses
the network's ``forward``, ``backward``, ``loss``, ``parameters``, ``prepare``, ``evaluate``,
``_score`` and ``named_layers``.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import zlib
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .. import _validation
from .._reduce import shard
from ..distributed import DataParallel, broadcast_parameters
from ..io._format import arrays_of
from ..io.checkpoint import read_checkpoint, write_checkpoint
from ..nn import spec_of
from ..optim import SGD, Optimizer, Scheduler
from .callbacks import Callback, DivergenceGuard, TrainingDiverged

__all__ = ["Trainer", "TrainingInterrupted"]

Augment = Callable[[np.ndarray, np.random.Generator], ArrayLike]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped training after a batch; ``checkpoint`` is the file that resumes
    it (``fit(..., resume=checkpoint)``)."""

    def __init__(self, message: str, checkpoint: str) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


class Trainer:
    """One call of :meth:`cnnative.Network.fit` (see there for the arguments)."""

    def __init__(self, network: Any, x: ArrayLike, y: ArrayLike, *, epochs: int,
                 batch_size: int, optimizer: Optimizer | None, scheduler: Scheduler | None,
                 validation_data: tuple[ArrayLike, ArrayLike] | None, shuffle: bool,
                 seed: int | None, progress: bool, augment: Augment | None,
                 callbacks: Sequence[Callback] | None, checkpoint: str | os.PathLike | None,
                 checkpoint_every: int | None, divergence_factor: float | None,
                 comm: Any = None, deterministic: bool = True) -> None:
        func = self.func = "Network.fit"
        self.network = network
        self.parallel = None if comm is None else DataParallel(comm, deterministic=deterministic)
        self.epochs = _validation.positive_int(epochs, "epochs", func)
        self.batch_size = _validation.positive_int(batch_size, "batch_size", func)
        self.optimizer = SGD(lr=0.01, momentum=0.9) if optimizer is None else optimizer
        if not isinstance(self.optimizer, Optimizer):
            raise TypeError(f"{func}: optimizer must be an Optimizer, got {optimizer!r}")
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            raise TypeError(f"{func}: scheduler must be a cnnative.optim scheduler, got "
                            f"{scheduler!r}")
        self.scheduler = scheduler
        self.x = np.asarray(x)
        self.y = network._check_targets(self.x, y, func)
        network.prepare(self.x[:1], func)  # reject bad input before the first epoch, not mid-way
        if validation_data is not None:
            try:
                x_val, y_val = validation_data
            except (TypeError, ValueError):
                raise TypeError(f"{func}: validation_data must be a pair (x_val, y_val), got "
                                f"{type(validation_data).__name__}") from None
            x_val = np.asarray(x_val)
            validation_data = (x_val, network._check_targets(x_val, y_val, func))
            network.prepare(x_val[:1], func)
        self.validation_data = validation_data
        if self.parallel is not None:
            self.parallel.check_same_data(self.x, self.y, "training data", func)
            if validation_data is not None:
                self.parallel.check_same_data(*validation_data, "validation data", func)
            broadcast_parameters(network, self.parallel.comm)
            # A rank whose share of a small batch is empty still takes part in the gather.
            self._output_row = network.forward(network.prepare(self.x[:1], func),
                                               training=False)[:0]
        if augment is not None and not callable(augment):
            raise TypeError(f"{func}: augment must be a callable (batch, rng) -> batch, got "
                            f"{augment!r}")
        self.augment = augment
        self.shuffle, self.progress = bool(shuffle), bool(progress) and self.is_root
        callbacks = list(callbacks or [])
        if not all(isinstance(callback, Callback) for callback in callbacks):
            raise TypeError(f"{func}: callbacks must be Callback objects, got {callbacks!r}")
        if divergence_factor is not None and not any(isinstance(callback, DivergenceGuard)
                                                     for callback in callbacks):
            # First, so that no other callback sees the results of a diverged batch.
            callbacks.insert(0, DivergenceGuard(divergence_factor))
        self.callbacks = callbacks
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.checkpoint_every = (None if checkpoint_every is None else
                                 _validation.positive_int(checkpoint_every, "checkpoint_every",
                                                          func))
        if self.checkpoint_every is not None and self.checkpoint is None:
            raise ValueError(f"{func}: checkpoint_every needs a checkpoint path")

        seeds = np.random.SeedSequence(seed)
        self.rngs = {"order": np.random.default_rng(seeds.spawn(1)[0]),
                     "augment": np.random.default_rng(seeds.spawn(1)[0])}
        for name, layer in network.named_layers():
            if hasattr(layer, "rng"):
                layer.rng = np.random.default_rng(seeds.spawn(1)[0])
        if self.scheduler is not None:
            self.scheduler.attach(self.optimizer)

        self.history: dict[str, list[float]] = {"loss": [], "accuracy": [], "lr": [],
                                                "seconds": []}
        if validation_data is not None:
            self.history.update(val_loss=[], val_accuracy=[])
        self.epoch = self.batch = 0
        self._order: np.ndarray | None = None
        self._totals = [0.0, 0, 0]  # loss sum, correct, seen: this epoch's so far
        self._epoch_seconds = 0.0
        self._stop_reason: str | None = None
        self._interrupted = False

    # -- what callbacks use ---------------------------------------------------------------

    @property
    def is_root(self) -> bool:
        """False on the ranks of a data-parallel fit other than rank 0, which alone writes
        files (checkpoints, callbacks' models and logs) and shows progress."""
        return self.parallel is None or self.parallel.is_root

    def stop(self, reason: str = "stopped by a callback") -> None:
        """End training after the current epoch."""
        self._stop_reason = reason

    @property
    def stop_reason(self) -> str | None:
        """Why training stopped before its last epoch, or None."""
        return self._stop_reason

    def snapshot(self) -> dict[str, np.ndarray]:
        """Copies of the network's parameters and buffers, by model-file name."""
        return {f"{prefix}.{name}": array.copy() for prefix, layer in self.network.named_layers()
                for name, array in arrays_of(layer).items()}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Put back the parameters and buffers of a :meth:`snapshot`."""
        for prefix, layer in self.network.named_layers():
            for name, array in arrays_of(layer).items():
                array[...] = arrays[f"{prefix}.{name}"]

    # -- the loop -------------------------------------------------------------------------

    def run(self, resume: str | os.PathLike | None = None) -> dict[str, list[float]]:
        if self.parallel is None or self.parallel.size == 1:
            return self._run(resume)
        try:
            return self._run(resume)
        except (TrainingInterrupted, TrainingDiverged):
            raise  # every rank stops here together: the same state gives the same decision
        except BaseException:
            # This rank alone failed; the others would wait for it forever in the next
            # collective call.  Abort ends every rank of the job.
            import traceback
            traceback.print_exc()
            print(f"cnnative: rank {self.parallel.rank} failed; aborting every rank",
                  file=sys.stderr, flush=True)
            self.parallel.comm.Abort(1)
            raise

    def _run(self, resume: str | os.PathLike | None) -> dict[str, list[float]]:
        if resume is not None:
            self._load(resume)
        for callback in self.callbacks:
            callback.on_train_begin(self)
        with self._sigint_finishes_the_batch():
            while self.epoch < self.epochs and self._stop_reason is None:
                self._run_epoch()
        for callback in self.callbacks:
            callback.on_train_end(self)
        return self.history

    def _run_epoch(self) -> None:
        from tqdm import tqdm  # imported on first use, to keep `import cnnative` quick

        network, n = self.network, self.x.shape[0]
        batches = math.ceil(n / self.batch_size)
        if self.batch == 0:
            self._order = self.rngs["order"].permutation(n) if self.shuffle else np.arange(n)
            self._totals, self._epoch_seconds = [0.0, 0, 0], 0.0
            self.history["lr"].append(self.optimizer.lr)
            for callback in self.callbacks:
                callback.on_epoch_begin(self)
        assert self._order is not None
        bar = tqdm(total=batches, initial=self.batch, desc=f"epoch {self.epoch + 1}/{self.epochs}",
                   unit="batch", disable=not self.progress, leave=True)
        start = time.perf_counter() - self._epoch_seconds
        while self.batch < batches:
            index = self._order[self.batch * self.batch_size:(self.batch + 1) * self.batch_size]
            batch_x, batch_y = self.x[index], self.y[index]
            if self.augment is not None:
                batch_x = self.augment(batch_x, self.rngs["augment"])
            if self.parallel is None:
                output = network.forward(network.prepare(batch_x, self.func), training=True)
                loss = float(network.loss.forward(output, batch_y))
                network.backward(network.loss.backward())
            else:
                output, loss = self._parallel_step(batch_x, batch_y)
            self.optimizer.step(network.parameters())
            if self.scheduler is not None and self.scheduler.interval == "batch":
                self.scheduler.step()
            self._totals[0] += loss * len(index)
            self._totals[1] += network.loss.correct(output, batch_y)
            self._totals[2] += len(index)
            running_loss = self._totals[0] / self._totals[2]
            for callback in self.callbacks:
                callback.on_batch_end(self, {"loss": loss, "running_loss": running_loss})
            self.batch += 1
            bar.update()
            bar.set_postfix(loss=f"{running_loss:.4f}",
                            acc=f"{self._totals[1] / self._totals[2]:.4f}", refresh=False)
            self._epoch_seconds = time.perf_counter() - start
            if self.parallel is not None and self.checkpoint is not None:
                self._interrupted = self.parallel.agree(self._interrupted)
            if self._interrupted and self.batch < batches:
                bar.close()
                self._save()
                self._raise_interrupted(f"in epoch {self.epoch + 1} after batch {self.batch}")
            if (self.checkpoint_every is not None and self.batch % self.checkpoint_every == 0
                    and self.batch < batches):
                self._save()

        if self.parallel is not None:
            self._epoch_seconds = self.parallel.broadcast(self._epoch_seconds)  # one log
        logs = {"loss": self._totals[0] / self._totals[2],
                "accuracy": self._totals[1] / self._totals[2], "lr": self.history["lr"][-1],
                "seconds": self._epoch_seconds}
        if self.validation_data is not None:
            if self.parallel is None:
                val_loss, logs["val_accuracy"] = network.evaluate(*self.validation_data)
            else:
                x_val, y_val = self.validation_data
                val_loss, logs["val_accuracy"] = network._score(
                    self.parallel.outputs(network, x_val, 256, "Network.evaluate"), y_val)
            logs["val_loss"] = float(val_loss)
            bar.set_postfix(loss=f"{logs['loss']:.4f}", acc=f"{logs['accuracy']:.4f}",
                            val_loss=f"{logs['val_loss']:.4f}",
                            val_acc=f"{logs['val_accuracy']:.4f}")
        bar.close()
        for name in ("loss", "accuracy", "seconds", "val_loss", "val_accuracy"):
            if name in self.history:
                self.history[name].append(logs[name])
        if self.scheduler is not None and self.scheduler.interval == "epoch":
            self.scheduler.step()
        for callback in self.callbacks:
            callback.on_epoch_end(self, logs)
        self.epoch, self.batch, self._order = self.epoch + 1, 0, None
        if self.checkpoint is not None:
            self._save()
        if self._interrupted:  # during the epoch's last batch: the epoch ended first
            self._raise_interrupted(f"at the end of epoch {self.epoch}")

    def _parallel_step(self, batch_x: np.ndarray, batch_y: np.ndarray) -> tuple[np.ndarray, float]:
        """This rank's share of a batch's forward and backward passes; the outputs of the whole
        batch and its loss (the same on every rank), and the whole batch's gradients."""
        parallel, network, n = self.parallel, self.network, len(batch_x)
        assert parallel is not None
        part, holds = parallel.shard(n), parallel.holds_share(n)
        with shard(part):
            local = network.forward(network.prepare(batch_x[part.start:part.stop], self.func),
                                    training=True)
            output = parallel.gather_rows(local if holds else self._output_row, n)
            loss = float(network.loss.forward(output, batch_y))
            if holds:
                network.backward(network.loss.backward()[part.start:part.stop])
        parallel.reduce_gradients(network, n)
        return output, loss

    def _raise_interrupted(self, where: str) -> None:
        raise TrainingInterrupted(f"interrupted {where}; checkpoint written to "
                                  f"{self.checkpoint}", self.checkpoint)  # type: ignore[arg-type]

    # -- SIGINT ---------------------------------------------------------------------------

    def _sigint_finishes_the_batch(self) -> Any:
        """While training with a checkpoint in the main thread, Ctrl-C asks the loop to write a
        checkpoint after the current batch and raise TrainingInterrupted; a second Ctrl-C
        interrupts at once."""
        import contextlib

        if self.checkpoint is None or threading.current_thread() is not threading.main_thread():
            return contextlib.nullcontext()

        def interrupt(signum: int, frame: Any) -> None:
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = True

        @contextlib.contextmanager
        def installed() -> Any:
            previous = signal.signal(signal.SIGINT, interrupt)
            try:
                yield
            finally:
                signal.signal(signal.SIGINT, previous)

        return installed()

    # -- checkpoints ----------------------------------------------------------------------

    def _fingerprint(self) -> dict[str, Any]:
        """What must match for a checkpoint to continue this fit (as JSON gives it back)."""
        import json

        return json.loads(json.dumps({"samples": int(self.x.shape[0]), "batch_size": self.batch_size,
                "shuffle": self.shuffle,
                "labels_crc32": zlib.crc32(np.ascontiguousarray(self.y).tobytes()),
                "architecture": [spec_of(layer) for layer in self.network.layers],
                "loss": self.network.loss.name, "optimizer": type(self.optimizer).__name__,
                "scheduler": type(self.scheduler).__name__ if self.scheduler else None}))

    def _save(self) -> None:
        if not self.is_root:  # data-parallel: rank 0 writes, for every rank (same state)
            return
        state = {
            "fit": self._fingerprint(),
            "position": {"epoch": self.epoch, "batch": self.batch, "order": self._order,
                         "totals": list(self._totals), "epoch_seconds": self._epoch_seconds,
                         "stop_reason": self._stop_reason},
            "history": self.history,
            "rngs": {name: rng.bit_generator.state for name, rng in self._generators().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "callbacks": [[type(callback).__name__, callback.state_dict()]
                          for callback in self.callbacks],
            "model": self.snapshot(),
        }
        write_checkpoint(self.checkpoint, state, self.func)  # type: ignore[arg-type]

    def _generators(self) -> dict[str, np.random.Generator]:
        layers = {f"layer {name}": layer.rng for name, layer in self.network.named_layers()
                  if hasattr(layer, "rng")}
        return {**self.rngs, **layers}

    def _load(self, path: str | os.PathLike) -> None:
        """Continue from the checkpoint at ``path`` (refusing one written by another fit)."""
        where = f"{self.func}: resume {os.fspath(path)!r}"
        state = read_checkpoint(path, self.func)
        try:
            saved, now = state["fit"], self._fingerprint()
            for key, value in now.items():
                if saved[key] != value:
                    raise ValueError(f"it was written by a fit with another {key} "
                                     f"({_short(saved[key])}, this fit: {_short(value)})")
            position = state["position"]
            epoch, batch, order = position["epoch"], position["batch"], position["order"]
            batches = math.ceil(self.x.shape[0] / self.batch_size)
            if not _is_count(epoch) or not _is_count(batch) or batch >= batches:
                raise ValueError(f"its position (epoch {epoch!r}, batch {batch!r}) is invalid")
            if batch and not _is_permutation(order, self.x.shape[0]):
                raise ValueError("its position has no valid sample order")
            loss_sum, correct, seen = position["totals"]
            # At an epoch's end (batch 0) they are the finished epoch's, reset before the next.
            if (not _is_number(loss_sum) or not math.isfinite(loss_sum) or not _is_count(correct)
                    or not _is_count(seen)
                    or (batch and seen != batch * self.batch_size)):
                raise ValueError(f"its running totals {position['totals']!r} are invalid")
            if not _is_number(position["epoch_seconds"]) or not isinstance(
                    position["stop_reason"], (str, type(None))):
                raise ValueError("its position is invalid")
            self._check_history(state["history"], epoch, batch)
            self._check_snapshot(state["model"], "its parameters")
            for _, callback_state in state["callbacks"]:
                for key, value in callback_state.items():
                    if key.endswith("weights") and value is not None:
                        self._check_snapshot(value, f"its callback state {key!r}")
            self.restore(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.optimizer.check_state([param for param, _ in self.network.parameters()])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            self._load_callbacks(state["callbacks"])
            for name, generator in self._generators().items():
                generator.bit_generator.state = state["rngs"][name]
            self.history = state["history"]
            self.epoch, self.batch, self._order = epoch, batch, order if batch else None
            self._totals = [float(loss_sum), correct, seen]
            self._epoch_seconds = float(position["epoch_seconds"])
            self._stop_reason = position["stop_reason"]
        except (KeyError, TypeError, ValueError, AttributeError, IndexError,
                OverflowError) as error:
            message = (str(error) if type(error) is ValueError
                       else f"{error!r} is missing or invalid")
            raise ValueError(f"{where}: cannot continue from this checkpoint: {message}") from None

    def _check_history(self, history: Any, epoch: int, batch: int) -> None:
        if not isinstance(history, dict) or list(history) != list(self.history):
            raise ValueError(f"its history's columns are not {list(self.history)}")
        for name, column in history.items():
            length = epoch + (name == "lr" and batch > 0)
            if (not isinstance(column, list) or len(column) != length
                    or not all(map(_is_number, column))):
                raise ValueError(f"its history column {name!r} is not {length} numbers")

    def _check_snapshot(self, arrays: Any, what: str) -> None:
        current = self.snapshot()
        if (not isinstance(arrays, dict) or set(arrays) != set(current) or any(
                not isinstance(arrays[key], np.ndarray) or arrays[key].shape != array.shape
                or arrays[key].dtype != array.dtype for key, array in current.items())):
            raise ValueError(f"{what} do not fit this network")

    def _load_callbacks(self, saved: list[Any]) -> None:
        """Give each callback the state saved for the callback of its type at the same rank
        among those of that type (the n-th EarlyStopping gets the n-th EarlyStopping's)."""
        by_type: dict[str, list[Any]] = {}
        for name, callback_state in saved:
            by_type.setdefault(name, []).append(callback_state)
        seen: dict[str, int] = {}
        for callback in self.callbacks:
            name = type(callback).__name__
            rank = seen[name] = seen.get(name, -1) + 1
            states = by_type.get(name, [])
            if rank < len(states):
                callback.load_state_dict(states[rank])
            elif callback.state_dict():
                raise ValueError(f"it has no state for this fit's callback {callback!r}")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_permutation(order: Any, n: int) -> bool:
    return (isinstance(order, np.ndarray) and order.shape == (n,) and order.dtype.kind in "iu"
            and np.array_equal(np.sort(order), np.arange(n)))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
