"""Build of the native kernels; metadata lives in pyproject.toml."""
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

NATIVE_DIR = "native"
KERNEL_MODULES = ["correlate", "correlate_nd", "conv", "dense", "pool", "norm"]

if sys.platform == "win32":
    # MSVC does not contract a*b+c into FMA under /fp:precise, which keeps scipy's rounding.
    COMPILE_ARGS = ["/O2", "/fp:precise"]
else:
    # No FMA contraction: the kernels must round exactly like scipy's multiply-then-add.
    # No -march=native: wheels must run on any CPU of the architecture; the kernels pick
    # AVX2/AVX-512 variants at run time instead.
    # CNNATIVE_OPT replaces -O3, which comes after CFLAGS: tools/sanitize.sh builds with -O1.
    # Loops start on 64-byte lines: loop alignment made the gather kernel's speed depend on
    # unrelated edits.
    COMPILE_ARGS = [os.environ.get("CNNATIVE_OPT", "-O3"), "-ffp-contract=off", "-fno-math-errno",
                    "-falign-loops=64"]

extensions = [
    Extension(
        f"cnnative._native.{name}",
        [os.path.join(NATIVE_DIR, f"{name}.pyx")],
        include_dirs=[np.get_include(), NATIVE_DIR],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        extra_compile_args=COMPILE_ARGS,
    )
    for name in KERNEL_MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=[NATIVE_DIR],
        # No __test__ dict of docstrings for doctest: nothing uses it, and the typed stubs
        # (src/cnnative/_native/*.pyi) would have to list it for mypy.stubtest.
        compiler_directives={"language_level": 3, "autotestdict": False},
    ),
)
