"""Eight Python threads calling every kernel at once get the serial results, bit for bit.

(test_gil.py shows that two threads' calls overlap; this checks what they compute while they do.)
Each thread has its own inputs and dtype and calls the kernels in its own shuffled order, several
times; batches are large enough that conv2d and max_pool2d also split them over the library's
own worker threads, which all callers share.
"""
import random
import threading

import numpy as np
import pytest

import cnnative
from cnnative import pooling

THREADS = 8
ROUNDS = 3


def jobs_for(index):
    """(name, function, args, kwargs) for every kernel, on inputs of thread ``index``."""
    rng = np.random.default_rng(index)
    dtype = (np.float32, np.float64)[index % 2]

    def normal(*shape):
        return rng.standard_normal(shape).astype(dtype)

    image, kernel = normal(60, 50 + index), normal(5, 7)
    x, w, b = normal(12, 3, 12, 12), normal(4, 3, 3, 3), normal(4)
    grad_y = normal(12, 4, 12, 12)
    planes = normal(2, 20, 64, 64)  # several chunks of planes
    pooled, indices = cnnative.max_pool2d(planes, 3, 2, 1)
    pool_grad = normal(*pooled.shape)
    rows, weights, bias = normal(64, 100), normal(50, 100), normal(50)
    mode = ("full", "same", "valid")[index % 3]
    return [
        ("correlate2d", cnnative.correlate2d, (image, kernel, mode, "symm"), {}),
        ("convolve2d", cnnative.convolve2d, (image, kernel, mode, "fill", 0.5), {}),
        ("correlate2d fft", cnnative.correlate2d, (image, kernel, mode), {"method": "fft"}),
        ("conv2d", cnnative.conv2d, (x, w, b, 1, 1), {}),
        ("conv2d_backward", cnnative.conv2d_backward, (grad_y, x, w, 1, 1), {}),
        ("max_pool2d", cnnative.max_pool2d, (planes, 3, 2, 1), {}),
        ("max_pool2d_backward", cnnative.max_pool2d_backward, (pool_grad, indices, planes.shape), {}),
        ("dense", cnnative.dense, (rows, weights, bias), {}),
        ("dense_backward", cnnative.dense_backward, (normal(64, 50), rows, weights), {}),
    ]


def bits(result):
    """A comparable record of every output: dtype, shape and raw bytes (NaN payloads included)."""
    outputs = result if isinstance(result, tuple) else (result,)
    return [None if a is None else (a.dtype.str, a.shape, a.tobytes()) for a in outputs]


@pytest.fixture(params=[1, 2], ids=["set_num_threads(1)", "set_num_threads(2)"])
def num_threads(request, monkeypatch):
    # Pooling keeps small batches on one thread; here every batch is shared.
    monkeypatch.setattr(pooling, "_MIN_WORK_PER_THREAD", 1)
    previous = cnnative.set_num_threads(request.param)
    yield request.param
    cnnative.set_num_threads(previous)


def test_concurrent_calls_match_serial_calls_bit_for_bit(num_threads):
    jobs = [jobs_for(index) for index in range(THREADS)]
    serial = [{name: bits(func(*args, **kwargs)) for name, func, args, kwargs in thread_jobs}
              for thread_jobs in jobs]
    start = threading.Barrier(THREADS)
    mismatches, errors = [], []

    def work(index):
        order = list(jobs[index])
        try:
            start.wait()
            for round_ in range(ROUNDS):
                random.Random(index * ROUNDS + round_).shuffle(order)
                for name, func, args, kwargs in order:
                    if bits(func(*args, **kwargs)) != serial[index][name]:
                        mismatches.append((index, round_, name))
        except BaseException as exc:  # noqa: BLE001 - reported below, with the thread
            errors.append((index, repr(exc)))

    threads = [threading.Thread(target=work, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert not mismatches, mismatches
    assert cnnative.get_num_threads() == num_threads
