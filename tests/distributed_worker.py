"""One data-parallel (or single-process) fit for tests/test_distributed.py, run by mpiexec.

``python distributed_worker.py SPEC_JSON``: SPEC has ``model`` ("nielsen": dropout and
augmentation; "resnet": batch norm and residual blocks; "lenet5"), ``samples``, ``epochs``,
``batch_size``, ``out`` (rank 0 writes the state dict there as .npz) and optionally
``mpi`` (use MPI.COMM_WORLD), ``checkpoint``/``resume``, ``stop_after`` (epochs to run before
stopping, to resume later), ``fail_rank`` (that rank raises in its third batch),
``shift_labels_rank`` (that rank loads other labels), ``deterministic``.
"""
import json
import sys

import numpy as np

from cnnative import datasets, models, optim
from cnnative.datasets.augment import ShiftRotate
from cnnative.training import Callback


class FailInBatch(Callback):
    def __init__(self, batch):
        self.at = batch

    def on_batch_end(self, trainer, logs):
        if trainer.batch + 1 == self.at:
            raise RuntimeError("deliberate failure of this rank")


def main(spec):
    comm = None
    if spec.get("mpi"):
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    rank = 0 if comm is None else comm.Get_rank()
    (x, y), (x_val, y_val) = datasets.load_digits_5k()
    x, y = x[:spec["samples"]], y[:spec["samples"]].copy()
    if spec.get("shift_labels_rank") == rank:
        y = (y + 1) % 10
    augment = None
    if spec["model"] == "nielsen":
        network = models.nielsen(dropout=0.3, seed=1)
        augment = ShiftRotate()
    elif spec["model"] == "resnet":
        network = models.resnet(8, width=4)
    else:
        network = models.lenet5()
    callbacks = []
    if spec.get("fail_rank") == rank:
        callbacks.append(FailInBatch(3))
    scheduler = optim.OneCycle(0.05, spec["epochs"] * -(-len(y) // spec["batch_size"]))
    history = network.fit(
        x, y, epochs=spec.get("stop_after", spec["epochs"]), batch_size=spec["batch_size"],
        optimizer=optim.SGD(0.05, momentum=0.9, weight_decay=1e-4), scheduler=scheduler,
        validation_data=(x_val[:300], y_val[:300]), seed=7, progress=False, augment=augment,
        callbacks=callbacks, checkpoint=spec.get("checkpoint"), resume=spec.get("resume"),
        comm=comm, deterministic=spec.get("deterministic", True))
    if rank == 0:
        np.savez(spec["out"], **network.state_dict(),
                 **{f"history.{key}": np.asarray(value) for key, value in history.items()})


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
