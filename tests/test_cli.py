"""The command line: train, evaluate, info, bench, run in-process or as `python -m cnnative`."""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import cnnative
from cnnative import cli, datasets


def test_train_then_evaluate_on_the_embedded_digits(tmp_path, capsys):
    model = tmp_path / "net.npz"
    status = cli.main(["train", "--epochs", "1", "--no-augment", "--no-progress", "--threads", "1",
                       "--out", str(model)])
    assert status == 0
    out = capsys.readouterr().out
    assert "4000 training images" in out and "| 1 |" in out and f"model saved to {model}" in out
    network = cnnative.load(model)
    (_, _), (x_val, y_val) = datasets.load_digits_5k()
    accuracy = network.evaluate(x_val, y_val)[1]
    assert accuracy > 0.8  # one epoch of real digits

    assert cli.main(["evaluate", str(model)]) == 0
    out = capsys.readouterr().out
    assert f"accuracy {accuracy:.2%}" in out
    rows = [line for line in out.splitlines()
            if line.startswith("| ") and "true" not in line and "---" not in line]
    confusion = np.array([[int(v) for v in row.strip("| ").split(" | ")[1:]] for row in rows])
    assert confusion.shape == (10, 10) and confusion.sum() == 1000
    assert np.trace(confusion) == round(accuracy * 1000)


def test_train_reports_accuracy_on_a_holdout_it_never_trained_on(tmp_path, capsys):
    model = tmp_path / "net.npz"
    assert cli.main(["train", "--epochs", "1", "--no-augment", "--no-progress", "--threads", "1",
                     "--holdout", "500", "--out", str(model)]) == 0
    out = capsys.readouterr().out
    assert "3500 training images" in out and "holdout: 500" in out
    (_, _), _, (x_hold, y_hold) = datasets.load_digits_5k(holdout_size=500)
    accuracy = cnnative.load(model).evaluate(x_hold, y_hold)[1]
    assert f"holdout accuracy {accuracy:.2%}" in out and "on 500 images" in out


def test_holdout_needs_the_embedded_digits(tmp_path):
    with pytest.raises(SystemExit, match="--holdout applies to the embedded digits only"):
        cli.main(["train", "--data", str(tmp_path), "--holdout", "10", "--no-progress"])


