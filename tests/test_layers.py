"""Layers against NumPy references and finite differences; configs; errors."""
import numpy as np
import pytest

import cnnative
from cnnative import testing
from cnnative.nn import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten,
                         GlobalAvgPool2D, LeakyReLU, MaxPool2D, ReLU, Sigmoid, Tanh,
                         layer_from_config)

RNG = np.random.default_rng(20261122)


def gradcheck_cases():
    return [
        (Conv2D(2, 3, 3, dtype="float64", rng=1), (2, 2, 6, 7)),
        (Conv2D(3, 2, (2, 3), stride=2, padding=1, dtype="float64", rng=2), (2, 3, 7, 6)),
        (Conv2D(1, 2, 5, stride=(1, 2), padding=(2, 0), dtype="float64", init="xavier", rng=3),
         (3, 1, 8, 9)),
        (Dense(5, 3, dtype="float64", rng=4), (4, 5)),
        (Dense(7, 2, dtype="float64", init="xavier", rng=5), (1, 7)),
        (MaxPool2D(2), (2, 3, 6, 6)),
        (MaxPool2D(3, stride=1, padding=1), (2, 2, 5, 6)),
        (MaxPool2D(2, stride=1), (1, 1, 5, 5)),  # the primer's overlapping windows
        (Flatten(), (2, 3, 4, 2)),
        (ReLU(), (3, 4, 5)),
        (Sigmoid(), (3, 4)),
        (Tanh(), (3, 4)),
        (Dropout(0.3, rng=0), (5, 6)),
        (Conv2D(4, 6, 3, padding="same", groups=2, bias=False, dtype="float64", rng=6),
         (2, 4, 5, 6)),
        (Conv2D(3, 3, 3, padding=2, dilation=2, groups=3, dtype="float64", rng=7), (2, 3, 6, 5)),
        (Conv2D(2, 4, (2, 3), padding="same", dilation=(2, 1), dtype="float64", rng=8),
         (1, 2, 6, 6)),
        (BatchNorm2D(3, dtype="float64"), (4, 3, 3, 2)),
        (BatchNorm1D(5, dtype="float64", momentum=0.3), (6, 5)),
        (AvgPool2D(2), (2, 3, 6, 6)),
        (AvgPool2D(3, stride=2, padding=1, count_include_pad=False), (2, 2, 7, 6)),
        (GlobalAvgPool2D(), (3, 4, 5, 2)),
        (LeakyReLU(0.2), (3, 4)),
    ]


@pytest.mark.parametrize("layer, shape", gradcheck_cases(), ids=repr)
def test_gradcheck_every_layer(layer, shape):
    report = cnnative.gradcheck(layer, RNG.standard_normal(shape))
    assert report["ok"]
    assert set(report) == {"x", *layer.params, "ok", "kinks"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), ((1, 2), (0, 2))])
def test_conv2d_layer_matches_reference(dtype, stride, padding):
    layer = Conv2D(3, 4, (3, 2), stride=stride, padding=padding, dtype=dtype, rng=0)
    layer.params["b"][:] = RNG.standard_normal(4)
    x = RNG.standard_normal((2, 3, 9, 8)).astype(dtype)
    pair = cnnative._validation.int_pair
    geometry = (pair(stride, "", "", 1), pair(padding, "", "", 0))
    y = layer.forward(x)
    expected = testing.conv2d(x, layer.params["w"], layer.params["b"], *geometry)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, expected, rtol=tolerance, atol=tolerance)
    assert y.dtype == dtype
    grad = RNG.standard_normal(y.shape).astype(dtype)
    grad_x = layer.backward(grad)
    ref_x, ref_w, ref_b = testing.conv2d_backward(grad, x, layer.params["w"], *geometry)
    for actual, wanted in [(grad_x, ref_x), (layer.grads["w"], ref_w), (layer.grads["b"], ref_b)]:
        np.testing.assert_allclose(actual, wanted, rtol=tolerance * 10, atol=tolerance * 10)


