"""cnnative.datasets.augment's RandomCrop, RandomFlip and Compose: against the slow references
in cnnative.testing, statistics, arguments, and use in Network.fit."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cnnative
from cnnative import testing
from cnnative.datasets import augment
from cnnative.datasets.augment import Compose, RandomCrop, RandomFlip
from conftest import with_layout

DTYPES = [np.uint8, np.float32, np.float64]
SHAPES = [(5, 7, 6), (4, 3, 7, 6)]
# Every layout with_layout makes that keeps the dtype (nested lists would turn uint8 into int64).
KINDS = ["C", "F", "strided", "reversed", "transposed", "rows", "misaligned", "packed",
         "byteswapped", "readonly", "broadcast"]
# (size, padding) for 7x6 images: inside the image, a square, a rectangle partly in the
# padding, the whole padded image, and windows that must lie in the padding along one axis.
CROPS = [((7, 6), 0), (4, 0), ((5, 3), 2), ((11, 10), 2), ((1, 9), 3)]


def images(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        return rng.integers(1, 256, shape).astype(dtype)  # never 0, so padding shows
    return (rng.standard_normal(shape) * 100 + 1000).astype(dtype)


def check_against(fast, slow, x, seed):
    """fast(x, rng) equals slow(x, rng) for equal generators; x unchanged, a new array back."""
    before = np.array(x, copy=True)
    got = fast(x, np.random.default_rng(seed))
    expected = slow(before, np.random.default_rng(seed))
    assert got.dtype == np.asarray(x).dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert np.array_equal(x, before)
    assert not np.shares_memory(got, x)
    return got


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("size,padding", CROPS)
def test_random_crop_matches_reference(size, padding, dtype, shape, kind):
    x = with_layout(images(dtype, shape), kind)
    got = check_against(RandomCrop(size, padding), lambda a, rng: testing.random_crop(
        a, rng, size, padding), x, seed=11)
    height, width = (size, size) if np.ndim(size) == 0 else size
    assert got.shape == shape[:-2] + (height, width)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_random_flip_matches_reference(p, dtype, shape, kind):
    x = with_layout(images(dtype, shape), kind)
    got = check_against(RandomFlip(p), lambda a, rng: testing.random_flip(a, rng, p), x, seed=5)
    assert got.shape == shape


@given(count=st.integers(1, 4), channels=st.sampled_from([None, 1, 2]),
       rows=st.integers(1, 6), cols=st.integers(1, 6), padding=st.integers(0, 3),
       data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_random_crop_matches_reference_on_any_shape(count, channels, rows, cols, padding, data,
                                                     seed):
    height = data.draw(st.integers(1, rows + 2 * padding), label="height")
    width = data.draw(st.integers(1, cols + 2 * padding), label="width")
    shape = (count, rows, cols) if channels is None else (count, channels, rows, cols)
    x = images(np.float32, shape, seed=seed % 1000)
    check_against(RandomCrop((height, width), padding), lambda a, rng: testing.random_crop(
        a, rng, (height, width), padding), x, seed)


def test_random_crop_known_results():
    x = np.arange(1, 13, dtype=np.uint8).reshape(1, 3, 4)
    rng = np.random.default_rng(0)
    # The window of the whole image is the image; the whole padded image is np.pad's result.
    np.testing.assert_array_equal(RandomCrop((3, 4))(x, rng), x)
    np.testing.assert_array_equal(RandomCrop((3, 4))(x[:, np.newaxis], rng), x[:, np.newaxis])
    np.testing.assert_array_equal(RandomCrop((7, 8), padding=2)(x, rng)[0], np.pad(x[0], 2))
    # Other windows: slices of np.pad's result at the offsets the docstring says are drawn.
    batch = images(np.uint8, (30, 3, 4))
    got = RandomCrop((2, 5), padding=1)(batch, np.random.default_rng(5))
    draws = np.random.default_rng(5)
    tops = draws.integers(0, 5 - 2, 30, endpoint=True)
    lefts = draws.integers(0, 6 - 5, 30, endpoint=True)
    padded = np.pad(batch, ((0, 0), (1, 1), (1, 1)))
    for window, image, top, left in zip(got, padded, tops, lefts):
        np.testing.assert_array_equal(window, image[top:top + 2, left:left + 5])


def test_random_crop_offsets_are_uniform():
    # A 3x3 window of a 3x3 image padded by 1 has nine places; its centre pixel is the image's
    # pixel at the window's offset, which identifies the place.
    count = 18000
    x = np.broadcast_to(np.arange(1, 10, dtype=np.uint8).reshape(3, 3), (count, 3, 3))
    centres = RandomCrop(3, padding=1)(x, np.random.default_rng(3))[:, 1, 1]
    counts = np.bincount(centres, minlength=10)[1:]
    expected, sd = count / 9, np.sqrt(count * (1 / 9) * (8 / 9))
    assert np.all(np.abs(counts - expected) < 5 * sd), counts


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_random_flip_probability(p):
    count = 20000
    x = np.broadcast_to(np.array([[[0.0, 1.0]]]), (count, 1, 2))
    flipped = RandomFlip(p)(x, np.random.default_rng(4))[:, 0, 0] == 1.0
    assert abs(flipped.mean() - p) < 5 * np.sqrt(p * (1 - p) / count)


def test_random_flip_extremes():
    x = images(np.uint8, (6, 2, 3, 4))
    np.testing.assert_array_equal(RandomFlip(0)(x, np.random.default_rng(0)), x)
    np.testing.assert_array_equal(RandomFlip(1)(x, np.random.default_rng(0)), x[..., ::-1])


def test_compose_applies_in_order_with_one_generator():
    x = images(np.uint8, (8, 2, 7, 6))
    crop, flip = RandomCrop((5, 4), padding=1), RandomFlip()
    rng = np.random.default_rng(9)
    expected = flip(crop(x, rng), rng)
    got = Compose(crop, flip)(x, np.random.default_rng(9))
    np.testing.assert_array_equal(got, expected)
    assert got.shape == (8, 2, 5, 4) and got.dtype == np.uint8


@pytest.mark.parametrize("transform", [RandomCrop((5, 4), padding=2), RandomFlip(0.5),
                                       Compose(RandomCrop(6, padding=3), RandomFlip(0.3))],
                         ids=repr)
def test_same_seed_same_output(transform):
    x = images(np.float32, (16, 7, 6))
    first = transform(x, np.random.default_rng(21))
    np.testing.assert_array_equal(transform(x, np.random.default_rng(21)), first)
    assert not np.array_equal(transform(x, np.random.default_rng(22)), first)


def test_repr_round_trips():
    for transform in [RandomCrop(24, padding=4), RandomCrop((3, 5)), RandomFlip(0.25),
                      Compose(RandomCrop(28, padding=2), RandomFlip())]:
        text = repr(transform)
        assert repr(eval(text, vars(augment))) == text
    assert repr(RandomCrop(24, padding=4)) == "RandomCrop(size=(24, 24), padding=4)"
    assert repr(Compose(RandomFlip())) == "Compose(RandomFlip(p=0.5))"


@pytest.mark.parametrize("make,error,message", [
    (lambda: RandomCrop(0), ValueError, r"RandomCrop: size must be >= 1"),
    (lambda: RandomCrop((3, -1)), ValueError, r"RandomCrop: size must be >= 1"),
    (lambda: RandomCrop((2, 3, 4)), ValueError, r"RandomCrop: size must be an int or a pair"),
    (lambda: RandomCrop(2.5), TypeError, r"RandomCrop: size must be an int or a pair"),
    (lambda: RandomCrop(None), TypeError, r"RandomCrop: size must be an int or a pair"),
    (lambda: RandomCrop(3, padding=-1), ValueError, r"RandomCrop: padding must be a non-negative"),
    (lambda: RandomCrop(3, padding=1.5), TypeError, r"RandomCrop: padding must be a non-negative"),
    (lambda: RandomCrop(3, padding=True), TypeError, r"RandomCrop: padding must be a non-negative"),
    (lambda: RandomFlip(1.5), ValueError, r"RandomFlip: p must be a probability in \[0, 1\]"),
    (lambda: RandomFlip(-0.1), ValueError, r"RandomFlip: p must be a probability"),
    (lambda: RandomFlip(float("nan")), ValueError, r"RandomFlip: p must be a probability"),
    (lambda: RandomFlip("0.5"), TypeError, r"RandomFlip: p must be a real number"),
    (lambda: RandomFlip(True), TypeError, r"RandomFlip: p must be a probability"),
    (lambda: Compose(), ValueError, r"Compose: transforms must hold at least one callable"),
    (lambda: Compose([RandomFlip()]), TypeError,
     r"Compose: transforms\[0\] must be a callable .*as separate arguments"),
    (lambda: Compose(RandomFlip(), 3), TypeError, r"Compose: transforms\[1\] must be a callable"),
    (lambda: Compose(RandomFlip), TypeError,
     r"Compose: transforms\[0\] is the class RandomFlip; pass an instance"),
])
def test_bad_arguments_are_refused_at_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("transform", [RandomCrop(2), RandomFlip()], ids=repr)
def test_bad_calls(transform):
    name = type(transform).__name__
    rng = np.random.default_rng(0)
    for x in [np.zeros((3, 4), np.uint8), np.zeros((0, 4, 4), np.uint8),
              np.zeros((1, 1, 1, 4, 4), np.uint8)]:
        with pytest.raises(ValueError, match=rf"{name}: images must be a non-empty \(N, H, W\) "
                                             r"or \(N, C, H, W\) array"):
            transform(x, rng)
    with pytest.raises(TypeError, match=rf"{name}: images must be uint8 or float, got dtype int16"):
        transform(np.zeros((1, 4, 4), np.int16), rng)
    with pytest.raises(TypeError, match=rf"{name}: rng must be a numpy.random.Generator"):
        transform(np.zeros((1, 4, 4), np.uint8), 0)


def test_crop_larger_than_the_padded_image_is_refused():
    with pytest.raises(ValueError, match=r"RandomCrop: images of 4x5 padded by 1 are 6x7, "
                                         r"smaller than size \(7, 3\)"):
        RandomCrop((7, 3), padding=1)(np.zeros((2, 4, 5)), np.random.default_rng(0))


def test_network_fit_accepts_compose():
    from cnnative.nn import Conv2D, Dense, Flatten, ReLU
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 1, 8, 8)).astype(np.uint8)
    y = rng.integers(0, 2, 40)
    runs = []
    for _ in range(2):
        seeds = np.random.SeedSequence(1).spawn(2)
        net = cnnative.Network([Conv2D(1, 2, 3, rng=seeds[0]), ReLU(), Flatten(),
                                Dense(2 * 6 * 6, 2, rng=seeds[1])])
        net.fit(x, y, epochs=1, batch_size=16, seed=2, progress=False,
                augment=Compose(RandomCrop(8, padding=1), RandomFlip()))
        runs.append(net.parameters()[0][0].copy())
    np.testing.assert_array_equal(*runs)
