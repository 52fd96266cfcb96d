"""Errors every public function shares: the message starts with the function's name and names
the argument, the type says whether the kind (TypeError) or the value (ValueError) is wrong.

Per-function tables of bad shapes, dtypes and options live in test_signal.py, test_conv.py,
test_pooling.py and test_dense.py; this one holds the cases that cut across them (arguments
NumPy cannot convert, thread counts, integers beyond the kernels' range, outputs too large to
address) and is checked to cover every public function.  tests/fuzz_targets.py applies the
same message rule to every error it provokes.
"""
import inspect
import re

import numpy as np
import pytest

import cnnative
from cnnative import _threads

IMAGE, KERNEL = np.ones((6, 6)), np.ones((3, 3))
X, W = np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3))
GRAD_Y = np.ones((2, 4, 6, 6))
PLANES = np.ones((2, 6, 6))
POOLED, INDICES = cnnative.max_pool2d(PLANES, 2)
RAGGED = [[1.0, 2.0], [3.0]]
HUGE = 10**400  # beyond float range

# (function, arguments, keyword arguments, exception, message after "<function>: ")
ERRORS = [
    ("correlate2d", (RAGGED, KERNEL), {}, ValueError, r"in1 could not be converted to an array"),
    ("correlate2d", (IMAGE, RAGGED), {}, ValueError, r"in2 could not be converted to an array"),
    ("correlate2d", (IMAGE, KERNEL), {"fillvalue": HUGE}, ValueError,
     r"fillvalue is too large for float64"),
    ("correlate2d", (IMAGE.astype(int), KERNEL.astype(int)), {"fillvalue": 1e30}, ValueError,
     r"fillvalue 1e\+30 does not fit the inputs' dtype int64"),
    ("correlate2d", (IMAGE.astype(np.uint8), KERNEL.astype(np.uint8)), {"fillvalue": np.nan},
     ValueError, r"fillvalue nan does not fit the inputs' dtype uint8"),
    ("correlate2d", (IMAGE.astype(complex), KERNEL), {"fillvalue": "x"}, TypeError,
     r"fillvalue must be a number, got 'x'"),
    ("correlate2d", (IMAGE.astype(complex), KERNEL), {"fillvalue": None}, TypeError,
     r"fillvalue must be a number, got None"),
    ("correlate2d", (IMAGE.astype(complex), KERNEL), {"fillvalue": object()}, TypeError,
     r"fillvalue must be a number, got dtype object"),
    ("correlate2d", (IMAGE.astype(complex), KERNEL), {"fillvalue": HUGE}, ValueError,
     r"fillvalue is too large for complex128"),
    ("convolve2d", (IMAGE > 0, KERNEL > 0), {}, ValueError,
     r"in1 and in2 have the common dtype bool, which is not supported"),
    ("convolve2d", (IMAGE, KERNEL), {"fillvalue": [[1.0, 2.0], [3.0]]}, ValueError,
     r"fillvalue could not be converted to an array"),
    ("correlate", (RAGGED, KERNEL), {}, ValueError, r"in1 could not be converted to an array"),
    ("correlate", (IMAGE, np.ones(3)), {}, ValueError,
     r"in1 and in2 must have the same number of dimensions, got in1 ndim=2 and in2 ndim=1"),
    ("correlate", (IMAGE, KERNEL), {"method": "fastest"}, ValueError,
     r"method must be one of 'direct', 'fft', 'auto'; got 'fastest'"),
    ("convolve", (np.ones((3, 5)), np.ones((4, 2)), "valid"), {}, ValueError,
     r"for 'valid' mode, one must be at least as large as the other in every dimension; got "
     r"in1 shape \(3, 5\) and in2 shape \(4, 2\)"),
    ("convolve", (IMAGE, KERNEL), {"num_threads": 0}, ValueError,
     r"num_threads must be a positive integer, got 0"),
    ("choose_method", (np.ones(5), KERNEL), {}, ValueError, r"in1 and in2 must have the same number of dimensions"),
    ("choose_method", (np.ones(5), KERNEL), {"function": "convolve2d"}, ValueError,
     r"in1 must be a 2-D array, got ndim=1"),
    ("choose_method", (IMAGE, KERNEL, "bogus"), {}, ValueError, r"mode must be one of 'valid', 'same', 'full'"),
    ("conv2d", (X, W), {"stride": 2**31}, ValueError, r"stride must be <= 2147483647, got 2147483648"),
    ("conv2d", (X, W), {"padding": (0, 2**40)}, ValueError, r"padding must be <= 2147483647"),
    ("conv2d", (X, W), {"padding": 2**31 - 1}, ValueError,
     r"x, w, stride and padding gives an array of shape \(2, 4, 4294967300, 4294967300\), "
     r"larger than the largest possible array"),
    ("conv2d", (X, np.ones((4, 3, 9, 3))), {}, ValueError,
     r"w's kernel 9x3 is larger than the padded input 8x8 \(x's height and width plus padding\)"),
    ("conv2d", (X, W), {"groups": 2}, ValueError, r"groups=2 must divide both x's 3 channels and w's 4 filters"),
    ("conv2d", (np.ones((2, 4, 8, 8)), W), {"groups": 2}, ValueError,
     r"w must have C // groups = 2 input channels \(x has 4, groups=2\), got w shape \(4, 3, 3, 3\)"),
    ("conv2d", (X, W), {"dilation": 0}, ValueError, r"dilation must be >= 1, got 0"),
    ("conv2d", (X, W), {"dilation": 2**31}, ValueError, r"dilation must be <= 2147483647"),
    ("conv2d", (X, W), {"stride": 2, "padding": "same"}, ValueError, r"padding='same' needs stride 1"),
    ("conv2d", (X, W), {"padding": "SAME"}, ValueError, r"padding must be an int, a pair of ints, 'valid' or 'same', got 'SAME'"),
    ("conv2d_backward", (GRAD_Y, X, np.ones((4, 1, 3, 3))), {"groups": 3}, ValueError, r"groups=3 must divide both x's 3 channels and w's 4 filters"),
    ("conv2d_backward", (GRAD_Y, X, W), {"dilation": (1, 0)}, ValueError, r"dilation must be >= 1"),
    ("conv2d", ([[[[1.0]]], [[[1.0, 2.0]]]], W), {}, ValueError, r"x could not be converted to an array"),
    ("conv2d", (X, W), {"num_threads": 1.5}, TypeError, r"num_threads must be a positive integer, got 1.5"),
    ("conv2d", (X, W), {"num_threads": True}, TypeError, r"num_threads must be a positive integer, got True"),
    ("conv2d", (X, W), {"num_threads": 0}, ValueError, r"num_threads must be a positive integer, got 0"),
    ("conv2d_backward", (GRAD_Y, X, W), {"num_threads": "2"}, TypeError, r"num_threads must be a positive integer"),
    ("conv2d_backward", (GRAD_Y, X, W, 2**63), {}, ValueError, r"stride must be <= 2147483647"),
    ("max_pool2d", (PLANES, 2**31), {}, ValueError, r"kernel_size must be <= 2147483647"),
    ("max_pool2d", (PLANES, 2, 2**70), {}, ValueError, r"stride must be <= 2147483647"),
    ("max_pool2d", (PLANES, 2), {"num_threads": np.float64(2)}, TypeError, r"num_threads must be a positive integer"),
    ("max_pool2d", (RAGGED, 2), {}, ValueError, r"x could not be converted to an array"),
    ("max_pool2d_backward", (POOLED, [[0, 1], [2]], PLANES.shape), {}, ValueError,
     r"indices could not be converted to an array"),
    ("max_pool2d_backward", (POOLED, INDICES, (2, 2**40, 2**40)), {}, ValueError,
     r"input_shape gives an array of shape \(2, 1099511627776, 1099511627776\), larger than the "
     r"largest possible array"),
    ("max_pool2d_backward", (POOLED, INDICES, PLANES.shape), {"num_threads": -1}, ValueError,
     r"num_threads must be a positive integer, got -1"),
    ("avg_pool2d", (PLANES, 2), {"padding": 2}, ValueError, r"padding must be at most half the kernel size"),
    ("avg_pool2d", (PLANES, 2), {"count_include_pad": 1}, TypeError, r"count_include_pad must be a bool"),
    ("avg_pool2d_backward", (POOLED, (2, 6, 6), 3), {}, ValueError,
     r"grad_y's last two dimensions \(3, 3\) must be the pooled size \(2, 2\)"),
    ("global_avg_pool2d", (PLANES,), {}, ValueError, r"x must be a 4-D array, got ndim=3"),
    ("global_avg_pool2d_backward", (np.ones((2, 3)), (2, 4, 5, 5)), {}, ValueError,
     r"input_shape \(2, 4, 5, 5\) must have grad_y's leading dimensions \(2, 3\)"),
    ("batch_norm", (X, np.ones(4), np.zeros(3), np.zeros(3), np.ones(3), True), {}, ValueError,
     r"gamma must have shape \(3,\) \(x's channels\), got \(4,\)"),
    ("batch_norm", (X, np.ones(3), np.zeros(3), np.zeros(3, np.float32), np.ones(3), True), {},
     TypeError, r"running_mean has dtype float32 but x has float64"),
    ("batch_norm", (X, np.ones(3), np.zeros(3), [0.0, 0.0, 0.0], np.ones(3), True), {},
     TypeError, r"running_mean must be a numpy array"),
    ("batch_norm", (X, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True), {"momentum": 1.5},
     ValueError, r"momentum must be in \[0, 1\]"),
    ("batch_norm", (X[:1, :, :1, :1], np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True), {},
     ValueError, r"training needs more than one value per channel"),
    ("batch_norm_backward", (X, "cache"), {}, TypeError, r"cache must be the BatchNormCache"),
    ("dense", (RAGGED, np.ones((3, 2))), {}, ValueError, r"x could not be converted to an array"),
    ("dense", (np.ones((2, 2)), np.ones((3, 2)), RAGGED), {}, ValueError, r"b could not be converted to an array"),
    ("dense", (np.ones((2, 2)), np.ones((3, 2))), {"block_rows": "yes"}, TypeError,
     r"block_rows must be a bool, got 'yes'"),
    ("dense_backward", (np.ones((2, 3)), np.ones((2, 2)), RAGGED), {}, ValueError,
     r"w could not be converted to an array"),
    ("set_num_threads", (0,), {}, ValueError, r"n must be a positive integer, got 0"),
    ("load", (__file__,), {}, ValueError, r"path '.*test_errors.py': not a readable cnnative model"),
    ("save", ("a network", "model.npz"), {}, TypeError, r"network must be a cnnative.Network"),
    ("gradcheck", (object(), np.ones(2)), {}, TypeError, r"target must be a Layer or a Network"),
    ("gradcheck", (cnnative.nn.ReLU(), np.ones(2, np.float32)), {}, TypeError,
     r"x must be float64"),
    ("set_num_threads", (1.5,), {}, TypeError, r"n must be a positive integer, got 1.5"),
    ("set_num_threads", ("2",), {}, TypeError, r"n must be a positive integer, got '2'"),
]


