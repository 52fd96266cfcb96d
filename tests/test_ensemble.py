"""cnnative.Ensemble: averaged probabilities, predictions, evaluation, one model file."""
import json

import numpy as np
import pytest

import cnnative
from cnnative import Ensemble, models
from cnnative.nn import Conv2D, Dense, Flatten, GlobalAvgPool2D, ReLU

from test_io import declaring_a_huge_shape, load_refused, saved_file

RNG = np.random.default_rng(16)
IMAGES = RNG.integers(0, 256, (9, 28, 28)).astype(np.uint8)
LABELS = RNG.integers(0, 10, 9)


def small(seed, loss="softmax_cross_entropy", outputs=3, dtype="float32"):
    return cnnative.Network([Dense(4, 6, rng=seed, dtype=dtype), ReLU(),
                             Dense(6, outputs, rng=seed + 1, dtype=dtype)], loss=loss)


def digits():
    return Ensemble([models.nielsen(seed=0), models.lenet5(seed=1), models.resnet(8, width=2)])


def test_probabilities_are_the_mean_of_the_members():
    ensemble = digits()
    members = [member.predict_proba(IMAGES, batch_size=4) for member in ensemble]
    proba = ensemble.predict_proba(IMAGES, batch_size=4)
    assert proba.dtype == np.float32 and proba.shape == (9, 10)
    np.testing.assert_array_equal(proba, np.mean(members, axis=0))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    predicted = ensemble.predict(IMAGES)
    assert predicted.dtype == np.int64
    np.testing.assert_array_equal(predicted, proba.argmax(axis=1))


def test_inputs_are_prepared_like_a_network_s():
    # uint8 (N, H, W) images are scaled by 1/255 and given a channel axis, as Network does.
    ensemble = digits()
    scaled = IMAGES[:, np.newaxis].astype(np.float32) * np.float32(1 / 255)
    np.testing.assert_array_equal(ensemble.predict_proba(IMAGES), ensemble.predict_proba(scaled))
    with pytest.raises(TypeError, match="Ensemble.predict_proba: x must be uint8 images or floats"):
        ensemble.predict_proba(IMAGES.astype(np.int32))
    with pytest.raises(ValueError, match="Ensemble.predict: x must be"):
        ensemble.predict(np.zeros(5))
    with pytest.raises(ValueError, match="Ensemble.predict_proba: batch_size must be a positive"):
        ensemble.predict_proba(IMAGES, batch_size=0)


def test_evaluate_is_the_cross_entropy_of_the_averaged_probabilities():
    ensemble = digits()
    loss, accuracy = ensemble.evaluate(IMAGES, LABELS, batch_size=5)
    proba = ensemble.predict_proba(IMAGES).astype(np.float64)
    assert loss == pytest.approx(-np.log(proba[np.arange(9), LABELS]).mean(), rel=1e-6)
    assert accuracy == np.mean(proba.argmax(axis=1) == LABELS)
    assert isinstance(loss, float) and isinstance(accuracy, float)


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "sigmoid_cross_entropy"])
def test_an_ensemble_of_one_evaluates_as_its_network(loss):
    network = small(0, loss)
    x = RNG.standard_normal((20, 4)).astype(np.float32)
    y = RNG.integers(0, 3, 20)
    ours = Ensemble([network]).evaluate(x, y)
    theirs = network.evaluate(x, y)
    assert ours[0] == pytest.approx(theirs[0], rel=1e-5) and ours[1] == theirs[1]


def test_sigmoid_members_average_sigmoid_probabilities():
    members = [small(seed, "sigmoid_cross_entropy") for seed in (0, 2)]
    x = RNG.standard_normal((6, 4))
    proba = Ensemble(members).predict_proba(x)
    np.testing.assert_array_equal(proba, np.mean([m.predict_proba(x) for m in members], axis=0))


def test_evaluate_stays_finite_for_a_confidently_wrong_ensemble():
    network = small(0)
    network.layers[2].params["b"][...] = [1e4, 0, 0]  # always class 0, with probability 1
    x = np.zeros((2, 4), np.float32)
    loss, accuracy = Ensemble([network]).evaluate(x, np.array([1, 2]))
    assert loss == pytest.approx(-np.log(np.finfo(np.float32).tiny)) and accuracy == 0.0


