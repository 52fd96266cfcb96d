"""Thread control for the native kernels.

Kernels release the GIL, so plain Python threads run them in parallel on disjoint slices of a
batch.  Work is split into chunks whose boundaries do not depend on the thread count, and any
reduction over chunks is added up in chunk order by the caller, so results are bit-identical
whatever the number of threads.
"""
from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from . import _validation

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["get_num_threads", "set_num_threads", "run_chunks"]

_lock = threading.Lock()
_num_threads: int | None = None
_executor: ThreadPoolExecutor | None = None

_T = TypeVar("_T")

#: (get, set) of a BLAS library's thread count.
_BlasControl = tuple[Callable[[], int], Callable[[int], None]]


def _default_threads() -> int:
    value = os.environ.get("CNNATIVE_NUM_THREADS")
    if value:
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError("cnnative: the environment variable CNNATIVE_NUM_THREADS must be a "
                             f"positive integer, got {value!r}")
        return count
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """Number of threads the kernels use (default: the CPUs available, or $CNNATIVE_NUM_THREADS)."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


def set_num_threads(n: int) -> int:
    """Set the number of threads the kernels use; returns the previous value."""
    global _num_threads
    n = _validation.positive_int(n, "n", "set_num_threads")
    old = get_num_threads()
    _num_threads = n
    return old


def thread_count(num_threads: int | None, func: str) -> int:
    """A kernel's ``num_threads`` argument checked, or the global setting when it is None."""
    if num_threads is None:
        return get_num_threads()
    return _validation.positive_int(num_threads, "num_threads", func)


def _pool(workers: int) -> ThreadPoolExecutor:
    # Imported here: concurrent.futures (with logging) is a tenth of `import cnnative`'s time,
    # and single-threaded use never needs it.
    from concurrent.futures import ThreadPoolExecutor

    global _executor
    with _lock:
        if _executor is None or _executor._max_workers < workers:
            # The old executor is not shut down: another call may still be submitting to it.
            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cnnative")
        return _executor


def _find_blas_thread_control() -> _BlasControl | None:
    """(get, set) for the thread count of the OpenBLAS scipy links, or None.

    Kernels call gemm from several threads of their own; each call must then use one BLAS
    thread, or the cores are oversubscribed, "one thread" would not mean one thread, and a
    product's rounding could depend on how BLAS split it.  The count is process-wide (even
    OpenBLAS's "_local" setter acts globally in scipy's build), so it is set once for all
    concurrent kernel calls and restored when the last one ends.
    """
    import ctypes
    import glob

    import scipy

    site = os.path.dirname(os.path.dirname(scipy.__file__))
    patterns = ["scipy.libs/*openblas*", "scipy/.dylibs/*openblas*"]
    for path in (p for pattern in patterns for p in sorted(glob.glob(os.path.join(site, pattern)))):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            getter = getattr(library, f"{prefix}_get_num_threads", None)
            setter = getattr(library, f"{prefix}_set_num_threads", None)
            if getter is not None and setter is not None:
                getter.restype = ctypes.c_int
                setter.argtypes = [ctypes.c_int]
                setter.restype = None
                return getter, setter
    return None


# Found on the first kernel call rather than at import: locating the library imports scipy.
_blas_control: _BlasControl | None = None
_blas_searched = False
_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved_threads: int | None = None


def blas_control() -> _BlasControl | None:
    """(get, set) of scipy's BLAS thread count, or None (see _find_blas_thread_control)."""
    global _blas_control, _blas_searched
    if not _blas_searched:
        with _blas_lock:
            if not _blas_searched:
                _blas_control = _find_blas_thread_control()
                _blas_searched = True
    return _blas_control


class _SingleThreadedBlas:
    """Context manager behind :func:`single_threaded_blas`: a class, whose entry and exit cost
    a fraction of a generator-based context manager's (dense layers enter it several times per
    call).  Its state is module-wide, so one instance serves every caller."""

    __slots__ = ()

    def __enter__(self) -> None:
        global _blas_users, _blas_saved_threads
        control = blas_control()
        if control is None:
            return
        get_threads, set_threads = control
        with _blas_lock:
            if _blas_users == 0:
                _blas_saved_threads = get_threads()
                if _blas_saved_threads != 1:
                    set_threads(1)
            _blas_users += 1

    def __exit__(self, *exc_info: object) -> None:
        global _blas_users
        control = blas_control()
        if control is None:
            return
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_saved_threads != 1:
                control[1](_blas_saved_threads)  # type: ignore[arg-type]  # set by __enter__


_SINGLE_THREADED_BLAS = _SingleThreadedBlas()


def single_threaded_blas() -> _SingleThreadedBlas:
    """scipy's BLAS at one thread for the duration; nested and concurrent uses share one
    setting, restored when the last ends."""
    return _SINGLE_THREADED_BLAS


def run_chunks(func: Callable[[int, int], _T], n_items: int, chunk_size: int,
               num_threads: int | None = None, *, calls_blas: bool = True) -> list[_T]:
    """Call ``func(start, stop)`` for consecutive chunks of ``range(n_items)``; returns results in order.

    Chunk boundaries depend only on ``chunk_size``. ``func`` must release the GIL for the threads to
    overlap and must write only to its own chunk's part of any shared output.  scipy's BLAS runs
    single-threaded while any call is under way (where its thread count can be set): the
    parallelism is ours.  Kernels that never call BLAS pass ``calls_blas=False`` to skip that
    switch, which costs tens of microseconds (as much as a small pooling call).
    """
    threads = thread_count(num_threads, "run_chunks")
    if not calls_blas:
        return _run(func, n_items, chunk_size, threads)
    with single_threaded_blas():
        return _run(func, n_items, chunk_size, threads)


def _run(func: Callable[[int, int], _T], n_items: int, chunk_size: int,
         threads: int) -> list[_T]:
    bounds = [(start, min(start + chunk_size, n_items)) for start in range(0, n_items, chunk_size)]
    if threads == 1 or len(bounds) <= 1:
        return [func(start, stop) for start, stop in bounds]
    # Every thread, the caller included, claims the next unclaimed chunk whenever it is free.
    # Handing the pool all chunks but the first would leave the caller with 1/len(bounds) of
    # the work (with 2 threads and 10 chunks, one thread would do 9 of them).  The caller then
    # waits only for chunks still running, not for helpers to wake up: a helper that starts
    # after every chunk was claimed finds nothing to do, and on a busy machine waking it can
    # take longer than a small call's work.
    results: list[Any] = [None] * len(bounds)
    lock = threading.Lock()
    idle = threading.Condition(lock)
    unclaimed = iter(range(len(bounds)))
    running = 0
    errors: list[BaseException] = []

    def drain() -> None:
        nonlocal running
        while True:
            with lock:
                index = None if errors else next(unclaimed, None)
                if index is None:
                    return
                running += 1
            try:
                results[index] = func(*bounds[index])
            except BaseException as error:  # the others stop claiming; it surfaces below
                with lock:
                    errors.append(error)
            finally:
                with lock:
                    running -= 1
                    if running == 0:
                        idle.notify_all()

    helpers = min(threads, len(bounds)) - 1
    pool = _pool(helpers)
    for _ in range(helpers):
        pool.submit(drain)
    drain()
    with lock:
        # No chunk may still be running once this returns or raises.
        while running:
            idle.wait()
    if errors:
        raise errors[0]
    return results
