"""cnnative.primer against the article's formulas (primer_reference), finite differences, the
article's demo lines and an error table."""
import warnings

import numpy as np
import pytest
import scipy.signal

from cnnative.testing import primer as ref
from cnnative.testing import numeric_gradient
from cnnative import primer
from cnnative.primer import (ConvolutionalLayer, FeatureMap, FullyConnectedLayer, MaxPoolingMap,
                             sigmoid, sigmoid_prime)


@pytest.fixture
def seeded():
    """Seed NumPy's global generator (the one the article's randn uses); restore it after."""
    state = np.random.get_state()
    np.random.seed(20190528)
    yield
    np.random.set_state(state)


def rng(seed=0):
    return np.random.default_rng(seed)


def assert_close(ours, expected):
    """Equal to float64 rounding: a few ulps of the largest magnitude involved."""
    assert ours.shape == expected.shape and ours.dtype == np.float64
    scale = max(np.abs(expected).max(), 1.0)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-13 * scale)


def backward_gradients(layer, a_gradient):
    """(a_prev_gradient, w_gradient) of ``sum(a * a_gradient)``, read off one step of size 1
    taken on a copy of the weights (restored afterwards)."""
    w_before, b_before = layer.w.copy(), layer.b.copy()
    a_prev_gradient = layer.propagate_backward(a_gradient, 1.0).copy()
    w_gradient = w_before - layer.w
    layer.w, layer.b = w_before, b_before
    return a_prev_gradient, w_gradient


# ---------------------------------------------------------------------------------- sigmoid


def test_sigmoid_is_the_articles_expression_to_the_bit():
    z = np.linspace(-700, 700, 20001)
    np.testing.assert_array_equal(sigmoid(z), ref.sigmoid(z))
    np.testing.assert_array_equal(sigmoid_prime(z), ref.sigmoid_prime(z))


