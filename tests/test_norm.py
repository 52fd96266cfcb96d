"""batch_norm / batch_norm_backward against the float64 formulas (cnnative.testing) and torch."""
import numpy as np
import pytest

import cnnative
from cnnative import norm
from cnnative import testing as reference
from cnnative._native import norm as native

DTYPES = [np.float32, np.float64]
SHAPES = [(8, 3, 5, 7), (4, 5, 28, 28), (2, 2, 1, 1), (6, 4), (1, 3, 4, 4), (33, 70)]
TOL = {np.float32: 2e-5, np.float64: 1e-12}


def _problem(shape, dtype, seed=0, offset=3.0):
    rng = np.random.default_rng(seed)
    channels = shape[1]
    x = (rng.standard_normal(shape) * 2 + offset).astype(dtype)
    gamma = rng.standard_normal(channels).astype(dtype)
    beta = rng.standard_normal(channels).astype(dtype)
    running_mean = rng.standard_normal(channels).astype(dtype)
    running_var = (rng.random(channels) + 0.5).astype(dtype)
    grad_y = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, running_mean, running_var, grad_y


def _close(ours, expected, dtype, scale=None):
    expected = np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max())) if scale is None else scale
    np.testing.assert_allclose(np.asarray(ours, np.float64), expected, rtol=TOL[dtype],
                               atol=TOL[dtype] * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_matches_reference(dtype, shape, training):
    x, gamma, beta, rm, rv, grad_y = _problem(shape, dtype)
    if training and x.size // shape[1] < 2:
        pytest.skip("one value per channel")
    saved = [a.copy() for a in (x, gamma, beta, grad_y)]
    rm_ours, rv_ours = rm.copy(), rv.copy()
    y, cache = cnnative.batch_norm(x, gamma, beta, rm_ours, rv_ours, training, 0.2, 1e-4)
    y_ref, rm_ref, rv_ref, (mean, var) = reference.batch_norm(x, gamma, beta, rm, rv, training,
                                                             0.2, 1e-4)
    assert y.dtype == dtype and y.shape == x.shape
    _close(y, y_ref, dtype)
    _close(rm_ours, rm_ref, dtype)
    _close(rv_ours, rv_ref, dtype)
    grads = cnnative.batch_norm_backward(grad_y, cache)
    grads_ref = reference.batch_norm_backward(grad_y, x, gamma, mean, var, training, 1e-4)
    for ours, expected in zip(grads, grads_ref):
        assert ours.dtype == dtype and ours.shape == expected.shape
        scale = max(1.0, float(np.abs(expected).max()), float(np.abs(grad_y).sum()) / 10)
        _close(ours, expected, dtype, scale if ours.ndim == 1 else None)
    for array, before in zip((x, gamma, beta, grad_y), saved):
        np.testing.assert_array_equal(array, before)  # inputs untouched
    if not training:
        np.testing.assert_array_equal(rm_ours, rm)
        np.testing.assert_array_equal(rv_ours, rv)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 3, 5, 7), (6, 4)])