def test_dense_layer_matches_numpy():
    layer = Dense(6, 4, dtype=np.float64, rng=0)
    layer.params["b"][:] = [1, 2, 3, 4]
    x = RNG.standard_normal((5, 6))
    np.testing.assert_allclose(layer.forward(x), x @ layer.params["w"].T + [1, 2, 3, 4],
                               rtol=1e-13)
    grad = RNG.standard_normal((5, 4))
    np.testing.assert_allclose(layer.backward(grad), grad @ layer.params["w"], rtol=1e-13)
    np.testing.assert_allclose(layer.grads["w"], grad.T @ x, rtol=1e-13)
    np.testing.assert_allclose(layer.grads["b"], grad.sum(0), rtol=1e-13)


def test_max_pool_layer_matches_pytorch_rule_and_accumulates_overlaps():
    x = RNG.integers(0, 3, (2, 3, 6, 7)).astype(np.float32)  # many ties
    layer = MaxPool2D(3, stride=1, padding=1)
    y = layer.forward(x)
    expected_y, expected_indices = testing.max_pool2d(x, 3, 1, 1)
    np.testing.assert_array_equal(y, expected_y)
    grad = RNG.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(grad),
                               testing.max_pool2d_backward(grad, expected_indices, x.shape),
                               rtol=1e-6)


def test_activations_match_numpy():
    x = np.array([[-800.0, -3.0, 0.0, 2.5, 800.0]])
    relu, sig, tanh = ReLU(), Sigmoid(), Tanh()
    np.testing.assert_array_equal(relu.forward(x), [[0, 0, 0, 2.5, 800]])
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), [[0, 0, 0, 1, 1]])
    with np.errstate(over="raise"):  # no overflow on the way to 0 and 1
        np.testing.assert_allclose(sig.forward(x), [[0, 1 / (1 + np.exp(3)), 0.5,
                                                     1 / (1 + np.exp(-2.5)), 1]])
    s = sig.forward(x)
    np.testing.assert_allclose(sig.backward(np.full_like(x, 2)), 2 * s * (1 - s))
    np.testing.assert_allclose(tanh.forward(x), np.tanh(x))
    np.testing.assert_allclose(tanh.backward(np.ones_like(x)), 1 - np.tanh(x) ** 2)
    for layer in (relu, sig, tanh):
        assert layer.forward(x.astype(np.float32)).dtype == np.float32


