"""Losses and Network: references, finite differences, learning, reproducibility."""
import numpy as np
import pytest

import cnnative
from cnnative.testing import numeric_gradient
from cnnative.nn import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sigmoid, Tanh
from cnnative.nn.losses import QuadraticCost, SigmoidCrossEntropy, SoftmaxCrossEntropy, get_loss
from cnnative.optim import SGD, Adam

RNG = np.random.default_rng(7)


# -- losses ---------------------------------------------------------------------------------

def naive_softmax_cross_entropy(z, labels):
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return -np.log(p[np.arange(len(z)), labels]).mean()


@pytest.mark.parametrize("loss, target", [
    (SoftmaxCrossEntropy(), np.array([0, 2, 1, 2])),
    (SoftmaxCrossEntropy(), RNG.dirichlet(np.ones(3), 4)),  # soft labels
    (QuadraticCost(), RNG.random((4, 3))),
    (QuadraticCost(), np.array([1, 0, 2, 2])),
    (SigmoidCrossEntropy(), RNG.integers(0, 2, (4, 3)).astype(float)),
])
def test_loss_gradients_match_finite_differences(loss, target):
    z = RNG.standard_normal((4, 3))
    value = loss.forward(z, target)
    grad = loss.backward()
    assert grad.shape == z.shape and np.isfinite(value)
    np.testing.assert_allclose(grad, numeric_gradient(lambda: loss.forward(z, target), z),
                               rtol=1e-6, atol=1e-9)


def test_softmax_cross_entropy_values_and_stability():
    z = RNG.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    loss = SoftmaxCrossEntropy()
    assert loss.forward(z, labels) == pytest.approx(naive_softmax_cross_entropy(z, labels), rel=1e-12)
    assert loss.forward(z, np.eye(4)[labels]) == pytest.approx(loss.forward(z, labels), rel=1e-14)
    huge = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 0.0]], np.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        assert loss.forward(huge, np.array([0, 1])) == pytest.approx(0, abs=1e-6)
        assert loss.forward(huge, np.array([2, 0])) == pytest.approx(2000, rel=1e-6)
    assert loss.backward().dtype == np.float32
    np.testing.assert_allclose(loss.probabilities(huge).sum(1), 1, rtol=1e-6)


