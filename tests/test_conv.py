"""conv2d / conv2d_backward against a NumPy reference, finite differences and the primer's scipy loops."""
import warnings

import numpy as np
import pytest
import scipy.signal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnative
from cnnative._native import conv as native_conv
from cnnative import _threads, testing

TOLERANCE = {np.float64: 1e-11, np.float32: 2e-4}


def assert_close(actual, expected, dtype):
    scale = max(1.0, float(np.max(np.abs(expected))))
    assert actual.dtype == dtype
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE[dtype] * scale)


def reference_padding(x, w, stride, padding, dilation):
    """padding as cnnative.testing takes it: (top, bottom, left, right), 'same' worked out."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        total_h, total_w = (dilation[0] * (w.shape[2] - 1), dilation[1] * (w.shape[3] - 1))
        return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return (ph, ph, pw, pw)


@st.composite
def layers(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    n = draw(st.integers(1, 9))
    if groups > 1 and draw(st.booleans()):
        c, f = groups, groups * draw(st.integers(1, 2))  # depthwise
    else:
        c, f = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                             st.sampled_from(["valid", "same"] if (sh, sw) == (1, 1) else ["valid"])))
    top, bottom, left, right = reference_padding(None, np.empty((1, 1, kh, kw)), None, padding, dilation)
    height = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - top - bottom), 14))
    width = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - left - right), 14))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c, height, width)).astype(dtype)
    w = rng.standard_normal((f, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    if draw(st.booleans()):
        x = np.asfortranarray(x)
    return x, w, b, (sh, sw), padding, dilation, groups, dtype


@pytest.fixture(params=["auto", "direct", "gemm"])
def algorithm(request):
    """Each product runs on the direct kernel or im2col + gemm by shape; tests force each."""
    previous = native_conv.set_algorithm(request.param)
    yield request.param
    native_conv.set_algorithm(previous)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # the fixture is constant per test
@given(layer=layers())
def test_forward_and_backward_match_reference(algorithm, layer):
    x, w, b, stride, padding, dilation, groups, dtype = layer
    pads = reference_padding(x, w, stride, padding, dilation)
    y = cnnative.conv2d(x, w, b, stride, padding, dilation, groups)
    assert_close(y, testing.conv2d(x, w, b, stride, pads, dilation, groups), dtype)
    grad_y = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    grad_x, grad_w, grad_b = cnnative.conv2d_backward(grad_y, x, w, stride, padding, dilation, groups)
    expected = testing.conv2d_backward(grad_y, x, w, stride, pads, dilation, groups)
    for actual, wanted in zip((grad_x, grad_w, grad_b), expected):
        assert_close(actual, wanted, dtype)


def test_gradients_match_finite_differences(algorithm):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    stride, padding = (2, 1), (1, 1)
    grad_y = rng.standard_normal(cnnative.conv2d(x, w, b, stride, padding).shape)
    grad_x, grad_w, grad_b = cnnative.conv2d_backward(grad_y, x, w, stride, padding)

    def loss(x_, w_, b_):
        return np.sum(grad_y * cnnative.conv2d(x_, w_, b_, stride, padding))

    eps = 1e-6
    for array, grad, args in [(x, grad_x, lambda a: (a, w, b)), (w, grad_w, lambda a: (x, a, b)),
                              (b, grad_b, lambda a: (x, w, a))]:
        flat = array.reshape(-1)
        for index in rng.choice(flat.size, size=min(12, flat.size), replace=False):
            plus, minus = array.copy(), array.copy()
            plus.reshape(-1)[index] += eps
            minus.reshape(-1)[index] -= eps
            numeric = (loss(*args(plus)) - loss(*args(minus))) / (2 * eps)
            assert numeric == pytest.approx(grad.reshape(-1)[index], rel=1e-6, abs=1e-6)


def test_matches_the_primers_scipy_formulas():
    """One feature map per filter, summed over input depth, as in the primer's chained layers."""
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((3, 2, 12, 12)), rng.standard_normal((4, 2, 5, 5)), rng.standard_normal(4)
    y = cnnative.conv2d(x, w, b)
    grad_y = rng.standard_normal(y.shape)
    grad_x, grad_w, grad_b = cnnative.conv2d_backward(grad_y, x, w)
    for n in range(3):
        for f in range(4):
            z = sum(scipy.signal.correlate2d(x[n, c], w[f, c], "valid") for c in range(2)) + b[f]
            np.testing.assert_allclose(y[n, f], z, atol=1e-12)
    for f in range(4):
        for c in range(2):
            expected = sum(scipy.signal.correlate2d(x[n, c], grad_y[n, f], "valid") for n in range(3))
            np.testing.assert_allclose(grad_w[f, c], expected, atol=1e-12)
    for n in range(3):
        for c in range(2):
            expected = sum(scipy.signal.convolve2d(w[f, c], grad_y[n, f], "full") for f in range(4))
            np.testing.assert_allclose(grad_x[n, c], expected, atol=1e-12)


