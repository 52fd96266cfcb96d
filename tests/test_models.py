"""The ready-made networks: structure, gradients, training, model files, torch equivalence."""
import pathlib

import numpy as np
import pytest

import cnnative
from cnnative import models
from cnnative.testing import torch_models
from cnnative.nn import BatchNorm2D, Conv2D, GlobalAvgPool2D, Residual, Sequential

RNG = np.random.default_rng(7)


def test_resnet20_has_he_et_al_s_shape():
    net = models.resnet(20)
    blocks = [layer for layer in net.layers if isinstance(layer, Residual)]
    assert len(blocks) == 9
    widths = [block.body[0].out_channels for block in blocks]
    assert widths == [16] * 3 + [32] * 3 + [64] * 3
    strides = [block.body[0].stride for block in blocks]
    assert strides[3] == strides[6] == (2, 2) and strides.count((1, 1)) == 7
    projections = [block for block in blocks if block.shortcut is not None]
    assert projections == [blocks[3], blocks[6]]
    assert isinstance(projections[0].shortcut, Sequential)
    assert all(not conv.bias for _, conv in net.named_layers() if isinstance(conv, Conv2D))
    assert isinstance(net.layers[-2], GlobalAvgPool2D)
    assert sum(p.size for p, _ in net.parameters()) == 272_186  # the published 0.27M
    x = RNG.random((2, 1, 28, 28)).astype(np.float32)
    assert net.forward(x, training=False).shape == (2, 10)


def test_small_resnet_gradients_match_finite_differences():
    net = models.resnet(8, width=2, num_classes=3, dtype="float64", seed=1)
    x = RNG.standard_normal((3, 1, 8, 8))
    report = cnnative.gradcheck(net, x, np.array([0, 2, 1]), samples=6)
    assert report["ok"] and "5.shortcut.0.w" in report and "5.shortcut.1.gamma" in report


def test_resnet_and_lenet5_train_and_round_trip(tmp_path):
    (x, y), (x_val, y_val) = cnnative.datasets.load_digits_5k()
    for net in (models.resnet(8, width=4, seed=0), models.lenet5(seed=0)):
        before = net.evaluate(x_val[:200], y_val[:200])[0]
        net.fit(x[:512], y[:512], epochs=1, batch_size=32, seed=0, progress=False,
                optimizer=cnnative.optim.SGD(0.05, momentum=0.9))
        assert net.evaluate(x_val[:200], y_val[:200])[0] < before
        path = tmp_path / "model.npz"
        cnnative.save(net, path)
        loaded = cnnative.load(path)
        np.testing.assert_array_equal(loaded.predict_proba(x_val[:50]), net.predict_proba(x_val[:50]))
        for (name, a), (_, b) in zip(net.named_layers(), loaded.named_layers()):
            for key in a.buffers:
                np.testing.assert_array_equal(a.buffers[key], b.buffers[key], err_msg=name)


def test_resnet_errors():
    with pytest.raises(ValueError, match="depth must be 6n \\+ 2"):
        models.resnet(21)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        models.resnet(20, width=0)


def test_resnet_matches_the_torch_definition_in_its_docstring():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    net = models.resnet(8, width=4, num_classes=5, dtype="float64", seed=3)
    theirs = torch_models.resnet(torch, 8, width=4, num_classes=5).double()
    ours = [layer for _, layer in net.named_layers() if layer.params or layer.buffers]
    modules = [m for m in theirs.modules()
               if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    # Same order: each block's body, then its shortcut.
    assert len(ours) == len(modules)
    with torch.no_grad():
        for layer, module in zip(ours, modules):
            if isinstance(layer, BatchNorm2D):
                module.weight.copy_(torch.from_numpy(RNG.random(module.weight.shape) + 0.5))
                layer.params["gamma"][...] = module.weight.numpy()
                module.bias.copy_(torch.from_numpy(RNG.standard_normal(module.bias.shape)))
                layer.params["beta"][...] = module.bias.numpy()
            else:
                module.weight.copy_(torch.from_numpy(layer.params["w"]))
                if module.bias is not None:
                    module.bias.copy_(torch.from_numpy(layer.params["b"]))
    x = RNG.standard_normal((4, 1, 12, 12))
    np.testing.assert_allclose(net.forward(x, training=True),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-9, atol=1e-10)
    theirs.eval()
    np.testing.assert_allclose(net.forward(x, training=False),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-9, atol=1e-10)


def test_seeded_resnet_training_is_bit_identical_at_any_thread_count():
    (x, y), _ = cnnative.datasets.load_digits_5k()
    weights = []
    for threads in (1, 2, 3):
        previous = cnnative.set_num_threads(threads)
        try:
            net = models.resnet(8, width=4, seed=0)
            net.fit(x[:96], y[:96], epochs=1, batch_size=32, seed=0, progress=False)
        finally:
            cnnative.set_num_threads(previous)
        weights.append([a.copy() for _, layer in net.named_layers()
                        for a in (*layer.params.values(), *layer.buffers.values())])
    for other in weights[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(weights[0], other))


def test_vgg_shapes_errors_and_a_training_step():
    net = models.vgg(8, in_channels=3, num_classes=5, seed=1)
    shapes = [tuple(layer.params["w"].shape) for _, layer in net.named_layers()
              if "w" in layer.params]
    assert shapes == [(8, 3, 3, 3), (8, 8, 3, 3), (16, 8, 3, 3), (16, 16, 3, 3), (32, 16, 3, 3),
                      (5, 32)]
    x = np.random.default_rng(0).random((6, 3, 28, 28)).astype(np.float32)
    assert net.forward(x).shape == (6, 5)
    history = net.fit(x, [0, 1, 2, 3, 4, 0], epochs=2, batch_size=3, progress=False, seed=0)
    assert np.isfinite(history["loss"]).all()
    with pytest.raises(ValueError, match="vgg: width must be"):
        models.vgg(0)


FASHION = pathlib.Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION.is_dir(),
                    reason=f"{FASHION} is missing: apt-get install dataset-fashion-mnist")
def test_fashion_mnist_smoke_training_with_the_fashion_recipe():
    """A short run of the `--preset fashion` recipe on real Fashion-MNIST files: loader,
    crops and flips, batch norm, one-cycle schedule; well above chance after two short epochs."""
    from cnnative import datasets, optim
    from cnnative.datasets.augment import Compose, RandomCrop, RandomFlip
    (x, y), (x_test, y_test) = datasets.load_fashion_mnist()
    net = models.vgg(8, seed=0)
    history = net.fit(x[:4096], y[:4096], epochs=2, batch_size=64,
                      optimizer=optim.SGD(0.1, momentum=0.9, weight_decay=5e-4),
                      scheduler=optim.OneCycle(0.1, 128), seed=0, progress=False,
                      augment=Compose(RandomCrop(28, padding=2), RandomFlip()))
    assert np.isfinite(history["loss"]).all()
    assert net.evaluate(x_test[:1000], y_test[:1000])[1] > 0.6  # chance is 0.1
