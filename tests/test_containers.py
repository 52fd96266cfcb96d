"""Sequential and Residual: composition, gradients, model files, repr and errors."""
import numpy as np
import pytest

import cnnative
from cnnative.nn import (Conv2D, Dense, Flatten, LeakyReLU, MaxPool2D, ReLU, Residual,
                         Sequential, Tanh, layer_from_config, spec_of)

RNG = np.random.default_rng(20261202)


def residual_net(dtype="float64"):
    return cnnative.Network([
        Conv2D(1, 4, 3, padding=1, dtype=dtype, rng=1), ReLU(),
        Residual(Conv2D(4, 4, 3, padding=1, dtype=dtype, rng=2), ReLU(),
                 Conv2D(4, 4, 3, padding=1, dtype=dtype, rng=3)),
        LeakyReLU(0.1),
        Residual(Conv2D(4, 6, 3, stride=2, padding=1, dtype=dtype, rng=4), Tanh(),
                 shortcut=Sequential(Conv2D(4, 6, 1, stride=2, dtype=dtype, rng=5))),
        MaxPool2D(2), Flatten(), Dense(6 * 2 * 2, 3, dtype=dtype, rng=6),
    ])


def test_sequential_is_its_layers_in_order():
    layers = [Dense(5, 4, rng=0, dtype="float64"), Tanh(), Dense(4, 2, rng=1, dtype="float64")]
    sequential = Sequential(*[layer_from_config(spec["type"], spec["config"])
                              for spec in map(spec_of, layers)])
    for mine, theirs in zip(sequential.layers, layers):
        for name in theirs.params:
            mine.params[name][...] = theirs.params[name]
    x = RNG.standard_normal((3, 5))
    expected = x
    for layer in layers:
        expected = layer.forward(expected)
    np.testing.assert_array_equal(sequential.forward(x), expected)
    grad = RNG.standard_normal((3, 2))
    expected_grad = grad
    for layer in reversed(layers):
        expected_grad = layer.backward(expected_grad)
    np.testing.assert_array_equal(sequential.backward(grad), expected_grad)
    for mine, theirs in zip(sequential.layers, layers):
        for name in theirs.grads:
            np.testing.assert_array_equal(mine.grads[name], theirs.grads[name])


def test_residual_adds_body_and_shortcut():
    body = Dense(4, 4, rng=0, dtype="float64")
    block = Residual(body)
    x = RNG.standard_normal((2, 4))
    np.testing.assert_array_equal(block.forward(x), body.forward(x) + x)
    grad = RNG.standard_normal((2, 4))
    np.testing.assert_array_equal(block.backward(grad), grad @ body.params["w"] + grad)


@pytest.mark.parametrize("target", ["network", "layer"])
def test_gradcheck_of_a_residual_network(target):
    net = residual_net()
    x = RNG.standard_normal((2, 1, 8, 8))
    if target == "network":
        report = cnnative.gradcheck(net, x, np.array([0, 2]))
        assert "4.shortcut.0.w" in report and "2.body.2.b" in report
    else:
        report = cnnative.gradcheck(net.layers[4], RNG.standard_normal((2, 4, 4, 4)))
        assert "shortcut.0.w" in report and "body.0.w" in report
    assert report["ok"]


def test_parameters_cover_nested_layers_in_a_fixed_order():
    net = residual_net()
    names = [name for name, layer in net.named_layers()]
    assert names[:6] == ["0", "1", "2", "2.body.0", "2.body.1", "2.body.2"]
    assert "4.shortcut" in names and "4.shortcut.0" in names
    expected = [layer.params[key] for _, layer in net.named_layers() for key in layer.params]
    assert [id(p) for p, _ in net.parameters()] == [id(p) for p in expected]
    assert len(net.parameters()) == 2 * 6


def test_nested_model_file_round_trip(tmp_path):
    net = residual_net("float32")
    x = RNG.standard_normal((3, 1, 8, 8)).astype(np.float32)
    net.fit(x, np.array([0, 1, 2]), epochs=2, batch_size=2, seed=0, progress=False)
    path = tmp_path / "nested.npz"
    cnnative.save(net, path)
    with np.load(path) as archive:
        assert {"2.body.0.w", "4.shortcut.0.w", "7.b"} <= set(archive)
    loaded = cnnative.load(path)
    assert repr(loaded) == repr(net)
    np.testing.assert_array_equal(loaded.predict_proba(x), net.predict_proba(x))


def test_repr_shows_the_nesting():
    text = repr(residual_net())
    assert "Residual(\n" in text and "shortcut=Sequential(\n" in text
    assert "LeakyReLU(negative_slope=0.1)" in text


def test_shape_mismatch_names_both_shapes():
    block = Residual(Conv2D(2, 3, 3, padding=1))
    with pytest.raises(ValueError, match=r"body's output has shape \(1, 3, 5, 5\) but the "
                                         r"shortcut's has shape \(1, 2, 5, 5\)"):
        block.forward(np.zeros((1, 2, 5, 5), np.float32))


def test_container_errors():
    with pytest.raises(TypeError, match="Sequential: layers must be one or more Layer"):
        Sequential()
    with pytest.raises(TypeError, match="Residual: layers must be one or more Layer"):
        Residual("conv")
    with pytest.raises(TypeError, match="Residual: shortcut must be a Layer or None"):
        Residual(ReLU(), shortcut="identity")
    with pytest.raises(ValueError, match="bad config for Sequential"):
        layer_from_config("Sequential", {"layers": "ReLU"})
    with pytest.raises(ValueError, match="Sequential's 0 must be a layer spec"):
        layer_from_config("Sequential", {"layers": [ReLU()]})
    with pytest.raises(ValueError, match="must be a layer spec"):
        layer_from_config("Sequential", {"layers": [{"type": "ReLU"}]})
    with pytest.raises(ValueError, match="layer type must be one of"):
        layer_from_config("Sequential", {"layers": [{"type": "Nope", "config": {}}]})


def test_leaky_relu_values_and_gradient():
    layer = LeakyReLU(0.2)
    x = np.array([[-2.0, -0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(layer.forward(x), [[-0.4, -0.0, 0.0, 3.0]])
    # torch's rule: the slope applies where x <= 0.
    np.testing.assert_array_equal(layer.backward(np.ones((1, 4))), [[0.2, 0.2, 0.2, 1.0]])
    assert cnnative.gradcheck(LeakyReLU(0.3), RNG.standard_normal((3, 4)))["ok"]
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="negative_slope must be finite"):
            LeakyReLU(bad)
    with pytest.raises(TypeError, match="negative_slope must be a real number"):
        LeakyReLU("0.1")


def test_leaky_relu_matches_torch():
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    ours = LeakyReLU(0.05).forward(x)
    theirs = torch.nn.functional.leaky_relu(torch.from_numpy(x), 0.05).numpy()
    np.testing.assert_array_equal(ours, theirs)
