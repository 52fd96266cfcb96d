"""Checkpoints and exact resume: SIGKILL at a random moment, resume, and the weights end
bit-identical to an uninterrupted run; SIGINT; damaged checkpoints; callbacks and the
divergence guard."""
import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import cnnative
from cnnative.io.checkpoint import read_checkpoint
from cnnative.nn import (BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D,
                         MaxPool2D, ReLU, Residual)
from cnnative.optim import SGD, Adam, CosineAnnealing, OneCycle
from cnnative.training import (CSVLogger, DivergenceGuard, EarlyStopping, ModelCheckpoint,
                               TrainingDiverged)

# One training run, as a script: the variant names the network and its extras; argv: variant,
# the output model file, the checkpoint (or "-"), "resume" or "fresh".
RUN = textwrap.dedent('''
    import sys
    import numpy as np
    import cnnative
    from cnnative.datasets.augment import Compose, RandomCrop, RandomFlip, ShiftRotate
    from cnnative.nn import (BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D,
                             MaxPool2D, ReLU, Residual)
    from cnnative.optim import SGD, Adam, CosineAnnealing, OneCycle
    from cnnative.training import CSVLogger, EarlyStopping

    variant, out, checkpoint, mode = sys.argv[1:5]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (480, 12, 12)).astype(np.uint8)
    y = (x[:, :6].mean(axis=(1, 2)) > x[:, 6:].mean(axis=(1, 2))).astype(np.int64)
    seeds = np.random.SeedSequence(1).spawn(4)
    augment = callbacks = None
    if variant == "plain":
        layers = [Conv2D(1, 6, 3, rng=seeds[0]), ReLU(), MaxPool2D(2), Flatten(),
                  Dense(6 * 5 * 5, 2, rng=seeds[1])]
        optimizer, scheduler = SGD(0.05, momentum=0.9), CosineAnnealing(4)
    elif variant == "dropout":
        layers = [Conv2D(1, 6, 3, rng=seeds[0]), ReLU(), MaxPool2D(2), Flatten(), Dropout(0.3),
                  Dense(6 * 5 * 5, 2, rng=seeds[1])]
        optimizer, scheduler = Adam(0.003), OneCycle(0.01, 4 * 30)
        augment = Compose(RandomCrop(12, padding=1), RandomFlip(), ShiftRotate(1, 5))
        callbacks = [EarlyStopping("val_loss", patience=10), CSVLogger(out + ".csv")]
    else:
        layers = [Conv2D(1, 6, 3, padding=1, bias=False, rng=seeds[0]), BatchNorm2D(6), ReLU(),
                  Residual(Conv2D(6, 6, 3, padding=1, bias=False, rng=seeds[2]), BatchNorm2D(6)),
                  ReLU(), GlobalAvgPool2D(), Flatten(), Dense(6, 2, rng=seeds[1])]
        optimizer, scheduler = SGD(0.05, momentum=0.9, weight_decay=1e-4), None
    net = cnnative.Network(layers)
    net.fit(x, y, epochs=4, batch_size=16, optimizer=optimizer, scheduler=scheduler,
            validation_data=(x[:40], y[:40]), seed=3, progress=False, augment=augment,
            callbacks=callbacks, checkpoint=None if checkpoint == "-" else checkpoint,
            checkpoint_every=1 if checkpoint != "-" else None,
            resume=checkpoint if mode == "resume" else None)
    cnnative.save(net, out)
''')


