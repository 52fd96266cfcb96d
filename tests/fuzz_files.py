"""Fuzz targets for the file readers: cnnative.datasets.read_idx, cnnative.load and the
checkpoints that Network.fit(resume=...) reads.

Each case builds a valid file from its seed, and most of the time spoils it:

- IDX: an array of a random IDX type (uint8 to float64, NaN and inf included) with 1-4
  dimensions including 0 and 1, raw or gzip, written by ``write_idx`` (from any memory layout) or
  by hand; spoiled by truncating its header or data, appending bytes, flipping bytes or bits,
  a bad magic, type code or dimension count, absurd dimensions (2**32 - 1), a corrupt,
  truncated or padded gzip stream, an empty file, garbage, gzip of garbage.
- Models: a small network (dense or convolutional, float32 or float64, any loss; now and then
  Nielsen's) saved by ``cnnative.save``; spoiled by rewriting the .npz with an array missing, an
  extra one, a wrong shape, dtype or value, an object (pickled) array, a wrong format marker or
  version, a mutated architecture JSON (unknown layer type, wrong or missing config keys, huge
  sizes, deep nesting, ...), a member that is not an .npy array or whose .npy header declares
  another or a huge shape, damaged zip fields (compression method, flags, sizes), then
  possibly truncated, flipped, or given bytes before or after it.

- Checkpoints: a tiny seeded fit (with or without batch norm, dropout, Adam, early stopping)
  checkpointed after every batch and stopped at a random batch; spoiled by changing, removing
  or retyping one value of its JSON state, and by the byte damage above.

The oracle (``check_file``): the reader either returns what the file holds or raises ValueError
(IDXFormatError for read_idx) whose message names the file; any other exception, a warning, a
MemoryError, a crash or a hang fails.  What an IDX file holds is decided by parsing its bytes
here (gzip.decompress and the header, nothing of cnnative's), and an unspoiled file must give
back exactly the array written.  What a model file holds is decided by each spoil: an unspoiled
file gives back the network saved (architecture, parameters bit for bit, predictions); a spoil
that breaks a rule must raise; a harmless one (a stride changed, a parameter's values replaced,
deflated members) must give the model it describes.  Damage to the zip structure must raise or
change nothing: the members' CRCs protect their contents.
"""
import dataclasses
import gzip
import io
import json
import math
import os
import pathlib
import shutil
import tempfile
import warnings
import zipfile
import zlib
from typing import Any, Callable

import numpy as np

import cnnative
from cnnative import datasets, io as model_io, models
from cnnative.nn import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sigmoid, Tanh
from fuzz_support import (ERROR, FLOATS, LAYOUTS, Value, assert_same_array, chance, describe,
                          integer, pick, size, values, with_layout)

# Files are written to a memory-backed directory where there is one: cnnative.save and
# write_idx fsync.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@dataclasses.dataclass
class FileCall:
    """``reader(path)`` on a file named ``filename`` holding ``data``; ``spoils`` says what was
    done to the valid file, ``error`` is the ValueError subclass a refusal must raise."""

    func: str
    reader: Callable
    data: bytes
    filename: str
    spoils: list
    error: type = ValueError
    as_path: bool = False           # pass a pathlib.Path rather than a str
    original: Any = None            # what the unspoiled file held
    expect: Any = None              # the spoils' verdict (models)
    seed: Any = None

    def __repr__(self):
        what = ", ".join(self.spoils) if self.spoils else "valid"
        return f"[seed {self.seed}] {self.func}({self.filename!r}: {len(self.data)} bytes, {what})"


@dataclasses.dataclass
class ValueOrError:
    """The file may have survived its damage: the reader must raise, or return what ``check``
    accepts."""

    check: Callable[[Any], None]


def scratch_directory():
    return tempfile.mkdtemp(prefix="cnnative-fuzz-", dir=SCRATCH)


def check_file(call, spec):
    """Writes the call's file to a fresh directory and reads it; returns 'value' or 'error'."""
    expected = spec(call)
    directory = scratch_directory()
    try:
        name = os.path.join(directory, call.filename)
        with open(name, "wb") as file:
            file.write(call.data)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # as in the test suite's configuration
            try:
                result = call.reader(pathlib.Path(name) if call.as_path else name)
            except ValueError as exc:
                assert not isinstance(expected, Value), f"raised {exc!r} on a valid file"
                assert isinstance(exc, call.error), f"raised {exc!r}, not {call.error.__name__}"
                assert name in str(exc), f"message does not name the file: {exc!r}"
                return "error"
        assert expected is not ERROR, f"accepted a spoiled file, returned {describe(result)}"
        expected.check(result)
        return "value"
    finally:
        shutil.rmtree(directory)