def test_running_statistics_follow_the_formula_exactly(dtype, shape):
    x, gamma, beta, rm, rv, _ = _problem(shape, dtype)
    rm_ours, rv_ours = rm.copy(), rv.copy()
    _, cache = cnnative.batch_norm(x, gamma, beta, rm_ours, rv_ours, True, momentum=0.3)
    count = x.size // shape[1]
    x64 = x.astype(np.float64).swapaxes(0, 1).reshape(shape[1], -1)
    batch_mean = x64.mean(axis=1)
    batch_var = ((x64 - batch_mean[:, None]) ** 2).sum(axis=1) / (count - 1)
    # The batch statistics, rounded once to the dtype (computed in double); the update in
    # the dtype's arithmetic, one rounding per operation.
    mean_t, var_t = cache._mean, batch_var.astype(dtype)
    _close(mean_t, batch_mean, dtype)
    t = np.dtype(dtype).type
    np.testing.assert_array_equal(rm_ours, t(0.7) * rm + t(0.3) * mean_t)
    expected_var = t(0.7) * rv + t(0.3) * var_t
    np.testing.assert_allclose(rv_ours, expected_var, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_statistics_on_exact_data(dtype):
    # Channel values 1, 2, 3, 4 (mean 2.5, biased var 1.25, unbiased 5/3) and 0, 0, 4, 4.
    x = np.array([[1, 0], [2, 0], [3, 4], [4, 4]], dtype)
    rm, rv = np.zeros(2, dtype), np.ones(2, dtype)
    y, _ = cnnative.batch_norm(x, np.ones(2, dtype), np.zeros(2, dtype), rm, rv, True,
                               momentum=1.0, eps=1e-5)
    np.testing.assert_array_equal(rm, np.array([2.5, 2.0], dtype))
    np.testing.assert_array_equal(rv, np.array([5 / 3, 16 / 3], dtype))
    np.testing.assert_allclose(y[:, 1], np.array([-1, -1, 1, 1]) / np.sqrt(1 + 1e-5 / 4),
                               rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_offset_does_not_cancel(dtype):
    # E[x^2] - E[x]^2 would lose every digit of the variance here.
    rng = np.random.default_rng(3)
    x = (1e4 + rng.standard_normal((64, 2, 4, 4))).astype(dtype)
    rm, rv = np.zeros(2, dtype), np.ones(2, dtype)
    y, _ = cnnative.batch_norm(x, np.ones(2, dtype), np.zeros(2, dtype), rm, rv, True)
    y_ref, _, rv_ref, _ = reference.batch_norm(x, np.ones(2), np.zeros(2), np.zeros(2),
                                               np.ones(2), True)
    np.testing.assert_allclose(y, y_ref, atol=1e-2 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(rv, rv_ref, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 9, 13, 11), (37, 300), (3, 2, 28, 28)])
@pytest.mark.parametrize("training", [True, False])
def test_thread_count_does_not_change_results(dtype, shape, training, monkeypatch):
    monkeypatch.setattr(norm, "_MIN_WORK_PER_THREAD", 1)
    monkeypatch.setattr(norm, "_CLAIM_ELEMENTS", 1)
    x, gamma, beta, rm, rv, grad_y = _problem(shape, dtype)
    runs = []
    for threads in (1, 2, 3):
        rm_t, rv_t = rm.copy(), rv.copy()
        y, cache = cnnative.batch_norm(x, gamma, beta, rm_t, rv_t, training, num_threads=threads)
        runs.append((y, rm_t, rv_t, *cnnative.batch_norm_backward(grad_y, cache,
                                                                   num_threads=threads)))
    for run in runs[1:]:
        for ours, first in zip(run, runs[0]):
            assert np.array_equal(ours, first)


@pytest.mark.parametrize("dtype", DTYPES)
# (70, 2, 1, 3): segments shorter than a block; (3, 2, 40, 40): longer than the prefetch distance.
@pytest.mark.parametrize("shape", [(4, 3, 7, 9), (3, 2, 28, 28), (5, 40), (70, 2, 1, 3),
                                   (3, 2, 40, 40)])
def test_every_simd_level_gives_the_same_bits(cap_simd, dtype, shape):
    x, gamma, beta, rm, rv, grad_y = _problem(shape, dtype)
    old = native.set_simd_cap(3)
    try:
        base = [cnnative.batch_norm(x, gamma, beta, rm.copy(), rv.copy(), t) for t in (True, False)]
        base_grads = [cnnative.batch_norm_backward(grad_y, cache) for _, cache in base]
    finally:
        native.set_simd_cap(old)
    cap_simd(native)
    for (y0, _), grads0, training in zip(base, base_grads, (True, False)):
        y, cache = cnnative.batch_norm(x, gamma, beta, rm.copy(), rv.copy(), training)
        assert np.array_equal(y, y0)
        for ours, first in zip(cnnative.batch_norm_backward(grad_y, cache), grads0):
            assert np.array_equal(ours, first)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 3, 5, 7), (6, 4), (16, 4, 28, 28)])