def test_evaluate_checks_its_labels():
    ensemble = Ensemble([small(0)])
    x = np.zeros((3, 4))
    with pytest.raises(TypeError, match="Ensemble.evaluate: y must be integer class labels"):
        ensemble.evaluate(x, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="Ensemble.evaluate: y must have one label per sample"):
        ensemble.evaluate(x, [0, 1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        ensemble.evaluate(x, [0, 1, 3])


def test_container_protocol_and_repr():
    members = [small(0), small(2)]
    ensemble = Ensemble(iter(members))
    assert len(ensemble) == 2 and list(ensemble) == members
    assert ensemble.members == tuple(members) and ensemble.activation == "softmax"
    assert repr(ensemble).startswith("Ensemble([\n    Network([") and "Dense(in_features=4" in repr(
        ensemble)


def test_save_and_load_give_back_the_same_ensemble(tmp_path):
    ensemble = digits()
    path = tmp_path / "ensemble.npz"
    cnnative.save(ensemble, path)
    loaded = cnnative.load(path)
    assert isinstance(loaded, Ensemble) and len(loaded) == 3
    for ours, theirs in zip(ensemble, loaded):
        assert repr(ours) == repr(theirs)
        for (name, a), (_, b) in zip(ours.named_layers(), theirs.named_layers()):
            for key in (*a.params, *a.buffers):
                array = {**a.params, **a.buffers}[key]
                copy = {**b.params, **b.buffers}[key]
                assert array.dtype == copy.dtype and array.tobytes() == copy.tobytes(), name
    np.testing.assert_array_equal(loaded.predict_proba(IMAGES), ensemble.predict_proba(IMAGES))
    with np.load(path) as archive:
        architecture = json.loads(str(archive["architecture"]))
        assert [member["loss"] for member in architecture["ensemble"]] == [
            "softmax_cross_entropy"] * 3
        assert "members.2.3.body.1.running_mean" in archive and int(archive["version"]) == 1


def test_single_network_files_are_unchanged(tmp_path):
    path = tmp_path / "net.npz"
    cnnative.save(small(0), path)
    with np.load(path) as archive:
        assert set(archive) == {"format", "version", "architecture", "0.w", "0.b", "2.w", "2.b"}
        assert set(json.loads(str(archive["architecture"]))) == {"loss", "layers"}
    assert isinstance(cnnative.load(path), cnnative.Network)


@pytest.mark.parametrize("networks, error, message", [
    ([], ValueError, "Ensemble: networks must hold at least one"),
    (5, TypeError, "Ensemble: networks must be an iterable of cnnative.Network, got int"),
    ([small(0), "a network"], TypeError, r"Ensemble: networks\[1\] must be a cnnative.Network"),
    ([small(0), small(2, outputs=4)], ValueError, r"same number of outputs, got \[3, 4\]"),
    ([small(0), small(2, "sigmoid_cross_entropy")], ValueError, "all give softmax or all sigmoid"),
    ([small(0, "quadratic")], ValueError, "must give softmax or sigmoid probabilities"),
    ([small(0), small(2, dtype="float64")], TypeError, "members must share one dtype"),
])
def test_bad_members_are_refused(networks, error, message):
    with pytest.raises(error, match=message):
        Ensemble(networks)


def test_outputs_the_layers_do_not_tell_are_compared_when_predicting():
    # A network ending in global pooling has as many outputs as channels, unknown until run.
    pooled = cnnative.Network([Conv2D(1, 4, 3, rng=0), GlobalAvgPool2D()])
    flat = cnnative.Network([Conv2D(1, 2, 27, rng=1), Flatten()])
    ensemble = Ensemble([pooled, flat])
    with pytest.raises(ValueError, match=r"Ensemble.predict: members gave outputs of different "
                                         r"shapes \[\(9, 4\), \(9, 8\)\]"):
        ensemble.predict(IMAGES)


def ensemble_file(tmp_path, architecture=None, replace=None):
    """A small saved ensemble; its architecture JSON or members' bytes optionally replaced."""
    return saved_file(Ensemble([small(0), small(2)]), tmp_path / "ensemble.npz", architecture,
                      replace)


def edit(change):
    def rewrite(architecture):
        change(architecture)
        return json.dumps(architecture)
    return rewrite


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(ensemble=[]), "invalid architecture .*at least one"),
    (lambda a: a.update(ensemble={"loss": "x"}), "invalid architecture .*must be a list"),
    (lambda a: a["ensemble"].append(5), "invalid architecture"),
    (lambda a: a["ensemble"][1].update(loss="quadratic"), "invalid architecture .*softmax or "
                                                          "sigmoid"),
    (lambda a: a["ensemble"][1]["layers"][2]["config"].update(out_features=5),
     r"parameter members.1.2.w should be float32 \(5, 6\), found float32 \(3, 6\)"),
    (lambda a: a["ensemble"].pop(), r"arrays its architecture does not use: \['members.1.0.b'"),
])
def test_damaged_ensemble_architectures_are_refused(tmp_path, change, message):
    load_refused(ensemble_file(tmp_path, edit(change)), message)


def test_damaged_ensemble_members_are_refused(tmp_path):
    def drop(name, data):
        return b"hello" if name == "members.1.0.w.npy" else data
    load_refused(ensemble_file(tmp_path, replace=drop), "not a readable cnnative model file")

    load_refused(ensemble_file(tmp_path, replace=declaring_a_huge_shape("members.0.2.w.npy")),
                 "declares float32 .* does not fit")


def test_missing_member_array_is_refused(tmp_path):
    path = ensemble_file(tmp_path)
    with np.load(path) as archive:
        contents = {key: archive[key] for key in archive if key != "members.1.2.b"}
    np.savez(path, **contents)
    load_refused(path, r"parameter members.1.2.b should be float32 \(3,\), found missing")


def test_save_refuses_other_objects():
    with pytest.raises(TypeError, match="save: network must be a cnnative.Network or "
                                        "cnnative.Ensemble"):
        cnnative.save([small(0)], "never.npz")