def flip_bytes(rng, data, low=0):
    """``data`` with 1-4 bytes at or after ``low`` XORed with nonzero values."""
    data = bytearray(data)
    for _ in range(integer(rng, 1, 4)):
        if len(data) > low:
            data[integer(rng, low, len(data) - 1)] ^= integer(rng, 1, 255)
    return bytes(data)


def flip_bits(rng, data):
    data = bytearray(data)
    for _ in range(integer(rng, 1, 3)):
        if data:
            data[integer(rng, 0, len(data) - 1)] ^= 1 << integer(rng, 0, 7)
    return bytes(data)


def garbage(rng, low, high):
    return rng.integers(0, 256, integer(rng, low, high), dtype=np.uint8).tobytes()


# ------------------------------------------------------------------------------------ read_idx

IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"
U32_MAX = 2**32 - 1


def idx_values(rng, shape, dtype):
    """Integers over the type's whole range; floats with NaN, inf, -0.0 and denormals."""
    dtype = dtype.newbyteorder("=")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return values(rng, shape, dtype, special=0.1)


def idx_header(code, shape):
    return bytes([0, 0, code, len(shape)]) + np.array(shape, ">u4").tobytes()


def idx_call(rng):
    code = pick(rng, list(IDX_TYPES))
    dtype = IDX_TYPES[code]
    shape = tuple(size(rng, 6, zero=0.08, one=0.2) for _ in range(integer(rng, 1, 4)))
    array = idx_values(rng, shape, dtype)
    compress = chance(rng, 0.4)
    if chance(rng, 0.5):
        array, raw, data = idx_by_write_idx(rng, array, compress)
    else:
        raw = idx_header(code, shape) + array.astype(dtype).tobytes()
        data = gzip.compress(raw, compresslevel=integer(rng, 0, 9), mtime=0) if compress else raw
    spoils = []
    if chance(rng, 0.75):
        # One or two spoils, in the order raw bytes, gzip stream, whole file.
        families = sorted(pick(rng, ["0 raw", "0 raw", "1 gzip", "2 file"] if compress else
                               ["0 raw", "0 raw", "0 raw", "2 file"])
                          for _ in range(pick(rng, [1, 1, 1, 2])))
        for family in families:
            if family == "0 raw":
                label, raw = spoil_idx(rng, raw, len(shape))
                data = gzip.compress(raw, mtime=0) if compress else raw
            elif family == "1 gzip":
                label, data = spoil_gzip(rng, data)
            else:
                label, data = spoil_idx_file(rng)
            spoils.append(label)
    filename = pick(rng, ["train-images-idx3-ubyte", "labels.gz", "a b.idx", "x"])
    return FileCall("datasets.read_idx", datasets.read_idx, data, filename, spoils,
                    error=datasets.IDXFormatError, as_path=chance(rng, 0.3), original=array)


def idx_by_write_idx(rng, array, compress):
    """``array`` written by write_idx from a random memory layout: (the values written, the
    uncompressed file, the file)."""
    source = with_layout(array, pick(rng, [k for k in LAYOUTS if k != "list"]))
    directory = scratch_directory()
    try:
        path = os.path.join(directory, "a.gz" if compress else "a")
        datasets.write_idx(path, source)
        with open(path, "rb") as file:
            data = file.read()
    finally:
        shutil.rmtree(directory)
    written = np.array(source, dtype=array.dtype)  # the broadcast layout repeats values
    return written, gzip.decompress(data) if compress else data, data


def spoil_idx(rng, raw, ndim):
    """The uncompressed file ``raw`` of ``ndim`` dimensions spoiled in one way: (label, bytes)."""
    header = 4 + 4 * ndim
    how = pick(rng, ["truncate header", "truncate data", "append", "flip bytes", "flip data",
                     "flip bits", "bad magic", "bad type code", "other type code", "zero dims",
                     "ndim", "absurd dim", "absurd dims", "zero and absurd dims", "dim"])
    if len(raw) < header and how not in ("truncate header", "flip bytes", "flip bits"):
        how = "append"  # the header is already cut short
    raw = bytearray(raw)
    if how == "truncate header":
        return how, bytes(raw[:integer(rng, 0, header - 1)])
    if how == "truncate data" and len(raw) > header:
        return how, bytes(raw[:integer(rng, header, len(raw) - 1)])
    if how == "flip data" and len(raw) > header:
        return how, flip_bytes(rng, raw, low=header)
    if how == "flip bytes":
        return how, flip_bytes(rng, raw)
    if how == "flip bits":
        return how, flip_bits(rng, raw)
    if how == "bad magic":
        raw[integer(rng, 0, 1)] = integer(rng, 1, 255)
    elif how == "bad type code":
        raw[2] = pick(rng, [c for c in range(256) if c not in IDX_TYPES])
    elif how == "other type code":
        raw[2] = pick(rng, list(IDX_TYPES))
    elif how == "zero dims":
        raw[3] = 0
    elif how == "ndim":
        raw[3] = pick(rng, [1, 2, 3, 4, 5, 255])
    elif how in ("absurd dim", "absurd dims", "zero and absurd dims", "dim"):
        dims = np.frombuffer(bytes(raw[4:header]), ">u4").copy()
        if how == "absurd dim":
            dims[integer(rng, 0, ndim - 1)] = pick(rng, [U32_MAX, 2**31, 2**16 + 1])
        elif how == "dim":
            dims[integer(rng, 0, ndim - 1)] = integer(rng, 0, 8)
        else:
            dims[:] = U32_MAX
            if how == "zero and absurd dims":
                dims[integer(rng, 0, ndim - 1)] = 0
                raw = raw[:header]
        raw[4:header] = dims.tobytes()
    else:  # "append", or a spoil the file was too short for
        how = "append"
        raw += garbage(rng, 1, 20)
    return how, bytes(raw)


