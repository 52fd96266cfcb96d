"""Training: the loop behind :meth:`cnnative.Network.fit`, its callbacks and checkpoints.

- :class:`Trainer`: one fit's state and loop; checkpoints it writes let ``fit(resume=...)``
  continue bit-exactly.
- Callbacks: :class:`EarlyStopping`, :class:`ModelCheckpoint`, :class:`CSVLogger`,
  :class:`DivergenceGuard` (on by default), and the :class:`Callback` base class.
- :class:`TrainingDiverged` and :class:`TrainingInterrupted` (Ctrl-C with a checkpoint).
"""
from .callbacks import (Callback, CSVLogger, DivergenceGuard, EarlyStopping, ModelCheckpoint,
                        TrainingDiverged)
from .loop import Trainer, TrainingInterrupted

__all__ = ["Trainer", "Callback", "EarlyStopping", "ModelCheckpoint", "CSVLogger",
           "DivergenceGuard", "TrainingDiverged", "TrainingInterrupted"]
