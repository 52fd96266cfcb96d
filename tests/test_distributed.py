"""Data-parallel training (cnnative.distributed): the batch's reduction tree and shares without
MPI, then real runs under mpiexec (skipped without mpi4py and mpiexec): weights bit-identical
to one process for R = 1, 2, 4 (and 3, unbalanced), resume with another R, faults."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import cnnative
from cnnative import _reduce, distributed
from cnnative.norm import batch_norm, batch_norm_backward

WORKER = pathlib.Path(__file__).with_name("distributed_worker.py")


# ---- the reduction tree and the shares (no MPI) ------------------------------------------

def test_tree_sum_halves_with_the_extra_part_on_the_left():
    parts = [np.float64(1e16), 1.0, 1.0, -1e16, 1.0]
    # ((p0 + p1) + p2) + (p3 + p4): the order the kernels use.
    assert _reduce.tree_sum(parts) == ((1e16 + 1.0) + 1.0) + (-1e16 + 1.0)
    assert _reduce.tree_sum(["a", "b", "c"], lambda a, b: f"({a}{b})") == "((ab)c)"
    with pytest.raises(ValueError, match="at least one part"):
        _reduce.tree_sum([])


@pytest.mark.parametrize("n, ranks, expected", [
    (64, 2, [(0, 32), (32, 64)]),
    (128, 4, [(0, 32), (32, 64), (64, 96), (96, 128)]),
    (40, 2, [(0, 24), (24, 40)]),
    (40, 3, [(0, 16), (16, 24), (24, 40)]),
    (20, 4, [(0, 8), (8, 16), (16, 20), (20, 20)]),
    (5, 2, [(0, 5), (5, 5)]),
    (100, 1, [(0, 100)]),
])
def test_partition_gives_each_rank_a_node_of_the_tree(n, ranks, expected):
    assert distributed.partition(n, ranks) == expected


@pytest.mark.parametrize("n, ranks, exception, message", [
    (0, 2, ValueError, r"partition: n must be a positive integer, got 0"),
    (10, 0, ValueError, r"partition: ranks must be a positive integer, got 0"),
    (10.0, 2, TypeError, r"partition: n must be a positive integer, got 10.0"),
])
def test_partition_rejects_bad_counts(n, ranks, exception, message):
    with pytest.raises(exception, match=message):
        distributed.partition(n, ranks)


def _tree_nodes(lo, hi):
    yield lo, hi
    if hi - lo > 1:
        mid = _reduce.tree_split(lo, hi)
        yield from _tree_nodes(lo, mid)
        yield from _tree_nodes(mid, hi)


@pytest.mark.parametrize("n", [1, 8, 9, 63, 64, 100, 257])
@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 5, 8])
def test_shares_are_tree_nodes_covering_the_batch_in_order(n, ranks):
    shares = distributed.partition(n, ranks)
    assert len(shares) == ranks
    nodes = set(_tree_nodes(0, -(-n // 8)))
    position = 0
    for start, stop in shares:
        assert start == position
        if stop > start:
            assert (start // 8, -(-stop // 8)) in nodes
        position = stop
    assert position == n
    if ranks & (ranks - 1) == 0 and n % (8 * ranks) == 0:
        assert {stop - start for start, stop in shares} == {n // ranks}


def _threaded_shards(n, split, body):
    """Run body(part_index, shard) for the two halves [0, split), [split, n) of a batch on two
    threads, as two processes would, combine adding left + right."""
    values, results = {}, [None, None]
    barrier = threading.Barrier(2)

    def run(index):
        calls = 0

        def combine(value):
            nonlocal calls
            key = calls
            calls += 1
            values[key, index] = value
            barrier.wait()
            total = values[key, 0] + values[key, 1]
            barrier.wait()
            return total

        bounds = (0, split) if index == 0 else (split, n)
        with _reduce.shard(_reduce.Shard(*bounds, n, combine)):
            results[index] = body(index, bounds)

    threads = [threading.Thread(target=run, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, split", [((64, 5, 6, 6), 32), ((57, 3, 4, 4), 32),
                                          ((40, 7), 24)])
def test_batch_norm_on_shards_equals_the_whole_batch(dtype, shape, split):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    grad_y = rng.standard_normal(shape).astype(dtype)
    channels = shape[1]
    gamma, beta = rng.standard_normal(channels).astype(dtype), rng.standard_normal(channels).astype(dtype)
    running = [np.zeros(channels, dtype), np.ones(channels, dtype)]
    y, cache = batch_norm(x, gamma, beta, *[a.copy() for a in running], True)
    grads = batch_norm_backward(grad_y, cache)

    def body(index, bounds):
        stats = [a.copy() for a in running]
        part_y, part_cache = batch_norm(x[slice(*bounds)], gamma, beta, *stats, True)
        return part_y, batch_norm_backward(grad_y[slice(*bounds)], part_cache), stats

    (y0, g0, s0), (y1, g1, s1) = _threaded_shards(shape[0], split, body)
    np.testing.assert_array_equal(np.concatenate([y0, y1]), y)
    np.testing.assert_array_equal(np.concatenate([g0[0], g1[0]]), grads[0])
    for part in (g0, g1):
        np.testing.assert_array_equal(part[1], grads[1])
        np.testing.assert_array_equal(part[2], grads[2])
    np.testing.assert_array_equal(s0[1], s1[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, split", [(64, 32), (56, 32), (13, 8)])
@pytest.mark.parametrize("layer", [(3, 8, 3, 12, 1, 1), (16, 32, 3, 14, 1, 1), (8, 16, 5, 9, 2, 0),
                                   (24, 24, 3, 28, 1, 1)])
def test_convolution_on_a_tree_node_computes_its_part_exactly(dtype, n, split, layer):
    channels, filters, kernel, size, stride, padding = layer
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, channels, size, size)).astype(dtype)
    w = rng.standard_normal((filters, channels, kernel, kernel)).astype(dtype)
    y = cnnative.conv2d(x, w, stride=stride, padding=padding)
    grad_y = rng.standard_normal(y.shape).astype(dtype)
    whole = cnnative.conv2d_backward(grad_y, x, w, stride=stride, padding=padding)
    halves = [cnnative.conv2d_backward(grad_y[part], x[part], w, stride=stride, padding=padding)
              for part in (slice(0, split), slice(split, n))]
    np.testing.assert_array_equal(
        np.concatenate([cnnative.conv2d(x[:split], w, stride=stride, padding=padding),
                        cnnative.conv2d(x[split:], w, stride=stride, padding=padding)]), y)
    np.testing.assert_array_equal(np.concatenate([halves[0][0], halves[1][0]]), whole[0])
    np.testing.assert_array_equal(halves[0][1] + halves[1][1], whole[1])
    np.testing.assert_array_equal(halves[0][2] + halves[1][2], whole[2])


def test_dropout_masks_do_not_depend_on_the_shard():
    x = np.ones((20, 6), np.float32)
    whole = cnnative.nn.Dropout(0.5, rng=1).forward(x, training=True)
    layer = cnnative.nn.Dropout(0.5, rng=1)
    with _reduce.shard(_reduce.Shard(8, 20, 20, lambda value: value)):
        part = layer.forward(x[8:], training=True)
    np.testing.assert_array_equal(part, whole[8:])


def test_launched_ranks_reads_the_mpi_environment(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.launched_ranks() == 1
    monkeypatch.setenv("PMI_SIZE", "3")
    assert distributed.launched_ranks() == 3
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.launched_ranks() == 4


def test_comm_without_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    network = cnnative.models.nielsen()
    x, y = np.zeros((8, 28, 28), np.uint8), np.zeros(8, np.int64)
    with pytest.raises(ImportError, match=r"pip install 'cnnative\[mpi\]'"):
        network.fit(x, y, comm=object(), progress=False)


def test_mpiexec_without_mpi4py_names_the_extra(monkeypatch):
    from cnnative import cli
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(SystemExit, match=r"cnnative train: .*pip install 'cnnative\[mpi\]'"):
        cli.main(["train", "--epochs", "1"])


def test_comm_must_be_a_communicator():
    pytest.importorskip("mpi4py")
    network = cnnative.models.nielsen()
    x, y = np.zeros((8, 28, 28), np.uint8), np.zeros(8, np.int64)
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        network.fit(x, y, comm="world", progress=False)


# ---- real runs under mpiexec -------------------------------------------------------------

def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed (pip install 'cnnative[mpi]')")
    launcher = shutil.which("mpiexec", path=os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if launcher is None:
        pytest.skip("no mpiexec on PATH")
    return launcher


def _env():
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               CNNATIVE_NUM_THREADS="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"):
        env.pop(name, None)
    return env


def _run(spec, ranks=None, timeout=300):
    """Run the worker (under mpiexec with ``ranks``, else as a plain process); returns the
    completed process."""
    command = [sys.executable, str(WORKER), json.dumps(spec)]
    if ranks is not None:
        command = [_mpiexec(), "-n", str(ranks), "--oversubscribe", *command]
        spec["mpi"] = True
        command[-1] = json.dumps(spec)
    return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=timeout)


def _weights(path):
    """The arrays of a worker's output (or a model file), timings left out."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files if key != "history.seconds"}