def test_byte_swapped_input_is_accepted():
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    np.testing.assert_array_equal(cnnative.conv2d(x.astype(">f8"), w.astype(">f8")), cnnative.conv2d(x, w))


def test_single_image_and_no_bias():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 9, 9)), rng.standard_normal((3, 2, 3, 3))
    y = cnnative.conv2d(x, w)
    np.testing.assert_allclose(y, testing.conv2d(x[None], w)[0], atol=1e-12)
    grad_x, grad_w, grad_b = cnnative.conv2d_backward(np.ones_like(y), x, w)
    assert grad_x.shape == x.shape and grad_w.shape == w.shape and grad_b.shape == (3,)
    assert cnnative.conv2d_backward(np.ones_like(y), x, w, need_grad_x=False)[0] is None


@pytest.mark.parametrize("options", [{}, {"padding": "same", "dilation": 2},
                                     {"padding": 1, "groups": 3}, {"padding": 1, "groups": 6}],
                         ids=["plain", "dilated", "grouped", "depthwise"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_are_bit_identical_across_thread_counts(algorithm, dtype, options):
    rng = np.random.default_rng(4)
    groups = options.get("groups", 1)
    x = rng.standard_normal((64, 6, 12, 12)).astype(dtype)
    w = rng.standard_normal((6, 6 // groups, 5, 5)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    grad_y = rng.standard_normal(cnnative.conv2d(x, w, **options).shape).astype(dtype)
    results = [(cnnative.conv2d(x, w, b, num_threads=t, **options),)
               + cnnative.conv2d_backward(grad_y, x, w, num_threads=t, **options)
               for t in (1, 2, 3)]
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            assert np.array_equal(a, b_)


def test_inputs_are_not_modified_and_outputs_are_fresh():
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    grad_y = rng.standard_normal((2, 3, 4, 4))
    copies = [a.copy() for a in (x, w, b, grad_y)]
    outputs = [cnnative.conv2d(x, w, b)] + list(cnnative.conv2d_backward(grad_y, x, w))
    for original, copy in zip((x, w, b, grad_y), copies):
        assert np.array_equal(original, copy)
        for out in outputs:
            assert not np.shares_memory(out, original)


GOOD_X = np.ones((2, 3, 8, 8))
GOOD_W = np.ones((4, 3, 3, 3))


@pytest.mark.parametrize("call,error,message", [
    (lambda: cnnative.conv2d(np.ones((3, 8)), GOOD_W), ValueError, r"x must be a 3-D or 4-D array, got ndim=2"),
    (lambda: cnnative.conv2d(GOOD_X, np.ones((4, 3, 3))), ValueError, r"w must be a 4-D array"),
    (lambda: cnnative.conv2d(GOOD_X, np.ones((4, 2, 3, 3))), ValueError, r"x has 3 channels but w expects 2"),
    (lambda: cnnative.conv2d(GOOD_X, np.ones((4, 3, 9, 3))), ValueError, r"larger than the padded input"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, stride=0), ValueError, r"stride must be >= 1"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, padding=-1), ValueError, r"padding must be >= 0"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, stride=(1, 2, 3)), ValueError, r"stride must be an int or a pair"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, stride=1.5), TypeError, r"stride must be an int or a pair"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, np.ones(3)), ValueError, r"b must have shape \(4,\)"),
    (lambda: cnnative.conv2d(GOOD_X.astype(np.float32), GOOD_W), TypeError, r"x has dtype float32 but w has float64"),
    (lambda: cnnative.conv2d(GOOD_X.astype(int), GOOD_W.astype(int)), TypeError, r"w must be float32 or float64"),
    (lambda: cnnative.conv2d(np.ones((0, 3, 8, 8)), GOOD_W), ValueError, r"x must be non-empty"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, np.ones(4, np.float32)), TypeError, r"b has dtype float32 but w has float64"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, num_threads=0), ValueError, r"num_threads must be a positive integer"),
    (lambda: cnnative.conv2d_backward(np.ones((2, 4, 5, 5)), GOOD_X, GOOD_W), ValueError, r"grad_y must have shape \(2, 4, 6, 6\)"),
    (lambda: cnnative.conv2d_backward(np.ones((2, 4, 6)), GOOD_X, GOOD_W), ValueError, r"grad_y must be a 4-D array"),
    (lambda: cnnative.conv2d(GOOD_X, np.ones((4, 1, 3, 3)), groups=2), ValueError, r"groups=2 must divide both x's 3 channels"),
    (lambda: cnnative.conv2d(np.ones((2, 4, 8, 8)), np.ones((6, 1, 3, 3)), groups=4), ValueError, r"groups=4 must divide .* w's 6 filters"),
    (lambda: cnnative.conv2d(np.ones((2, 4, 8, 8)), np.ones((4, 1, 3, 3)), groups=2), ValueError, r"w must have C // groups = 2 input channels"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, groups=0), ValueError, r"groups must be a positive integer"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, groups=1.0), TypeError, r"groups must be a positive integer"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, dilation=0), ValueError, r"dilation must be >= 1"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, dilation=(1, 2, 3)), ValueError, r"dilation must be an int or a pair"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, dilation=4), ValueError, r"w's kernel 3x3 \(dilated to 9x9\) is larger than the padded input 8x8"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, stride=2, padding="same"), ValueError, r"padding='same' needs stride 1"),
    (lambda: cnnative.conv2d(GOOD_X, GOOD_W, padding="full"), ValueError, r"padding must be an int, a pair of ints, 'valid' or 'same'"),
    (lambda: cnnative.conv2d_backward(np.ones((2, 4, 6, 6)), GOOD_X, GOOD_W, padding="same"), ValueError, r"grad_y must have shape \(2, 4, 8, 8\)"),
])
def test_bad_input_raises_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_native_entry_points_check_their_own_preconditions():
    from cnnative._native import conv as native

    x, w = np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3))
    y = np.empty((2, 4, 6, 6))
    with pytest.raises(ValueError):
        native.forward(x, w, None, y, (1, 1), (0, 0, 0, 0), (1, 1), 1, 0, 3)  # chunk beyond the batch
    with pytest.raises(ValueError):
        native.forward(x, w, None, np.empty((2, 4, 5, 5)), (1, 1), (0, 0, 0, 0), (1, 1), 1, 0, 2)  # wrong output shape
    with pytest.raises(ValueError):
        native.forward(x, w, None, np.empty((2, 4, 6, 6), order="F"), (1, 1), (0, 0, 0, 0), (1, 1), 1, 0, 2)
    with pytest.raises(ValueError):
        native.forward(x, np.ones((4, 2, 3, 3)), None, y, (1, 1), (0, 0, 0, 0), (1, 1), 1, 0, 2)
    with pytest.raises(ValueError):
        native.forward(x, w, None, y, (0, 1), (0, 0, 0, 0), (1, 1), 1, 0, 2)
    with pytest.raises(ValueError):
        native.forward(x, w, np.ones(3), y, (1, 1), (0, 0, 0, 0), (1, 1), 1, 0, 2)


