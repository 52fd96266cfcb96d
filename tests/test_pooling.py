"""max_pool2d / max_pool2d_backward against a slow reference of PyTorch's rule, and torch itself."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cnnative
from cnnative import testing as reference
from cnnative import pooling
from cnnative._native import pool as native
from conftest import with_layout as layout

DTYPES = [np.float32, np.float64]
NAN, INF = np.nan, np.inf


def assert_same(ours, expected):
    (y, indices), (y_ref, indices_ref) = ours, expected
    assert y.dtype == y_ref.dtype and indices.dtype == np.int64
    assert y.shape == y_ref.shape and indices.shape == indices_ref.shape
    np.testing.assert_array_equal(indices, indices_ref)
    np.testing.assert_array_equal(y, y_ref)  # NaN equals NaN here


def pooled(x, *args, **kwargs):
    before = x.copy()
    result = cnnative.max_pool2d(x, *args, **kwargs)
    np.testing.assert_array_equal(x, before)  # input untouched
    assert not any(np.shares_memory(out, x) for out in result)
    # The two outputs are carved from one allocation: they must still be apart and usable.
    assert not np.shares_memory(*result)
    assert all(out.flags.writeable and out.flags.c_contiguous and out.flags.aligned
               for out in result)
    return result


@st.composite
def pooling_problems(draw):
    dtype = draw(st.sampled_from(DTYPES))
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    height, width = draw(st.integers(1, 13)), draw(st.integers(1, 13))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # Few distinct values so windows often tie; NaN and infinities sprinkled in.
    pool = np.array([-2, -1, 0, 1, 2, NAN, INF, -INF])
    weights = np.array([4, 4, 4, 4, 4, 1, 1, 2], float)
    values = rng.choice(pool, size=(*lead, height, width), p=weights / weights.sum())
    kind = draw(st.sampled_from(["C", "F", "strided", "reversed", "rows"]))
    return layout(values.astype(dtype), kind), kernel, stride, padding


@given(problem=pooling_problems())
def test_matches_reference(problem):
    x, kernel, stride, padding = problem
    (kh, kw), (ph, pw) = kernel, padding
    if kh > x.shape[-2] + 2 * ph or kw > x.shape[-1] + 2 * pw:
        with pytest.raises(ValueError, match="kernel_size"):
            cnnative.max_pool2d(x, kernel, stride, padding)
        return
    assert_same(pooled(x, kernel, stride, padding), reference.max_pool2d(x, kernel, stride, padding))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", [
    (2, None, 0), (3, 1, 0), (3, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 1), ((2, 3), (1, 2), (1, 1)),
    ((3, 2), (2, 1), (1, 0)), (4, 3, 2), (5, 1, 2), (1, 1, 0), ((1, 4), (1, 1), 0),
])
@pytest.mark.parametrize("kind", ["C", "F", "strided", "reversed", "rows"])
def test_window_paths_on_larger_planes(dtype, kernel, stride, padding, kind):
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, (2, 3, 17, 19)).astype(dtype)
    x[rng.random(x.shape) < 0.03] = NAN
    x[rng.random(x.shape) < 0.05] = -INF
    x = layout(x, kind)
    assert_same(pooled(x, kernel, stride, padding), reference.max_pool2d(x, kernel, stride, padding))


@pytest.mark.parametrize("dtype", DTYPES)
def test_first_maximum_wins_ties(dtype):
    x = np.array([[1, 3, 3, 0],
                  [3, 3, 2, 3]], dtype)
    y, indices = pooled(x, 2)
    np.testing.assert_array_equal(y, [[3, 3]])
    np.testing.assert_array_equal(indices, [[1, 2]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 1), (3, 2), ((2, 3), (2, 3))])
def test_last_nan_of_a_window_wins(dtype, kernel, stride):
    x = np.array([[NAN, 5, NAN],
                  [9, NAN, 1],
                  [NAN, 7, 8]], dtype)
    y, indices = pooled(x, kernel, stride)
    y_ref, indices_ref = reference.max_pool2d(x, kernel, stride)
    assert np.isnan(y).all()
    np.testing.assert_array_equal(indices, indices_ref)
    if kernel == 3:
        assert indices[0, 0] == 6  # the last of four NaNs in scan order


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_then_larger_values_keep_the_nan(dtype):
    y, indices = pooled(np.array([[NAN, 5, 6, 7]], dtype), (1, 4))
    assert np.isnan(y[0, 0]) and indices[0, 0] == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", [0, 1])
def test_window_of_all_minus_inf_picks_its_first_real_element(dtype, padding):
    x = np.full((4, 4), -INF, dtype)
    y, indices = pooled(x, 3, 1, padding)
    y_ref, indices_ref = reference.max_pool2d(x, 3, 1, padding)
    assert (y == -INF).all()
    np.testing.assert_array_equal(indices, indices_ref)
    if padding:
        assert indices[0, 0] == 0 and indices[0, 1] == 0 and indices[1, 1] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_padding_is_never_chosen(dtype):
    x = -np.arange(1, 10, dtype=dtype).reshape(3, 3) * 1e30  # all very negative
    y, indices = pooled(x, 3, 1, 1)
    assert (indices >= 0).all() and (indices < 9).all()
    np.testing.assert_array_equal(y.ravel(), x.ravel()[indices.ravel()])
    assert_same((y, indices), reference.max_pool2d(x, 3, 1, 1))


@pytest.mark.parametrize("shape", [(7, 8), (3, 7, 8), (2, 3, 7, 8), (2, 1, 2, 7, 8)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_leading_dimensions_are_independent_planes(shape, dtype):
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    y, indices = pooled(x, (3, 2), (2, 2), (1, 0))
    assert y.shape == indices.shape == shape[:-2] + (4, 4) and y.dtype == dtype
    planes = x.reshape(-1, 7, 8)
    for p, (plane_y, plane_i) in enumerate(zip(y.reshape(-1, 4, 4), indices.reshape(-1, 4, 4))):
        single = cnnative.max_pool2d(planes[p], (3, 2), (2, 2), (1, 0))
        np.testing.assert_array_equal(single[0], plane_y)
        np.testing.assert_array_equal(single[1], plane_i)


def test_output_size_formula_and_stride_default():
    x = np.zeros((2, 11, 10))
    assert cnnative.max_pool2d(x, 3)[0].shape == (2, 3, 3)
    assert cnnative.max_pool2d(x, 3, 2, 1)[0].shape == (2, 6, 5)
    assert cnnative.max_pool2d(x, (4, 2), (3, 1))[0].shape == (2, 3, 9)
    assert cnnative.max_pool2d(np.zeros((1, 1)), 1)[0].shape == (1, 1)
    assert cnnative.max_pool2d(np.zeros((1, 1)), 2, 1, 1)[0].shape == (2, 2)


def test_accepts_array_likes_numpy_ints_and_non_native_byte_order():
    x = np.arange(16.0).reshape(4, 4)
    expected = cnnative.max_pool2d(x, 2)
    assert_same(cnnative.max_pool2d(x.tolist(), np.int64(2), [2, 2], (0, 0)), expected)
    assert_same(cnnative.max_pool2d(x.astype(">f8"), 2), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 1, 1), ((2, 3), (1, 2), (1, 0))])
def test_thread_count_does_not_change_results(dtype, kernel, stride, padding, monkeypatch):
    # 64x64 planes make several chunks, and every thread takes part however small the batch,
    # so the threads really split it.
    monkeypatch.setattr(pooling, "_MIN_WORK_PER_THREAD", 1)
    rng = np.random.default_rng(11)
    x = rng.integers(-5, 5, (5, 9, 64, 64)).astype(dtype)
    x[rng.random(x.shape) < 0.01] = NAN
    runs = [cnnative.max_pool2d(x, kernel, stride, padding, num_threads=n) for n in (1, 2, 3)]
    grad_y = rng.standard_normal(runs[0][0].shape).astype(dtype)
    grads = [cnnative.max_pool2d_backward(grad_y, runs[0][1], x.shape, num_threads=n)
             for n in (1, 2, 3)]
    for (y, indices), grad in zip(runs[1:], grads[1:]):
        np.testing.assert_array_equal(y, runs[0][0])
        np.testing.assert_array_equal(indices, runs[0][1])
        assert np.array_equal(grad, grads[0])
    assert_same((runs[0][0][:1, :2], runs[0][1][:1, :2]),
                reference.max_pool2d(x[:1, :2], kernel, stride, padding))


def test_positions_beyond_int32_on_huge_planes():
    # A zero-stride view: 2.5e9 elements per plane without the memory; positions must be exact
    # past 2**31.
    size = 50_000
    x = np.broadcast_to(np.arange(size, dtype=np.float32), (size, size))
    y, indices = cnnative.max_pool2d(x, (1, 2), (size - 1, size - 2))
    assert y.shape == (2, 2)
    expected = [[ih * size + iw + 1 for iw in (0, size - 2)] for ih in (0, size - 1)]
    np.testing.assert_array_equal(indices, expected)
    assert indices.max() > 2**31


# ---------------------------------------------------------------- backward


@given(problem=pooling_problems())
def test_backward_matches_reference(problem):
    x, kernel, stride, padding = problem
    (kh, kw), (ph, pw) = kernel, padding
    if kh > x.shape[-2] + 2 * ph or kw > x.shape[-1] + 2 * pw:
        return
    _, indices = cnnative.max_pool2d(x, kernel, stride, padding)
    grad_y = np.random.default_rng(0).standard_normal(indices.shape).astype(x.dtype)
    grad_x = cnnative.max_pool2d_backward(grad_y, indices, x.shape)
    assert grad_x.dtype == x.dtype and grad_x.shape == x.shape
    np.testing.assert_array_equal(grad_x, reference.max_pool2d_backward(grad_y, indices, x.shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_adds_up_overlapping_windows(dtype):
    x = np.zeros((4, 4), dtype)
    x[1, 1] = 5  # the maximum of all four 3x3 windows at stride 1
    y, indices = cnnative.max_pool2d(x, 3, 1)
    assert (indices == 5).all()
    grad_y = np.array([[0.1, 0.2], [0.3, 0.4]], dtype)
    grad_x = cnnative.max_pool2d_backward(grad_y, indices, x.shape)
    expected = np.zeros((4, 4), dtype)
    expected[1, 1] = ((dtype(0.1) + dtype(0.2)) + dtype(0.3)) + dtype(0.4)  # row-major order
    np.testing.assert_array_equal(grad_x, expected)


def test_backward_accepts_layouts_of_its_inputs():
    x = np.random.default_rng(5).standard_normal((3, 10, 12))
    _, indices = cnnative.max_pool2d(x, 3, 2, 1)
    grad_y = np.random.default_rng(6).standard_normal(indices.shape)
    expected = reference.max_pool2d_backward(grad_y, indices, x.shape)
    for kind in ["F", "strided", "reversed"]:
        got = cnnative.max_pool2d_backward(layout(grad_y, kind), layout(indices, kind), list(x.shape))
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_leaves_its_inputs_alone_and_returns_a_fresh_array(dtype):
    x = np.random.default_rng(7).standard_normal((2, 3, 8, 8)).astype(dtype)
    _, indices = cnnative.max_pool2d(x, 2)
    # The C-contiguous, aligned inputs are the ones the kernel reads in place.
    grad_y = np.random.default_rng(8).standard_normal(indices.shape).astype(dtype)
    saved = grad_y.copy(), indices.copy()
    grad_x = cnnative.max_pool2d_backward(grad_y, indices, x.shape)
    np.testing.assert_array_equal(grad_y, saved[0])
    np.testing.assert_array_equal(indices, saved[1])
    assert grad_x.flags.writeable and grad_x.flags.c_contiguous
    assert not np.shares_memory(grad_x, grad_y) and not np.shares_memory(grad_x, indices)


# ---------------------------------------------------------------- against torch


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", [
    (2, 2, 0), (3, 1, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (1, 2), (1, 1)), (5, 3, 2), (4, 1, 0),
])
def test_matches_torch(dtype, kernel, stride, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(21)
    x = rng.integers(-4, 4, (4, 6, 23, 26)).astype(dtype)
    x[rng.random(x.shape) < 0.02] = NAN
    x[rng.random(x.shape) < 0.1] = -INF
    x[0, 0] = -INF
    y, indices = cnnative.max_pool2d(x, kernel, stride, padding)
    ty, tindices = torch.nn.functional.max_pool2d(torch.from_numpy(x), kernel, stride, padding,
                                                  return_indices=True)
    np.testing.assert_array_equal(indices, tindices.numpy())
    np.testing.assert_array_equal(y, ty.numpy())
    grad_y = rng.standard_normal(y.shape).astype(dtype)
    pair = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
    tgrad = torch.ops.aten.max_pool2d_with_indices_backward(
        torch.from_numpy(grad_y), torch.from_numpy(x), pair(kernel), pair(stride), pair(padding),
        [1, 1], False, tindices)
    np.testing.assert_array_equal(cnnative.max_pool2d_backward(grad_y, indices, x.shape),
                                  tgrad.numpy())


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("x,kwargs,error,match", [
    (np.zeros(5), {}, ValueError, "x must have at least 2 dimensions"),
    (np.float64(1.0), {}, ValueError, "x must have at least 2 dimensions"),
    (np.zeros((0, 4)), {}, ValueError, "x must be non-empty"),
    (np.zeros((2, 0, 3, 3)), {}, ValueError, "x must be non-empty"),
    (np.zeros((4, 4), np.int32), {}, TypeError, "x must be float32 or float64"),
    (np.zeros((4, 4), np.float16), {}, TypeError, "x must be float32 or float64"),
    (np.zeros((4, 4), np.complex128), {}, TypeError, "x must be float32 or float64"),
    (np.zeros((4, 4), bool), {}, TypeError, "x must be float32 or float64"),
    (np.zeros((4, 4)), {"kernel_size": 5}, ValueError, "kernel_size .* larger than the padded"),
    (np.zeros((4, 4)), {"kernel_size": (2, 7), "padding": 1}, ValueError, "kernel_size"),
    (np.zeros((4, 4)), {"kernel_size": 0}, ValueError, "kernel_size must be >= 1"),
    (np.zeros((4, 4)), {"kernel_size": 2.0}, TypeError, "kernel_size must be an int"),
    (np.zeros((4, 4)), {"kernel_size": True}, TypeError, "kernel_size must be an int"),
    (np.zeros((4, 4)), {"kernel_size": (2, 2, 2)}, ValueError, "kernel_size must be an int or a pair"),
    (np.zeros((4, 4)), {"stride": 0}, ValueError, "stride must be >= 1"),
    (np.zeros((4, 4)), {"stride": (1, -1)}, ValueError, "stride must be >= 1"),
    (np.zeros((4, 4)), {"padding": -1}, ValueError, "padding must be >= 0"),
    (np.zeros((4, 4)), {"padding": 2}, ValueError, "padding must be at most half"),
    (np.zeros((4, 4)), {"kernel_size": 3, "padding": (1, 2)}, ValueError, "padding must be at most half"),
    (np.zeros((4, 4)), {"num_threads": 0}, ValueError, "num_threads"),
])
def test_bad_forward_arguments(x, kwargs, error, match):
    kwargs = {"kernel_size": 2, **kwargs}
    with pytest.raises(error, match=match):
        cnnative.max_pool2d(x, **kwargs)


def _backward_inputs():
    x = np.random.default_rng(2).standard_normal((2, 6, 6))
    y, indices = cnnative.max_pool2d(x, 2)
    return y, indices, x.shape


@pytest.mark.parametrize("change,error,match", [
    (lambda g, i, s: (g, i.astype(np.int32), s), TypeError, "indices must be int64"),
    (lambda g, i, s: (g, i.astype(np.float64), s), TypeError, "indices must be int64"),
    (lambda g, i, s: (g, i[:, :2], s), ValueError, "indices must have grad_y's shape"),
    (lambda g, i, s: (g, np.where(i == i.max(), 36, i), s), ValueError, r"indices must lie in \[0, H\*W\)"),
    (lambda g, i, s: (g, np.where(i == i.min(), -1, i), s), ValueError, r"indices must lie in .*\[0, 36\).*found -1"),
    (lambda g, i, s: (g, i, (3, 6, 6)), ValueError, "input_shape .* leading dimensions"),
    (lambda g, i, s: (g, i, (6, 6)), ValueError, "input_shape"),
    (lambda g, i, s: (g, i, (2, 6, 0)), ValueError, "input_shape .* empty"),
    (lambda g, i, s: (g, i, (2, 6, -6)), ValueError, "input_shape must not contain negative"),
    (lambda g, i, s: (g, i, 36), TypeError, "input_shape must be a sequence"),
    (lambda g, i, s: (g, i, (2, 6.0, 6)), TypeError, "input_shape must be a sequence of ints"),
    (lambda g, i, s: (g.astype(np.int64), i, s), TypeError, "grad_y must be float32 or float64"),
    (lambda g, i, s: (g.astype(np.float16), i, s), TypeError, "grad_y must be float32 or float64"),
    (lambda g, i, s: (g[0, 0], i[0, 0], s), ValueError, "grad_y must have at least 2 dimensions"),
    (lambda g, i, s: (g[:, :0], i[:, :0], s), ValueError, "grad_y must be non-empty"),
])
def test_bad_backward_arguments(change, error, match):
    grad_y, indices, input_shape = change(*_backward_inputs())
    with pytest.raises(error, match=match):
        cnnative.max_pool2d_backward(grad_y, indices, input_shape)


# ---------------------------------------------------------------- the kernels' own checks


def test_forward_kernel_rechecks_its_preconditions():
    x = np.zeros((2, 6, 6))
    y, indices = np.empty((2, 3, 3)), np.empty((2, 3, 3), np.int64)
    native.max_pool2d_planes(x, y, indices, (2, 2), (2, 2), (0, 0), 0, 2)
    bad_calls = [
        lambda: native.max_pool2d_planes(x, y, indices, (2, 2), (2, 2), (0, 0), 0, 3),  # plane range
        lambda: native.max_pool2d_planes(x, y, indices, (2, 2), (2, 2), (0, 0), -1, 2),
        lambda: native.max_pool2d_planes(x, y, indices, (3, 3), (2, 2), (0, 0), 0, 2),  # y shape
        lambda: native.max_pool2d_planes(x, y, indices, (2, 2), (2, 2), (2, 0), 0, 2),  # padding
        lambda: native.max_pool2d_planes(x, y, indices, (2, 2), (0, 2), (0, 0), 0, 2),  # stride
        lambda: native.max_pool2d_planes(x, y, indices, (8, 8), (2, 2), (0, 0), 0, 2),  # kernel
        lambda: native.max_pool2d_planes(x, y.astype(np.float32), indices, (2, 2), (2, 2), (0, 0), 0, 2),
        lambda: native.max_pool2d_planes(x, y, indices.astype(np.int32), (2, 2), (2, 2), (0, 0),
                                         0, 2),
        lambda: native.max_pool2d_planes(x, np.empty((2, 3, 6))[:, :, ::2], indices,
                                         (2, 2), (2, 2), (0, 0), 0, 2),
        lambda: native.max_pool2d_planes(x[0], y, indices, (2, 2), (2, 2), (0, 0), 0, 2),
        lambda: native.max_pool2d_planes(x.astype(np.int64), y, indices, (2, 2), (2, 2), (0, 0), 0, 2),
    ]
    for call in bad_calls:
        with pytest.raises((ValueError, TypeError)):
            call()


def test_backward_kernel_never_writes_outside_a_plane():
    # grad_x is the middle of a larger buffer: an index one past a plane would land in the
    # next plane or the guard planes if the kernel did not check it.
    guarded = np.zeros((4, 3, 3))
    grad_x = guarded[1:3]
    grad_y = np.ones((2, 2, 2))
    for bad in (9, -1, 2**40, -(2**62)):
        indices = np.zeros((2, 2, 2), np.int64)
        indices[1, 1, 0] = bad
        status = native.max_pool2d_backward_planes(grad_y, indices, grad_x, 0, 2)
        assert status == native.Status.STATUS_BAD_INDEX
        assert not guarded[0].any() and not guarded[3].any()
        assert not grad_x[1].ravel()[1:].any()
        grad_x[...] = 0
    grad_x[...] = 7  # the kernel clears its planes before scattering
    native.max_pool2d_backward_planes(grad_y, np.zeros((2, 2, 2), np.int64), grad_x, 1, 2)
    assert (grad_x[0] == 7).all() and grad_x[1, 0, 0] == 4 and not grad_x[1].ravel()[1:].any()
    with pytest.raises(ValueError):
        native.max_pool2d_backward_planes(grad_y, indices, grad_x, 1, 3)
    with pytest.raises(ValueError):
        native.max_pool2d_backward_planes(grad_y, np.zeros((2, 2, 3), np.int64), grad_x, 0, 2)
    with pytest.raises(TypeError):
        native.max_pool2d_backward_planes(grad_y, indices, grad_x.astype(np.float32), 0, 2)


def test_kernels_share_planes_through_a_counter():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 6, 6))
    expected = reference.max_pool2d(x, 2)
    y, indices = np.zeros((7, 3, 3)), np.zeros((7, 3, 3), np.int64)
    counter = np.zeros(1, np.int64)
    # Planes [1, 6) in pieces of 2: one call takes them all, a second finds none left.
    native.max_pool2d_planes(x, y, indices, (2, 2), (2, 2), (0, 0), 1, 6, counter, 2)
    assert counter[0] >= 5
    y_before = y.copy()
    native.max_pool2d_planes(x, y, indices, (2, 2), (2, 2), (0, 0), 1, 6, counter, 2)
    np.testing.assert_array_equal(y, y_before)
    assert_same((y[1:6], indices[1:6]), (expected[0][1:6], expected[1][1:6]))
    assert not y[0].any() and not y[6].any() and not indices[[0, 6]].any()

    grad_x = np.full((7, 6, 6), 5.0)
    counter[0] = 0
    status = native.max_pool2d_backward_planes(y, indices, grad_x, 2, 4, counter, 1)
    assert status == native.Status.STATUS_OK
    np.testing.assert_array_equal(grad_x[2:4], reference.max_pool2d_backward(y[2:4], indices[2:4],
                                                                             (2, 6, 6)))
    assert (grad_x[[0, 1, 4, 5, 6]] == 5).all()


@pytest.mark.parametrize("start_value", [-1, 5, 2**62, 2**63 - 1, -(2**63)])
def test_a_counter_out_of_range_claims_nothing(start_value):
    x = np.ones((5, 4, 4))
    y, indices = np.full((5, 2, 2), 3.0), np.full((5, 2, 2), 3, np.int64)
    native.max_pool2d_planes(x, y, indices, (2, 2), (2, 2), (0, 0), 0, 5,
                             np.array([start_value], np.int64), 2)
    assert (y == 3).all() and (indices == 3).all()
    grad_x = np.full((5, 4, 4), 3.0)
    assert native.max_pool2d_backward_planes(y, indices, grad_x, 0, 5,
                                             np.array([start_value], np.int64), 1) == 0
    assert (grad_x == 3).all()


@pytest.mark.parametrize("counter,claim,error", [
    (np.zeros(1, np.int32), 1, TypeError), (np.zeros((1, 1), np.int64), 1, ValueError),
    ([0], 1, TypeError), (np.zeros(0, np.int64), 1, ValueError),
    (np.zeros(1, np.int64), 0, ValueError), (np.zeros(1, np.int64).view(">i8"), 1, TypeError),
])
def test_kernels_check_the_counter(counter, claim, error):
    x, y, indices = np.ones((2, 4, 4)), np.empty((2, 2, 2)), np.empty((2, 2, 2), np.int64)
    with pytest.raises(error, match="counter|claim"):
        native.max_pool2d_planes(x, y, indices, (2, 2), (2, 2), (0, 0), 0, 2, counter, claim)
    with pytest.raises(error, match="counter|claim"):
        native.max_pool2d_backward_planes(y, indices, np.empty((2, 4, 4)), 0, 2, counter, claim)
    readonly = np.zeros(1, np.int64)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="counter"):
        native.max_pool2d_planes(x, y, indices, (2, 2), (2, 2), (0, 0), 0, 2, readonly, 1)


def test_window_far_wider_than_the_plane_does_not_loop_over_every_tap():
    # Valid (padding is half the window) and used to take minutes: the kernel stepped through
    # all 2**31 - 1 taps of each window row.
    x = np.random.default_rng(4).standard_normal((2, 5, 7))
    for kernel, stride, padding in [(2**31 - 1, 1, 2**30 - 1), ((3, 2**20 + 1), (1, 3), (1, 2**19))]:
        y, indices = cnnative.max_pool2d(x, kernel, stride, padding)
        y_ref, indices_ref = reference.max_pool2d(x, kernel, stride, padding)
        assert np.array_equal(y, y_ref) and np.array_equal(indices, indices_ref)


def test_huge_window_parameters_are_refused_by_the_pooling_kernel_too():
    x = np.zeros((1, 5, 7))
    y, indices = np.empty((1, 5, 7)), np.empty((1, 5, 7), np.int64)
    with pytest.raises(ValueError, match=r"at most 2\*\*31 - 1"):
        native.max_pool2d_planes(x, y, indices, (2**63 - 1, 2**63 - 1), (1, 1),
                                 (2**62 - 1, 2**62 - 1), 0, 1)


def test_native_pool_backward_refuses_misaligned_indices():
    # The scatter loaded int64 indices from a misaligned (contiguous) view: undefined behaviour,
    # and a fault on CPUs that trap misaligned loads.  The public function copies such views.
    grad_y = np.random.default_rng(5).standard_normal((2, 3, 4))
    indices = np.arange(24, dtype=np.int64).reshape(2, 3, 4) % 30
    buffer = np.zeros(indices.nbytes + 1, np.uint8)
    shifted = np.frombuffer(buffer.data, np.int64, count=indices.size, offset=1).reshape(indices.shape)
    shifted[...] = indices
    assert shifted.flags.c_contiguous and not shifted.flags.aligned
    with pytest.raises(ValueError, match="indices must be aligned"):
        native.max_pool2d_backward_planes(grad_y, shifted, np.empty((2, 5, 6)), 0, 2)
    np.testing.assert_array_equal(cnnative.max_pool2d_backward(grad_y, shifted, (2, 5, 6)),
                                  cnnative.max_pool2d_backward(grad_y, indices, (2, 5, 6)))


# ---------------------------------------------------------------- average pooling

AVG_WINDOWS = [(2, None, 0), (2, 2, 1), (3, 1, 1), (3, 2, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 1)),
               ((3, 2), (2, 1), (1, 0)), (4, 3, 2), (1, 1, 0), (5, 1, 2)]


def _avg_tolerance(dtype):
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", AVG_WINDOWS)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kind", ["C", "F", "rows"])
def test_avg_pool_matches_reference(dtype, kernel, stride, padding, count_include_pad, kind):
    rng = np.random.default_rng(17)
    x = layout(rng.standard_normal((2, 3, 11, 13)).astype(dtype), kind)
    saved = np.array(x)
    y = cnnative.avg_pool2d(x, kernel, stride, padding, count_include_pad)
    np.testing.assert_array_equal(x, saved)
    y_ref = reference.avg_pool2d(x, kernel, stride, padding, count_include_pad)
    assert y.dtype == dtype and y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, **_avg_tolerance(dtype))
    grad_y = rng.standard_normal(y.shape).astype(dtype)
    grad_x = cnnative.avg_pool2d_backward(layout(grad_y, kind), x.shape, kernel, stride, padding,
                                          count_include_pad)
    assert grad_x.dtype == dtype and grad_x.shape == x.shape
    np.testing.assert_allclose(grad_x, reference.avg_pool2d_backward(
        grad_y, x.shape, kernel, stride, padding, count_include_pad), **_avg_tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", AVG_WINDOWS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_matches_torch_to_the_bit(dtype, kernel, stride, padding, count_include_pad):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(23)
    x = rng.standard_normal((3, 4, 15, 17)).astype(dtype)
    y = cnnative.avg_pool2d(x, kernel, stride, padding, count_include_pad)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = torch.nn.functional.avg_pool2d(tx, kernel, stride, padding,
                                        count_include_pad=count_include_pad)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    grad_y = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(grad_y))
    np.testing.assert_array_equal(cnnative.avg_pool2d_backward(
        grad_y, x.shape, kernel, stride, padding, count_include_pad), tx.grad.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", [0, 1, (0, 1), (1, 0)])
def test_avg_pool_2x2_fast_path_at_every_simd_level(cap_simd, dtype, padding):
    cap_simd(native)
    rng = np.random.default_rng(41)
    for width in range(1, 40):
        for height in (2, 3, 7):
            x = rng.standard_normal((2, height, width)).astype(dtype)
            pw = padding[1] if isinstance(padding, tuple) else padding
            ph = padding[0] if isinstance(padding, tuple) else padding
            if 2 > width + 2 * pw or 2 > height + 2 * ph:
                continue
            y = cnnative.avg_pool2d(x, 2, 2, padding)
            expected = reference.avg_pool2d(x, 2, 2, padding)
            np.testing.assert_allclose(y, expected, **_avg_tolerance(dtype))
            grad_y = rng.standard_normal(y.shape).astype(dtype)
            np.testing.assert_array_equal(
                cnnative.avg_pool2d_backward(grad_y, x.shape, 2, 2, padding),
                reference.avg_pool2d_backward(grad_y, x.shape, 2, 2, padding))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 1, 1), ((2, 3), (1, 2), (1, 0))])
def test_avg_pool_thread_count_does_not_change_results(dtype, kernel, stride, padding,
                                                       monkeypatch):
    monkeypatch.setattr(pooling, "_MIN_WORK_PER_THREAD", 1)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((5, 9, 64, 64)).astype(dtype)
    runs = [cnnative.avg_pool2d(x, kernel, stride, padding, num_threads=n) for n in (1, 2, 3)]
    grad_y = rng.standard_normal(runs[0].shape).astype(dtype)
    grads = [cnnative.avg_pool2d_backward(grad_y, x.shape, kernel, stride, padding, num_threads=n)
             for n in (1, 2, 3)]
    for y, grad in zip(runs[1:], grads[1:]):
        assert np.array_equal(y, runs[0]) and np.array_equal(grad, grads[0])


@pytest.mark.parametrize("x,args,kwargs,error,match", [
    (np.zeros((4, 4)), (2,), {"padding": 2}, ValueError, "padding must be at most half"),
    (np.zeros((4, 4)), (5,), {}, ValueError, "kernel_size .* larger than the padded"),
    (np.zeros((4, 4)), (2,), {"count_include_pad": "yes"}, TypeError, "count_include_pad must be a bool"),
    (np.zeros((4, 4), np.int32), (2,), {}, TypeError, "x must be float32 or float64"),
    (np.zeros(4), (2,), {}, ValueError, "x must have at least 2 dimensions"),
    (np.zeros((4, 4)), (0,), {}, ValueError, "kernel_size must be >= 1"),
    (np.zeros((4, 4)), (2,), {"stride": 0}, ValueError, "stride must be >= 1"),
])
def test_avg_pool_bad_arguments(x, args, kwargs, error, match):
    with pytest.raises(error, match="avg_pool2d: " + match):
        cnnative.avg_pool2d(x, *args, **kwargs)


@pytest.mark.parametrize("grad_y,input_shape,match", [
    (np.ones((2, 3, 3)), (2, 6, 6), r"grad_y's last two dimensions \(3, 3\) must be the pooled size \(3, 3\)|"),
    (np.ones((2, 2, 2)), (2, 6, 6), r"grad_y's last two dimensions \(2, 2\) must be the pooled size"),
    (np.ones((2, 3, 3)), (3, 6, 6), "input_shape .* leading dimensions"),
    (np.ones((2, 3, 3)), (2, 6, 0), "input_shape .* empty"),
    (np.ones((2, 3, 3)), (2, 1, 6), "kernel_size .* larger than the padded input"),
])
def test_avg_pool_backward_bad_arguments(grad_y, input_shape, match):
    if grad_y.shape[-2:] == (3, 3) and input_shape == (2, 6, 6):
        cnnative.avg_pool2d_backward(grad_y, input_shape, 2)  # valid
        return
    with pytest.raises(ValueError, match="avg_pool2d_backward: " + match):
        cnnative.avg_pool2d_backward(grad_y, input_shape, 2)


# ---------------------------------------------------------------- global average pooling


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 1, 1, 1), (3, 2, 1, 9), (2, 5, 17, 23)])
@pytest.mark.parametrize("kind", ["C", "F", "strided"])
def test_global_avg_pool_matches_reference(dtype, shape, kind):
    rng = np.random.default_rng(5)
    x = layout((rng.standard_normal(shape) + 3).astype(dtype), kind)
    y = cnnative.global_avg_pool2d(x)
    assert y.dtype == dtype and y.shape == shape[:2]
    np.testing.assert_allclose(y, reference.global_avg_pool2d(x), **_avg_tolerance(dtype))
    grad_y = rng.standard_normal(shape[:2]).astype(dtype)
    grad_x = cnnative.global_avg_pool2d_backward(layout(grad_y, kind), shape)
    assert grad_x.dtype == dtype and grad_x.shape == shape and grad_x.flags.writeable
    np.testing.assert_array_equal(grad_x, reference.global_avg_pool2d_backward(grad_y, shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_avg_pool_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(9).standard_normal((4, 6, 7, 7)).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, 1).flatten(1)
    np.testing.assert_allclose(cnnative.global_avg_pool2d(x), ty.detach().numpy(),
                               **_avg_tolerance(dtype))
    grad_y = np.random.default_rng(10).standard_normal((4, 6)).astype(dtype)
    ty.backward(torch.from_numpy(grad_y))
    np.testing.assert_array_equal(cnnative.global_avg_pool2d_backward(grad_y, x.shape),
                                  tx.grad.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_avg_pool_threads_and_simd_levels_agree(cap_simd, dtype, monkeypatch):
    monkeypatch.setattr(pooling, "_MIN_WORK_PER_THREAD", 1)
    monkeypatch.setattr(pooling, "_CLAIM_ELEMENTS", 1)
    x = np.random.default_rng(2).standard_normal((9, 7, 5, 11)).astype(dtype)
    grad_y = np.random.default_rng(3).standard_normal((9, 7)).astype(dtype)
    first = (cnnative.global_avg_pool2d(x), cnnative.global_avg_pool2d_backward(grad_y, x.shape))
    cap_simd(native)
    for threads in (1, 2, 3):
        assert np.array_equal(cnnative.global_avg_pool2d(x, num_threads=threads), first[0])
        assert np.array_equal(cnnative.global_avg_pool2d_backward(grad_y, x.shape,
                                                                  num_threads=threads), first[1])


def test_global_avg_pool_bad_arguments():
    with pytest.raises(ValueError, match="global_avg_pool2d: x must be a 4-D array"):
        cnnative.global_avg_pool2d(np.ones((3, 4, 4)))
    with pytest.raises(ValueError, match="global_avg_pool2d: x must be non-empty"):
        cnnative.global_avg_pool2d(np.ones((3, 0, 4, 4)))
    with pytest.raises(TypeError, match="global_avg_pool2d: x must be float32 or float64"):
        cnnative.global_avg_pool2d(np.ones((3, 1, 4, 4), int))
    with pytest.raises(ValueError, match="global_avg_pool2d_backward: grad_y must be a 2-D"):
        cnnative.global_avg_pool2d_backward(np.ones(3), (3, 1, 2, 2))
    with pytest.raises(ValueError, match="global_avg_pool2d_backward: input_shape .* leading"):
        cnnative.global_avg_pool2d_backward(np.ones((3, 2)), (3, 1, 2, 2))
    with pytest.raises(ValueError, match="global_avg_pool2d_backward: input_shape .* empty"):
        cnnative.global_avg_pool2d_backward(np.ones((3, 2)), (3, 2, 0, 2))
