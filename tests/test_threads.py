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


@pytest.mark.skipif(_threads.blas_control() is None, reason="BLAS thread count not settable")
def test_single_threaded_blas_nests_and_restores_after_an_exception():
    get_blas_threads, set_blas_threads = _threads.blas_control()
    before = get_blas_threads()
    set_blas_threads(2)
    try:
        with pytest.raises(KeyError):
            with _threads.single_threaded_blas():
                assert get_blas_threads() == 1
                with _threads.single_threaded_blas():
                    assert get_blas_threads() == 1
                # The inner exit must not restore while the outer use is still under way.
                assert get_blas_threads() == 1
                raise KeyError("inside")
        assert get_blas_threads() == 2
    finally:
        set_blas_threads(before)