def run(tmp_path, *args, threads=1, **popen):
    env = {**os.environ, "CNNATIVE_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, "-c", RUN, *map(str, args)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def finished(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err.decode()[-3000:]
    return out.decode()


def model_arrays(path):
    with np.load(path, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


def assert_same_models(first, second):
    a, b = model_arrays(first), model_arrays(second)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


@pytest.mark.parametrize("variant", ["plain", "dropout", "batchnorm"])
def test_sigkill_then_resume_ends_bit_identical(tmp_path, variant):
    finished(run(tmp_path, variant, "straight.npz", "-", "fresh"))
    checkpoint = tmp_path / "run.ckpt"
    rng = np.random.default_rng()
    target = int(rng.integers(0, 60))  # of the run's 4 x 30 batches: the kill comes well before its end
    process = run(tmp_path, variant, "resumed.npz", checkpoint, "fresh", threads=2)
    reached = -1
    while reached < target:
        assert process.poll() is None, process.communicate()[1].decode()[-3000:]
        time.sleep(0.002)
        if checkpoint.exists():
            position = read_checkpoint(checkpoint, "test")["position"]
            reached = 30 * position["epoch"] + position["batch"]
    # Then a random moment within the next few batches: mid-batch, mid-write of a checkpoint,
    # or between.
    time.sleep(rng.uniform(0, 0.05))
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    position = read_checkpoint(checkpoint, "test")["position"]
    assert (position["epoch"], position["batch"]) != (4, 0), "the run ended before the kill"
    # Resumed with another thread count: the kernels' results do not depend on it.
    finished(run(tmp_path, variant, "resumed.npz", checkpoint, "resume", threads=1))
    assert_same_models(tmp_path / "straight.npz", tmp_path / "resumed.npz")
    if variant == "dropout":
        rows = list(csv.DictReader((tmp_path / "resumed.npz.csv").read_text().splitlines()))
        straight = list(csv.DictReader((tmp_path / "straight.npz.csv").read_text().splitlines()))
        for column in ("loss", "accuracy", "val_loss", "lr"):
            assert [row[column] for row in rows] == [row[column] for row in straight]


def test_sigint_finishes_the_batch_writes_a_checkpoint_and_resumes(tmp_path):
    finished(run(tmp_path, "plain", "straight.npz", "-", "fresh"))
    checkpoint = tmp_path / "run.ckpt"
    process = run(tmp_path, "plain", "resumed.npz", checkpoint, "fresh")
    while not checkpoint.exists():
        assert process.poll() is None, process.communicate()[1].decode()[-3000:]
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "TrainingInterrupted" in err.decode() and "checkpoint written to" in err.decode()
    finished(run(tmp_path, "plain", "resumed.npz", checkpoint, "resume"))
    assert_same_models(tmp_path / "straight.npz", tmp_path / "resumed.npz")


# -- in process -----------------------------------------------------------------------------

def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 12, 12)).astype(np.uint8)
    y = (x[:, :6].mean(axis=(1, 2)) > x[:, 6:].mean(axis=(1, 2))).astype(np.int64)
    return x, y


def small(seed=0):
    seeds = np.random.SeedSequence(seed).spawn(2)
    return cnnative.Network([Conv2D(1, 4, 3, rng=seeds[0]), ReLU(), MaxPool2D(2), Flatten(),
                             Dense(4 * 5 * 5, 2, rng=seeds[1])])


def test_resume_in_process_from_every_epoch_and_batch(tmp_path):
    x, y = data()
    straight = small()
    straight.fit(x, y, epochs=3, batch_size=32, seed=1, progress=False,
                 optimizer=SGD(0.05, momentum=0.9), scheduler=CosineAnnealing(3))
    for stop_epoch in (1, 2):
        checkpoint = tmp_path / f"e{stop_epoch}.ckpt"
        first = small()
        first.fit(x, y, epochs=stop_epoch, batch_size=32, seed=1, progress=False,
                  optimizer=SGD(0.05, momentum=0.9), scheduler=CosineAnnealing(3),
                  checkpoint=checkpoint)
        resumed = small(seed=99)  # other initial weights: the checkpoint's must win
        history = resumed.fit(x, y, epochs=3, batch_size=32, seed=1, progress=False,
                              optimizer=SGD(0.05, momentum=0.9), scheduler=CosineAnnealing(3),
                              resume=checkpoint)
        assert len(history["loss"]) == 3
        for (a, _), (b, _) in zip(straight.parameters(), resumed.parameters()):
            assert np.array_equal(a, b)


