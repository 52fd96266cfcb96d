"""run_chunks: fixed chunk boundaries, results in chunk order, work shared by all threads."""
import threading
import time

import pytest

from cnnative import _threads


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_results_in_chunk_order_whatever_the_thread_count(threads):
    results = _threads.run_chunks(lambda start, stop: (start, stop), 10, 3, threads)
    assert results == [(0, 3), (3, 6), (6, 9), (9, 10)]


def test_caller_takes_more_than_the_first_chunk():
    callers = []

    def work(start, stop):
        callers.append(threading.get_ident())
        time.sleep(0.005)  # sleeps release the GIL like the kernels do
        return start

    _threads.run_chunks(work, 12, 1, 2)
    assert callers.count(threading.get_ident()) > 1


def test_error_in_a_chunk_propagates_after_all_threads_stopped():
    running = []

    def work(start, stop):
        running.append(start)
        if start == 2:
            raise RuntimeError("chunk 2")
        time.sleep(0.002)
        running.remove(start)

    with pytest.raises(RuntimeError, match="chunk 2"):
        _threads.run_chunks(work, 20, 1, 3)
    assert running == [2]


@pytest.mark.skipif(_threads.blas_control() is None, reason="BLAS thread count not settable")
@pytest.mark.parametrize("threads", [1, 2])
def test_blas_threads_are_left_alone_for_kernels_without_blas(threads):
    get_blas_threads = _threads.blas_control()[0]
    before = get_blas_threads()
    seen = _threads.run_chunks(lambda start, stop: get_blas_threads(), 4, 1, threads,
                               calls_blas=False)
    assert seen == [before] * 4
    if before > 1:
        with_blas = _threads.run_chunks(lambda start, stop: get_blas_threads(), 4, 1, threads)
        assert with_blas == [1] * 4
    assert get_blas_threads() == before