def spoil_gzip(rng, data):
    """The gzip file ``data`` spoiled in one way: (label, bytes)."""
    how = pick(rng, ["truncate gzip", "flip gzip bytes", "corrupt gzip trailer", "append garbage",
                     "append zeros", "append gzip member", "gzip of garbage",
                     "gzip magic then garbage"])
    if how == "truncate gzip":
        return how, data[:integer(rng, 0, len(data) - 1)]
    if how == "flip gzip bytes":
        return how, flip_bytes(rng, data)
    if how == "corrupt gzip trailer":
        return how, flip_bytes(rng, data, low=len(data) - 8)
    if how == "append garbage":
        return how, data + garbage(rng, 1, 30)
    if how == "append zeros":
        return how, data + bytes(integer(rng, 1, 30))
    if how == "append gzip member":
        return how, data + gzip.compress(garbage(rng, 0, 3), mtime=0)
    if how == "gzip of garbage":
        return how, gzip.compress(garbage(rng, 0, 60), mtime=0)
    return how, GZIP_MAGIC + garbage(rng, 0, 60)


def spoil_idx_file(rng):
    """A file that was never IDX: (label, bytes)."""
    how = pick(rng, ["empty file", "garbage", "zeros"])
    if how == "empty file":
        return how, b""
    if how == "zeros":
        return how, bytes(integer(rng, 1, 40))
    return how, garbage(rng, 1, 60)


def idx_contents(data):
    """The array an IDX file holding ``data`` stores (in native byte order), or None if the
    bytes are not a well-formed IDX file."""
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_TYPES or data[3] == 0:
        return None
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        return None
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], ">u4"))
    dtype = IDX_TYPES[data[2]]
    if len(data) - header != math.prod(shape) * dtype.itemsize:
        return None
    if math.prod(d for d in shape if d) * dtype.itemsize > np.iinfo(np.intp).max:
        return None  # no NumPy array has this shape
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def idx_spec(call):
    array = idx_contents(call.data)
    if not call.spoils:
        assert array is not None, "the reference parser refuses a valid file"
        assert_same_array(array, call.original)
    if array is None:
        return ERROR

    def check(result):
        assert_same_array(result, array)
        assert result.flags.c_contiguous and result.flags.writeable, describe(result)

    return Value(check)


# ------------------------------------------------------------------------------------- models

LOSSES = ["softmax_cross_entropy", "sigmoid_cross_entropy", "quadratic"]
# Required config keys, and the defaults of the others, per layer type.
REQUIRED = {"Conv2D": {"in_channels", "out_channels", "kernel_size"},
            "Dense": {"in_features", "out_features"}, "MaxPool2D": {"kernel_size"}}
DEFAULTS = {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1, "bias": True,
            "init": "he", "dtype": "float32", "p": 0.5}
SIZE_KEYS = {"Conv2D": ["in_channels", "out_channels", "kernel_size"],
             "Dense": ["in_features", "out_features"]}
# Invalid for every config key (MaxPool2D's stride=None aside: it means kernel_size).
BAD_VALUES = ["3", None, True, [], [1, 2, 3], {"a": 1}, -1, float("nan"), 3.5]
HUGE_SIZES = [10**12, 2**31 - 1, 2**32, 2**40, 2**62, 2**63, 10**30]
DTYPE_SPELLINGS = {"float32": ["float32", "f4", "single"],
                   "float64": ["float64", "f8", "double", "d"]}


