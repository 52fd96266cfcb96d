"""A short fuzz run of every target in fuzz_targets.py; tools/fuzz.py is the long one."""
import os

import pytest
from hypothesis import HealthCheck, given, settings

import fuzz_targets

try:
    import resource
except ImportError:  # not on Unix
    resource = None

# Cases per target: a case takes about 2 ms (up to 8 ms for max_pool2d_backward, whose
# reference is slow, and 3-6 ms for file.load, which saves and loads a model file), so on the
# CI profile (400 examples) the whole file stays near 30 s.
EXAMPLES = 2 * settings.default.max_examples
SLOW = {"max_pool2d_backward": 4, "file.load": 2, "file.resume": 8}  # budget divisors


@pytest.fixture(scope="module", autouse=True)
def bounded_address_space():
    """Some valid calls ask for outputs of many GiB: they must fail with MemoryError, not be
    allocated and filled (AddressSanitizer runs bound allocations by its own options)."""
    if resource is None or "asan" in os.environ.get("LD_PRELOAD", ""):
        yield
        return
    with open("/proc/self/statm") as statm:
        in_use = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = in_use + (4 << 30)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_fuzz_target(name):
    @settings(max_examples=EXAMPLES // SLOW.get(name, 1),
              suppress_health_check=[HealthCheck.too_slow])
    @given(seed=fuzz_targets.SEEDS)
    def run(seed):
        fuzz_targets.TARGETS[name].check(seed)

    run()
