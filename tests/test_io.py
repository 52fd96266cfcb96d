"""Model files: what cnnative.save writes and cnnative.load refuses (damaged, foreign or
hostile files raise ValueError naming the path, without allocating what they declare)."""
import io
import json
import os
import stat
import tracemalloc
import zipfile

import numpy as np
import pytest

import cnnative
from cnnative.nn import Conv2D, Dense, ReLU


def model_file(tmp_path, architecture=None, replace=None):
    """A small saved model; its architecture JSON or members' bytes optionally replaced."""
    return saved_file(cnnative.Network([Dense(3, 4, rng=0), ReLU(), Dense(4, 2, rng=1)]),
                      tmp_path / "model.npz", architecture, replace)


def saved_file(model, path, architecture=None, replace=None):
    """``model`` saved to ``path``; ``architecture`` rewrites its architecture JSON (a function
    of the parsed JSON returning text), ``replace(name, data)`` each member's bytes."""
    cnnative.save(model, path)
    if architecture is not None:
        with np.load(path) as archive:
            contents = dict(archive)
        text = architecture(json.loads(str(contents["architecture"])))
        np.savez(path, **{**contents, "architecture": np.array(text)})
    if replace is not None:
        data = path.read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(path, "w") as target:
            for info in source.infolist():
                target.writestr(info, replace(info.filename, source.read(info)))
    return path


def load_refused(path, message):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message) as info:
            cnnative.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert repr(str(path)) in str(info.value)
    assert peak < 8 << 20, peak


def with_size(size):
    def change(architecture):
        architecture["layers"][0]["config"]["out_features"] = size
        return json.dumps(architecture)
    return change


@pytest.mark.parametrize("size", [2**22, 10**12, 2**62])
def test_model_config_of_huge_layers_fails_before_allocating_them(tmp_path, size):
    # Building the layers drew their random weights first: 2**22 allocated 100 MB, 10**12 raised
    # MemoryError.  The weights' shape is now checked against the stored array first.
    load_refused(model_file(tmp_path, with_size(size)),
                 rf"parameter 0.w should be float32 \({size}, 3\), found float32 \(4, 3\)")


def declaring_a_huge_shape(member):
    """A model_file ``replace`` function: ``member``'s .npy header claims a (2**20, 2**20)
    float32 array (4 TiB) while the data stays as it was."""
    def replace(name, data):
        if name != member:
            return data
        stream = io.BytesIO(data)
        np.lib.format.read_magic(stream)
        np.lib.format.read_array_header_1_0(stream)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (2**20, 2**20)})
        return header.getvalue() + data[stream.tell():]
    return replace


def test_model_member_declaring_a_huge_shape_fails_before_allocating_it(tmp_path):
    load_refused(model_file(tmp_path, replace=declaring_a_huge_shape("0.w.npy")),
                 "declares float32 .* does not fit")


def test_model_member_that_is_not_an_npy_array_raises_value_error(tmp_path):
    # np.load returns such a member's bytes as they are: AttributeError ('bytes' has no shape).
    path = model_file(tmp_path, replace=lambda name, data: b"hello" if name == "format.npy" else data)
    load_refused(path, "not a readable cnnative model file")


def test_model_path_to_a_plain_npy_file_raises_value_error(tmp_path):
    np.save(tmp_path / "array.npy", np.ones(3))  # np.load returned an array: TypeError
    load_refused(tmp_path / "array.npy", "not a readable cnnative model file")


@pytest.mark.parametrize("offset,value", [(8, 0x01), (8, 0x20), (8, 0x40), (10, 99)],
                         ids=["encrypted", "patched", "strong-encryption", "method-99"])
def test_model_zip_members_zipfile_cannot_read_raise_value_error(tmp_path, offset, value):
    # zipfile raised RuntimeError or NotImplementedError for these flags and methods.
    path = model_file(tmp_path)
    data = bytearray(path.read_bytes())
    entry = data.find(b"PK\x01\x02")  # the first central directory entry
    data[entry + offset] |= value
    path.write_bytes(bytes(data))
    load_refused(path, "not a readable cnnative model file")


def test_deeply_nested_architecture_json_raises_value_error(tmp_path):
    # json.loads raised RecursionError.
    path = model_file(tmp_path, lambda architecture: "[" * 100_000 + "]" * 100_000)
    load_refused(path, "invalid architecture")


def test_model_files_follow_the_umask_like_any_new_file(tmp_path):
    previous = os.umask(0o022)
    try:
        path = model_file(tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_loader_checks_parameter_shapes_from_the_config_before_building_the_layer():
    config = Conv2D(3, 8, 5, dtype="float64").get_config()
    assert Conv2D.param_shapes(config) == {"w": ((8, 3, 5, 5), np.dtype(np.float64)),
                                           "b": ((8,), np.dtype(np.float64))}
    assert Dense.param_shapes({"in_features": 10**12, "out_features": 10**12}) == {
        "w": ((10**12, 10**12), np.dtype(np.float32)), "b": ((10**12,), np.dtype(np.float32))}
    assert ReLU.param_shapes({}) == {}
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        Dense.param_shapes({"in_features": 0, "out_features": 2})
    with pytest.raises(TypeError):
        Dense.param_shapes({"in_features": 2, "out_features": 2, "colour": "red"})