def small_network(rng):
    """A network that takes a few ms to save and load, and the shape of one input sample."""
    dtype = pick(rng, FLOATS)
    seed = integer(rng, 0, 2**32)
    if chance(rng, 0.02):
        return models.nielsen(dtype, seed, dropout=pick(rng, [0.0, 0.25])), (1, 28, 28)
    init = pick(rng, ["he", "xavier"])
    layers = []
    if chance(rng, 0.5):
        channels, h, w = integer(rng, 1, 3), integer(rng, 2, 7), integer(rng, 2, 7)
        kh, kw = integer(rng, 1, 2), integer(rng, 1, 2)
        stride, padding = integer(rng, 1, 2), integer(rng, 0, 1)
        conv = Conv2D(channels, integer(rng, 1, 3), (kh, kw), stride, padding, init=init,
                      dtype=dtype, rng=seed)
        layers += [conv, activation(rng)]
        oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
        if chance(rng, 0.6):
            ph, pw = min(2, oh), min(2, ow)
            layers.append(MaxPool2D((ph, pw)))
            oh, ow = oh // ph, ow // pw
        layers.append(Flatten())
        sample = (channels, h, w)
        features = conv.out_channels * oh * ow
    else:
        features = integer(rng, 1, 5)
        sample = (features,)
    hidden = integer(rng, 1, 5)
    layers += [Dense(features, hidden, init=init, dtype=dtype, rng=seed + 1), activation(rng)]
    if chance(rng, 0.3):
        layers.append(Dropout(pick(rng, [0.0, 0.25, 0.5])))
    layers.append(Dense(hidden, integer(rng, 1, 4), init=init, dtype=dtype, rng=seed + 2))
    if chance(rng, 0.2):
        layers.append(activation(rng))
    return cnnative.Network(layers, loss=pick(rng, LOSSES)), sample


def activation(rng):
    return pick(rng, [ReLU, Sigmoid, Tanh])()


def architecture_of(network):
    """The network's architecture as cnnative.save describes it."""
    return {"loss": network.loss.name,
            "layers": [{"type": type(layer).__name__, "config": layer.get_config()}
                       for layer in network.layers]}


def params_of(network):
    return {f"{index}.{name}": param for index, layer in enumerate(network.layers)
            for name, param in layer.params.items()}


@dataclasses.dataclass
class Model:
    """What a model file describes; ``network`` (whose predictions a loaded model must repeat
    on ``x``) when that is the network saved."""

    architecture: dict
    params: dict
    network: Any = None
    x: Any = None

    def check(self, result):
        assert isinstance(result, cnnative.Network), describe(result)
        architecture = architecture_of(result)
        assert architecture == self.architecture, (architecture, self.architecture)
        loaded = params_of(result)
        assert loaded.keys() == self.params.keys(), (sorted(loaded), sorted(self.params))
        for key, param in loaded.items():
            assert param.flags.writeable and param.dtype.isnative, (key, describe(param))
            assert_same_array(param, self.params[key])
        if self.network is not None:
            assert_same_array(result.forward(self.x), self.network.forward(self.x))

    def but(self, architecture=None, params=None):
        """Another model: this one with its architecture or some parameters replaced."""
        return Model(architecture or self.architecture, {**self.params, **(params or {})})


def npz_bytes(contents, compressed=False):
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **contents)
    return buffer.getvalue()


def model_call(rng):
    network, sample = small_network(rng)
    directory = scratch_directory()
    try:
        path = os.path.join(directory, "model.npz")
        cnnative.save(network, path)
        with open(path, "rb") as file:
            data = file.read()
    finally:
        shutil.rmtree(directory)
    architecture = architecture_of(network)
    saved = Model(architecture, params_of(network), network,
                  values(rng, (2, *sample), network.dtype))
    # What the file holds, for spoils that rewrite it.
    contents = {"format": np.array(model_io.FORMAT), "version": np.array(model_io.VERSION),
                "architecture": np.array(json.dumps(architecture)), **saved.params}
    expect, spoils = saved, []
    if chance(rng, 0.75):
        roll = rng.random()
        if roll < 0.4:
            label, text, expect = spoil_architecture(rng, architecture, saved)
            data = npz_bytes({**contents, "architecture": np.array(text)})
        elif roll < 0.75:
            label, data, expect = spoil_arrays(rng, contents, saved)
        else:
            label, data, expect = spoil_members(rng, data, saved)
        spoils.append(label)
    if chance(rng, 0.25):
        label, data, damaged = spoil_bytes(rng, data)
        spoils.append(label)
        if expect is not ERROR:
            expect = ERROR if damaged else ValueOrError(expect.check)
    if isinstance(expect, Model):
        expect = Value(expect.check)
    return FileCall("load", pick(rng, [cnnative.load, cnnative.io.load]), data,
                    pick(rng, ["model.npz", "model", "m.zip"]), spoils, as_path=chance(rng, 0.3),
                    expect=expect)