def _assert_identical(a, b):
    assert a.keys() == b.keys()
    different = [key for key in a if not np.array_equal(a[key], b[key])]
    assert not different, f"arrays differ: {different}"


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The single-process runs the data-parallel ones must equal, by model."""
    _mpiexec()
    results = {}
    for model in ("nielsen", "resnet"):
        out = tmp_path_factory.mktemp(model) / "single.npz"
        done = _run({"model": model, "samples": 360, "epochs": 2, "batch_size": 40,
                     "out": str(out)})
        assert done.returncode == 0, done.stderr
        results[model] = _weights(out)
    return results


@pytest.mark.parametrize("model", ["nielsen", "resnet"])
@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_data_parallel_weights_are_bit_identical_to_one_process(single, tmp_path, model, ranks):
    # Batches of 40 (5 blocks of 8): 2 ranks hold 3 and 2 blocks, 4 ranks 2, 1, 1 and 1;
    # nielsen has dropout and augmentation, resnet batch norm and residual blocks.
    out = tmp_path / "parallel.npz"
    done = _run({"model": model, "samples": 360, "epochs": 2, "batch_size": 40, "out": str(out)},
                ranks)
    assert done.returncode == 0, done.stderr
    _assert_identical(_weights(out), single[model])


def test_unbalanced_shares_and_idle_ranks_are_bit_identical_too(tmp_path):
    # 5 ranks on batches of 40 (5 blocks, one each) and a last batch of 20 (3 blocks: two
    # ranks idle, taking rank 0's gradients and batch-norm statistics).
    spec = {"model": "resnet", "samples": 220, "epochs": 1, "batch_size": 40}
    one = _run({**spec, "out": str(tmp_path / "one.npz")})
    five = _run({**spec, "out": str(tmp_path / "five.npz")}, 5)
    assert one.returncode == 0 and five.returncode == 0, one.stderr + five.stderr
    _assert_identical(_weights(tmp_path / "five.npz"), _weights(tmp_path / "one.npz"))


def test_resume_with_another_number_of_ranks(single, tmp_path):
    checkpoint = str(tmp_path / "run.ckpt")
    spec = {"model": "nielsen", "samples": 360, "epochs": 2, "batch_size": 40,
            "checkpoint": checkpoint}
    first = _run({**spec, "stop_after": 1, "out": str(tmp_path / "half.npz")}, 2)
    assert first.returncode == 0, first.stderr
    rest = _run({**spec, "resume": checkpoint, "out": str(tmp_path / "resumed.npz")}, 3)
    assert rest.returncode == 0, rest.stderr
    _assert_identical(_weights(tmp_path / "resumed.npz"), single["nielsen"])


def test_plain_allreduce_trains_but_is_not_promised_the_same_bits(single, tmp_path):
    out = tmp_path / "allreduce.npz"
    done = _run({"model": "resnet", "samples": 360, "epochs": 2, "batch_size": 40,
                 "out": str(out), "deterministic": False}, 2)
    assert done.returncode == 0, done.stderr
    weights, reference = _weights(out), single["resnet"]
    for key in reference:
        if key.startswith("history") or reference[key].dtype.kind != "f":
            continue
        np.testing.assert_allclose(weights[key], reference[key], rtol=1e-2, atol=1e-3)


def test_a_failing_rank_stops_every_rank_quickly(tmp_path):
    start = time.monotonic()
    done = _run({"model": "lenet5", "samples": 4000, "epochs": 50, "batch_size": 40,
                 "out": str(tmp_path / "never.npz"), "fail_rank": 1}, 2, timeout=120)
    assert time.monotonic() - start < 60
    assert done.returncode != 0
    assert "deliberate failure of this rank" in done.stderr
    assert "rank 1 failed; aborting every rank" in done.stderr
    assert not (tmp_path / "never.npz").exists()


def test_a_killed_rank_stops_every_rank_quickly(tmp_path):
    launcher = _mpiexec()
    spec = {"model": "lenet5", "samples": 4000, "epochs": 50, "batch_size": 40, "mpi": True,
            "out": str(tmp_path / "never.npz")}
    process = subprocess.Popen([launcher, "-n", "2", sys.executable, str(WORKER),
                                json.dumps(spec)], env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    ranks = subprocess.run(["pgrep", "-f", "-P", str(process.pid), "distributed_worker"],
                           capture_output=True, text=True).stdout.split()
    assert ranks, "the ranks did not start"
    os.kill(int(ranks[-1]), 9)
    start = time.monotonic()
    try:
        process.communicate(timeout=60)
    finally:
        process.kill()
    assert time.monotonic() - start < 60
    assert process.returncode != 0


def test_ranks_with_different_data_fail_at_the_start(tmp_path):
    done = _run({"model": "lenet5", "samples": 200, "epochs": 1, "batch_size": 40,
                 "out": str(tmp_path / "never.npz"), "shift_labels_rank": 1}, 2, timeout=120)
    assert done.returncode != 0
    assert "the ranks loaded different training data" in done.stderr
    assert "every rank must load the same data" in done.stderr


def test_cli_trains_data_parallel_and_says_so(tmp_path):
    launcher = _mpiexec()
    common = ["train", "--epochs", "1", "--no-progress", "--seed", "2"]
    done = subprocess.run([launcher, "-n", "2", sys.executable, "-m", "cnnative", *common,
                           "--out", str(tmp_path / "two.npz")], env=_env(), capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("data-parallel on 2 ranks (MPI)")
    assert done.stdout.count("validation accuracy") == 1  # rank 0 alone reports
    one = subprocess.run([sys.executable, "-m", "cnnative", *common, "--out",
                          str(tmp_path / "one.npz")], env=_env(), capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    _assert_identical(_weights(tmp_path / "two.npz"), _weights(tmp_path / "one.npz"))
