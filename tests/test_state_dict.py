"""Network.state_dict / load_state_dict: torch's names, round trips, strictness, and weights
moving both ways between cnnative.models and their torch definitions."""
import numpy as np
import pytest

import cnnative
from cnnative import models
from cnnative.nn import (BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten,
                         GlobalAvgPool2D, MaxPool2D, ReLU, Residual, Sequential)
from cnnative.testing import torch_models

RNG = np.random.default_rng(18)


def nested(dtype="float32"):
    """Residual inside Sequential inside Residual, with a projection shortcut and BatchNorm1D."""
    inner = Residual(Conv2D(4, 4, 3, padding="same", bias=False, dtype=dtype),
                     BatchNorm2D(4, dtype=dtype))
    block = Residual(Sequential(Conv2D(4, 4, 3, padding=1, dtype=dtype), ReLU(), inner),
                     shortcut=Sequential(Conv2D(4, 4, 1, bias=False, dtype=dtype),
                                         BatchNorm2D(4, dtype=dtype)))
    return cnnative.Network([Conv2D(1, 4, 3, dtype=dtype, rng=0), block, MaxPool2D(2),
                             Dropout(0.1), Flatten(), Dense(4 * 3 * 3, 6, dtype=dtype, rng=1),
                             BatchNorm1D(6, dtype=dtype), ReLU(), Dense(6, 3, dtype=dtype, rng=2)])


def randomise(network):
    """Non-trivial values in every parameter and buffer (positive variances and scales)."""
    for _, layer in network.named_layers():
        for name, array in {**layer.params, **layer.buffers}.items():
            if name == "num_batches_tracked":
                array[...] = RNG.integers(1, 1000)
            elif name in ("running_var", "gamma"):
                array[...] = RNG.uniform(0.5, 2, array.shape)
            else:
                array[...] = RNG.standard_normal(array.shape)
    return network


def test_keys_follow_torch_s_names_and_order():
    keys = list(nested().state_dict())
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert keys == (["0.weight", "0.bias", "1.body.0.0.weight", "1.body.0.0.bias",
                     "1.body.0.2.body.0.weight"] + [f"1.body.0.2.body.1.{n}" for n in bn]
                    + ["1.shortcut.0.weight"] + [f"1.shortcut.1.{n}" for n in bn]
                    + ["5.weight", "5.bias"] + [f"6.{n}" for n in bn] + ["8.weight", "8.bias"])


def test_state_dict_holds_copies_with_torch_s_dtypes():
    network = nested()
    state = network.state_dict()
    assert state["6.num_batches_tracked"].dtype == np.int64
    assert state["6.num_batches_tracked"].shape == ()
    assert all(state[key].dtype == np.float32 for key in state if "num_batches" not in key)
    state["0.weight"][...] = 7
    assert not (network.layers[0].params["w"] == 7).any()