def test_sigmoid_large_magnitudes_without_warnings():
    z = np.array([-np.inf, -1e308, -1000.0, -745.2, 745.2, 1000.0, 1e308, np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s, ds = sigmoid(z), sigmoid_prime(z)
        s32 = sigmoid(np.array([-np.inf, -1e38, -200, -104, 104, 200, 1e38, np.inf], np.float32))
    np.testing.assert_array_equal(s, [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(ds, np.zeros(8))
    assert s32.dtype == np.float32
    np.testing.assert_array_equal(s32, [0, 0, 0, 0, 1, 1, 1, 1])
    assert np.isnan(sigmoid(np.nan))


def test_sigmoid_converts_integers_without_wrapping():
    assert sigmoid(np.uint8(3)) == sigmoid(3.0)
    unsigned = np.array([0, 2, 255], np.uint8)
    assert sigmoid(unsigned).dtype == np.float64
    np.testing.assert_array_equal(sigmoid(unsigned), sigmoid(unsigned.astype(float)))
    np.testing.assert_array_equal(sigmoid(np.array([-2, 0, 2])), ref.sigmoid(np.array([-2.0, 0, 2])))
    assert sigmoid(0) == 0.5 and sigmoid_prime(0) == 0.25
    with pytest.raises(TypeError, match="sigmoid: z must be real"):
        sigmoid(np.array([1j]))


# ------------------------------------------------------------------------------- FeatureMap


@pytest.mark.scipy_order
@pytest.mark.parametrize("shape, overlay", [((4, 5), (2, 2)), ((28, 28), (5, 5)), ((7, 3), (7, 1)),
                                            ((1, 1), (1, 1)), ((6, 9), (3, 4))])
def test_feature_map_matches_the_article_to_the_bit(seeded, shape, overlay):
    a_prev = rng(1).standard_normal(shape) * 2
    fm = FeatureMap(a_prev, overlay)
    w, b = fm.w.copy(), fm.b.copy()
    a = fm.feed_forward()
    z_ref, a_ref = ref.feature_map_forward(a_prev, w, b)
    np.testing.assert_array_equal(fm.z, z_ref)
    np.testing.assert_array_equal(a, a_ref)
    assert a is fm.a

    a_gradient = rng(2).standard_normal(a.shape)
    returned = fm.propagate_backward(a_gradient, 0.1)
    w_ref, b_ref, a_prev_gradient_ref = ref.feature_map_backward(a_prev, w, b, z_ref, a_gradient, 0.1)
    assert returned is fm.a_prev_gradient
    np.testing.assert_array_equal(returned, a_prev_gradient_ref)
    np.testing.assert_array_equal(fm.w, w_ref)
    np.testing.assert_array_equal(fm.b, b_ref)
    assert fm.b.shape == (1, 1)
    np.testing.assert_array_equal(fm.a_prev, a_prev)  # input untouched


def test_feature_map_draws_the_articles_weights(seeded):
    state = np.random.get_state()
    fm = FeatureMap(np.ones((4, 5)), (2, 3))
    np.random.set_state(state)
    w, b = np.random.randn(2, 3), np.random.randn(1, 1)
    np.testing.assert_array_equal(fm.w, w)
    np.testing.assert_array_equal(fm.b, b)
    assert fm.overlay_shape == (2, 3)
    assert fm.z is None and fm.a is None and fm.a_prev_gradient is None


def test_feature_map_integer_and_float32_input_as_float64_like_scipy(seeded):
    ints = np.arange(20).reshape(4, 5)
    fm = FeatureMap(ints, (2, 2))
    assert fm.a_prev.dtype == np.float64
    z_ref, _ = ref.feature_map_forward(ints, fm.w, fm.b)  # scipy upcasts the ints itself
    fm.feed_forward()
    np.testing.assert_array_equal(fm.z, z_ref)
    single = FeatureMap(ints.astype(np.float32), (2, 2))
    single.w, single.b = fm.w, fm.b
    np.testing.assert_array_equal(single.feed_forward(), fm.a)


def test_feature_map_keeps_float64_arrays_by_reference_and_updates_in_place(seeded):
    a_prev = rng().standard_normal((5, 6))
    fm = FeatureMap(a_prev, (2, 2))
    assert fm.a_prev is a_prev
    w, b = fm.w, fm.b
    fm.feed_forward()
    fm.propagate_backward(np.ones((4, 5)), 0.5)
    assert fm.w is w and fm.b is b  # the article's ``-=`` updates


def test_feature_map_strided_input_gives_the_contiguous_result(seeded):
    big = rng().standard_normal((12, 15))
    strided = big[::2, ::3]
    fm = FeatureMap(strided, (3, 2))
    contiguous = FeatureMap(strided.copy(), (3, 2))
    contiguous.w, contiguous.b = fm.w.copy(), fm.b.copy()
    np.testing.assert_array_equal(fm.feed_forward(), contiguous.feed_forward())
    g = rng(3).standard_normal(fm.a.shape)
    np.testing.assert_array_equal(fm.propagate_backward(g, 0.1), contiguous.propagate_backward(g, 0.1))


def test_feature_map_gradients_against_finite_differences(seeded):
    a_prev = rng(4).standard_normal((6, 7))
    fm = FeatureMap(a_prev, (3, 2))
    g = rng(5).standard_normal((4, 6))

    def loss():
        return float(np.sum(fm.feed_forward() * g))

    numeric_a_prev = numeric_gradient(loss, fm.a_prev)
    numeric_w = numeric_gradient(loss, fm.w)
    fm.feed_forward()
    a_prev_gradient, w_gradient = backward_gradients(fm, g)
    np.testing.assert_allclose(a_prev_gradient, numeric_a_prev, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(w_gradient, numeric_w, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------- MaxPoolingMap


@pytest.mark.parametrize("shape, overlay", [((4, 5), (2, 2)), ((24, 24), (2, 2)), ((5, 7), (3, 2)),
                                            ((3, 3), (3, 3)), ((6, 1), (2, 1))])
def test_max_pooling_matches_the_article_with_ties(shape, overlay):
    # Few distinct values, so most windows hold their maximum more than once.
    a_prev = rng(6).integers(0, 4, shape).astype(float)
    mpl = MaxPoolingMap(a_prev, overlay)
    values = mpl.feed_forward()
    values_ref, positions_ref = ref.max_pool_forward(a_prev, overlay)
    assert values is mpl.max_values
    np.testing.assert_array_equal(values, values_ref)
    assert mpl.max_positions.shape == positions_ref.shape and mpl.max_positions.dtype == object
    assert mpl.max_positions.tolist() == positions_ref.tolist()
    r, c = values.shape[0] - 1, values.shape[1] - 1
    assert isinstance(mpl.max_positions[r][c], tuple)
    assert a_prev[mpl.max_positions[r][c]] == values[r][c]  # usable as an index
    rows, cols = np.divmod(mpl.max_indices, shape[1])
    np.testing.assert_array_equal(a_prev[rows, cols], values)

    a_gradient = rng(7).standard_normal(values.shape)
    returned = mpl.propagate_backward(a_gradient)
    assert returned is mpl.a_prev_gradient
    np.testing.assert_array_equal(returned, ref.max_pool_backward(shape, positions_ref, a_gradient))


def test_max_pooling_the_articles_example():
    data = np.array([[8, 0, 11, 1, 6], [10, 2, 4, 14, 17], [5, 16, 19, 15, 7], [12, 13, 9, 18, 3]])
    mpl = MaxPoolingMap(data, (2, 2))
    np.testing.assert_array_equal(mpl.feed_forward(), [[10, 11, 14, 17], [16, 19, 19, 17],
                                                       [16, 19, 19, 18]])
    assert mpl.max_positions.tolist() == [[(1, 0), (0, 2), (1, 3), (1, 4)],
                                          [(2, 1), (2, 2), (2, 2), (1, 4)],
                                          [(2, 1), (2, 2), (2, 2), (3, 3)]]


def test_max_pooling_overlapping_windows_accumulate():
    # The centre is the maximum of all four 2x2 windows of a 3x3 input.
    a_prev = np.array([[1.0, 2, 3], [4, 9, 5], [6, 7, 8]])
    mpl = MaxPoolingMap(a_prev, (2, 2))
    mpl.feed_forward()
    assert mpl.max_positions.tolist() == [[(1, 1)] * 2] * 2
    g = np.array([[0.1, 0.2], [0.3, 0.4]])
    expected = np.zeros((3, 3))
    expected[1, 1] = ((0.1 + 0.2) + 0.3) + 0.4  # added in row-major window order
    np.testing.assert_array_equal(mpl.propagate_backward(g), expected)
    # With the article's demo data, 19 at (2, 2) is the maximum of four windows.
    data = np.array([[8, 0, 11, 1, 6], [10, 2, 4, 14, 17], [5, 16, 19, 15, 7], [12, 13, 9, 18, 3]])
    demo = MaxPoolingMap(data, (2, 2))
    demo.feed_forward()
    gradient = demo.propagate_backward(np.ones((3, 4)))
    assert gradient[2, 2] == 4 and gradient[1, 4] == 2 and gradient[2, 1] == 2 and gradient.sum() == 12


def test_max_pooling_nan_and_infinities_like_argmax():
    nan, inf = np.nan, np.inf
    a_prev = np.array([[1, nan, nan, 2], [nan, 3, -inf, -inf], [0, inf, -inf, -inf]])
    mpl = MaxPoolingMap(a_prev, (2, 2))
    values = mpl.feed_forward()
    values_ref, positions_ref = ref.max_pool_forward(a_prev, (2, 2))
    np.testing.assert_array_equal(values, values_ref)
    assert mpl.max_positions.tolist() == positions_ref.tolist()
    assert mpl.max_positions[0][1] == (0, 1)  # the first of the window's NaNs


def test_max_positions_follow_the_latest_forward_pass():
    a_prev = np.array([[1.0, 2], [3, 4]])
    mpl = MaxPoolingMap(a_prev, (2, 2))
    assert mpl.max_positions is None and mpl.max_indices is None
    mpl.feed_forward()
    assert mpl.max_positions[0][0] == (1, 1)
    assert mpl.max_positions is mpl.max_positions  # built once
    a_prev[0, 0] = 10  # kept by reference, as in the article
    mpl.feed_forward()
    assert mpl.max_positions[0][0] == (0, 0)
    np.testing.assert_array_equal(mpl.max_indices, [[0]])


def test_max_pooling_gradient_against_finite_differences():
    # Distinct values far apart compared to the step, so no window changes its maximum.
    a_prev = rng(8).permutation(42).reshape(6, 7).astype(float)
    mpl = MaxPoolingMap(a_prev, (3, 2))
    g = rng(9).standard_normal((4, 6))

    def loss():
        return float(np.sum(mpl.feed_forward() * g))

    numeric = numeric_gradient(loss, mpl.a_prev, h=1e-3)  # exact but for rounding: linear here
    mpl.feed_forward()
    np.testing.assert_allclose(mpl.propagate_backward(g), numeric, rtol=1e-8, atol=1e-9)


# ---------------------------------------------------------------------- FullyConnectedLayer


@pytest.mark.parametrize("shape, neurons", [((4, 5), 10), ((784,), 30), ((1,), 1), ((3, 2, 4), 5)])
def test_fully_connected_matches_the_article(seeded, shape, neurons):
    a_prev = rng(10).standard_normal(shape)
    fcl = FullyConnectedLayer(a_prev, neurons)
    assert fcl.w.shape == (neurons, a_prev.size) and fcl.b.shape == (neurons, 1)
    w, b = fcl.w.copy(), fcl.b.copy()
    a = fcl.feed_forward()
    z_ref, a_ref = ref.fully_connected_forward(a_prev, w, b)
    np.testing.assert_array_equal(fcl.z, z_ref)  # the same NumPy calls as the article
    np.testing.assert_array_equal(a, a_ref)

    a_gradient = rng(11).standard_normal((neurons, 1))
    returned = fcl.propagate_backward(a_gradient, 0.1)
    w_ref, b_ref, a_prev_gradient_ref = ref.fully_connected_backward(a_prev, w, b, z_ref,
                                                                     a_gradient, 0.1)
    assert returned is fcl.a_prev_gradient and returned.shape == shape
    np.testing.assert_array_equal(returned, a_prev_gradient_ref)
    np.testing.assert_array_equal(fcl.w, w_ref)
    np.testing.assert_array_equal(fcl.b, b_ref)


def test_fully_connected_draws_the_articles_weights(seeded):
    state = np.random.get_state()
    fcl = FullyConnectedLayer(np.ones((4, 5)), 10)
    np.random.set_state(state)
    w, b = np.random.randn(10, 20), np.random.randn(10, 1)
    np.testing.assert_array_equal(fcl.w, w)
    np.testing.assert_array_equal(fcl.b, b)
    assert fcl.num_neurons == 10


def test_fully_connected_accepts_a_flat_gradient(seeded):
    fcl = FullyConnectedLayer(rng().standard_normal((3, 4)), 6)
    twin = FullyConnectedLayer(fcl.a_prev, 6)
    twin.w, twin.b = fcl.w.copy(), fcl.b.copy()
    fcl.feed_forward()
    twin.feed_forward()
    g = rng(1).standard_normal(6)
    np.testing.assert_array_equal(fcl.propagate_backward(g, 0.1),
                                  twin.propagate_backward(g.reshape(6, 1), 0.1))
    np.testing.assert_array_equal(fcl.w, twin.w)


def test_fully_connected_gradients_against_finite_differences(seeded):
    fcl = FullyConnectedLayer(rng(12).standard_normal((3, 4)), 5)
    g = rng(13).standard_normal((5, 1))

    def loss():
        return float(np.sum(fcl.feed_forward() * g))

    numeric_a_prev = numeric_gradient(loss, fcl.a_prev)
    numeric_w = numeric_gradient(loss, fcl.w)
    fcl.feed_forward()
    a_prev_gradient, w_gradient = backward_gradients(fcl, g)
    np.testing.assert_allclose(a_prev_gradient, numeric_a_prev, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(w_gradient, numeric_w, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------- ConvolutionalLayer


@pytest.mark.parametrize("shape, maps, overlay", [((3, 6, 7), 4, (2, 3)), ((1, 28, 28), 2, (5, 5)),
                                                  ((20, 12, 12), 3, (5, 5)), ((2, 4, 4), 1, (4, 4))])
def test_convolutional_layer_equals_per_map_formulas_summed_over_depth(seeded, shape, maps, overlay):
    a_prev = rng(14).standard_normal(shape)
    layer = ConvolutionalLayer(a_prev, maps, overlay)
    assert layer.w.shape == (maps, shape[0], *overlay) and layer.b.shape == (maps, 1, 1)
    w, b = layer.w.copy(), layer.b.copy()
    a = layer.feed_forward()
    z_ref, a_ref = ref.convolutional_layer_forward(a_prev, w, b)
    assert_close(layer.z, z_ref)
    assert_close(a, a_ref)

    a_gradient = rng(15).standard_normal(a.shape)
    returned = layer.propagate_backward(a_gradient, 0.1)
    w_ref, b_ref, a_prev_gradient_ref = ref.convolutional_layer_backward(a_prev, w, b, layer.z,
                                                                         a_gradient, 0.1)
    assert returned is layer.a_prev_gradient
    assert_close(returned, a_prev_gradient_ref)
    assert_close(layer.w, w_ref)
    assert_close(layer.b, b_ref)


def test_convolutional_layer_is_the_3d_correlation_of_appendix_b(seeded):
    a_prev = rng(16).standard_normal((3, 7, 6))
    layer = ConvolutionalLayer(a_prev, 2, (3, 3))
    layer.feed_forward()
    for f in range(2):
        stacked = scipy.signal.correlate(a_prev, layer.w[f], mode="valid")  # shape (1, 5, 4)
        assert_close(layer.z[f], stacked[0] + layer.b[f])


def test_convolutional_layer_of_one_map_deep_is_feature_maps_in_turn(seeded):
    a_prev = rng(17).standard_normal((9, 8))
    state = np.random.get_state()
    layer = ConvolutionalLayer(a_prev, 3, (3, 2))
    np.random.set_state(state)
    maps = [FeatureMap(a_prev, (3, 2)) for _ in range(3)]
    np.testing.assert_array_equal(layer.w[:, 0], [m.w for m in maps])
    np.testing.assert_array_equal(layer.b, [m.b for m in maps])
    assert_close(layer.feed_forward(), np.array([m.feed_forward() for m in maps]))
    g = rng(18).standard_normal(layer.a.shape)
    returned = layer.propagate_backward(g, 0.1)
    assert returned.shape == a_prev.shape
    assert_close(returned, sum(m.propagate_backward(g[f], 0.1) for f, m in enumerate(maps)))
    assert_close(layer.w[:, 0], np.array([m.w for m in maps]))
    assert_close(layer.b, np.array([m.b for m in maps]))


def test_convolutional_layer_gradients_against_finite_differences(seeded):
    layer = ConvolutionalLayer(rng(19).standard_normal((2, 5, 6)), 3, (2, 3))
    g = rng(20).standard_normal((3, 4, 4))

    def loss():
        return float(np.sum(layer.feed_forward() * g))

    numeric_a_prev = numeric_gradient(loss, layer.a_prev)
    numeric_w = numeric_gradient(loss, layer.w)
    layer.feed_forward()
    a_prev_gradient, w_gradient = backward_gradients(layer, g)
    np.testing.assert_allclose(a_prev_gradient, numeric_a_prev, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(w_gradient, numeric_w, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------------------- chaining


def test_chained_layers_gradient_against_finite_differences(seeded):
    """Feature map -> max pooling -> fully connected, backward through all three."""
    image = rng(21).standard_normal((9, 10))
    fm = FeatureMap(image, (3, 3))
    mpl = MaxPoolingMap(fm.feed_forward(), (2, 2))
    fcl = FullyConnectedLayer(mpl.feed_forward(), 4)
    g = rng(22).standard_normal((4, 1))

    def loss():
        mpl.a_prev = fm.feed_forward()
        fcl.a_prev = mpl.feed_forward()
        return float(np.sum(fcl.feed_forward() * g))

    numeric = numeric_gradient(loss, fm.a_prev, h=1e-7)
    loss()
    analytic = fm.propagate_backward(mpl.propagate_backward(fcl.propagate_backward(g, 0.0)), 0.0)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------------- the article's demo


@pytest.mark.scipy_order
def test_the_articles_demo_lines_run_unchanged(seeded):
    from cnnative.primer import (FeatureMap, FullyConnectedLayer, MaxPoolingMap, as_col,
                                 get_feature_map_shape)

    # The demo at the end of the article's code listing, verbatim.
    input_data = np.arange(20).reshape(4,5) # 4x5 array
    overlay_shape = (2, 2)
    cl = FeatureMap(input_data, overlay_shape)
    cl.feed_forward()
    fl_shape = get_feature_map_shape(input_data.shape, overlay_shape)
    cl.propagate_backward(np.random.randn(*fl_shape), 0.1)

    max_pool_input_data = np.array([[8,0,11,1,6],[10,2,4,14,17],[5,16,19,15,7],[12,13,9,18,3]])
    mpl = MaxPoolingMap(max_pool_input_data, overlay_shape)
    mpl.feed_forward()
    fl_shape = get_feature_map_shape(max_pool_input_data.shape, overlay_shape)
    mpl.propagate_backward(np.random.randn(*fl_shape))

    fcl = FullyConnectedLayer(input_data, 10)
    fcl.feed_forward()
    fcl.propagate_backward(as_col(np.random.randn(10)), 0.1)

    # Every number again from the article's formulas, with the same random draws.
    np.random.seed(20190528)
    w, b = np.random.randn(2, 2), np.random.randn(1, 1)
    z, a = ref.feature_map_forward(input_data, w, b)
    w, b, a_prev_gradient = ref.feature_map_backward(input_data, w, b, z, np.random.randn(3, 4), 0.1)
    np.testing.assert_array_equal(cl.a, a)
    np.testing.assert_array_equal(cl.a_prev_gradient, a_prev_gradient)
    np.testing.assert_array_equal(cl.w, w)
    np.testing.assert_array_equal(cl.b, b)

    values, positions = ref.max_pool_forward(max_pool_input_data, (2, 2))
    np.testing.assert_array_equal(mpl.max_values, values)
    assert mpl.max_positions.tolist() == positions.tolist()
    np.testing.assert_array_equal(mpl.a_prev_gradient,
                                  ref.max_pool_backward((4, 5), positions, np.random.randn(3, 4)))

    w, b = np.random.randn(10, 20), np.random.randn(10, 1)
    z, a = ref.fully_connected_forward(input_data, w, b)
    w, b, a_prev_gradient = ref.fully_connected_backward(input_data, w, b, z,
                                                         np.random.randn(10).reshape(10, 1), 0.1)
    np.testing.assert_array_equal(fcl.a, a)
    np.testing.assert_array_equal(fcl.a_prev_gradient, a_prev_gradient)
    np.testing.assert_array_equal(fcl.w, w)
    np.testing.assert_array_equal(fcl.b, b)


def test_helpers():
    assert primer.get_feature_map_shape((4, 5), (2, 2)) == (3, 4)
    assert primer.get_feature_map_shape((28, 28), 5) == (24, 24)
    col = primer.as_col(np.arange(6).reshape(2, 3))
    assert col.shape == (6, 1)
    np.testing.assert_array_equal(col[:, 0], np.arange(6))


# ---------------------------------------------------------------------------------- errors


def _forwarded(layer):
    layer.feed_forward()
    return layer


X = np.zeros((4, 5))

ERRORS = [
    (lambda: FeatureMap(np.zeros(5), (2, 2)), ValueError, "FeatureMap: a_prev must be a 2-D array, got ndim=1"),
    (lambda: FeatureMap(np.zeros((0, 3)), (1, 1)), ValueError, "FeatureMap: a_prev must be non-empty"),
    (lambda: FeatureMap(X.astype(complex), (2, 2)), TypeError, "FeatureMap: a_prev must be an integer or float"),
    (lambda: FeatureMap(X.astype(bool), (2, 2)), TypeError, "got dtype bool"),
    (lambda: FeatureMap(X.astype(np.longdouble), (2, 2)), TypeError, r"a_prev must be an integer or float \(at most 64-bit\)"),
    (lambda: FeatureMap([["a"]], (1, 1)), TypeError, "FeatureMap: a_prev must be an integer or float"),
    (lambda: FeatureMap(X, (5, 2)), ValueError, r"FeatureMap: overlay_shape \(5, 2\) is larger than the input \(4, 5\)"),
    (lambda: FeatureMap(X, (0, 2)), ValueError, "FeatureMap: overlay_shape must be >= 1"),
    (lambda: FeatureMap(X, (2.0, 2)), TypeError, "FeatureMap: overlay_shape must be an int or a pair of ints"),
    (lambda: FeatureMap(X, (1, 2, 3)), ValueError, "FeatureMap: overlay_shape must be an int or a pair of ints"),
    (lambda: FeatureMap(X, (2, 2)).propagate_backward(np.ones((3, 4)), 0.1), RuntimeError,
     r"FeatureMap.propagate_backward: call feed_forward\(\) first"),
    (lambda: _forwarded(FeatureMap(X, (2, 2))).propagate_backward(np.ones((4, 3)), 0.1), ValueError,
     r"FeatureMap.propagate_backward: a_gradient must have shape \(3, 4\), got \(4, 3\)"),
    (lambda: _forwarded(FeatureMap(X, (2, 2))).propagate_backward(np.ones((3, 4), complex), 0.1),
     TypeError, "FeatureMap.propagate_backward: a_gradient must be an integer or float"),
    (lambda: _forwarded(FeatureMap(X, (2, 2))).propagate_backward(np.ones((3, 4)), "0.1"), TypeError,
     "FeatureMap.propagate_backward: step_size must be a real number"),
    (lambda: _forwarded(FeatureMap(X, (2, 2))).propagate_backward(np.ones((3, 4)), np.nan), ValueError,
     "FeatureMap.propagate_backward: step_size must be finite"),
    (lambda: _forwarded(FeatureMap(X, (2, 2))).propagate_backward(np.ones((3, 4)), [0.1, 0.2]), ValueError,
     "step_size must be a scalar"),
    (lambda: setattr(FeatureMap(X, (2, 2)), "w", np.zeros((3, 3))), ValueError,
     r"FeatureMap: w must have shape \(2, 2\), got \(3, 3\)"),
    (lambda: setattr(FeatureMap(X, (2, 2)), "b", 0.5), ValueError, r"FeatureMap: b must have shape \(1, 1\), got \(\)"),
    (lambda: setattr(FeatureMap(X, (2, 2)), "a_prev", np.zeros((5, 5))), ValueError,
     r"FeatureMap: a_prev must have shape \(4, 5\), got \(5, 5\)"),
    (lambda: setattr(FeatureMap(X, (2, 2)), "a_prev", X.astype(complex)), TypeError,
     "FeatureMap: a_prev must be an integer or float"),
    (lambda: MaxPoolingMap(np.zeros((2, 3, 4)), (2, 2)), ValueError, "MaxPoolingMap: a_prev must be a 2-D array"),
    (lambda: MaxPoolingMap(X, (2, 6)), ValueError, r"MaxPoolingMap: overlay_shape \(2, 6\) is larger than the input"),
    (lambda: MaxPoolingMap(X, (2, 2)).propagate_backward(np.ones((3, 4))), RuntimeError,
     r"MaxPoolingMap.propagate_backward: call feed_forward\(\) first"),
    (lambda: _forwarded(MaxPoolingMap(X, (2, 2))).propagate_backward(np.ones(12)), ValueError,
     r"MaxPoolingMap.propagate_backward: a_gradient must have shape \(3, 4\), got \(12,\)"),
    (lambda: FullyConnectedLayer(np.zeros(0), 3), ValueError, "FullyConnectedLayer: a_prev must be non-empty"),
    (lambda: FullyConnectedLayer(X, 0), ValueError, "FullyConnectedLayer: num_neurons must be a positive integer, got 0"),
    (lambda: FullyConnectedLayer(X, 2.5), TypeError, "FullyConnectedLayer: num_neurons must be a positive integer, got 2.5"),
    (lambda: FullyConnectedLayer(X, True), TypeError, "FullyConnectedLayer: num_neurons must be a positive integer, got True"),
    (lambda: FullyConnectedLayer(X.astype(complex), 3), TypeError, "FullyConnectedLayer: a_prev must be an integer or float"),
    (lambda: _forwarded(FullyConnectedLayer(X, 3)).propagate_backward(np.ones((3, 2)), 0.1), ValueError,
     r"FullyConnectedLayer.propagate_backward: a_gradient must have shape \(3, 1\), got \(3, 2\)"),
    (lambda: FullyConnectedLayer(X, 3).propagate_backward(np.ones((3, 1)), 0.1), RuntimeError,
     r"call feed_forward\(\) first"),
    (lambda: setattr(FullyConnectedLayer(X, 3), "w", np.zeros((3, 21))), ValueError,
     r"FullyConnectedLayer: w must have shape \(3, 20\), got \(3, 21\)"),
    (lambda: ConvolutionalLayer(np.zeros((1, 2, 3, 4)), 2, (2, 2)), ValueError,
     "ConvolutionalLayer: a_prev must be a 2-D or 3-D array, got ndim=4"),
    (lambda: ConvolutionalLayer(np.zeros((2, 3, 4)), 0, (2, 2)), ValueError, "ConvolutionalLayer: num_maps must be a positive integer"),
    (lambda: ConvolutionalLayer(np.zeros((2, 3, 4)), 2, (4, 2)), ValueError,
     r"ConvolutionalLayer: overlay_shape \(4, 2\) is larger than the input \(3, 4\)"),
    (lambda: _forwarded(ConvolutionalLayer(np.zeros((2, 3, 4)), 3, (2, 2))).propagate_backward(np.ones((2, 2, 3)), 0.1),
     ValueError, r"ConvolutionalLayer.propagate_backward: a_gradient must have shape \(3, 2, 3\), got \(2, 2, 3\)"),
    (lambda: primer.get_feature_map_shape((4,), (2, 2)), ValueError, "get_feature_map_shape: input_data_shape must have 2 entries"),
    (lambda: primer.get_feature_map_shape((4, 5), (5, 5)), ValueError, r"overlay_shape \(5, 5\) is larger than the input \(4, 5\)"),
    (lambda: primer.get_feature_map_shape((4, -5), (1, 1)), ValueError, "must not contain negative sizes"),
]


@pytest.mark.parametrize("call, exception, message", ERRORS)
def test_errors_name_the_argument(call, exception, message):
    with pytest.raises(exception, match=message):
        call()


def test_a_failed_assignment_keeps_the_old_value():
    fm = FeatureMap(X, (2, 2))
    w = fm.w
    with pytest.raises(ValueError):
        fm.w = np.zeros((2, 3))
    assert fm.w is w
