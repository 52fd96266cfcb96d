"""`import cnnative` stays cheap: scipy.signal (and with it scipy.stats, interpolate, optimize)
and scipy.linalg (which the BLAS-using conv and dense kernels cimport) are imported only when a
function needs them. Each check runs in a fresh interpreter, where nothing
has imported scipy.signal yet."""
import subprocess
import sys


def run_fresh(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_import_leaves_scipy_signal_unloaded():
    loaded = run_fresh("import sys, cnnative\n"
                       "print([m for m in ('scipy', 'scipy.signal', 'scipy.stats', 'scipy.linalg', "
                       "'cnnative._native.conv', 'cnnative._native.dense') if m in sys.modules])")
    assert loaded == "[]"


def test_conv_and_dense_kernels_load_on_first_use():
    result = run_fresh("import sys, numpy as np, cnnative\n"
                       "y = cnnative.dense(np.ones((2, 3)), np.ones((4, 3)))\n"
                       "z = cnnative.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))\n"
                       "print(y.sum(), z.sum(), 'cnnative._native.conv' in sys.modules)")
    assert result == "24.0 16.0 True"


def test_scipy_fallback_and_fft_import_scipy_signal_on_first_use():
    result = run_fresh("import numpy as np, cnnative\n"
                       "a = np.arange(12).reshape(3, 4)\n"
                       "direct = cnnative.correlate2d(a, a[:2, :2])\n"  # integers: scipy's kernel
                       "fft = cnnative.correlate2d(a * 1.0, a[:2, :2] * 1.0, method='fft')\n"
                       "print(direct.dtype.kind, direct.shape, np.array_equal(direct, np.round(fft)))")
    assert result == "i (4, 5) True"


def test_import_leaves_thread_pool_and_model_file_modules_unloaded():
    # They cost about a fifth of the import: the thread pool is made on the first call that
    # uses two threads, and zipfile, tempfile and json come with saving or loading a model.
    loaded = run_fresh("import sys, cnnative\n"
                       "print([m for m in ('concurrent.futures', 'zipfile', 'tempfile', 'json') "
                       "if m in sys.modules])")
    assert loaded == "[]"
