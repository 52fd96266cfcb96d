"""cnnative.io.export_onnx: onnxruntime runs the exported graph to the network's outputs.

Tests that export need onnx and onnxruntime and skip without them; the ones that check what
happens without onnx run everywhere."""
import os

import numpy as np
import pytest

import cnnative
from cnnative import Ensemble, cli, models
from cnnative.io import export_onnx, onnx_export
from cnnative.nn import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten,
                         GlobalAvgPool2D, Layer, LeakyReLU, MaxPool2D, ReLU, Residual,
                         Sequential, Sigmoid, Tanh)

RNG = np.random.default_rng(1618)
DIGITS = (1, 28, 28)


@pytest.fixture
def onnx():
    """The onnx module; the test skips unless onnx and onnxruntime (which runs the exported
    graphs) are installed."""
    module = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    return module


needs_onnx = pytest.mark.usefixtures("onnx")


def run(path, x):
    import onnxruntime

    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


def with_statistics(network):
    """Batch norms with non-trivial scales, shifts and running statistics (chosen to shrink
    activations, so that logits stay of order 1, as a trained network's), biases non-zero."""
    for _, layer in network.named_layers():
        for key, array in {**layer.params, **layer.buffers}.items():
            if key in ("b", "beta", "running_mean"):
                array[...] = RNG.normal(0, 0.1, array.shape)
            elif key == "gamma":
                array[...] = RNG.uniform(0.5, 1, array.shape)
            elif key == "running_var":
                array[...] = RNG.uniform(1, 2, array.shape)
    return network


def agreement(network, path, shape, batch=5):
    """Largest |onnxruntime - network.forward| on a batch of random uint8 images."""
    x = network.prepare(RNG.integers(0, 256, (batch, *shape)).astype(np.uint8))
    expected = network.forward(x, training=False)
    got = run(path, x)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    return float(np.abs(got - expected).max())