def test_train_and_evaluate_on_an_mnist_directory(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    (x, y), _ = datasets.load_digits_5k()
    datasets.write_idx(data / "train-images-idx3-ubyte.gz", x[:300])
    datasets.write_idx(data / "train-labels-idx1-ubyte.gz", y[:300].astype(np.uint8))
    datasets.write_idx(data / "t10k-images-idx3-ubyte", x[300:400])
    datasets.write_idx(data / "t10k-labels-idx1-ubyte", y[300:400].astype(np.uint8))
    model = tmp_path / "m.npz"
    assert cli.main(["train", "--data", str(data), "--epochs", "1", "--no-progress",
                     "--batch-size", "32", "--lr", "0.05", "--dtype", "float64",
                     "--out", str(model)]) == 0
    out = capsys.readouterr().out
    assert "270 training images" in out and "validation: 30 of its training images" in out
    assert "test accuracy" in out and "on 100 images" in out
    assert cnnative.load(model).dtype == np.float64
    assert cli.main(["evaluate", str(model), "--data", str(data)]) == 0
    assert ": 100 images" in capsys.readouterr().out
    del rng


def test_train_needs_training_files(tmp_path):
    (x, y), _ = datasets.load_digits_5k()
    datasets.write_idx(tmp_path / "t10k-images-idx3-ubyte", x[:10])
    datasets.write_idx(tmp_path / "t10k-labels-idx1-ubyte", y[:10].astype(np.uint8))
    with pytest.raises(SystemExit, match="has no training files"):
        cli.main(["train", "--data", str(tmp_path), "--epochs", "1"])


def test_info_names_versions_threads_and_code_paths(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    detected, active = cnnative._native.correlate.simd_info()
    assert f"cnnative {cnnative.__version__}" in out
    assert f"numpy {np.__version__}" in out and "threads:" in out
    assert f"supports {detected}" in out and f"run {active}" in out


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "train" in capsys.readouterr().out


def test_python_dash_m_runs_bench(tmp_path):
    """As a program: `python -m cnnative bench` restarts itself with the thread settings."""
    result = tmp_path / "signal.json"
    completed = subprocess.run(
        [sys.executable, "-m", "cnnative", "bench", "--sizes", "28", "--kernels", "3",
         "--modes", "valid", "--dtypes", "float64", "--budget", "0.5", "--no-torch",
         "--max-repeats", "3", "--json", str(result)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "CNNATIVE_NUM_THREADS": ""})
    assert completed.returncode == 0, completed.stderr
    assert "| 28" in completed.stdout and "speedup" in completed.stdout
    payload = json.loads(result.read_text())
    assert payload["summary"] and payload["cells"][0]["timings"]["scipy"]["repeats"] >= 3


# -- the training loop's guards, checkpoints and callbacks on the command line -------------

def test_a_diverging_run_exits_with_status_1_and_writes_no_model(tmp_path, capsys):
    model = tmp_path / "net.npz"
    assert cli.main(["train", "--lr", "50", "--no-progress", "--out", str(model)]) == 1
    err = capsys.readouterr().err
    assert re.search(r"training diverged in epoch 1, batch \d+: .* try a lower learning rate "
                     r"\(it is 50\).*No model written", err, re.S)
    assert not model.exists()


def test_ctrl_c_checkpoints_prints_the_resume_command_and_resuming_matches(tmp_path):
    def train(*extra, **popen):
        return subprocess.Popen([sys.executable, "-m", "cnnative", "train", "--epochs", "2",
                                 "--no-progress", "--threads", "1", *extra], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **popen)

    def succeeds(process):
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err

    succeeds(train("--out", "straight.npz"))
    interrupted = train("--out", "resumed.npz", "--checkpoint", "run.ckpt",
                        "--checkpoint-every", "5")
    while not (tmp_path / "run.ckpt").exists():
        assert interrupted.poll() is None, interrupted.communicate()[1]
        time.sleep(0.01)
    interrupted.send_signal(signal.SIGINT)
    _, err = interrupted.communicate(timeout=300)
    assert interrupted.returncode == 130, err
    assert not (tmp_path / "resumed.npz").exists()
    command = re.search(r"Resume with: (cnnative train .*)", err).group(1)
    assert command.endswith("--checkpoint run.ckpt --checkpoint-every 5 --resume")
    succeeds(train(*shlex.split(command)[2:]))
    with np.load(tmp_path / "straight.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        assert a.files == b.files
        assert all(np.array_equal(a[key], b[key]) for key in a.files)


def test_early_stopping_and_the_csv_log(tmp_path, capsys):
    log, model = tmp_path / "log.csv", tmp_path / "net.npz"
    assert cli.main(["train", "--epochs", "3", "--no-augment", "--no-progress",
                     "--early-stopping", "1", "--log", str(log), "--out", str(model)]) == 0
    rows = log.read_text().splitlines()
    assert rows[0] == "epoch,loss,accuracy,lr,seconds,val_loss,val_accuracy"
    assert 2 <= len(rows) - 1 <= 3
    history = [float(row.split(",")[5]) for row in rows[1:]]
    # The best epoch's weights are the ones saved.
    (_, _), (x_val, y_val) = datasets.load_digits_5k()
    assert cnnative.load(model).evaluate(x_val, y_val)[0] == pytest.approx(min(history),
                                                                          rel=1e-6)


@pytest.mark.parametrize("arguments, message", [
    (["--resume"], "--resume and --checkpoint-every need --checkpoint PATH"),
    (["--checkpoint-every", "3"], "--resume and --checkpoint-every need --checkpoint PATH"),
    (["--checkpoint", "missing.ckpt", "--resume"], "--resume: no checkpoint at missing.ckpt"),
    (["--members", "0"], "--members must be >= 1"),
    (["--model", "resnet8", "--dropout", "0.2"], "--dropout applies to --model nielsen only"),
    (["--preset", "fashion", "--data", "nowhere"], "nowhere"),
])
def test_train_refuses_bad_option_combinations(arguments, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=re.escape(message)):
        cli.main(["train", "--no-progress", *arguments])