@pytest.mark.parametrize("func, args, kwargs, exception, message", ERRORS,
                         ids=[f"{row[0]}-{i}" for i, row in enumerate(ERRORS)])
def test_error_names_function_and_argument(func, args, kwargs, exception, message):
    before = cnnative.get_num_threads()
    with pytest.raises(exception) as info:
        getattr(cnnative, func)(*args, **kwargs)
    assert cnnative.get_num_threads() == before
    text = str(info.value)
    assert re.match(rf"{func}: {message}", text), text
    parameters = inspect.signature(getattr(cnnative, func)).parameters
    assert any(re.search(rf"\b{re.escape(name)}\b", text) for name in parameters), text


def test_every_public_function_with_arguments_is_in_the_table():
    # Functions only: the classes (Network, the layers) have their own error tests.
    public = {name for name in cnnative.__all__ if inspect.isfunction(getattr(cnnative, name))
              and inspect.signature(getattr(cnnative, name)).parameters}
    assert public - {row[0] for row in ERRORS} == set()


def test_thread_counts_accept_numpy_integers():
    previous = cnnative.set_num_threads(np.int64(1))
    try:
        assert cnnative.get_num_threads() == 1 and type(cnnative.get_num_threads()) is int
        y = cnnative.conv2d(X, W, num_threads=np.int32(2))
        np.testing.assert_array_equal(y, cnnative.conv2d(X, W, num_threads=1))
    finally:
        cnnative.set_num_threads(previous)


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_bad_thread_count_in_the_environment_is_named(monkeypatch, value):
    monkeypatch.setenv("CNNATIVE_NUM_THREADS", value)
    monkeypatch.setattr(_threads, "_num_threads", None)
    with pytest.raises(ValueError, match=rf"^cnnative: the environment variable "
                                         rf"CNNATIVE_NUM_THREADS must be a positive integer, got '{value}'"):
        cnnative.get_num_threads()