def test_checkpoint_is_data_only_and_damage_is_reported(tmp_path):
    x, y = data()
    checkpoint = tmp_path / "run.ckpt"
    small().fit(x, y, epochs=1, batch_size=32, seed=1, progress=False, checkpoint=checkpoint)
    with np.load(checkpoint, allow_pickle=False) as stored:
        assert str(stored["format"]) == "cnnative-checkpoint" and int(stored["version"]) == 1
        state = json.loads(str(stored["state"]))
    assert state["position"]["epoch"] == 1 and state["position"]["batch"] == 0
    raw = checkpoint.read_bytes()
    for damaged in (raw[:len(raw) // 2], raw[:100], b"", raw[:-30] + bytes(30)):
        (tmp_path / "bad.ckpt").write_bytes(damaged)
        with pytest.raises(ValueError, match=r"Network.fit: path .*bad.ckpt.*: not a readable "
                                             r"cnnative checkpoint file"):
            small().fit(x, y, epochs=2, batch_size=32, progress=False,
                        resume=tmp_path / "bad.ckpt")
    cnnative.save(small(), tmp_path / "model.npz")
    with pytest.raises(ValueError, match="not a cnnative checkpoint file"):
        small().fit(x, y, epochs=2, progress=False, resume=tmp_path / "model.npz")
    with pytest.raises(FileNotFoundError):
        small().fit(x, y, epochs=2, progress=False, resume=tmp_path / "missing.ckpt")


@pytest.mark.parametrize("change, message", [
    (dict(batch_size=16), "another batch_size"),
    (dict(y=1), "another labels_crc32"),
    (dict(optimizer=Adam()), "another optimizer"),
    (dict(net=lambda: cnnative.Network([Flatten(), Dense(144, 2)])), "another architecture"),
    (dict(callbacks=[EarlyStopping("loss")]), "no state for this fit's callback EarlyStopping"),
])
def test_resume_refuses_a_checkpoint_of_another_fit(tmp_path, change, message):
    x, y = data()
    checkpoint = tmp_path / "run.ckpt"
    small().fit(x, y, epochs=1, batch_size=32, seed=1, progress=False, checkpoint=checkpoint)
    net = change.pop("net", small)()
    if change.pop("y", None):
        y = 1 - y
    arguments = dict(batch_size=32, seed=1, progress=False, resume=checkpoint) | change
    with pytest.raises(ValueError, match=f"cannot continue from this checkpoint: .*{message}"):
        net.fit(x, y, epochs=2, **arguments)


def test_checkpoint_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    x, y = data()
    checkpoint = tmp_path / "run.ckpt"
    small().fit(x, y, epochs=1, batch_size=32, seed=1, progress=False, checkpoint=checkpoint)
    before = checkpoint.read_bytes()

    def failing_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        small().fit(x, y, epochs=2, batch_size=32, seed=1, progress=False,
                    checkpoint=checkpoint, resume=checkpoint)
    assert checkpoint.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]


# -- callbacks ------------------------------------------------------------------------------

def test_early_stopping_stops_and_restores_the_best_epoch(tmp_path):
    x, y = data(128)
    x_val, y_val = data(64, seed=5)
    net = small()
    snapshots = []

    class Record(cnnative.training.Callback):
        def on_epoch_end(self, trainer, logs):
            snapshots.append([p.copy() for p, _ in trainer.network.parameters()])

    stopper = EarlyStopping("val_loss", patience=2)
    # Rates high enough that validation loss soon stops improving.
    history = net.fit(x, y, epochs=40, batch_size=16, optimizer=SGD(0.3, momentum=0.9),
                      validation_data=(x_val, y_val), seed=0, progress=False,
                      callbacks=[stopper, Record()], divergence_factor=None)
    epochs = len(history["val_loss"])
    assert epochs < 40
    best = int(np.argmin(history["val_loss"]))
    assert stopper.best_epoch == best and stopper.best == history["val_loss"][best]
    assert epochs == best + 1 + 2  # patience epochs after the best
    for (param, _), saved in zip(net.parameters(), snapshots[best]):
        assert np.array_equal(param, saved)


def test_early_stopping_and_model_checkpoint_check_their_monitor(tmp_path):
    x, y = data()
    with pytest.raises(ValueError, match=r"EarlyStopping: monitor 'val_loss' is not logged"):
        small().fit(x, y, progress=False, callbacks=[EarlyStopping()])
    with pytest.raises(TypeError, match="EarlyStopping: monitor must be"):
        EarlyStopping(monitor=3)
    with pytest.raises(ValueError, match="EarlyStopping: patience must be"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="EarlyStopping: min_delta must be"):
        EarlyStopping(min_delta=-1)
    with pytest.raises(TypeError, match="ModelCheckpoint: path must be"):
        ModelCheckpoint(None)
    with pytest.raises(ValueError, match="DivergenceGuard: factor must be"):
        DivergenceGuard(1)
    with pytest.raises(TypeError, match="Network.fit: callbacks must be Callback objects"):
        small().fit(x, y, progress=False, callbacks=[print])
    with pytest.raises(ValueError, match="Network.fit: checkpoint_every needs a checkpoint"):
        small().fit(x, y, progress=False, checkpoint_every=2)
    with pytest.raises(TypeError, match=r"Network.fit: validation_data must be a pair \(x_val, "
                                        r"y_val\), got ndarray"):
        small().fit(x, y, progress=False, validation_data=x)
    with pytest.raises(ValueError, match="Network.fit: y must have one target per sample of x"):
        small().fit(x, y, progress=False, validation_data=(x, y[:3]))
    with pytest.raises(TypeError, match="Network.fit: x must be uint8 images or floats"):
        small().fit(x, y, progress=False, validation_data=(x.astype(np.int32), y))


def test_model_checkpoint_keeps_the_best_epoch_and_csv_logger_writes_the_history(tmp_path):
    x, y = data(128)
    x_val, y_val = data(64, seed=5)
    net = small()
    kept = []

    class Record(cnnative.training.Callback):
        def on_epoch_end(self, trainer, logs):
            kept.append(cnnative.load(tmp_path / "best.npz").predict_proba(x_val))

    history = net.fit(x, y, epochs=6, batch_size=16, optimizer=SGD(0.3, momentum=0.9),
                      validation_data=(x_val, y_val), seed=0, progress=False,
                      callbacks=[ModelCheckpoint(tmp_path / "best.npz", "val_loss"),
                                 CSVLogger(tmp_path / "log.csv"), Record()],
                      divergence_factor=None)
    best = int(np.argmin(history["val_loss"]))
    best_model = cnnative.load(tmp_path / "best.npz")
    assert best_model.evaluate(x_val, y_val)[0] == pytest.approx(history["val_loss"][best],
                                                                  rel=1e-6)
    np.testing.assert_array_equal(best_model.predict_proba(x_val), kept[best])
    rows = list(csv.DictReader((tmp_path / "log.csv").read_text().splitlines()))
    assert [int(row["epoch"]) for row in rows] == list(range(1, 7))
    assert [float(row["val_loss"]) for row in rows] == history["val_loss"]
    assert [float(row["lr"]) for row in rows] == history["lr"]


def test_divergence_guard_stops_an_exploding_run_and_restores_the_last_good_epoch():
    x, y = data(128)
    net = small()
    net.fit(x, y, epochs=1, batch_size=16, optimizer=SGD(0.05), seed=0, progress=False)
    good = [p.copy() for p, _ in net.parameters()]
    stopped = []

    class Record(cnnative.training.Callback):
        def on_epoch_end(self, trainer, logs):
            stopped.append(trainer.epoch)

    with pytest.raises(TrainingDiverged, match=r"training diverged in epoch \d+, batch \d+: .* "
                                               r"try a lower learning rate \(it is 500\)"):
        net.fit(x, y, epochs=5, batch_size=16, optimizer=SGD(500.0, momentum=0.9), seed=0,
                progress=False, callbacks=[Record()])
    last_good_epoch = len(stopped)
    if last_good_epoch == 0:
        for (param, _), before in zip(net.parameters(), good):
            assert np.array_equal(param, before)
    assert all(np.isfinite(p).all() for p, _ in net.parameters())


def test_divergence_guard_catches_a_large_but_finite_loss():
    x, y = data(128)
    net = small()
    guard = DivergenceGuard(factor=3.0)
    with pytest.raises(TrainingDiverged, match="more than 3 times the first batch's"):
        net.fit(x, y, epochs=5, batch_size=16, optimizer=SGD(5.0), seed=0, progress=False,
                callbacks=[guard])
    # Off when asked: the same run goes on (to a poor model) without an error.
    small().fit(x, y, epochs=1, batch_size=16, optimizer=SGD(5.0), seed=0, progress=False,
                divergence_factor=None)


@pytest.mark.parametrize("at_batch", [1, 2])  # mid-epoch, and the epoch's last batch (of 3)
def test_sigint_in_process_checkpoints_and_resumes_exactly(tmp_path, at_batch):
    from cnnative.training import Callback, TrainingInterrupted
    x, y = data(96)
    straight = small()
    straight.fit(x, y, epochs=2, batch_size=32, seed=1, progress=False)

    class CtrlC(Callback):
        def on_batch_end(self, trainer, logs):
            if trainer.epoch == 0 and trainer.batch == at_batch:
                os.kill(os.getpid(), signal.SIGINT)

    checkpoint = tmp_path / "run.ckpt"
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match="checkpoint written to") as caught:
        small().fit(x, y, epochs=2, batch_size=32, seed=1, progress=False,
                    checkpoint=checkpoint, callbacks=[CtrlC()])
    assert caught.value.checkpoint == str(checkpoint)
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is put back
    position = read_checkpoint(checkpoint, "test")["position"]
    assert (position["epoch"], position["batch"]) == ((0, 2) if at_batch == 1 else (1, 0))
    resumed = small()
    resumed.fit(x, y, epochs=2, batch_size=32, seed=1, progress=False, resume=checkpoint)
    for (a, _), (b, _) in zip(straight.parameters(), resumed.parameters()):
        assert np.array_equal(a, b)