def test_round_trip_gives_the_same_outputs_and_arrays():
    source, target = randomise(nested()), nested()
    assert target.load_state_dict(source.state_dict()) == ([], [])
    for (name, a), (_, b) in zip(source.named_layers(), target.named_layers()):
        for key in (*a.params, *a.buffers):
            np.testing.assert_array_equal({**a.params, **a.buffers}[key],
                                          {**b.params, **b.buffers}[key], err_msg=name)
    x = RNG.random((3, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(source.forward(x), target.forward(x))


def test_loading_writes_into_the_existing_arrays():
    network = nested()
    weight = network.layers[0].params["w"]
    network.load_state_dict(randomise(nested()).state_dict())
    assert network.layers[0].params["w"] is weight


def test_float64_loads_into_float32_rounded_and_integers_into_integers():
    source = randomise(nested("float64"))
    target = nested("float32")
    target.load_state_dict(source.state_dict())
    np.testing.assert_array_equal(target.layers[0].params["w"],
                                  source.layers[0].params["w"].astype(np.float32))
    state = target.state_dict()
    state["6.num_batches_tracked"] = np.int32(5)
    target.load_state_dict(state)
    assert target.layers[6].buffers["num_batches_tracked"] == 5


def test_nested_lists_load_like_arrays():
    network = cnnative.Network([Dense(2, 1)])
    network.load_state_dict({"0.weight": [[1.0, 2.0]], "0.bias": [0.5]})
    np.testing.assert_array_equal(network.forward(np.ones((1, 2), np.float32)), [[3.5]])


def test_strict_load_lists_missing_and_unexpected_keys():
    network = nested()
    state = network.state_dict()
    del state["6.running_var"], state["0.bias"]
    state["9.weight"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"Network.load_state_dict: state does not match the "
                                         r"network's keys: missing \['0.bias', '6.running_var'\], "
                                         r"unexpected \['9.weight'\]"):
        network.load_state_dict(state)


def test_non_strict_load_loads_the_common_keys():
    network = nested()
    before = network.state_dict()
    source = randomise(nested()).state_dict()
    partial = {"5.weight": source["5.weight"], "extra": np.zeros(2)}
    missing, unexpected = network.load_state_dict(partial, strict=False)
    assert unexpected == ["extra"] and "5.weight" not in missing and "0.weight" in missing
    after = network.state_dict()
    np.testing.assert_array_equal(after["5.weight"], source["5.weight"])
    np.testing.assert_array_equal(after["0.weight"], before["0.weight"])


@pytest.mark.parametrize("key, value, error, message", [
    ("0.weight", np.zeros((4, 1, 5, 5), np.float32), ValueError,
     r"state\['0.weight'\] has shape \(4, 1, 5, 5\), the network's 0.weight has \(4, 1, 3, 3\)"),
    ("0.bias", np.zeros(4, np.int64), TypeError,
     r"state\['0.bias'\] has dtype int64, which cannot load into the network's float32 0.bias"),
    ("6.num_batches_tracked", np.float64(3), TypeError, "floats load into floats, integers into"),
    ("0.bias", np.zeros(4, bool), TypeError, "has dtype bool"),
    ("0.bias", np.zeros(4, complex), TypeError, "has dtype complex128"),
    ("0.bias", [[1, 2], [3]], TypeError, r"state\['0.bias'\] could not be converted"),
])
def test_bad_arrays_are_refused_by_key_and_nothing_is_loaded(key, value, error, message):
    network = nested()
    before = network.state_dict()
    state = randomise(nested()).state_dict()
    state[key] = value
    with pytest.raises(error, match=message):
        network.load_state_dict(state)
    after = network.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_bad_arguments():
    network = nested()
    with pytest.raises(TypeError, match="Network.load_state_dict: state must be a mapping"):
        network.load_state_dict([("0.weight", 1)])
    with pytest.raises(TypeError, match="strict must be True or False"):
        network.load_state_dict(network.state_dict(), strict="yes")


def test_layers_without_arrays_keep_their_position():
    network = cnnative.Network([Conv2D(1, 2, 3), ReLU(), GlobalAvgPool2D(), Dense(2, 3)])
    assert list(network.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias"]


# -- torch ---------------------------------------------------------------------------------

MODELS = {
    "nielsen": (lambda: models.nielsen(seed=1), lambda torch: torch_models.nielsen(torch)),
    "nielsen-dropout": (lambda: models.nielsen(seed=1, dropout=0.3),
                        lambda torch: torch_models.nielsen(torch, dropout=0.3)),
    "lenet5": (lambda: models.lenet5(seed=1), lambda torch: torch_models.lenet5(torch)),
    "resnet8": (lambda: models.resnet(8, width=4),
                lambda torch: torch_models.resnet(torch, 8, width=4)),
    "resnet20": (lambda: models.resnet(20), lambda torch: torch_models.resnet(torch, 20)),
    "vgg": (lambda: models.vgg(8, seed=2), lambda torch: torch_models.vgg(torch, 8)),
}


def outputs(torch, module, x):
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_weights_move_both_ways_between_a_model_and_its_torch_definition(name):
    torch = pytest.importorskip("torch")
    ours_of, theirs_of = MODELS[name]
    x = RNG.random((4, 1, 28, 28)).astype(np.float32)

    # cnnative -> torch: He-initialised weights, batch norms and biases made non-trivial.
    # Scales and variances that shrink activations keep resnet20's logits of order 1, as a
    # trained network's: ones that grow them take the logits to ~80, where float32's rounding
    # alone differs by 1e-5 between any two summation orders.
    ours = ours_of()
    for _, layer in ours.named_layers():
        for key, array in {**layer.params, **layer.buffers}.items():
            if key in ("b", "beta", "running_mean"):
                array[...] = RNG.normal(0, 0.1, array.shape)
            elif key == "gamma":
                array[...] = RNG.uniform(0.5, 1, array.shape)
            elif key == "running_var":
                array[...] = RNG.uniform(1, 2, array.shape)
    theirs = theirs_of(torch)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({key: torch.from_numpy(array)
                            for key, array in ours.state_dict().items()})
    np.testing.assert_allclose(outputs(torch, theirs, x), ours.forward(x, training=False),
                               rtol=0, atol=1e-5)

    # torch -> cnnative: torch's initial weights, its batch norms made non-trivial
    theirs = theirs_of(torch)
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(1, 2)
                module.num_batches_tracked.fill_(17)
    ours = ours_of()
    assert ours.load_state_dict(theirs.state_dict()) == ([], [])
    np.testing.assert_allclose(ours.forward(x, training=False), outputs(torch, theirs, x),
                               rtol=0, atol=1e-5)
    for key, tensor in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key], tensor.numpy(), err_msg=key)


def test_torch_parameters_that_require_grad_are_refused_by_key():
    torch = pytest.importorskip("torch")
    network = cnnative.Network([Dense(2, 3)])
    state = {"0.weight": torch.nn.Parameter(torch.zeros(3, 2)), "0.bias": torch.zeros(3)}
    with pytest.raises(TypeError, match=r"state\['0.weight'\] could not be converted"):
        network.load_state_dict(state)
    state["0.weight"] = state["0.weight"].detach()
    network.load_state_dict(state)