def model_spec(call):
    return call.expect


def spoil_architecture(rng, architecture, saved):
    """(label, the architecture's JSON text spoiled, ERROR or the Model it now describes)."""
    arch = copy_json(architecture)
    layers = arch["layers"]
    how = pick(rng, ["unknown type", "other type", "config not a dict", "missing key",
                     "missing layer key", "unknown key", "bad value", "huge size", "changed size",
                     "harmless change", "dtype", "loss", "layers", "drop a layer",
                     "not an object", "not JSON", "deep nesting"])
    # The layers the spoil applies to (every network has a dense layer and an activation).
    kinds = {"other type": ("ReLU", "Sigmoid", "Tanh", "Flatten"),
             "missing key": ("Conv2D", "Dense", "MaxPool2D", "Dropout"),
             "bad value": ("Conv2D", "Dense", "MaxPool2D", "Dropout"),
             "huge size": tuple(SIZE_KEYS), "changed size": tuple(SIZE_KEYS),
             "dtype": tuple(SIZE_KEYS),
             "harmless change": ("Conv2D", "MaxPool2D", "Dropout")}.get(how)
    candidates = [i for i, spec in enumerate(layers) if kinds is None or spec["type"] in kinds]
    if not candidates:  # no Conv2D, MaxPool2D or Dropout to change harmlessly
        how, candidates = "loss", [0]
    index = pick(rng, candidates)
    layer = layers[index]
    kind, config = layer["type"], layer["config"]
    described = None  # the architecture the text describes, if it is still valid

    def normalised(key, value):  # the text as written, but config[key] as get_config gives it
        copy = copy_json(arch)
        copy["layers"][index]["config"][key] = value
        return copy

    if how == "unknown type":
        layer["type"] = pick(rng, ["Conv3D", "dense", "", None, 3, ["Dense"], "Layer", "__init__",
                                   "Dense "])
    elif how == "other type":
        layer["type"] = pick(rng, ["ReLU", "Sigmoid", "Tanh", "Flatten"])
        described = arch
    elif how == "config not a dict":
        layer["config"] = pick(rng, [[], "x", None, 3, [["in_features", 3]]])
    elif how == "missing key":
        key = pick(rng, sorted(config))
        del config[key]
        was = saved.architecture["layers"][index]["config"][key]
        if key not in REQUIRED.get(kind, ()) and not (key == "dtype" and was != DEFAULTS[key]):
            if (kind, key) == ("MaxPool2D", "stride"):
                described = normalised(key, config["kernel_size"])
            else:
                described = normalised(key, DEFAULTS[key])
    elif how == "missing layer key":
        del layer[pick(rng, ["type", "config"])]
    elif how == "unknown key":
        config[pick(rng, ["bogus", "weights", "", "kernel", "strides"])] = 1
    elif how == "bad value":
        key = pick(rng, sorted(config))
        config[key] = pick(rng, BAD_VALUES)
        if (kind, key) == ("MaxPool2D", "stride") and config[key] is None:  # None means kernel_size
            described = normalised(key, config["kernel_size"])
        if key == "bias" and config[key] is True:  # True is Conv2D's bias as saved
            described = arch
    elif how in ("huge size", "changed size"):
        key = pick(rng, SIZE_KEYS[kind])
        if key == "kernel_size":
            axis = integer(rng, 0, 1)
            was = config[key][axis]
            config[key][axis] = pick(rng, HUGE_SIZES) if how == "huge size" else was + 1
        elif how == "huge size":
            config[key] = pick(rng, HUGE_SIZES)
        else:
            config[key] += pick(rng, [-1, 1])
    elif how == "harmless change":
        key = pick(rng, {"Conv2D": ["stride", "padding", "init"], "Dropout": ["p"],
                         "MaxPool2D": ["stride", "padding", "kernel_size"]}[kind])
        if key == "p":
            config[key] = pick(rng, [0.0, 0.1, 0.9])
        elif key == "init":
            config[key] = pick(rng, ["he", "xavier"])
        else:
            low = 0 if key == "padding" else 1
            config[key] = [integer(rng, low, 3), integer(rng, low, 3)]
        described = arch
    elif how == "dtype":
        name = pick(rng, ["float32", "float64"])
        config["dtype"] = pick(rng, DTYPE_SPELLINGS[name])
        if name == saved.architecture["layers"][index]["config"]["dtype"]:
            described = normalised("dtype", name)
    elif how == "loss":
        if chance(rng, 0.5):
            arch["loss"] = pick(rng, LOSSES)
            described = arch
        elif chance(rng, 0.5):
            del arch["loss"]
        else:
            arch["loss"] = pick(rng, ["hinge", "", None, 3, ["quadratic"], "Quadratic"])
    elif how == "layers":
        if chance(rng, 0.3):
            del arch["layers"]
        else:
            arch["layers"] = pick(rng, [[], {}, "Dense", 3, None, {"0": layer}, [layers]])
    elif how == "drop a layer":
        del layers[index]
        if not any(spec["type"] in ("Conv2D", "Dense") for spec in architecture["layers"][index:]):
            described = arch
    elif how == "not an object":
        arch = pick(rng, [[], "x", 3, None, [arch], True])
    elif how == "not JSON":
        text = json.dumps(arch)
        text = pick(rng, [text[:integer(rng, 0, len(text) - 1)], "{not json", "", "nul",
                          text.replace('"', "'")])
        return f"architecture: {how}", text, ERROR
    else:  # "deep nesting"
        depth = pick(rng, [1000, 10**5])
        return f"architecture: {how}", "[" * depth + "]" * depth, ERROR
    expect = ERROR if described is None else saved.but(described)
    return f"architecture: {how}", json.dumps(arch), expect


