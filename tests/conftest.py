import contextlib
import os
import sysconfig
from pathlib import Path

import hypothesis
import numpy
import numpy as np
import pytest
import scipy

import cnnative
from cnnative import _threads
from cnnative import signal as cn_signal
from cnnative._native import correlate as _native_correlate

# CI gets a larger, derandomised budget so a run is reproducible; local runs stay quick.
hypothesis.settings.register_profile("ci", max_examples=400, derandomize=True, deadline=None)
hypothesis.settings.register_profile("dev", max_examples=150, deadline=None)
hypothesis.settings.load_profile("ci" if os.environ.get("CI") else "dev")

# The kernels repeat the order in which scipy >= 1.16 sums each pixel's taps; older scipy (the
# newest on Python 3.10 is 1.15) sums in another order, so its results are close, not equal.
SCIPY_SUMS_LIKE_US = tuple(int(part) for part in scipy.__version__.split(".")[:2]) >= (1, 16)


def pytest_configure(config):
    config.addinivalue_line("markers",
                            "scipy_order: compares bits with scipy; skipped before scipy 1.16")
    # The wheel jobs (tools/test_wheel.sh, cibuildwheel) set this so that a source tree that
    # happens to be importable can't stand in for the wheel under test.
    if os.environ.get("CNNATIVE_REQUIRE_INSTALLED"):
        package = Path(cnnative.__file__).resolve().parent
        site = {Path(sysconfig.get_path(name)).resolve() for name in ("purelib", "platlib")}
        if package.parent not in site:
            raise pytest.UsageError(f"CNNATIVE_REQUIRE_INSTALLED is set but cnnative was imported "
                                    f"from {package}, not from this interpreter's site-packages "
                                    f"{sorted(map(str, site))}")


def pytest_runtest_setup(item):
    if not SCIPY_SUMS_LIKE_US and item.get_closest_marker("scipy_order"):
        pytest.skip(f"bit-exact parity needs scipy >= 1.16 (found {scipy.__version__})")


def pytest_report_header(config):
    detected, active = _native_correlate.simd_info()
    return [f"cnnative {cnnative.__version__} from {Path(cnnative.__file__).parent}",
            f"simd: {detected} detected, {active} active; "
            f"numpy {numpy.__version__}, scipy {scipy.__version__}"]


# -- memory layouts -----------------------------------------------------------------------------

#: Every layout with_layout makes; a kernel must give the C-contiguous result for each.
LAYOUTS = ["C", "F", "strided", "reversed", "transposed", "rows", "misaligned", "packed",
           "byteswapped", "readonly", "broadcast", "list"]


def with_layout(array, kind):
    """``array``'s values in another memory layout (or as nested lists); never sharing its memory."""
    if array.ndim == 0:
        return array.item() if kind == "list" else array.copy()
    if kind == "F":
        return np.asfortranarray(array)
    if kind == "strided":
        big = np.zeros(tuple(2 * n + 1 for n in array.shape), array.dtype)
        index = tuple(slice(1, None, 2) for _ in array.shape)
        big[index] = array
        return big[index]
    if kind == "reversed":
        return np.flip(np.flip(array).copy())
    if kind == "transposed":
        return np.ascontiguousarray(array.T).T
    if kind == "misaligned" and array.dtype.itemsize > 1 and array.dtype.kind != "O":
        raw = np.zeros(array.nbytes + 1, np.uint8)
        out = raw[1:].view(array.dtype).reshape(array.shape)
        out[...] = array
        return out
    if kind == "packed" and array.dtype.kind != "O":
        record = np.zeros(array.shape, [("value", array.dtype), ("tag", "u1")])
        record["value"] = array
        return record["value"]
    if kind == "byteswapped" and array.dtype.itemsize > 1 and array.dtype.kind not in "OUSM":
        return array.astype(array.dtype.newbyteorder())
    if kind == "readonly":
        out = array.copy()
        out.flags.writeable = False
        return out
    if kind == "rows" and array.ndim:
        # Unit steps inside rows, gaps between them.
        big = np.full(array.shape[:-1] + (array.shape[-1] + 5,), 99, array.dtype)
        big[..., :array.shape[-1]] = array
        return big[..., :array.shape[-1]]
    if kind == "broadcast" and array.ndim and array.shape[-1] > 1:
        # A zero stride along the last axis: every row repeats its first element.
        return np.broadcast_to(array[..., :1].copy(), array.shape)
    if kind == "list" and array.dtype.kind in "fiub" and array.size <= 400:
        return array.tolist()
    return array.copy()


# -- SIMD levels --------------------------------------------------------------------------------

LEVEL_NAMES = ["scalar", "vec128", "avx2", "avx512f"]


def detected_level(module):
    """The index in LEVEL_NAMES of the widest variant ``module`` can run on this CPU."""
    detected = module.simd_info()[0]
    return 1 if detected in ("sse2", "neon") else LEVEL_NAMES.index(detected)


@pytest.fixture(params=range(len(LEVEL_NAMES)), ids=LEVEL_NAMES)
def simd_level(request):
    """Each instruction-set level in turn (0 scalar .. 3 avx512f)."""
    return request.param


@pytest.fixture
def cap_simd(simd_level):
    """cap_simd(module) caps ``module``'s kernels at simd_level until the test ends; a level the
    CPU lacks is skipped, since the cap would then leave the widest one it has in charge."""
    restore = []

    def cap(module):
        if simd_level > detected_level(module):
            pytest.skip(f"{LEVEL_NAMES[simd_level]} not available on this CPU")
        restore.append((module, module.set_simd_cap(simd_level)))

    yield cap
    for module, old in reversed(restore):
        module.set_simd_cap(old)


@contextlib.contextmanager
def split_into_rows():
    """Thresholds so low that every correlate2d/correlate call goes through the threaded path,
    in guided pieces that shrink to one row: pieces start and end everywhere, border rows
    included.  Yields the thread counts that run_chunks was asked for."""
    calls = []
    run_chunks = _threads.run_chunks

    def counted(*args, **kwargs):
        calls.append(args[3])
        return run_chunks(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cn_signal, "_SMALL_WORK", 0.0)
        patch.setattr(cn_signal, "_MIN_WORK_PER_THREAD", 1)
        patch.setattr(cn_signal, "_CLAIM_WORK", 1)
        patch.setattr(cn_signal, "_CLAIM_ROWS", 1)
        patch.setattr(_threads, "run_chunks", counted)
        yield calls