@pytest.mark.parametrize("training", [True, False])
def test_matches_torch(dtype, shape, training):
    torch = pytest.importorskip("torch")
    x, gamma, beta, rm, rv, grad_y = _problem(shape, dtype)
    rm_ours, rv_ours = rm.copy(), rv.copy()
    y, cache = cnnative.batch_norm(x, gamma, beta, rm_ours, rv_ours, training, 0.1, 1e-5)
    grads = cnnative.batch_norm_backward(grad_y, cache)
    tx, tg, tb = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, gamma, beta))
    trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training, 0.1, 1e-5)
    ty.backward(torch.from_numpy(grad_y))
    tol = 5e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(rm_ours, trm.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(rv_ours, trv.numpy(), rtol=tol, atol=tol)
    scale = float(np.abs(grad_y).sum(axis=0).max())
    for ours, theirs in zip(grads, (tx.grad, tg.grad, tb.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=tol, atol=tol * max(1, scale / 50))


def test_training_with_one_value_per_channel_is_refused_like_torch():
    for x in (np.ones((1, 3)), np.ones((1, 3, 1, 1))):
        rm, rv = np.zeros(3), np.ones(3)
        with pytest.raises(ValueError, match="batch_norm: training needs more than one value"):
            cnnative.batch_norm(x, np.ones(3), np.zeros(3), rm, rv, True)
        assert not rm.any() and (rv == 1).all()
        y, _ = cnnative.batch_norm(x, np.ones(3), np.zeros(3), rm, rv, False)  # evaluation is fine
        assert y.shape == x.shape


@pytest.mark.parametrize("change,error,match", [
    (lambda a: {**a, "gamma": np.ones(4)}, ValueError, r"gamma must have shape \(3,\)"),
    (lambda a: {**a, "beta": np.ones((3, 1))}, ValueError, "beta must be a 1-D array"),
    (lambda a: {**a, "running_mean": np.zeros(2)}, ValueError, r"running_mean must have shape \(3,\)"),
    (lambda a: {**a, "running_var": np.ones(3, np.float32)}, TypeError, "running_var has dtype float32"),
    (lambda a: {**a, "running_var": [1.0, 1.0, 1.0]}, TypeError, "running_var must be a numpy array"),
    (lambda a: {**a, "gamma": np.ones(3, np.int64)}, TypeError, "gamma must be float32 or float64"),
    (lambda a: {**a, "x": np.ones((4, 3, 2))}, ValueError, "x must be a 2-D or 4-D array"),
    (lambda a: {**a, "x": np.ones((0, 3))}, ValueError, "x must be non-empty"),
    (lambda a: {**a, "x": np.ones((4, 3), np.float16)}, TypeError, "x must be float32 or float64"),
    (lambda a: {**a, "training": 1}, TypeError, "training must be a bool"),
    (lambda a: {**a, "momentum": -0.1}, ValueError, r"momentum must be in \[0, 1\]"),
    (lambda a: {**a, "momentum": "0.1"}, TypeError, "momentum must be a real number"),
    (lambda a: {**a, "eps": 0.0}, ValueError, "eps must be a positive"),
    (lambda a: {**a, "eps": float("nan")}, ValueError, "eps must be a positive"),
    (lambda a: {**a, "num_threads": 0}, ValueError, "num_threads"),
])
def test_bad_arguments(change, error, match):
    arguments = {"x": np.ones((4, 3)), "gamma": np.ones(3), "beta": np.zeros(3),
                 "running_mean": np.zeros(3), "running_var": np.ones(3), "training": True}
    arguments = change(arguments)
    saved = arguments["running_mean"].copy() if isinstance(arguments["running_mean"], np.ndarray) else None
    with pytest.raises(error, match=match):
        cnnative.batch_norm(**arguments)
    if saved is not None:
        np.testing.assert_array_equal(arguments["running_mean"], saved)


def test_read_only_running_statistics_are_refused_in_training_only():
    rm, rv = np.zeros(3), np.ones(3)
    rm.flags.writeable = False
    with pytest.raises(ValueError, match="batch_norm: running_mean must be writeable"):
        cnnative.batch_norm(np.ones((4, 3)), np.ones(3), np.zeros(3), rm, rv, True)
    cnnative.batch_norm(np.ones((4, 3)), np.ones(3), np.zeros(3), rm, rv, False)


def test_non_contiguous_running_statistics_are_updated_in_place():
    x, gamma, beta, rm, rv, _ = _problem((6, 3, 4, 4), np.float64)
    buffer = np.zeros((2, 3))
    view = buffer[:, ::1][0]
    strided = np.zeros(6)[::2]
    strided[...] = rv
    view[...] = rm
    cnnative.batch_norm(x, gamma, beta, view, strided, True)
    expected_rm, expected_rv = rm.copy(), rv.copy()
    cnnative.batch_norm(x, gamma, beta, expected_rm, expected_rv, True)
    np.testing.assert_array_equal(buffer[0], expected_rm)
    np.testing.assert_array_equal(strided, expected_rv)


def test_backward_checks_its_arguments():
    x = np.ones((4, 3))
    _, cache = cnnative.batch_norm(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True)
    with pytest.raises(TypeError, match="batch_norm_backward: cache must be"):
        cnnative.batch_norm_backward(x, (1, 2))
    with pytest.raises(ValueError, match="batch_norm_backward: grad_y must have the forward"):
        cnnative.batch_norm_backward(np.ones((4, 2)), cache)
    with pytest.raises(TypeError, match="batch_norm_backward: grad_y has dtype float32"):
        cnnative.batch_norm_backward(x.astype(np.float32), cache)
    assert "BatchNormCache training" in repr(cache)


def test_kernels_recheck_their_preconditions():
    x = np.ones((4, 3, 2))
    c = np.ones(3)
    native.batch_norm_train(x, c, c, 1e-5, np.empty_like(x), np.empty(3), np.empty(3),
                            np.empty(3), 0, 3)
    bad = [
        lambda: native.batch_norm_train(x, c, c, 1e-5, np.empty_like(x), np.empty(3),
                                        np.empty(3), np.empty(3), 0, 4),
        lambda: native.batch_norm_train(x, np.ones(2), c, 1e-5, np.empty_like(x), np.empty(3),
                                        np.empty(3), np.empty(3), 0, 3),
        lambda: native.batch_norm_train(x, c, c, 0.0, np.empty_like(x), np.empty(3),
                                        np.empty(3), np.empty(3), 0, 3),
        lambda: native.batch_norm_train(x[:1, :, :1], c, c, 1e-5, np.empty((1, 3, 1)),
                                        np.empty(3), np.empty(3), np.empty(3), 0, 3),
        lambda: native.batch_norm_eval(x, c, c, c, c, np.empty((4, 3, 2), np.float32), 0, 3),
        lambda: native.batch_norm_eval(x[:, :, ::2], c, c, c, c, np.empty((4, 3, 1)), 0, 3),
        lambda: native.batch_norm_backward(x, x, c, c, c, True, np.empty_like(x), np.empty(3),
                                           np.empty(2), 0, 3),
        lambda: native.batch_norm_backward(x, x, c, c, c, True, np.empty((4, 3, 3)),
                                           np.empty(3), np.empty(3), 0, 3),
    ]
    for call in bad:
        with pytest.raises((ValueError, TypeError)):
            call()


def _lane_sum(values, pad):
    """The kernels' fixed order for one channel, values (N, S) in double: element i of a segment
    goes to lane i % 16 (a partial last block padded with ``pad``), each lane adds segment by
    segment, block by block, and the lanes are added by the tree 8, 4, 2, 1."""
    n, s = values.shape
    blocks = -(-s // 16)
    padded = np.full((n, blocks * 16), pad)
    padded[:, :s] = values
    lanes = np.zeros(16)
    for row in padded.reshape(-1, 16):
        lanes = lanes + row
    for width in (8, 4, 2, 1):
        lanes[:width] = lanes[:width] + lanes[width:2 * width]
    return lanes[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3, 7, 9), (3, 2, 1, 40), (6, 2, 2, 2), (2, 2, 5, 16)])
def test_statistics_and_sums_follow_the_documented_order_exactly(cap_simd, dtype, shape):
    # Pins the summation order (norm_simd_body.h) bit for bit, at every SIMD level: a faster
    # kernel may not change it without changing this test.
    cap_simd(native)
    x, gamma, beta, rm, rv, grad_y = _problem(shape, dtype)
    eps = 1e-5
    _, cache = cnnative.batch_norm(x, gamma, beta, rm.copy(), rv.copy(), True, eps=eps)
    _, grad_gamma, grad_beta = cnnative.batch_norm_backward(grad_y, cache)
    n, channels = shape[0], shape[1]
    count = float(x.size // channels)
    for c in range(channels):
        xc = x[:, c].reshape(n, -1).astype(np.float64)
        gc = grad_y[:, c].reshape(n, -1).astype(np.float64)
        mean = _lane_sum(xc, -0.0) / count
        m2 = _lane_sum((xc - mean) ** 2, 0.0)
        assert cache._mean[c] == dtype(mean)
        inv_std = dtype(1.0 / np.sqrt(m2 / count + eps))
        assert cache._inv_std[c] == inv_std
        mean_t = float(dtype(mean))
        assert grad_beta[c] == dtype(_lane_sum(gc, -0.0))
        assert grad_gamma[c] == dtype(_lane_sum(gc * (xc - mean_t), -0.0) * float(inv_std))