MODELS = {
    "nielsen": lambda: models.nielsen(seed=3),
    "nielsen-dropout": lambda: models.nielsen(seed=3, dropout=0.4),
    "lenet5": lambda: models.lenet5(seed=3),
    "resnet8": lambda: models.resnet(8, width=4, seed=3),
    "resnet20": lambda: models.resnet(20, seed=3),
    "resnet8-rgb": lambda: models.resnet(8, in_channels=3, num_classes=5, width=4, seed=3),
    "vgg": lambda: models.vgg(8, seed=3),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_export_to_their_outputs(tmp_path, name, onnx):
    network = with_statistics(MODELS[name]())
    shape = (3, 28, 28) if name.endswith("rgb") else DIGITS
    path = tmp_path / f"{name}.onnx"
    model = export_onnx(network, path, input_shape=shape)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert model.opset_import[0].version == 17
    for batch in (1, 5):
        assert agreement(network, path, shape, batch) < 1e-4
    assert all(node.op_type != "Dropout" for node in model.graph.node)


def nested():
    """Residual inside Sequential inside Residual, with every exportable layer type."""
    inner = Residual(Conv2D(8, 8, 3, padding="same", dilation=2, groups=4, bias=False),
                     BatchNorm2D(8), LeakyReLU(0.2))
    middle = Sequential(Conv2D(8, 8, 4, padding="same", groups=2), Tanh(), inner,
                        AvgPool2D(3, stride=1, padding=1, count_include_pad=False))
    outer = Residual(middle, BatchNorm2D(8), Sigmoid(),
                     shortcut=Sequential(AvgPool2D(3, stride=1, padding=1), Conv2D(8, 8, 1)))
    return cnnative.Network([
        Conv2D(2, 8, 3, padding=1, rng=0), BatchNorm2D(8), ReLU(), outer,
        MaxPool2D(3, stride=2, padding=1), Conv2D(8, 6, 2, stride=(2, 1), padding=(1, 0),
                                                 dilation=(1, 2)),
        AvgPool2D(2, padding=1), Residual(Conv2D(6, 6, 3, padding="same"), ReLU()),
        Dropout(0.3), Flatten(), Dense(6 * 3 * 2, 12), BatchNorm1D(12), LeakyReLU(),
        Residual(Dense(12, 12)), Dense(12, 4)])


@needs_onnx
def test_nested_residual_networks_export_to_their_outputs(tmp_path):
    network = with_statistics(nested())
    shape = (2, 11, 9)
    assert network.forward(np.zeros((1, *shape), np.float32)).shape == (1, 4)
    path = tmp_path / "nested.onnx"
    model = export_onnx(network, path, input_shape=shape)
    assert agreement(network, path, shape) < 1e-4
    ops = {node.op_type for node in model.graph.node}
    assert ops == {"Conv", "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Add",
                   "AveragePool", "MaxPool", "Flatten", "Gemm"}
    names = {tensor.name for tensor in model.graph.initializer}
    assert names == set(network.state_dict()) - {key for key in network.state_dict()
                                                 if key.endswith("num_batches_tracked")}


@needs_onnx
def test_same_padding_becomes_explicit_pads(tmp_path):
    # A 4x4 kernel dilated by 2 needs 6 rows in all: 3 above, 3 below; 2x2: 0 above, 1 below.
    network = cnnative.Network([Conv2D(1, 2, 4, padding="same", dilation=2, rng=0),
                                Conv2D(2, 2, 2, padding="same", rng=1)])
    model = export_onnx(network, tmp_path / "same.onnx", input_shape=(1, 7, 6))
    pads = [next(a.ints for a in node.attribute if a.name == "pads") for node in model.graph.node]
    assert pads == [[3, 3, 3, 3], [0, 0, 1, 1]]
    assert agreement(network, tmp_path / "same.onnx", (1, 7, 6)) < 1e-5


@needs_onnx
def test_graph_has_a_symbolic_batch_and_the_full_sample_shape(tmp_path):
    model = export_onnx(models.lenet5(), tmp_path / "lenet.onnx", input_shape=DIGITS)
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert graph_input.name == "input" and dims(graph_input) == ["N", 1, 28, 28]
    assert graph_output.name == "output" and dims(graph_output) == ["N", 10]


@needs_onnx
def test_a_network_that_begins_with_a_dense_layer_needs_no_input_shape(tmp_path):
    network = cnnative.Network([Dense(6, 5, rng=0), Tanh(), Dense(5, 3, rng=1)])
    model = export_onnx(network, tmp_path / "mlp.onnx")
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:] == [6]
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(run(tmp_path / "mlp.onnx", x), network.forward(x), atol=1e-6)


@needs_onnx
def test_a_network_of_dropout_only_is_the_identity(tmp_path):
    network = cnnative.Network([BatchNorm1D(3), Dropout(0.5)])
    model = export_onnx(network, tmp_path / "bn.onnx")
    assert model.graph.node[-1].output[0] == "output"
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(run(tmp_path / "bn.onnx", x), network.forward(x), atol=1e-6)


def test_float64_networks_export_double_graphs(tmp_path, onnx):
    network = cnnative.Network([Dense(4, 3, dtype="float64", rng=0), ReLU(),
                                Dense(3, 2, dtype="float64", rng=1)])
    model = export_onnx(network, tmp_path / "double.onnx")
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(run(tmp_path / "double.onnx", x), network.forward(x), atol=1e-12)
    # onnxruntime has no double Conv kernel; the graph is valid ONNX all the same.
    export_onnx(models.lenet5(dtype="float64"), tmp_path / "lenet64.onnx", input_shape=DIGITS)
    onnx.checker.check_model(onnx.load(tmp_path / "lenet64.onnx"), full_check=True)


