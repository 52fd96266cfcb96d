"""`cnnative show`: four pictures of a saved model, and clear failures without matplotlib or a
model."""
import sys

import numpy as np
import pytest

import cnnative
from cnnative import cli, datasets, models, optim, show
from cnnative.nn import Conv2D

PICTURES = ("filters.png", "feature_maps.png", "confusion.png", "mistakes.png")


@pytest.fixture(scope="module")
def digits():
    return datasets.load_digits_5k()


@pytest.fixture(scope="module")
def trained(digits):
    """Nielsen's network after one epoch on 500 digits: right often enough for a diagonal,
    wrong often enough for mistakes."""
    (x, y), _ = digits
    network = models.nielsen(seed=0)
    network.fit(x[:500], y[:500], epochs=1, optimizer=optim.SGD(0.02, momentum=0.9), seed=0,
                progress=False)
    return network


@pytest.fixture
def model_file(trained, tmp_path):
    path = tmp_path / "net.npz"
    cnnative.save(trained, path)
    return path


def _read_png(path):
    image = pytest.importorskip("matplotlib.image").imread(path)
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] in (3, 4)
    return image


@pytest.mark.parametrize("ensemble", [False, True], ids=["network", "ensemble"])
def test_show_writes_four_pictures(trained, tmp_path, capsys, ensemble):
    pytest.importorskip("matplotlib")
    model = tmp_path / "model.npz"
    cnnative.save(cnnative.Ensemble([trained, models.nielsen(seed=1)]) if ensemble else trained,
                  model)
    out = tmp_path / "pictures"
    assert cli.main(["show", str(model), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1000 images" in printed
    sizes = {}
    for name in PICTURES:
        assert f"wrote {out / name}" in printed
        image = _read_png(out / name)
        sizes[name] = image.shape[:2]
        # Pictures of something: far from one flat colour.
        assert image[..., :3].std() > 0.05, name
    assert all(height >= 300 and width >= 300 for height, width in sizes.values()), sizes
    # The input image and Nielsen's 20 + 40 maps need the most room.
    assert sizes["feature_maps.png"][0] == max(height for height, _ in sizes.values())


def test_show_defaults_to_the_current_directory(model_file, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["show", str(model_file)]) == 0
    assert all((tmp_path / name).is_file() for name in PICTURES)


def test_show_reads_the_t10k_files_of_a_directory(model_file, digits, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _, (x, y) = digits
    data = tmp_path / "data"
    data.mkdir()
    datasets.write_idx(data / "t10k-images-idx3-ubyte", x[:40])
    datasets.write_idx(data / "t10k-labels-idx1-ubyte", y[:40].astype(np.uint8))
    out = tmp_path / "out"
    assert cli.main(["show", str(model_file), "--data", str(data), "--out", str(out)]) == 0
    assert "40 images" in capsys.readouterr().out
    assert all((out / name).is_file() for name in PICTURES)


def test_show_without_mistakes_says_so(trained, digits, tmp_path):
    pyplot = pytest.importorskip("matplotlib.pyplot")
    _, (x, _) = digits
    # Labels equal to the predictions: nothing to show but the statement that nothing is wrong.
    paths = show.draw(trained, x[:30], trained.predict(x[:30]), tmp_path, pyplot=pyplot)
    assert [p.rsplit("/", 1)[-1] for p in map(str, paths)] == list(PICTURES)
    mistakes = _read_png(tmp_path / "mistakes.png")
    assert mistakes.shape[0] < mistakes.shape[1]  # one line of text, not a grid of images


def test_show_without_matplotlib_exits_1_naming_the_install(model_file, tmp_path, capsys,
                                                              monkeypatch):
    # None in sys.modules makes `import matplotlib` fail, as when it is not installed.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "out"
    assert cli.main(["show", str(model_file), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "matplotlib" in err and "pip install matplotlib" in err
    assert not out.exists()


@pytest.mark.parametrize("contents, message", [
    (None, "No such file"),
    (b"not a model", "not a readable cnnative model"),
])
def test_show_refuses_a_bad_model_path(tmp_path, contents, message):
    pytest.importorskip("matplotlib")
    path = tmp_path / "model.npz"
    if contents is not None:
        path.write_bytes(contents)
    with pytest.raises(SystemExit) as raised:
        cli.main(["show", str(path), "--out", str(tmp_path)])
    text = str(raised.value.code)
    assert text.startswith("cnnative show: cannot load the model") and str(path) in text
    assert message.lower() in text.lower()


def test_show_refuses_a_missing_data_directory(model_file, tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(SystemExit, match="cnnative show: --data"):
        cli.main(["show", str(model_file), "--data", str(tmp_path / "nowhere"),
                  "--out", str(tmp_path)])


def test_show_refuses_labels_the_model_has_no_output_for(trained, digits, tmp_path):
    pyplot = pytest.importorskip("matplotlib.pyplot")
    _, (x, y) = digits
    with pytest.raises(ValueError, match=r"10 outputs but the labels lie in \[0, 12\]"):
        show.draw(trained, x[:10], np.where(y[:10] == y[0], 12, y[:10]), tmp_path,
                  pyplot=pyplot)


# -- the numbers behind the pictures -----------------------------------------------------------

def test_confusion_matrix_counts_true_against_predicted():
    confusion = show.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    np.testing.assert_array_equal(confusion, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert confusion.dtype == np.int64


def test_confident_mistakes_come_most_confident_first():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.05, 0.95], [0.6, 0.4]])
    y = np.array([0, 0, 1, 0, 1])
    np.testing.assert_array_equal(show.confident_mistakes(y, probabilities, 16), [3, 1, 2, 4])
    np.testing.assert_array_equal(show.confident_mistakes(y, probabilities, 2), [3, 1])
    np.testing.assert_array_equal(show.confident_mistakes([1, 1], probabilities[:2], 5), [0])


def test_feature_maps_are_each_conv_layers_output(trained, digits):
    _, (x, _) = digits
    maps = show.feature_maps(trained, x[:1])
    assert [(name, output.shape) for name, _, output in maps] == [("0", (20, 24, 24)),
                                                                   ("3", (40, 8, 8))]
    first = trained.layers[0]
    expected = cnnative.conv2d(trained.prepare(x[:1]), first.params["w"], first.params["b"])
    np.testing.assert_array_equal(maps[0][2], expected[0])
    assert show.first_conv(trained) == ("0", first)


def test_feature_maps_show_a_residual_block_as_a_whole(digits):
    _, (x, _) = digits
    network = models.resnet(8, seed=0)
    maps = show.feature_maps(network, x[:1])
    kinds = [type(layer).__name__ for _, layer, _ in maps]
    assert kinds[0] == "Conv2D" and set(kinds[1:]) == {"Residual"}
    assert all(output.ndim == 3 for _, _, output in maps)
    assert isinstance(show.first_conv(network)[1], Conv2D)