def test_float32_gemm_path_is_bit_identical_across_thread_counts_and_restores_blas():
    """Chunks used to toggle scipy's (process-wide) BLAS thread count against each other."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 3, 28, 28)).astype(np.float32)
    w = rng.standard_normal((20, 3, 5, 5)).astype(np.float32)
    grad_y = rng.standard_normal((37, 20, 28, 28)).astype(np.float32)
    control = _threads.blas_control()
    before = control[0]() if control else None
    previous = native_conv.set_algorithm("gemm")
    try:
        reference = cnnative.conv2d_backward(grad_y, x, w, padding=2, num_threads=1)
        for _ in range(6):
            for a, b in zip(reference, cnnative.conv2d_backward(grad_y, x, w, padding=2, num_threads=2)):
                assert np.array_equal(a, b)
    finally:
        native_conv.set_algorithm(previous)
    if before is not None:
        assert control[0]() == before


def test_native_conv_geometry_does_not_overflow_int():
    x, w = np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError):
        native_conv.forward(x, w, None, np.empty((1, 1, 1, 3)), (1, 1), (2**31 - 1, 2**31 - 1, 0, 0), (1, 1), 1, 0, 1)


def test_strided_bias_and_equal_but_distinct_dtype_objects_are_accepted():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.dtype("f4").newbyteorder("="))
    b = np.ones(8, np.float32)[::2]
    np.testing.assert_array_equal(cnnative.conv2d(x, w, b), cnnative.conv2d(x, w.astype(np.float32), b.copy()))


@pytest.mark.parametrize("algorithm", ["direct", "gemm"])
def test_non_finite_weight_does_not_reach_input_positions_it_never_touches(algorithm):
    # The direct input gradient used to multiply every weight by the zero border of grad_y, so
    # an inf weight put NaN (inf * 0) at positions whose gradient has no term with that weight.
    x = np.ones((1, 1, 1, 6))
    w = np.array([np.inf, 2.0, 3.0]).reshape(1, 1, 1, 3)
    grad_y = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 1, 4)
    previous = native_conv.set_algorithm(algorithm)
    try:
        grad_x, _, _ = cnnative.conv2d_backward(grad_y, x, w)
    finally:
        native_conv.set_algorithm(previous)
    # grad_x[j] = sum over k of grad_y[j - k] * w[k]; w[0] is in the terms of j = 0..3 only.
    np.testing.assert_array_equal(grad_x.ravel(), [np.inf] * 4 + [4 * 2 + 3 * 3, 4 * 3])


def test_chunk_sums_of_opposite_infinities_are_quiet_nan():
    # Batches above 8 samples are summed chunk by chunk in Python; inf + -inf warned there
    # (an error under -W error) while the same sum inside one chunk is a quiet NaN.
    x = np.ones((32, 1, 4, 4))
    x[0], x[20] = np.inf, -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, grad_w, _ = cnnative.conv2d_backward(np.ones((32, 1, 4, 4)), x, np.ones((1, 1, 1, 1)))
    assert np.isnan(grad_w).all()


@pytest.mark.parametrize("output", ["y", "grad_x", "grad_w", "grad_b"])
def test_conv_kernels_refuse_read_only_outputs(output):
    # A read-only array may sit on read-only memory (np.frombuffer of bytes, a read-only mmap);
    # the pooling kernels refused it, the conv kernels wrote through it.
    x, w = np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3))
    arrays = {"y": np.zeros((2, 4, 6, 6)), "grad_x": np.zeros_like(x), "grad_w": np.zeros_like(w),
              "grad_b": np.zeros(4)}
    arrays[output].flags.writeable = False
    with pytest.raises(ValueError, match=f"{output} must be writeable"):
        if output == "y":
            native_conv.forward(x, w, None, arrays["y"], (1, 1), (0, 0, 0, 0), (1, 1), 1, 0, 2)
        else:
            native_conv.backward(np.ones((2, 4, 6, 6)), x, w, arrays["grad_x"], arrays["grad_w"],
                                 arrays["grad_b"], (1, 1), (0, 0, 0, 0), (1, 1), 1, 0, 2)
    assert not any(a.any() for a in arrays.values())


@pytest.mark.parametrize("start, stop", [(2**63 - 1, 2**63 - 1), (-(2**63), 1), (3, 3)])
def test_native_conv_backward_checks_the_chunk_before_offsetting_grad_x(start, stop):
    # grad_x's pointer was offset by start * sample bytes before start was range-checked: a
    # start near +-2**63 overflowed Py_ssize_t (undefined behaviour) on the way to the ValueError.
    x, w, grad_y = np.ones((2, 1, 4, 4)), np.ones((1, 1, 3, 3)), np.ones((2, 1, 2, 2))
    with pytest.raises(ValueError, match="outside the batch"):
        native_conv.backward(grad_y, x, w, np.empty_like(x), np.empty_like(w), np.empty(1),
                             (1, 1), (0, 0, 0, 0), (1, 1), 1, start, stop)


# ------------------------------------------------------ dilation, groups, asymmetric padding

# x shape, w shape, stride, padding, dilation, groups: odd and even kernels, 'same' (even
# kernels pad one more at the bottom/right) and 'valid', depthwise with F = C and F = 2C,
# widths around the vector widths.
GEOMETRIES = [
    ((2, 3, 9, 10), (4, 3, 3, 3), (1, 1), "same", (1, 1), 1),
    ((2, 3, 9, 10), (4, 3, 4, 2), (1, 1), "same", (1, 1), 1),
    ((2, 3, 11, 9), (5, 3, 2, 3), (1, 1), "same", (2, 3), 1),
    ((2, 3, 9, 10), (4, 3, 3, 2), (2, 1), "valid", (1, 1), 1),
    ((2, 2, 17, 19), (3, 2, 3, 3), (1, 1), (2, 2), (2, 2), 1),
    ((3, 4, 13, 12), (6, 2, 3, 3), (2, 2), (1, 0), (1, 2), 2),
    ((2, 6, 9, 9), (6, 2, 2, 2), (1, 1), "same", (1, 1), 3),
    ((3, 4, 14, 14), (4, 1, 3, 3), (1, 1), (1, 1), (1, 1), 4),
    ((3, 4, 14, 14), (8, 1, 3, 3), (1, 1), (1, 1), (1, 1), 4),
    ((2, 5, 17, 33), (10, 1, 5, 5), (2, 2), (2, 2), (1, 1), 5),
    ((2, 3, 10, 16), (3, 1, 4, 4), (1, 1), "same", (2, 1), 3),
    ((2, 3, 12, 9), (6, 1, 3, 2), (1, 3), (0, 1), (2, 1), 3),
    ((1, 2, 5, 40), (2, 1, 1, 3), (3, 1), "valid", (1, 4), 2),
]


def _case(shapes, dtype, seed=0):
    x_shape, w_shape, stride, padding, dilation, groups = shapes
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return x, w, b, stride, padding, dilation, groups


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", GEOMETRIES, ids=lambda s: "x{}w{}s{}p{}d{}g{}".format(*s).replace(" ", ""))
def test_dilation_groups_and_padding_match_reference(algorithm, dtype, shapes):
    x, w, b, stride, padding, dilation, groups = _case(shapes, dtype)
    pads = reference_padding(x, w, stride, padding, dilation)
    y = cnnative.conv2d(x, w, b, stride, padding, dilation, groups)
    assert_close(y, testing.conv2d(x, w, b, stride, pads, dilation, groups), dtype)
    if padding == "same":
        assert y.shape[2:] == x.shape[2:]
    grad_y = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    results = [cnnative.conv2d(x, w, b, stride, padding, dilation, groups, num_threads=t)
               for t in (1, 2, 3)]
    grads = [cnnative.conv2d_backward(grad_y, x, w, stride, padding, dilation, groups, num_threads=t)
             for t in (1, 2, 3)]
    expected = testing.conv2d_backward(grad_y, x, w, stride, pads, dilation, groups)
    for actual, wanted in zip(grads[0], expected):
        assert_close(actual, wanted, dtype)
    for other, other_grads in zip(results[1:], grads[1:]):
        assert np.array_equal(other, results[0])
        for a, b_ in zip(other_grads, grads[0]):
            assert np.array_equal(a, b_)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", GEOMETRIES, ids=lambda s: "x{}w{}s{}p{}d{}g{}".format(*s).replace(" ", ""))
def test_dilation_groups_and_padding_match_torch(dtype, shapes):
    torch = pytest.importorskip("torch")
    x, w, b, stride, padding, dilation, groups = _case(shapes, dtype, seed=7)
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = cnnative.conv2d(x, w, b, **options)
    grad_y = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    tx, tw, tb = (torch.from_numpy(a.astype(np.float64)).requires_grad_(True) for a in (x, w, b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'same' with an even kernel: torch warns about a copy
        ty = torch.nn.functional.conv2d(tx, tw, tb, **options)
    ty.backward(torch.from_numpy(grad_y.astype(np.float64)))
    assert_close(y, ty.detach().numpy(), dtype)
    grad_x, grad_w, grad_b = cnnative.conv2d_backward(grad_y, x, w, **options)
    for ours, theirs in [(grad_x, tx.grad), (grad_w, tw.grad), (grad_b, tb.grad)]:
        assert_close(ours, theirs.numpy(), dtype)


def test_same_padding_puts_the_odd_row_and_column_at_the_bottom_right():
    x = np.arange(36.0).reshape(1, 1, 6, 6)
    w = np.zeros((1, 1, 2, 2))
    w[0, 0, 0, 0] = 1.0  # y[i, j] = x_padded[i, j]: with top = left = 0, y == x
    np.testing.assert_array_equal(cnnative.conv2d(x, w, padding="same"), x)
    w = np.zeros((1, 1, 4, 4))
    w[0, 0, 1, 1] = 1.0  # total padding 3: top = left = 1
    np.testing.assert_array_equal(cnnative.conv2d(x, w, padding="same"), x)
    np.testing.assert_array_equal(cnnative.conv2d(x, w, padding="valid"), cnnative.conv2d(x, w))


@pytest.mark.parametrize("groups,w_shape", [(3, (6, 2, 3, 3)), (6, (6, 1, 3, 3)), (6, (12, 1, 3, 3))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_grouped_layer_is_its_groups_side_by_side(dtype, groups, w_shape):
    x, w, b, *_ = _case(((3, 6, 9, 9), w_shape, 1, 1, 1, groups), dtype)
    y = cnnative.conv2d(x, w, b, padding=1, groups=groups)
    grad_y = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    grad_x, grad_w, grad_b = cnnative.conv2d_backward(grad_y, x, w, padding=1, groups=groups)
    cg, fg = 6 // groups, w_shape[0] // groups
    for g in range(groups):
        c, f = slice(g * cg, (g + 1) * cg), slice(g * fg, (g + 1) * fg)
        assert_close(y[:, f], cnnative.conv2d(x[:, c], w[f], b[f], padding=1).astype(np.float64), dtype)
        expected = cnnative.conv2d_backward(grad_y[:, f], x[:, c], w[f], padding=1)
        for ours, wanted in zip((grad_x[:, c], grad_w[f], grad_b[f]), expected):
            assert_close(ours, wanted.astype(np.float64), dtype)


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_depthwise_non_finite_weight_reaches_only_the_inputs_it_multiplies(padding):
    # The depthwise input gradient reads a zero-framed output gradient; inf * 0 must not put
    # NaN where torch has no product with that weight.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((3, 1, 3, 3))
    w[1, 0, 0, 2] = np.inf
    grad_y = rng.standard_normal(cnnative.conv2d(x, w, padding=padding, groups=3).shape)
    grad_x, grad_w, _ = cnnative.conv2d_backward(grad_y, x, w, padding=padding, groups=3)
    with np.errstate(invalid="ignore"):
        expected = testing.conv2d_backward(grad_y, x, w, (1, 1), (padding, padding), (1, 1), 3)
    for ours, wanted in zip((grad_x, grad_w), expected[:2]):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(wanted))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(wanted))
        finite = np.isfinite(wanted)
        np.testing.assert_allclose(ours[finite], wanted[finite], atol=1e-10)


def test_groups_and_dilation_of_one_keep_the_positional_order():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 4, 9, 9)), rng.standard_normal((4, 2, 3, 3))
    np.testing.assert_array_equal(cnnative.conv2d(x, w, None, 1, 1, 2, 2),
                                  cnnative.conv2d(x, w, padding=1, dilation=2, groups=2))


@pytest.mark.parametrize("groups,w_shape", [(1, (1, 1, 3, 3)), (3, (6, 1, 5, 5))])
def test_padded_planes_too_large_to_address_raise_memory_error(groups, w_shape):
    # Padding 2**31 - 1 on both axes with as large a stride leaves a tiny output, but a padded
    # plane of 2**64 elements: its size overflowed Py_ssize_t on the way to malloc.
    x = np.ones((1, groups, 3, 3))
    with pytest.raises(MemoryError, match="padded input would not fit"):
        cnnative.conv2d(x, np.ones(w_shape), None, 2**31 - 1, 2**31 - 1, groups=groups)


# Stride-1 input gradients run as a transposed convolution on the gather kernel (lanes = the
# group's channels) or through a column matrix + col2im; tests force each.  Paddings larger
# than the kernel extent crop the framed output gradient, 'same' with an even kernel pads
# unevenly.
TRANSPOSED_GEOMETRIES = GEOMETRIES + [
    ((2, 3, 6, 7), (5, 3, 3, 3), (1, 1), (4, 3), (1, 1), 1),
    ((2, 4, 8, 8), (4, 2, 3, 2), (1, 1), (1, 5), (2, 3), 2),
    ((3, 8, 14, 14), (16, 2, 3, 3), (1, 1), (1, 1), (1, 1), 4),
    ((2, 20, 7, 7), (18, 20, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 3, 9, 10), (4, 3, 4, 4), (1, 1), "same", (1, 1), 1),
]


@pytest.fixture(params=["transposed", "columns"])
def input_gradient(request):
    """'transposed' forces the transposed convolution (stride 1) or its stride-1 phases."""
    previous = native_conv.set_input_gradient(request.param)
    yield request.param
    native_conv.set_input_gradient(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", TRANSPOSED_GEOMETRIES,
                         ids=lambda s: "x{}w{}s{}p{}d{}g{}".format(*s).replace(" ", ""))
def test_each_input_gradient_matches_the_reference(algorithm, input_gradient, dtype, shapes):
    x, w, b, stride, padding, dilation, groups = _case(shapes, dtype)
    pads = reference_padding(x, w, stride, padding, dilation)
    y = cnnative.conv2d(x, w, b, stride, padding, dilation, groups)
    grad_y = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    grads = [cnnative.conv2d_backward(grad_y, x, w, stride, padding, dilation, groups, num_threads=t)
             for t in (1, 2)]
    expected = testing.conv2d_backward(grad_y, x, w, stride, pads, dilation, groups)
    for actual, wanted in zip(grads[0], expected):
        assert_close(actual, wanted, dtype)
    for a, b_ in zip(grads[1], grads[0]):
        assert np.array_equal(a, b_)


def test_set_input_gradient_validates_and_returns_the_previous_choice():
    previous = native_conv.set_input_gradient("columns")
    try:
        assert native_conv.set_input_gradient("transposed") == "columns"
        with pytest.raises(ValueError, match="input gradient"):
            native_conv.set_input_gradient("nope")
    finally:
        native_conv.set_input_gradient(previous)


@pytest.mark.parametrize("groups", [1, 2])
def test_transposed_input_gradient_keeps_non_finite_weights_to_their_own_terms(input_gradient, groups):
    # The transposed product reads a zero-framed output gradient: an inf weight must still
    # reach only the inputs it multiplies (the layer then takes the column path).
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 6, 6))
    w = rng.standard_normal((4, 4 // groups, 3, 3))
    w[1, 0, 0, 2] = np.inf
    grad_y = rng.standard_normal((2, 4, 6, 6))
    ours = cnnative.conv2d_backward(grad_y, x, w, padding=1, groups=groups)[0]
    wanted = testing.conv2d_backward(grad_y, x, w, (1, 1), (1, 1, 1, 1), (1, 1), groups)[0]
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(wanted))
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(wanted))


def test_native_backward_refuses_a_chunk_whose_workspace_size_would_overflow():
    # Huge dilations keep the output 1x1, so the chunk check passed, while the padded copies
    # of 2048 samples took 2**51 + 1 elements each: the byte count wrapped to 16 KiB and the
    # copy wrote far past it (a segfault).  The chunk's workspace is now bounded first.
    u, v = 9 * 307 * 6529, 2857 * 43691
    x, w = np.ones((2048, 1, 1, 1)), np.ones((8, 1, 2, 2))
    padding = ((u - 1) // 2, (u - 1) // 2, (v - 1) // 2, (v - 1) // 2)
    with pytest.raises(MemoryError, match="workspace would not fit"):
        native_conv.backward(np.ones((2048, 8, 1, 1)), x, w, None, np.empty_like(w),
                             np.empty(8), (1, 1), padding, (u - 1, v - 1), 1, 0, 2048)


# -- row-vector kernels (stride 1: lanes across output positions) -------------------------------

# Stride-1 geometries of every kind the row kernels take, plus the shapes they were written for
# (3x3 'same' layers of 24 channels at 28x28, 48 -> 96 at 7x7) and widths around the vectors.
ROW_GEOMETRIES = [s for s in TRANSPOSED_GEOMETRIES if s[2] == (1, 1)] + [
    ((3, 24, 28, 28), (24, 24, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 1, 28, 28), (24, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 48, 7, 7), (96, 48, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 16, 14, 14), (16, 4, 3, 3), (1, 1), (1, 1), (1, 1), 4),
    ((2, 5, 3, 17), (9, 5, 2, 3), (1, 1), (0, 2), (1, 1), 1),
    # Rows read dw*(kw-1) = 70 elements past the last one (tools/sanitize.sh checks the bound).
    ((2, 3, 6, 80), (4, 3, 3, 11), (1, 1), "same", (1, 7), 1),
]


@pytest.fixture(params=["on", "auto"])
def row_kernels(request):
    previous = native_conv.set_row_kernels(request.param)
    yield request.param
    native_conv.set_row_kernels(previous)


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", ROW_GEOMETRIES,
                         ids=lambda s: "x{}w{}s{}p{}d{}g{}".format(*s).replace(" ", ""))
def test_row_kernels_match_the_reference_at_every_simd_level_and_thread_count(
        cap_simd, simd_level, row_kernels, dtype, shapes, layout):
    cap_simd(native_conv)
    x, w, b, stride, padding, dilation, groups = _case(shapes, dtype)
    if layout == "F":
        x = np.asfortranarray(x)
    elif layout == "strided":
        x = np.repeat(x, 2, axis=3)[..., ::2]
    pads = reference_padding(x, w, stride, padding, dilation)
    y_ref = testing.conv2d(x, w, b, stride, pads, dilation, groups)
    grad_y = np.random.default_rng(1).standard_normal(y_ref.shape).astype(dtype)
    expected = testing.conv2d_backward(grad_y, x, w, stride, pads, dilation, groups)
    results = [(cnnative.conv2d(x, w, b, stride, padding, dilation, groups, num_threads=t),)
               + cnnative.conv2d_backward(grad_y, x, w, stride, padding, dilation, groups,
                                          num_threads=t)
               for t in (1, 2, 3)]
    for actual, wanted in zip(results[0], (y_ref,) + expected):
        assert_close(actual, wanted, dtype)
    for other in results[1:]:
        for a, b_ in zip(other, results[0]):
            assert np.array_equal(a, b_)


def test_set_row_kernels_validates_and_returns_the_previous_choice():
    previous = native_conv.set_row_kernels("off")
    try:
        assert native_conv.set_row_kernels("on") == "off"
        with pytest.raises(ValueError, match="row kernels"):
            native_conv.set_row_kernels("nope")
    finally:
        native_conv.set_row_kernels(previous)


@pytest.mark.parametrize("where", ["x", "w"])
def test_row_kernels_keep_non_finite_values_to_their_own_terms(row_kernels, where):
    # The row kernels compute positions past each row's end (thrown away) and read framed
    # buffers: an inf in x must not reach weights whose windows never cover it (the weight
    # gradient then takes the gather kernel), nor an inf weight inputs it never multiplies.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    (x if where == "x" else w)[0, 1, 0, 0] = np.inf
    grad_y = rng.standard_normal((2, 4, 7, 7))
    ours = cnnative.conv2d_backward(grad_y, x, w)
    wanted = testing.conv2d_backward(grad_y, x, w, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    for a, b in zip(ours, wanted):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
    y = cnnative.conv2d(x, w)
    y_wanted = testing.conv2d(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_wanted))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(y_wanted))


# -- strided input gradients as stride-1 phases -------------------------------------------------

STRIDED_GEOMETRIES = [s for s in TRANSPOSED_GEOMETRIES if s[2] != (1, 1)] + [
    ((2, 16, 28, 28), (32, 16, 3, 3), (2, 2), (1, 1), (1, 1), 1),
    ((2, 3, 9, 8), (4, 3, 1, 1), (2, 2), (0, 0), (1, 1), 1),  # phases no tap reaches: zero
    ((2, 4, 7, 9), (6, 2, 3, 2), (3, 2), (2, 1), (2, 1), 2),
    ((1, 2, 5, 6), (3, 2, 2, 2), (4, 5), (3, 4), (3, 2), 1),  # strides above the kernel
]


@pytest.mark.parametrize("input_gradient", ["transposed", "auto"], indirect=True)
@pytest.mark.parametrize("layout", ["C", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", STRIDED_GEOMETRIES,
                         ids=lambda s: "x{}w{}s{}p{}d{}g{}".format(*s).replace(" ", ""))
def test_strided_input_gradient_phases_match_the_reference_at_every_simd_level(
        cap_simd, simd_level, input_gradient, dtype, shapes, layout):
    cap_simd(native_conv)
    x, w, b, stride, padding, dilation, groups = _case(shapes, dtype)
    if layout == "strided":
        x = np.repeat(x, 2, axis=2)[:, :, ::2]
    pads = reference_padding(x, w, stride, padding, dilation)
    y = cnnative.conv2d(x, w, b, stride, padding, dilation, groups)
    grad_y = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    expected = testing.conv2d_backward(grad_y, x, w, stride, pads, dilation, groups)
    grads = [cnnative.conv2d_backward(grad_y, x, w, stride, padding, dilation, groups,
                                      num_threads=t) for t in (1, 2, 3)]
    for actual, wanted in zip(grads[0], expected):
        assert_close(actual, wanted, dtype)
    for other in grads[1:]:
        for a, b_ in zip(other, grads[0]):
            assert np.array_equal(a, b_)


def test_strided_input_gradient_keeps_non_finite_weights_to_their_own_terms(input_gradient):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    w[2, 1, 0, 1] = -np.inf
    grad_y = rng.standard_normal((2, 4, 5, 5))
    ours = cnnative.conv2d_backward(grad_y, x, w, stride=2, padding=1)[0]
    wanted = testing.conv2d_backward(grad_y, x, w, (2, 2), (1, 1, 1, 1), (1, 1), 1)[0]
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(wanted))
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(wanted))