@needs_onnx
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "sigmoid_cross_entropy"])
def test_ensembles_export_their_averaged_probabilities(tmp_path, loss):
    members = [with_statistics(models.resnet(8, width=4, seed=seed)) for seed in (0, 1)]
    members.append(models.lenet5(seed=2))
    for member in members:
        member.loss = cnnative.nn.get_loss(loss)
    ensemble = Ensemble(members)
    path = tmp_path / "ensemble.onnx"
    model = export_onnx(ensemble, path, input_shape=DIGITS)
    images = RNG.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    x = members[0].prepare(images)
    for batch in (x[:1], x):
        got = run(path, batch)
        np.testing.assert_allclose(got, ensemble.predict_proba(batch), rtol=0, atol=1e-6)
    assert model.graph.node[-1].op_type == "Mean" and len(model.graph.node[-1].input) == 3
    assert {n.op_type for n in model.graph.node} >= {"Softmax" if "softmax" in loss else "Sigmoid"}
    assert "members.2.0.weight" in {tensor.name for tensor in model.graph.initializer}


@needs_onnx
def test_opset_choice(tmp_path):
    model = export_onnx(models.nielsen(), tmp_path / "n13.onnx", opset=13, input_shape=DIGITS)
    assert model.opset_import[0].version == 13
    assert agreement(models.nielsen(), tmp_path / "n13.onnx", DIGITS) < 1e-4
    for opset, error in [(12, ValueError), (10**6, ValueError), (17.0, TypeError)]:
        with pytest.raises(error, match="export_onnx: opset must"):
            export_onnx(models.nielsen(), tmp_path / "never.onnx", opset=opset, input_shape=DIGITS)


class Doubler(Layer):
    """A layer ONNX export knows nothing about."""

    def forward(self, x, training=True):
        return 2 * x


class Relu6(ReLU):
    """A subclass: computes something else than its base, so it must not export as a Relu."""

    @staticmethod
    def _activate(x):
        return np.clip(x, 0, 6)


@needs_onnx
@pytest.mark.parametrize("layer", [Doubler(), Relu6()])
def test_layers_without_onnx_counterpart_are_refused_by_name(tmp_path, layer):
    network = cnnative.Network([Dense(3, 3), Residual(Sequential(ReLU(), layer))])
    name = type(layer).__name__
    with pytest.raises(TypeError, match=rf"export_onnx: layer '1.body.0.1' \({name}\) has no "
                                        "ONNX counterpart; exportable layers: AvgPool2D, "):
        export_onnx(network, tmp_path / "never.onnx")
    assert not os.listdir(tmp_path)


@needs_onnx
def test_input_shape_errors(tmp_path):
    path = tmp_path / "never.onnx"
    with pytest.raises(ValueError, match=r"export_onnx: input_shape is needed: the network "
                                         r"begins with Conv2D.*input_shape=\(C, H, W\)"):
        export_onnx(models.nielsen(), path)
    with pytest.raises(ValueError, match=r"export_onnx: input_shape \(3, 28, 28\) does not fit "
                                         r"the network: .*channels"):
        export_onnx(models.nielsen(), path, input_shape=(3, 28, 28))
    with pytest.raises(ValueError, match="export_onnx: input_shape must be"):
        export_onnx(models.nielsen(), path, input_shape=(28, 28))
    with pytest.raises(ValueError, match="export_onnx: input_shape must be"):
        export_onnx(models.nielsen(), path, input_shape=(0, 28, 28))
    with pytest.raises(TypeError, match="export_onnx: input_shape must be a sequence of ints"):
        export_onnx(models.nielsen(), path, input_shape=(1.0, 28, 28))
    fits = cnnative.Network([Conv2D(1, 2, 3), Flatten(), Dense(2 * 26 * 26, 4)])
    wider_kernel = cnnative.Network([Conv2D(1, 2, 5), Flatten(), Dense(2 * 26 * 26, 4)])
    with pytest.raises(ValueError, match="does not fit member 1: dense: x has 1152 input"):
        export_onnx(Ensemble([fits, wider_kernel]), path, input_shape=DIGITS)
    with pytest.raises(ValueError, match=r"members' outputs for input_shape \(1, 28, 28\) differ"):
        export_onnx(Ensemble([cnnative.Network([Conv2D(1, 3, 3), GlobalAvgPool2D()]),
                              cnnative.Network([Conv2D(1, 4, 3), GlobalAvgPool2D()])]),
                    path, input_shape=DIGITS)
    assert not os.listdir(tmp_path)


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="export_onnx: model must be a cnnative.Network or "
                                        "cnnative.Ensemble, got list"):
        export_onnx([models.nielsen()], tmp_path / "never.onnx")
    with pytest.raises(TypeError, match="export_onnx: path must be a str or os.PathLike"):
        export_onnx(models.nielsen(), 5, input_shape=DIGITS)