def test_dropout_scales_kept_units_and_is_identity_at_inference():
    layer = Dropout(0.25, rng=0)
    x = np.ones((200, 500), np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    assert set(np.unique(y)) == {0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(layer.backward(x), y)  # same mask
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    np.testing.assert_array_equal(layer.backward(x), x)
    np.testing.assert_array_equal(Dropout(0.0).forward(x), x)


def test_flatten_round_trip():
    layer = Flatten()
    x = RNG.standard_normal((3, 2, 4, 5))
    y = layer.forward(x)
    assert y.shape == (3, 40)
    np.testing.assert_array_equal(layer.backward(y), x)


def test_initialisation_scales_and_seeds():
    conv = Conv2D(20, 40, 5, rng=0)
    assert conv.params["w"].dtype == np.float32 and conv.params["w"].shape == (40, 20, 5, 5)
    np.testing.assert_array_equal(conv.params["b"], 0)
    assert abs(conv.params["w"].std() / np.sqrt(2 / 500) - 1) < 0.05  # He: std sqrt(2/fan_in)
    dense = Dense(300, 100, init="xavier", dtype="float64", rng=0)
    limit = np.sqrt(6 / 400)
    assert np.abs(dense.params["w"]).max() <= limit
    assert abs(dense.params["w"].std() / (limit / np.sqrt(3)) - 1) < 0.05
    np.testing.assert_array_equal(Conv2D(1, 2, 3, rng=7).params["w"],
                                  Conv2D(1, 2, 3, rng=7).params["w"])
    # float32 and float64 layers from one seed start from the same weights, up to rounding
    np.testing.assert_array_equal(Dense(4, 3, rng=1).params["w"],
                                  Dense(4, 3, rng=1, dtype=np.float64).params["w"].astype(np.float32))


@pytest.mark.parametrize("layer", [l for l, _ in gradcheck_cases()], ids=repr)
def test_config_round_trip(layer):
    rebuilt = layer_from_config(type(layer).__name__, layer.get_config())
    assert rebuilt.get_config() == layer.get_config()
    assert {k: (v.shape, v.dtype) for k, v in rebuilt.params.items()} == \
        {k: (v.shape, v.dtype) for k, v in layer.params.items()}


def test_first_layer_can_skip_the_input_gradient():
    layer = Conv2D(1, 2, 3, rng=0)
    layer.input_grad = False
    y = layer.forward(np.ones((2, 1, 5, 5), np.float32))
    assert layer.backward(np.ones_like(y)) is None
    assert layer.grads["w"].shape == (2, 1, 3, 3)


@pytest.mark.parametrize("make, error, message", [
    (lambda: Conv2D(0, 2, 3), ValueError, "in_channels must be a positive integer"),
    (lambda: Conv2D(1.5, 2, 3), TypeError, "in_channels must be a positive integer"),
    (lambda: Conv2D(1, 2, (3, 3, 3)), ValueError, "kernel_size must be an int or a pair"),
    (lambda: Conv2D(1, 2, 3, stride=0), ValueError, "stride must be >= 1"),
    (lambda: Conv2D(1, 2, 3, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: Conv2D(1, 2, 3, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    (lambda: Conv2D(1, 2, 3, init="zeros"), ValueError, "init must be one of"),
    (lambda: Dense(3, True), TypeError, "out_features must be a positive integer"),
    (lambda: MaxPool2D(0), ValueError, "kernel_size must be >= 1"),
    (lambda: Dropout(1.0), ValueError, r"p must be in \[0, 1\)"),
    (lambda: Dropout("a"), TypeError, "p must be a real number"),
    (lambda: layer_from_config("Softmax", {}), ValueError, "layer type must be one of"),
    (lambda: layer_from_config("Dense", {"in_features": 2}), ValueError, "bad config for Dense"),
])
def test_bad_construction_raises(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_use_raises():
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Conv2D(1, 1, 1).backward(np.ones((1, 1, 2, 2), np.float32))
    with pytest.raises(TypeError, match="x has dtype float64 but w has float32"):
        Conv2D(1, 1, 3).forward(np.ones((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="x has 2 channels but w expects 1"):
        Conv2D(1, 1, 3).forward(np.ones((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="x has 4 input features"):
        Dense(3, 2).forward(np.ones((2, 4), np.float32))


def test_gradcheck_catches_a_wrong_gradient_and_needs_float64():
    class Doubled(ReLU):
        def backward(self, grad):
            return 2 * super().backward(grad)

    with pytest.raises(cnnative.GradcheckError, match="gradients disagree"):
        cnnative.gradcheck(Doubled(), RNG.standard_normal((3, 4)))
    assert not cnnative.gradcheck(Doubled(), RNG.standard_normal((3, 4)),
                                  raise_exception=False)["ok"]
    with pytest.raises(TypeError, match="x must be float64"):
        cnnative.gradcheck(ReLU(), np.ones((2, 2), np.float32))
    with pytest.raises(TypeError, match="w must be float64"):
        cnnative.gradcheck(Dense(2, 2), np.ones((2, 2)))


def test_gradcheck_skips_and_counts_kinks_but_not_wrong_gradients_beside_them():
    # Inputs exactly at ReLU's kink (real digits' zero pixels, zero biases): the central
    # difference is half the slope there, backward's (torch's) convention is 0.
    x = np.zeros((2, 6))
    x[:, 3:] = RNG.standard_normal((2, 3))
    report = cnnative.gradcheck(ReLU(), x)
    assert report["ok"] and report["kinks"] == 6

    class Doubled(ReLU):
        def backward(self, grad):
            return 2 * super().backward(grad)

    report = cnnative.gradcheck(Doubled(), x, raise_exception=False)
    assert not report["ok"] and report["kinks"] == 6

    # A kink just off the point (within the step but beyond half of it) is no kink at the
    # point: the smaller step's central difference is the derivative, and it agrees.
    near = np.array([[0.7e-6, -0.7e-6, 2.0]])
    report = cnnative.gradcheck(ReLU(), near)
    assert report["ok"] and report["kinks"] == 0


def test_conv2d_layer_options_reach_the_kernel_and_the_config():
    layer = Conv2D(4, 8, 3, padding="same", dilation=2, groups=4, bias=False, rng=0)
    assert layer.params["w"].shape == (8, 1, 3, 3) and "b" not in layer.params
    x = RNG.standard_normal((2, 4, 7, 6)).astype(np.float32)
    np.testing.assert_array_equal(
        layer.forward(x), cnnative.conv2d(x, layer.params["w"], None, 1, "same", 2, 4))
    layer.backward(np.ones((2, 8, 7, 6), np.float32))
    assert set(layer.grads) == {"w"}
    config = layer.get_config()
    assert config["padding"] == "same" and config["groups"] == 4 and config["bias"] is False
    assert Conv2D.param_shapes(config) == {"w": ((8, 1, 3, 3), np.dtype(np.float32))}
    assert repr(layer_from_config("Conv2D", config)) == repr(layer)
    with pytest.raises(ValueError, match="groups=3 must divide in_channels=4"):
        Conv2D(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        Conv2D(4, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be one of"):
        Conv2D(4, 4, 3, padding="full")
    with pytest.raises(ValueError, match="dilation must be >= 1"):
        Conv2D(4, 4, 3, dilation=0)
    with pytest.raises(TypeError, match="bias must be True or False"):
        Conv2D(4, 4, 3, bias=None)


@pytest.mark.parametrize("cls, shape", [(BatchNorm2D, (4, 3, 5, 2)), (BatchNorm1D, (7, 3))])
def test_batch_norm_layer_trains_on_batch_statistics_and_evaluates_on_running_ones(cls, shape):
    layer = cls(3, momentum=0.25, dtype="float64")
    layer.params["gamma"][...] = [1.0, 2.0, -0.5]
    layer.params["beta"][...] = [0.0, 1.0, 3.0]
    x = RNG.standard_normal(shape) * 3 + 1
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    expand = (slice(None), None, None) if x.ndim == 4 else (slice(None),)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    y = layer.forward(x, training=True)
    expected = ((x - mean[expand]) / np.sqrt(var[expand] + 1e-5)
                * layer.params["gamma"][expand] + layer.params["beta"][expand])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    count = x.size // 3
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.25 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.buffers["running_var"],
                               0.75 + 0.25 * var * count / (count - 1), rtol=1e-12)
    assert int(layer.buffers["num_batches_tracked"]) == 1
    running_mean = layer.buffers["running_mean"].copy()
    y_eval = layer.forward(x, training=False)
    np.testing.assert_array_equal(layer.buffers["running_mean"], running_mean)
    assert int(layer.buffers["num_batches_tracked"]) == 1
    np.testing.assert_allclose(
        y_eval, (x - running_mean[expand]) / np.sqrt(layer.buffers["running_var"][expand] + 1e-5)
        * layer.params["gamma"][expand] + layer.params["beta"][expand], rtol=1e-12, atol=1e-12)
    assert cls.buffer_shapes(layer.get_config())["num_batches_tracked"] == ((), np.dtype(np.int64))


def test_batch_norm_layer_errors():
    with pytest.raises(ValueError, match="x must be \\(N, C, H, W\\)"):
        BatchNorm2D(3).forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="num_features must be a positive integer"):
        BatchNorm1D(0)
    with pytest.raises(ValueError, match="momentum must be in \\[0, 1\\]"):
        BatchNorm2D(2, momentum=1.5)
    with pytest.raises(ValueError, match="eps must be > 0"):
        BatchNorm2D(2, eps=0)
    with pytest.raises(ValueError):  # one value per channel in training, as torch
        BatchNorm1D(3).forward(np.zeros((1, 3), np.float32), training=True)
    with pytest.raises(ValueError):  # channel mismatch
        BatchNorm2D(3).forward(np.zeros((2, 4, 2, 2), np.float32))


def test_batch_norm_layer_matches_torch():
    torch = pytest.importorskip("torch")
    ours = BatchNorm2D(4, momentum=0.2, dtype="float64")
    theirs = torch.nn.BatchNorm2d(4, momentum=0.2).double()
    x = RNG.standard_normal((5, 4, 3, 3))
    for _ in range(2):
        y = ours.forward(x, training=True)
        expected = theirs(torch.from_numpy(x))
        np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(ours.buffers[name], getattr(theirs, name).numpy(), rtol=1e-12)
    assert int(ours.buffers["num_batches_tracked"]) == int(theirs.num_batches_tracked)
    theirs.eval()
    np.testing.assert_allclose(ours.forward(x, training=False),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