def copy_json(value):
    return json.loads(json.dumps(value))


def spoil_arrays(rng, contents, saved):
    """The model file rewritten with one array missing, added or replaced: (label, bytes, ERROR
    or the Model it describes)."""
    contents = dict(contents)
    params = sorted(saved.params)
    key = pick(rng, params)
    param = contents[key]
    how = pick(rng, ["missing", "extra", "wrong shape", "wrong dtype", "byte order", "object",
                     "other values", "format", "format spelling", "version", "version spelling",
                     "architecture type", "compressed", "npy file"])
    expect = ERROR
    if how == "missing":
        del contents[pick(rng, sorted(contents))]
    elif how == "extra":
        bare = [str(i) for i, spec in enumerate(saved.architecture["layers"])
                if spec["type"] not in ("Conv2D", "Dense")]
        name = pick(rng, ["extra", f"{len(saved.architecture['layers'])}.w", "format.npy",
                          f"{key.partition('.')[0]}.c",
                          f"{pick(rng, bare)}.w" if bare else "0.extra"])
        contents[name] = pick(rng, [np.ones(2), np.array(1.5), param.copy()])
    elif how == "wrong shape":
        change = pick(rng, ["add axis", "drop axis", "grow"])
        shape = list(param.shape)
        if change == "add axis":
            shape.insert(integer(rng, 0, len(shape)), pick(rng, [1, 2]))
        elif change == "drop axis" and len(shape) > 1:
            shape = [math.prod(shape[:2])] + shape[2:]
        else:
            shape[integer(rng, 0, len(shape) - 1)] += 1
        contents[key] = values(rng, tuple(shape), param.dtype)
    elif how == "wrong dtype":
        other = pick(rng, [np.float16, np.int32, np.int64, np.complex64, np.bool_, np.uint8,
                           np.float64 if param.dtype == np.float32 else np.float32])
        with np.errstate(all="ignore"):
            contents[key] = param.astype(other)
    elif how == "byte order":  # the same values, big-endian: refusing is as fine as reading
        contents[key] = param.astype(param.dtype.newbyteorder())
        expect = ValueOrError(saved.check)
    elif how == "object":
        contents[key] = np.array(param.tolist(), dtype=object) if param.ndim else np.array(None)
    elif how == "other values":
        contents[key] = values(rng, param.shape, param.dtype, special=0.2)
        expect = saved.but(params={key: contents[key]})
    elif how == "format":
        contents["format"] = pick(rng, [np.array("other-model"), np.array(b"cnnative-model"),
                                        np.array(["cnnative-model"]), np.array(""), np.array(3),
                                        np.array("cnnative-model ")])
    elif how == "format spelling":
        contents["format"] = np.array("cnnative-model", ">U14")
        expect = saved.but()
    elif how == "version":
        contents["version"] = pick(rng, [np.array(0), np.array(2), np.array(-1), np.array(99),
                                         np.array(2**63, np.uint64), np.array(1.0), np.array(True),
                                         np.array("1"), np.array([1])])
    elif how == "version spelling":
        contents["version"] = pick(rng, [np.array(1, np.int8), np.array(1, np.uint64),
                                         np.array(1, ">i4"), np.array(1, np.uint8)])
        expect = saved.but()
    elif how == "architecture type":
        text = str(contents["architecture"])
        contents["architecture"] = pick(rng, [np.array(text.encode()), np.array([text]),
                                              np.array(3), np.array(text, dtype=object)])
    elif how == "compressed":
        return how, npz_bytes(contents, compressed=True), saved
    else:  # "npy file"
        buffer = io.BytesIO()
        np.save(buffer, param)
        return how, buffer.getvalue(), ERROR
    return how, npz_bytes(contents), expect