@needs_onnx
def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="export_onnx: directory"):
        export_onnx(models.nielsen(), tmp_path / "missing" / "n.onnx", input_shape=DIGITS)


@needs_onnx
def test_the_file_is_replaced_whole(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    model = export_onnx(models.nielsen(), path, input_shape=DIGITS)
    assert path.read_bytes() == model.SerializeToString()
    assert os.listdir(tmp_path) == ["model.onnx"]


def without_onnx(monkeypatch):
    monkeypatch.setattr(onnx_export, "optional_import",
                        lambda name: (None, f"ModuleNotFoundError: No module named {name!r}"))


def test_missing_onnx_says_how_to_install_it(tmp_path, monkeypatch):
    without_onnx(monkeypatch)
    with pytest.raises(ImportError, match=r"export_onnx: exporting to ONNX needs the onnx "
                                          r"package \(ModuleNotFoundError: No module named "
                                          r"'onnx'\); install it with: pip install "
                                          r"'cnnative\[onnx\]'"):
        export_onnx(models.nielsen(), tmp_path / "never.onnx", input_shape=DIGITS)
    assert not os.listdir(tmp_path)


def test_cli_without_onnx_says_how_to_install_it(tmp_path, monkeypatch):
    without_onnx(monkeypatch)
    cnnative.save(models.lenet5(), tmp_path / "lenet.npz")
    with pytest.raises(SystemExit, match=r"cnnative export: .*pip install 'cnnative\[onnx\]'"):
        cli.main(["export", str(tmp_path / "lenet.npz"), str(tmp_path / "lenet.onnx"),
                  "--input-shape", "1", "28", "28"])


@needs_onnx
def test_cli_exports_a_model_file(tmp_path, capsys):
    model, out = tmp_path / "lenet.npz", tmp_path / "lenet.onnx"
    network = with_statistics(models.lenet5(seed=5))
    cnnative.save(network, model)
    assert cli.main(["export", str(model), str(out), "--input-shape", "1", "28", "28"]) == 0
    printed = capsys.readouterr().out
    assert f"{model} -> {out}: ONNX opset 17" in printed
    assert "input ['N', 1, 28, 28], output ['N', 10]" in printed
    assert agreement(network, out, DIGITS) < 1e-4

    cnnative.save(Ensemble([network, models.nielsen(seed=6)]), model)
    assert cli.main(["export", str(model), str(out), "--input-shape", "1", "28", "28",
                     "--opset", "18"]) == 0
    images = RNG.integers(0, 256, (3, 28, 28)).astype(np.uint8)
    np.testing.assert_allclose(run(out, network.prepare(images)),
                               cnnative.load(model).predict_proba(images), atol=1e-6)

    with pytest.raises(SystemExit, match=r"cnnative export: export_onnx: input_shape is needed"
                                         r".*\(pass --input-shape C H W\)"):
        cli.main(["export", str(model), str(out)])
    with pytest.raises(SystemExit, match="cnnative export: .*No such file"):
        cli.main(["export", str(tmp_path / "none.npz"), str(out)])
