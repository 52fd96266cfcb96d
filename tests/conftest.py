import os
import sysconfig
from pathlib import Path

import hypothesis
import numpy
import pytest
import scipy

import cnnative
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