def rezip(data, replace):
    """The zip archive ``data`` with the members named in ``replace`` given other bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info, replace.get(info.filename, source.read(info)))
    return buffer.getvalue()


def central_entries(data):
    """Offsets of the zip's central directory entries and of their local headers."""
    end = data.rfind(b"PK\x05\x06")
    offset = int.from_bytes(data[end + 16:end + 20], "little")
    entries = []
    while data[offset:offset + 4] == b"PK\x01\x02":
        entries.append((offset, int.from_bytes(data[offset + 42:offset + 46], "little")))
        lengths = [int.from_bytes(data[offset + i:offset + i + 2], "little") for i in (28, 30, 32)]
        offset += 46 + sum(lengths)
    return entries


def spoil_members(rng, data, saved):
    """A member of the model file replaced by bytes that are not its .npy array, or a zip field
    damaged: (label, bytes, ERROR or ValueOrError)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        name = pick(rng, names)
        member = archive.read(name)
    how = pick(rng, ["not npy", "npy header shape", "npy header huge", "zip field"])
    if how == "not npy":
        bad = pick(rng, [b"", b"hello", member[6:], b"PK" + member])
        return how, rezip(data, {name: bad}), ERROR
    if how in ("npy header shape", "npy header huge"):
        stream = io.BytesIO(member)
        version = np.lib.format.read_magic(stream)
        reader = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}[version]
        shape, fortran, dtype = reader(stream)
        body = member[stream.tell():]
        if how == "npy header huge":
            new = pick(rng, [(10**12,), (2**40, 2**40), (2**31 - 1, 2**31 - 1, 8), (U32_MAX,) * 4])
        else:
            new = pick(rng, [(1, *shape), shape[1:], (math.prod(shape),), (math.prod(shape) + 1,),
                             tuple(n + 1 for n in shape), ()])
            if new == shape:
                new = (math.prod(shape) + 2,)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                      "fortran_order": fortran, "shape": new})
        return how, rezip(data, {name: header.getvalue() + body}), ERROR
    # A zip field: a member's compression method, flags, sizes or offset.
    entry, local = pick(rng, central_entries(data))
    field = pick(rng, ["method", "flags", "compressed size", "size", "offset", "local method",
                       "local flags"])
    at, width, value = {
        "method": (entry + 10, 2, pick(rng, [1, 6, 8, 9, 12, 14, 93, 98, 99, 0xFFFF])),
        "flags": (entry + 8, 2, pick(rng, [0x1, 0x8, 0x20, 0x40, 0x800, 0x41])),
        "compressed size": (entry + 20, 4, pick(rng, [0, 1, 2**31, U32_MAX, 10**6])),
        "size": (entry + 24, 4, pick(rng, [0, 1, 2**31, U32_MAX, 10**6])),
        "offset": (entry + 42, 4, pick(rng, [0, 1, local + 1, local ^ 1, U32_MAX])),
        "local method": (local + 8, 2, pick(rng, [1, 8, 12, 14, 99])),
        "local flags": (local + 6, 2, pick(rng, [0x1, 0x8, 0x20, 0x40])),
    }[field]
    data = bytearray(data)
    data[at:at + width] = value.to_bytes(width, "little")
    return f"zip {field}", bytes(data), ValueOrError(saved.check)


def spoil_bytes(rng, data):
    """Damage to the file's bytes: (label, bytes, whether it cannot have survived)."""
    how = pick(rng, ["truncate", "empty", "flip bytes", "flip bits", "append", "prepend",
                     "zero a block"])
    if how == "truncate":
        return how, data[:integer(rng, 0, len(data) - 1)], True
    if how == "empty":
        return how, b"", True
    if how == "flip bytes":
        return how, flip_bytes(rng, data), False
    if how == "flip bits":
        return how, flip_bits(rng, data), False
    if how == "append":
        return how, data + garbage(rng, 1, 100), False
    if how == "prepend":
        return how, garbage(rng, 1, 100) + data, False
    start = integer(rng, 0, len(data) - 1)
    return how, data[:start] + bytes(min(200, len(data) - start)) + data[start + 200:], False


# -- checkpoints ----------------------------------------------------------------------------

class _Stop(Exception):
    """Ends a fit at a chosen batch, as a crash would (its last checkpoint stays)."""