def test_quadratic_and_sigmoid_values():
    a = np.array([[0.2, 0.9], [0.5, 0.1]])
    t = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert QuadraticCost().forward(a, t) == pytest.approx(0.5 * ((a - t) ** 2).sum() / 2)
    z = np.array([[-800.0, 3.0], [0.0, 800.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        value = SigmoidCrossEntropy().forward(z, t)
    assert value == pytest.approx((0 + np.log1p(np.exp(-3)) + np.log(2) + 800) / 2)


@pytest.mark.parametrize("call, error, message", [
    (lambda: SoftmaxCrossEntropy().forward(np.zeros((2, 3)), [0, 3]), ValueError,
     r"labels must lie in \[0, 3\)"),
    (lambda: SoftmaxCrossEntropy().forward(np.zeros((2, 3)), [0, 1, 2]), ValueError,
     "target has 3 labels for 2 outputs"),
    (lambda: QuadraticCost().forward(np.zeros((2, 3)), np.zeros((2, 2))), ValueError,
     "target must be"),
    (lambda: QuadraticCost().forward(np.zeros((2, 3)), np.array([["a"] * 3] * 2)), TypeError,
     "target must be integer labels or a real array"),
    (lambda: SoftmaxCrossEntropy().forward(np.zeros(3), [0]), ValueError, "output must be a 2-D"),
    (lambda: SoftmaxCrossEntropy().backward(), RuntimeError, "before forward"),
    (lambda: get_loss("hinge"), ValueError, "loss must be one of"),
])
def test_loss_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# -- network --------------------------------------------------------------------------------

def small_cnn(dtype="float32", seed=0, dropout=0.0):
    seeds = np.random.SeedSequence(seed).spawn(3)
    return cnnative.Network([
        Conv2D(1, 4, 3, dtype=dtype, rng=seeds[0]), ReLU(), MaxPool2D(2),
        Flatten(), *([Dropout(dropout)] if dropout else []),
        Dense(4 * 5 * 5, 16, dtype=dtype, rng=seeds[1]), Tanh(),
        Dense(16, 3, dtype=dtype, rng=seeds[2]),
    ])


def bars(n, seed):
    """12x12 uint8 images of a horizontal bar (0), a vertical bar (1) or a diagonal (2), noisy."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 60, (n, 12, 12))
    for image, label in zip(images, labels):
        k = rng.integers(2, 10)
        if label == 0:
            image[k, :] = 255
        elif label == 1:
            image[:, k] = 255
        else:
            np.fill_diagonal(image, 255)
    return images.astype(np.uint8), labels


def test_network_overfits_a_tiny_batch():
    x = RNG.standard_normal((8, 1, 12, 12)).astype(np.float32)
    y = np.arange(8) % 3
    net = small_cnn()
    history = net.fit(x, y, epochs=150, batch_size=8, optimizer=Adam(0.01), progress=False, seed=0)
    assert history["loss"][-1] < 0.01
    assert net.evaluate(x, y)[1] == 1.0


def test_network_learns_a_synthetic_task():
    x, y = bars(600, seed=1)
    x_val, y_val = bars(300, seed=2)
    net = small_cnn()
    history = net.fit(x, y, epochs=4, batch_size=32, optimizer=SGD(0.05, momentum=0.9),
                      validation_data=(x_val, y_val), seed=3, progress=False)
    assert history["val_accuracy"][-1] >= 0.95
    assert history["loss"][-1] < history["loss"][0]
    assert set(history) == {"loss", "accuracy", "lr", "seconds", "val_loss", "val_accuracy"}
    assert history["lr"] == [0.05] * 4
    assert all(len(v) == 4 for v in history.values())
    probabilities = net.predict_proba(x_val)
    assert probabilities.shape == (300, 3)
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(net.predict(x_val), probabilities.argmax(1))
    loss, accuracy = net.evaluate(x_val, y_val)
    assert accuracy == history["val_accuracy"][-1] and loss == history["val_loss"][-1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_seeded_fit_is_bit_reproducible_across_thread_counts(dtype):
    x, y = bars(200, seed=4)
    results = []
    for threads in (1, 2, 1):
        previous = cnnative.set_num_threads(threads)
        try:
            net = small_cnn(dtype, dropout=0.2)
            history = net.fit(x, y, epochs=2, batch_size=16, seed=11, progress=False)
        finally:
            cnnative.set_num_threads(previous)
        results.append(([p.copy() for p, _ in net.parameters()], history["loss"]))
    for params, losses in results[1:]:
        assert losses == results[0][1]
        for a, b in zip(params, results[0][0]):
            np.testing.assert_array_equal(a, b)
    other = small_cnn(dtype, dropout=0.2)
    other.fit(x, y, epochs=2, batch_size=16, seed=12, progress=False)
    assert not np.array_equal(other.parameters()[0][0], results[0][0][0])


def test_input_preparation():
    net = small_cnn("float64")
    images = RNG.integers(0, 256, (3, 12, 12)).astype(np.uint8)
    prepared = net.prepare(images)
    assert prepared.shape == (3, 1, 12, 12) and prepared.dtype == np.float64
    np.testing.assert_allclose(prepared[:, 0], images / 255, rtol=1e-15)
    np.testing.assert_array_equal(net.predict(images), net.predict(images[:, None] / 255.0))
    assert net.prepare(np.ones((2, 1, 12, 12), np.float32)).dtype == np.float64


def test_network_gradcheck():
    net = small_cnn("float64", dropout=0.3)
    x, y = bars(4, seed=5)
    report = cnnative.gradcheck(net, x, y, samples=8)
    assert report["ok"] and "0.w" in report and "x" in report


def test_models_nielsen_shapes():
    net = cnnative.models.nielsen(seed=1)
    assert [type(layer).__name__ for layer in net.layers] == [
        "Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "MaxPool2D", "Flatten",
        "Dense", "ReLU", "Dense"]
    assert net.dtype == np.float32
    assert net.forward(net.prepare(np.zeros((2, 28, 28), np.uint8))).shape == (2, 10)
    assert sum(p.size for p, _ in net.parameters()) == 20 * 25 + 20 + 40 * 500 + 40 + 64100 + 1010
    with_dropout = cnnative.models.nielsen(dropout=0.5, dtype="float64")
    drops = [layer for layer in with_dropout.layers if isinstance(layer, Dropout)]
    assert len(drops) == 2 and drops[0] is not drops[1]


@pytest.mark.parametrize("call, error, message", [
    (lambda net: net.fit(np.zeros((4, 12, 12), np.int32), [0] * 4, progress=False), TypeError,
     "x must be uint8 images or floats"),
    (lambda net: net.fit(np.zeros((4, 12, 12)), [0] * 3, progress=False), ValueError,
     r"y must have one target per sample of x \(4\)"),
    (lambda net: net.fit(np.zeros((4, 12, 12)), [0] * 4, epochs=0), ValueError,
     "epochs must be a positive integer"),
    (lambda net: net.fit(np.zeros((4, 12, 12)), [0] * 4, optimizer="sgd"), TypeError,
     "optimizer must be an Optimizer"),
    (lambda net: net.predict(np.zeros((12, 12))), ValueError, "x must be"),
    (lambda net: net.predict(np.zeros((0, 12, 12))), ValueError, "at least one sample"),
    (lambda net: net.evaluate(np.zeros((2, 12, 12)), [0, 5]), ValueError, "labels must lie"),
])
def test_network_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(small_cnn())


def test_network_construction_errors():
    with pytest.raises(TypeError, match="non-empty sequence of Layer"):
        cnnative.Network([])
    with pytest.raises(TypeError, match="share one dtype"):
        cnnative.Network([Dense(2, 2), Dense(2, 2, dtype="float64")])
    with pytest.raises(ValueError, match="loss must be one of"):
        cnnative.Network([Dense(2, 2)], loss="hinge")
    assert isinstance(cnnative.Network([Dense(2, 1), Sigmoid()], loss="quadratic").loss,
                      QuadraticCost)


# -- model files ----------------------------------------------------------------------------

def trained_network(dtype="float32"):
    x, y = bars(64, seed=8)
    net = small_cnn(dtype, dropout=0.1)
    net.fit(x, y, epochs=1, batch_size=16, seed=0, progress=False)
    return net, x


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_model_file_round_trip_is_exact(tmp_path, dtype):
    net, x = trained_network(dtype)
    path = tmp_path / "model.npz"
    cnnative.save(net, path)
    loaded = cnnative.load(path)
    assert repr(loaded) == repr(net)
    for (a, _), (b, _) in zip(loaded.parameters(), net.parameters()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict_proba(x), net.predict_proba(x))
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    assert isinstance(cnnative.load(str(path)), cnnative.Network)


def test_model_file_keeps_its_exact_name(tmp_path):
    net, _ = trained_network()
    cnnative.save(net, tmp_path / "model")
    assert (tmp_path / "model").exists() and not (tmp_path / "model.npz").exists()


def test_bad_model_files_raise_clear_errors(tmp_path):
    net, _ = trained_network()
    good = tmp_path / "good.npz"
    cnnative.save(net, good)
    data = good.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[:len(data) // 2])
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(data[:100] + bytes(200) + data[300:])
    text = tmp_path / "text.npz"
    text.write_text("hello")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with np.load(good) as archive:
        contents = dict(archive)
    future = tmp_path / "future.npz"
    np.savez(future, **{**contents, "version": np.array(99)})
    wrong_shape = tmp_path / "wrong_shape.npz"
    np.savez(wrong_shape, **{**contents, "0.w": np.ones((2, 2), np.float32)})
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**contents, "0.w": np.array([object()], dtype=object)})
    bad_json = tmp_path / "bad_json.npz"
    np.savez(bad_json, **{**contents, "architecture": np.array("{not json")})
    extra = tmp_path / "extra.npz"
    np.savez(extra, **{**contents, "99.w": np.ones(2)})

    cases = [(truncated, "not a readable cnnative model"), (corrupt, "not a readable"),
             (text, "not a readable"), (foreign, "not a cnnative model file"),
             (future, "format version 99 is not supported"),
             (wrong_shape, r"parameter 0.w should be float32 \(4, 1, 3, 3\), found float32 \(2, 2\)"),
             (pickled, "not a readable|should be float32"), (bad_json, "invalid architecture"),
             (extra, "arrays its architecture does not use")]
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            cnnative.load(path)
    with pytest.raises(FileNotFoundError):
        cnnative.load(tmp_path / "missing.npz")


# -- augmentation and schedules -------------------------------------------------------------

def test_shift_and_rotate_matches_scipy_resampling():
    from scipy import ndimage

    from cnnative.datasets.augment import shift_and_rotate
    images = RNG.random((5, 13, 11))
    out = shift_and_rotate(images, np.random.default_rng(1), max_shift=3, max_degrees=25)
    draws = np.random.default_rng(1)
    angles = np.deg2rad(draws.uniform(-25, 25, 5))
    shifts = draws.uniform(-3, 3, (5, 2))
    rows, cols = np.mgrid[0:13, 0:11]
    rows, cols = rows - 6.0, cols - 5.0
    for image, angle, shift, result in zip(images, angles, shifts, out):
        cos, sin = np.cos(angle), np.sin(angle)
        where = [cos * rows - sin * cols + 6 - shift[0], sin * rows + cos * cols + 5 - shift[1]]
        expected = ndimage.map_coordinates(image, where, order=1, mode="grid-constant")
        np.testing.assert_allclose(result, expected, atol=1e-6)


def test_shift_and_rotate_keeps_shape_dtype_and_identity():
    from cnnative.datasets.augment import ShiftRotate, shift_and_rotate
    digits = RNG.integers(0, 256, (4, 1, 28, 28)).astype(np.uint8)
    np.testing.assert_array_equal(shift_and_rotate(digits, RNG, 0, 0), digits)
    moved = ShiftRotate()(digits, np.random.default_rng(0))
    assert moved.shape == digits.shape and moved.dtype == np.uint8
    assert not np.array_equal(moved, digits)
    whole_pixel = shift_and_rotate(digits[:, 0], np.random.default_rng(0), 0, 0)
    np.testing.assert_array_equal(whole_pixel, digits[:, 0])
    with pytest.raises(ValueError, match="images must be a non-empty"):
        shift_and_rotate(np.zeros((2, 2, 3, 3), np.uint8), RNG)
    with pytest.raises(TypeError, match="images must be uint8 or float"):
        shift_and_rotate(np.zeros((2, 3, 3), np.int16), RNG)


def test_fit_with_augmentation_and_schedule_is_reproducible():
    from cnnative.datasets.augment import ShiftRotate
    x, y = bars(96, seed=9)
    runs = []
    for _ in range(2):
        net = small_cnn()
        optimizer = SGD(0.05, momentum=0.9)
        history = net.fit(x, y, epochs=2, batch_size=32, optimizer=optimizer, seed=5,
                          progress=False, augment=ShiftRotate(1, 5),
                          scheduler=cnnative.optim.CosineAnnealing(2))
        runs.append(net.parameters()[0][0].copy())
    np.testing.assert_array_equal(*runs)
    # Half a cosine over two epochs: full rate, half of it, then 0 once the run is over.
    assert history["lr"] == [0.05, pytest.approx(0.025)] and optimizer.lr == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pooling_before_relu_changes_nothing(dtype):
    """The network runs a max pool before the ReLU that precedes it; results are identical."""
    net = small_cnn(dtype)
    x = np.round(RNG.standard_normal((6, 1, 12, 12)) * 2).astype(dtype)  # ties, negative windows
    y = np.arange(6) % 3
    output = net.forward(x, training=True)
    net.loss.forward(output, y)
    net.layers[0].input_grad = True
    grad_x = net.backward(net.loss.backward())
    ours = [output, grad_x] + [g.copy() for _, g in net.parameters()]

    expected_output = x
    for layer in net.layers:  # the written order
        expected_output = layer.forward(expected_output, training=True)
    net.loss.forward(expected_output, y)
    grad = net.loss.backward()
    for layer in reversed(net.layers):
        grad = layer.backward(grad)
    theirs = [expected_output, grad] + [g for _, g in net.parameters()]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