def checkpoint_call(rng):
    """A tiny seeded fit, checkpointed after every batch and stopped at a random batch; the
    reader resumes from the (possibly spoiled) checkpoint and returns the final parameters.
    Unspoiled, they must equal the uninterrupted run's bit for bit."""
    setup = {"seed": integer(rng, 0, 2**32), "samples": integer(rng, 6, 20),
             "batch_size": integer(rng, 2, 6), "dropout": chance(rng, 0.4),
             "norm": chance(rng, 0.4), "optimizer": pick(rng, ["sgd", "adam"]),
             "validation": chance(rng, 0.5), "early_stopping": chance(rng, 0.3)}
    batches = 2 * -(-setup["samples"] // setup["batch_size"])
    stop_at = integer(rng, 1, batches - 1)
    reference = [param.copy() for param, _ in _checkpointed_fit(setup).parameters()]
    directory = scratch_directory()
    try:
        path = os.path.join(directory, "run.ckpt")

        class Stop(cnnative.training.Callback):
            def on_batch_end(self, trainer, logs):
                if trainer.epoch * batches // 2 + trainer.batch == stop_at:
                    raise _Stop

        try:
            _checkpointed_fit(setup, checkpoint=path, checkpoint_every=1, extra=[Stop()])
        except _Stop:
            pass
        with open(path, "rb") as file:
            data = file.read()
    finally:
        shutil.rmtree(directory)

    def same_result(result):
        assert len(result) == len(reference)
        for found, wanted in zip(result, reference):
            assert_same_array(found, wanted)

    def resume(path):
        return [param for param, _ in _checkpointed_fit(setup, resume=path).parameters()]

    expect, spoils = Value(same_result), []
    if chance(rng, 0.5):
        label, data = spoil_checkpoint_state(rng, data)
        spoils.append(label)
        # Many a changed value is harmless to the loop (a history entry, a timing) or even
        # to the weights; what matters is that no change makes the resume crash.
        expect = ValueOrError(lambda result: None)
    if chance(rng, 0.4):
        label, data, damaged = spoil_bytes(rng, data)
        spoils.append(label)
        expect = ERROR if damaged else ValueOrError(
            expect.check if isinstance(expect, Value) else lambda result: None)
    return FileCall("Network.fit", resume, data, "run.ckpt", spoils,
                    as_path=chance(rng, 0.3), expect=expect)


def _checkpointed_fit(setup, extra=(), **where):
    from cnnative.nn import BatchNorm2D
    from cnnative.optim import SGD, Adam
    from cnnative.training import EarlyStopping
    rng = np.random.default_rng(setup["seed"])
    x = rng.integers(0, 256, (setup["samples"], 5, 5)).astype(np.uint8)
    y = rng.integers(0, 2, setup["samples"])
    seeds = np.random.SeedSequence(setup["seed"]).spawn(2)
    layers = [Conv2D(1, 2, 2, rng=seeds[0]), *([BatchNorm2D(2)] if setup["norm"] else []),
              ReLU(), Flatten(), *([Dropout(0.3)] if setup["dropout"] else []),
              Dense(32, 2, rng=seeds[1])]
    network = cnnative.Network(layers)
    optimizer = SGD(0.05, momentum=0.9) if setup["optimizer"] == "sgd" else Adam(0.01)
    callbacks = [EarlyStopping("val_loss", patience=1)] if setup["early_stopping"] else []
    network.fit(x, y, epochs=2, batch_size=setup["batch_size"], optimizer=optimizer,
                validation_data=(x[:4], y[:4]) if setup["validation"] or callbacks else None,
                seed=setup["seed"], progress=False, callbacks=[*callbacks, *extra], **where)
    return network


def spoil_checkpoint_state(rng, data):
    """(label, the checkpoint rewritten with one value of its JSON state changed)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        contents = {name.removesuffix(".npy"): np.load(io.BytesIO(archive.read(name)))
                    for name in archive.namelist()}
    state = json.loads(str(contents["state"]))
    leaves = []

    def walk(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, path + [key])
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, path + [index])
        if path:
            leaves.append(path)

    walk(state, [])
    path = pick(rng, leaves)
    replacement = pick(rng, [None, -1, 0, 1, 2**40, -2**70, 0.5, float("nan"), "x", [], {},
                             [1, 2], {"__array__": "state.model.0.w"}, {"__array__": 3},
                             True])
    parent = state
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and chance(rng, 0.2):
        del parent[path[-1]]
        label = f"state {'.'.join(map(str, path))} removed"
    else:
        parent[path[-1]] = replacement
        label = f"state {'.'.join(map(str, path))} = {replacement!r}"
    contents["state"] = np.array(json.dumps(state))
    return label, npz_bytes(contents)


# Name -> (make(rng) -> FileCall, spec(call) -> Value, ValueOrError or ERROR), checked by
# check_file.
FILES = {
    "file.read_idx": (idx_call, idx_spec),
    "file.load": (model_call, model_spec),
    "file.resume": (checkpoint_call, model_spec),
}
