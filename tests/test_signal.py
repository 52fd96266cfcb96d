"""correlate2d / convolve2d against scipy.signal: bit-exact values, dtypes, shapes and errors."""
import warnings

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnative
from cnnative import _threads
from cnnative import signal as cn_signal
from cnnative._native import correlate as native
from conftest import split_into_rows
from conftest import with_layout as layout

MODES = ["full", "same", "valid"]
BOUNDARIES = ["fill", "wrap", "symm"]
PAIRS = [(cnnative.correlate2d, scipy.signal.correlate2d), (cnnative.convolve2d, scipy.signal.convolve2d)]
PAIR_IDS = ["correlate2d", "convolve2d"]


def assert_same_as_scipy(ours, theirs):
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs, equal_nan=True), np.nanmax(np.abs(ours - theirs))


def random_array(rng, shape, dtype):
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -50), min(info.max, 50), shape, endpoint=True).astype(dtype)
    values = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


@st.composite
def problems(draw):
    dtype = draw(st.sampled_from([np.float64, np.float32, np.float64, np.float32, np.int32,
                                  np.int8, np.uint8, np.complex128]))
    dtype2 = draw(st.sampled_from([dtype, dtype, dtype, np.float32, np.float64]))
    image_shape = (draw(st.integers(1, 70)), draw(st.integers(1, 70)))
    kernel_shape = (draw(st.integers(1, 15)), draw(st.integers(1, 15)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    image = layout(random_array(rng, image_shape, dtype), draw(st.sampled_from(["C", "F", "strided", "reversed"])))
    kernel = layout(random_array(rng, kernel_shape, dtype2), draw(st.sampled_from(["C", "F", "strided"])))
    mode = draw(st.sampled_from(MODES))
    boundary = draw(st.sampled_from(BOUNDARIES))
    fillvalue = draw(st.sampled_from([0, 1, -2.5, 0.1, 3]))
    return image, kernel, mode, boundary, fillvalue


@pytest.mark.scipy_order
@pytest.mark.parametrize("ours,theirs", PAIRS, ids=PAIR_IDS)
@given(problem=problems())
def test_matches_scipy_bit_for_bit(ours, theirs, problem):
    image, kernel, mode, boundary, fillvalue = problem
    if mode == "valid":
        (m, n), (j, k) = image.shape, kernel.shape
        if not ((m >= j and n >= k) or (j >= m and k >= n)):
            with pytest.raises(ValueError, match="valid"):
                ours(image, kernel, mode, boundary, fillvalue)
            return
    if np.result_type(image, kernel).kind in "iu":
        fillvalue = int(fillvalue)
    with warnings.catch_warnings():
        # scipy routes every fill value through complex and warns about it for real output.
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        # A negative fill value cast to an unsigned output flags "invalid" on aarch64 (not on
        # x86-64); cnnative's delegation to scipy silences the same warning.
        warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning)
        try:
            expected = theirs(image, kernel, mode, boundary, fillvalue)
        except ValueError:
            # e.g. a negative or fractional fill value that the integer output type cannot hold
            with pytest.raises(ValueError):
                ours(image, kernel, mode, boundary, fillvalue)
            return
    assert_same_as_scipy(ours(image, kernel, mode, boundary, fillvalue), expected)


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_values_propagate_like_scipy(ours, theirs, dtype):
    rng = np.random.default_rng(1)
    image = rng.standard_normal((20, 23)).astype(dtype)
    image[3, 4], image[10, 0], image[19, 22] = np.nan, np.inf, -np.inf
    kernel = rng.standard_normal((4, 5)).astype(dtype)
    kernel[0, 0] = np.inf  # against padding this gives 0*inf = NaN, as in scipy
    for mode in MODES:
        for boundary in BOUNDARIES:
            for fillvalue in [0, np.nan, np.inf]:
                assert_same_as_scipy(ours(image, kernel, mode, boundary, fillvalue),
                                     theirs(image, kernel, mode, boundary, fillvalue))


@pytest.mark.scipy_order
@pytest.mark.parametrize("ours,theirs", PAIRS, ids=PAIR_IDS)
def test_kernel_larger_than_image_wraps_and_mirrors_repeatedly(ours, theirs):
    rng = np.random.default_rng(2)
    image = rng.standard_normal((2, 3))
    kernel = rng.standard_normal((11, 14))
    for mode in MODES:
        for boundary in BOUNDARIES:
            assert_same_as_scipy(ours(image, kernel, mode, boundary), theirs(image, kernel, mode, boundary))


@pytest.mark.scipy_order
@pytest.mark.parametrize("ours,theirs", PAIRS, ids=PAIR_IDS)
def test_valid_mode_swaps_when_second_input_is_larger(ours, theirs):
    rng = np.random.default_rng(3)
    small, large = rng.standard_normal((3, 4)), rng.standard_normal((9, 8))
    assert_same_as_scipy(ours(small, large, "valid"), theirs(small, large, "valid"))
    same_shape = rng.standard_normal((3, 4))
    assert_same_as_scipy(ours(small, same_shape, "valid"), theirs(small, same_shape, "valid"))


@pytest.mark.scipy_order
@pytest.mark.parametrize("dtype1,dtype2", [
    (np.float32, np.float64), (np.int8, np.float32), (np.int64, np.float32), (np.uint8, np.int8),
    (np.float16, np.float32), (np.complex64, np.float64), (np.int16, np.int16), (np.longdouble, np.float64),
])
@pytest.mark.parametrize("ours,theirs", PAIRS, ids=PAIR_IDS)
def test_result_dtype_and_values_follow_scipy(ours, theirs, dtype1, dtype2):
    rng = np.random.default_rng(4)
    image = random_array(rng, (12, 9), dtype1) if np.dtype(dtype1).kind != "f" else rng.standard_normal((12, 9)).astype(dtype1)
    kernel = random_array(rng, (3, 4), dtype2) if np.dtype(dtype2).kind != "f" else rng.standard_normal((3, 4)).astype(dtype2)
    for mode in MODES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            expected = theirs(image, kernel, mode)
        assert_same_as_scipy(ours(image, kernel, mode), expected)


def test_integer_arithmetic_wraps_around_like_scipy():
    image = np.full((6, 6), 100, dtype=np.int8)
    kernel = np.full((3, 3), 7, dtype=np.int8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        expected = scipy.signal.correlate2d(image, kernel)
    assert_same_as_scipy(cnnative.correlate2d(image, kernel), expected)


def test_complex_template_is_conjugated():
    rng = np.random.default_rng(5)
    image = rng.standard_normal((8, 7)) + 1j * rng.standard_normal((8, 7))
    kernel = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    assert_same_as_scipy(cnnative.correlate2d(image, kernel, "same"), scipy.signal.correlate2d(image, kernel, "same"))
    assert_same_as_scipy(cnnative.convolve2d(image, kernel, "same", fillvalue=2 + 1j),
                         scipy.signal.convolve2d(image, kernel, "same", fillvalue=2 + 1j))


def test_accepts_nested_lists_like_scipy():
    assert_same_as_scipy(cnnative.correlate2d([[1.0, 2.0], [3.0, 4.0]], [[1.0, -1.0]]),
                         scipy.signal.correlate2d([[1.0, 2.0], [3.0, 4.0]], [[1.0, -1.0]]))


def test_float32_fill_value_rounds_and_overflows_like_numpy():
    image = np.ones((2, 2), np.float32)
    kernel = np.ones((2, 2), np.float32)
    for fillvalue in [0.1, 1e39, -1e39, 3.4028235677973366e38]:
        with np.errstate(over="ignore"):
            expected = scipy.signal.correlate2d(image, kernel, fillvalue=fillvalue)
        assert_same_as_scipy(cnnative.correlate2d(image, kernel, fillvalue=fillvalue), expected)


@pytest.mark.parametrize("func", [cnnative.correlate2d, cnnative.convolve2d], ids=PAIR_IDS)
def test_inputs_are_not_modified(func):
    rng = np.random.default_rng(6)
    image, kernel = rng.standard_normal((10, 10)), rng.standard_normal((3, 3))
    image_copy, kernel_copy = image.copy(), kernel.copy()
    for mode in MODES:
        for method in ["direct", "fft"]:
            out = func(image, kernel, mode, method=method)
            assert not np.shares_memory(out, image) and not np.shares_memory(out, kernel)
    assert np.array_equal(image, image_copy) and np.array_equal(kernel, kernel_copy)


@st.composite
def bordered_problems(draw):
    """Images up to 200 px, large enough (with an in-cache size limit of 64 KiB) that the
    interior is read in place and the borders go through the row and column strips."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    side = st.one_of(st.integers(1, 40), st.integers(90, 200))
    image_shape = (draw(side), draw(side))
    small = max(image_shape) <= 40
    kernel_side = st.integers(1, 30) if small else st.integers(1, 16)
    kernel_shape = (draw(kernel_side), draw(kernel_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = layout(random_array(rng, image_shape, dtype),
                   draw(st.sampled_from(["C", "C", "F", "strided", "reversed"])))
    kernel = layout(random_array(rng, kernel_shape, dtype), draw(st.sampled_from(["C", "F", "strided"])))
    mode = draw(st.sampled_from(MODES))
    if mode == "valid" and not (kernel_shape[0] <= image_shape[0] and kernel_shape[1] <= image_shape[1]):
        mode = "same"
    return (image, kernel, mode, draw(st.sampled_from(BOUNDARIES)),
            draw(st.sampled_from([0, 1, -2.5, 0.1, np.nan])), draw(st.sampled_from([1, 2, 3])))


@pytest.mark.scipy_order
@pytest.mark.parametrize("ours,theirs", PAIRS, ids=PAIR_IDS)
@settings(max_examples=40)
@given(problem=bordered_problems())
def test_large_images_match_scipy_at_every_thread_count(ours, theirs, problem):
    image, kernel, mode, boundary, fillvalue, threads = problem
    expected = theirs(image, kernel, mode, boundary, fillvalue)
    assert_same_as_scipy(ours(image, kernel, mode, boundary, fillvalue), expected)
    with split_into_rows() as calls:
        assert_same_as_scipy(ours(image, kernel, mode, boundary, fillvalue, num_threads=threads),
                             expected)
    out_rows = expected.shape[0]
    assert calls == ([min(threads, out_rows)] if min(threads, out_rows) > 1 else [])


@pytest.mark.scipy_order
@pytest.mark.parametrize("ours,theirs", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_border_strips_match_scipy_at_every_simd_level(cap_simd, ours, theirs, dtype):
    """Large enough for the in-place interior with strips around it, in every mode and
    boundary, with even and odd kernels, at every instruction-set level and thread count."""
    cap_simd(native)
    rng = np.random.default_rng(12)
    image = rng.standard_normal((131, 157)).astype(dtype)
    for kernel_shape in [(3, 3), (4, 6), (15, 14), (1, 9)]:
        kernel = rng.standard_normal(kernel_shape).astype(dtype)
        for mode in MODES:
            for boundary in BOUNDARIES:
                expected = theirs(image, kernel, mode, boundary, -0.5)
                assert_same_as_scipy(ours(image, kernel, mode, boundary, -0.5), expected)
                with split_into_rows() as calls:
                    for threads in [2, 3]:
                        assert_same_as_scipy(ours(image, kernel, mode, boundary, -0.5,
                                                  num_threads=threads), expected)
                assert calls == [2, 3]


@pytest.mark.parametrize("func", [cnnative.correlate2d, cnnative.convolve2d], ids=PAIR_IDS)
def test_results_do_not_depend_on_the_thread_count(func):
    """At the default thresholds: large enough for several threads to share it."""
    rng = np.random.default_rng(13)
    image, kernel = rng.standard_normal((700, 400)), rng.standard_normal((5, 4))
    for mode in MODES:
        one = func(image, kernel, mode, "symm", num_threads=1)
        for threads in [2, 3, None]:
            assert np.array_equal(func(image, kernel, mode, "symm", num_threads=threads), one)


def test_small_calls_stay_on_the_calling_thread(monkeypatch):
    calls = []

    def run_chunks(func, n_items, chunk_size, num_threads=None, *, calls_blas=True):
        calls.append(num_threads)
        return [func(start, min(start + chunk_size, n_items)) for start in range(0, n_items, chunk_size)]

    monkeypatch.setattr(_threads, "run_chunks", run_chunks)
    image, kernel = np.ones((64, 64)), np.ones((5, 5))
    for threads in [None, 1, 2, 3]:
        cnnative.correlate2d(image, kernel, "same", num_threads=threads)
        cnnative.convolve2d(image.astype(np.float32), kernel.astype(np.float32), num_threads=threads)
    assert calls == []
    large = np.ones((1000, 1000))
    assert np.array_equal(cnnative.correlate2d(large, kernel, "same", num_threads=2),
                          cnnative.correlate2d(large, kernel, "same", num_threads=1))
    assert calls == [2]


@pytest.mark.parametrize("func", [cnnative.correlate2d, cnnative.convolve2d], ids=PAIR_IDS)
@pytest.mark.parametrize("num_threads,error", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                               ("2", TypeError), (True, TypeError)])
def test_bad_num_threads_raises_like_conv2d(func, num_threads, error):
    with pytest.raises(error, match="num_threads must be a positive integer"):
        func(GOOD, GOOD, num_threads=num_threads)
    with pytest.raises(error, match="num_threads must be a positive integer"):
        func(GOOD.astype(int), GOOD, "same", method="fft", num_threads=num_threads)
    with pytest.raises(error, match="num_threads must be a positive integer"):
        cnnative.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), num_threads=num_threads)


@pytest.mark.parametrize("func", [cnnative.correlate2d, cnnative.convolve2d], ids=PAIR_IDS)
def test_inputs_are_not_modified_by_threads(func):
    rng = np.random.default_rng(14)
    image, kernel = rng.standard_normal((150, 120)), rng.standard_normal((4, 5))
    strided = layout(image, "strided")
    saved = [a.copy() for a in (image, kernel, strided)]
    with split_into_rows():
        for mode in MODES:
            for boundary in BOUNDARIES:
                for source in (image, strided):
                    out = func(source, kernel, mode, boundary, num_threads=3)
                    assert not np.shares_memory(out, source) and not np.shares_memory(out, kernel)
    for array, copy in zip((image, kernel, strided), saved):
        assert np.array_equal(array, copy)


# -- the identities the layer package relies on -------------------------------------------------

def test_same_equals_valid_on_zero_padded_image():
    rng = np.random.default_rng(7)
    image, kernel = rng.standard_normal((28, 28)), rng.standard_normal((5, 5))
    assert np.array_equal(cnnative.convolve2d(image, kernel, "same"),
                          cnnative.convolve2d(np.pad(image, 2), kernel, "valid"))


def test_correlation_is_convolution_with_rotated_kernel():
    rng = np.random.default_rng(8)
    image = rng.standard_normal((20, 17))
    for kernel_shape in [(5, 3), (5, 4)]:
        kernel = rng.standard_normal(kernel_shape)
        for mode in MODES:
            ours = cnnative.correlate2d(image, kernel, mode)
            rotated = cnnative.convolve2d(image, np.rot90(kernel, 2), mode)
            if mode == "same" and kernel_shape[1] % 2 == 0:
                # 'same' starts at K//2 of 'full' for correlation but at (K-1)//2 for
                # convolution: with an even kernel the two windows are one column apart.
                rotated = cnnative.convolve2d(image, np.rot90(kernel, 2), "full")[2:22, 2:19]
            np.testing.assert_allclose(ours, rotated, rtol=1e-12, atol=1e-12)


def test_previous_layer_gradient_has_activation_shape():
    rng = np.random.default_rng(9)
    a_prev, w = rng.standard_normal((28, 28)), rng.standard_normal((5, 5))
    delta = rng.standard_normal(cnnative.correlate2d(a_prev, w, "valid").shape)
    assert cnnative.convolve2d(w, delta, "full").shape == a_prev.shape


# -- fft and auto ---------------------------------------------------------------------------------

@pytest.mark.parametrize("func", [cnnative.correlate2d, cnnative.convolve2d], ids=PAIR_IDS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
def test_fft_agrees_with_direct(func, mode, boundary):
    rng = np.random.default_rng(10)
    for image_shape, kernel_shape in [((40, 37), (15, 14)), ((5, 6), (9, 8)), ((64, 64), (4, 4))]:
        image, kernel = rng.standard_normal(image_shape), rng.standard_normal(kernel_shape)
        if mode == "valid" and not (kernel_shape[0] <= image_shape[0]) == (kernel_shape[1] <= image_shape[1]):
            continue
        direct = func(image, kernel, mode, boundary, 1.5)
        fft = func(image, kernel, mode, boundary, 1.5, method="fft")
        assert fft.dtype == direct.dtype and fft.shape == direct.shape
        assert np.max(np.abs(fft - direct)) <= 1e-10 * np.max(np.abs(direct))
        image32, kernel32 = image.astype(np.float32), kernel.astype(np.float32)
        fft32 = func(image32, kernel32, mode, boundary, 1.5, method="fft")
        assert fft32.dtype == np.float32
        np.testing.assert_allclose(fft32, direct, atol=1e-4 * np.max(np.abs(direct)))


def test_fft_handles_complex_input():
    rng = np.random.default_rng(11)
    image = rng.standard_normal((30, 30)) + 1j * rng.standard_normal((30, 30))
    kernel = rng.standard_normal((7, 7)) - 1j * rng.standard_normal((7, 7))
    direct = cnnative.correlate2d(image, kernel, "same")
    np.testing.assert_allclose(cnnative.correlate2d(image, kernel, "same", method="fft"), direct, atol=1e-10)


def test_auto_picks_fft_for_large_kernels_and_direct_for_small():
    assert cnnative.choose_method(np.ones((1024, 1024)), np.ones((3, 3))) == "direct"
    assert cnnative.choose_method(np.ones((512, 512)), np.ones((101, 101))) == "fft"
    assert cnnative.choose_method(np.ones((512, 512), int), np.ones((101, 101), int)) == "direct"
    image, kernel = np.ones((300, 300)), np.ones((90, 90))
    np.testing.assert_allclose(cnnative.correlate2d(image, kernel, "valid", method="auto"),
                               scipy.signal.correlate2d(image, kernel, "valid"), rtol=1e-10)


def test_fft_refuses_integer_input():
    with pytest.raises(ValueError, match="method='fft'"):
        cnnative.correlate2d(np.ones((5, 5), int), np.ones((2, 2), int), method="fft")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        expected = scipy.signal.correlate2d(np.ones((5, 5), int), np.ones((2, 2), int))
    assert_same_as_scipy(cnnative.correlate2d(np.ones((5, 5), int), np.ones((2, 2), int), method="auto"), expected)


# -- bad input ------------------------------------------------------------------------------------

GOOD = np.ones((5, 5))


@pytest.mark.parametrize("func", [cnnative.correlate2d, cnnative.convolve2d], ids=PAIR_IDS)
@pytest.mark.parametrize("args,kwargs,error,message", [
    ((np.ones(5), GOOD), {}, ValueError, r"in1 must be a 2-D array, got ndim=1"),
    ((GOOD, np.ones((2, 2, 2))), {}, ValueError, r"in2 must be a 2-D array, got ndim=3"),
    ((np.ones((0, 3)), GOOD), {}, ValueError, r"in1 must be non-empty"),
    ((GOOD, np.ones((2, 0))), {}, ValueError, r"in2 must be non-empty"),
    ((np.ones((3, 5)), np.ones((4, 2)), "valid"), {}, ValueError, r"for 'valid' mode, one must be at least"),
    ((GOOD, GOOD, "bogus"), {}, ValueError, r"mode must be one of 'valid', 'same', 'full'; got 'bogus'"),
    ((GOOD, GOOD, "full", "reflect"), {}, ValueError, r"boundary must be one of .*got 'reflect'"),
    ((GOOD, GOOD), {"method": "fast"}, ValueError, r"method must be one of 'direct', 'fft', 'auto'"),
    ((GOOD, GOOD), {"mode": ["full"]}, ValueError, r"mode must be one of"),
    ((GOOD, GOOD), {"fillvalue": [1, 2]}, ValueError, r"fillvalue must be a scalar"),
    ((GOOD, GOOD), {"fillvalue": 1j}, ValueError, r"fillvalue must be real"),
    ((GOOD, GOOD), {"fillvalue": None}, TypeError, r"fillvalue must be a real number"),
    ((GOOD, GOOD), {"fillvalue": "3"}, TypeError, r"fillvalue must be a real number"),
    ((GOOD > 0, GOOD > 0), {}, ValueError, r"bool, float16 and object"),
    ((GOOD.astype(np.float16), GOOD.astype(np.float16)), {}, ValueError, r"not supported"),
    ((GOOD.astype(object), GOOD), {}, ValueError, r"not supported"),
    ((GOOD.astype("U3"), GOOD), {}, TypeError, r"in1 must have a numeric dtype"),
    ((GOOD, GOOD.astype("datetime64[s]")), {}, TypeError, r"in2 must have a numeric dtype"),
])
def test_bad_input_raises_naming_the_argument(func, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        func(*args, **kwargs)


def test_native_entry_point_checks_its_own_preconditions():
    """The kernel module refuses inputs that would make it read or write out of bounds."""
    a = np.ones((4, 4))
    with pytest.raises(ValueError):
        native.correlate_direct(np.ones((2, 2)), np.ones((3, 3)), False, 0, 0, 0.0)
    with pytest.raises(ValueError):
        native.correlate_direct(np.ones((0, 2)), np.ones((1, 1)), False, 2, 0, 0.0)
    with pytest.raises(ValueError):
        native.correlate_direct(np.ones(4), a, False, 2, 0, 0.0)
    with pytest.raises(TypeError):
        native.correlate_direct(a, a.astype(np.float32), False, 2, 0, 0.0)
    with pytest.raises(TypeError):
        native.correlate_direct(a.astype(int), a.astype(int), False, 2, 0, 0.0)
    with pytest.raises(ValueError):
        native.correlate_direct(a, a, False, 7, 0, 0.0)
    with pytest.raises(TypeError):
        native.correlate_direct(a.astype(">f8"), a.astype(">f8"), False, 2, 0, 0.0)
    # An output to fill in place: (4, 4) for 'same'.
    k = np.ones((3, 3))
    for out in [np.empty((4, 5)), np.empty((4, 4), np.float32), np.empty((4, 4), order="F")[:, :3],
                np.empty((8, 8))[::2, ::2], np.empty(16), np.empty((4, 4))]:
        if out.shape == (4, 4) and out.dtype == np.float64 and out.flags.c_contiguous:
            out.flags.writeable = False
        with pytest.raises((ValueError, TypeError)):
            native.correlate_direct(a, k, False, 1, 0, 0.0, out)
    out = np.empty((4, 4))
    for start, stop in [(-1, 4), (0, 5), (3, 2), (5, 5)]:
        with pytest.raises(ValueError, match="rows"):
            native.correlate_direct(a, k, False, 1, 0, 0.0, out, start, stop)
    for counter in [np.zeros(1, np.int32), np.zeros(0, np.int64), np.zeros(1, np.int64)[::-1][:0],
                    [0]]:
        with pytest.raises((ValueError, TypeError)):
            native.correlate_direct(a, k, False, 1, 0, 0.0, out, 0, 4, counter, 1)
    with pytest.raises(ValueError, match="claim"):
        native.correlate_direct(a, k, False, 1, 0, 0.0, out, 0, 4, np.zeros(1, np.int64), 0)
    with pytest.raises(ValueError, match="parts must be >= 0, got -1"):
        native.correlate_direct(a, k, False, 1, 0, 0.0, out, 0, 4, np.zeros(1, np.int64), 1, -1)
    # A counter already past the end (or negative) leaves the output alone.
    for taken in [4, 2**40, -3]:
        out = np.full((4, 4), 7.0)
        for parts in [0, 1, 3]:
            native.correlate_direct(a, k, False, 1, 0, 0.0, out, 0, 4, np.array([taken]), 1,
                                    parts)
            assert (out == 7.0).all()
    for start, stop, counter in [(1, None, None), (0, 3, None), (0, None, np.zeros(1, np.int64))]:
        with pytest.raises(ValueError, match="without out"):  # a new array must be filled whole
            native.correlate_direct(a, k, False, 1, 0, 0.0, None, start, stop, counter)
    out = np.full((4, 4), 7.0)
    native.correlate_direct(a, k, False, 1, 0, 0.0, out, 1, 3)
    assert (out[[0, 3]] == 7.0).all()
    assert np.array_equal(out[1:3], scipy.signal.correlate2d(a, k, "same")[1:3])


def test_native_fast_path_declines_what_it_does_not_handle():
    """correlate_small returns None (and the general path decides) for anything unusual."""
    a, k = np.ones((6, 6)), np.ones((2, 2))
    fast = native.correlate_small
    assert fast(a, k, "full", "fill", 0, "direct", False, 1e9).shape == (7, 7)
    declined = [
        (a.tolist(), k, "full", "fill", 0, "direct"), (a, k.astype(np.float32), "full", "fill", 0, "direct"),
        (a.astype(int), k.astype(int), "full", "fill", 0, "direct"), (a, k, np.str_("full"), "fill", 0, "direct"),
        (a, k, "full", "reflect", 0, "direct"), (a, k, "full", "fill", True, "direct"),
        (a, k, "full", "fill", 2**60, "direct"), (a, k, "full", "fill", np.float64(1), "direct"),
        (a, k, "full", "fill", 0, "fft"), (k, a, "valid", "fill", 0, "direct"),
        (np.ones((0, 3)), k, "full", "fill", 0, "direct"), (a.astype(">f8"), k.astype(">f8"), "full", "fill", 0, "direct"),
        (a.view(np.ma.MaskedArray), k, "full", "fill", 0, "direct"), (a[None], k, "full", "fill", 0, "direct"),
    ]
    for args in declined:
        assert fast(*args, False, 1e9) is None, args
    assert fast(a, k, "full", "fill", 0, "direct", False, 48.0) is None  # 7 * 7 * 4 > 48


def test_fft_method_is_quiet_about_non_finite_values():
    image = np.ones((6, 6), np.float32)
    image[2, 3] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(cnnative.correlate2d(image, np.ones((3, 3), np.float32), method="fft")).all()
        # A fill value beyond float32's range is inf, as for method='direct'.
        out = cnnative.correlate2d(np.ones((3, 3), np.float32), np.ones((2, 2), np.float32),
                                   fillvalue=-1e39, method="fft")
    assert out.dtype == np.float32 and np.isnan(out).all()


# -- rounding pattern: the probe, the override, the scipy fallback ------------------------------


@pytest.fixture
def restore_rounding():
    """Puts both families' decided patterns back as they were when the test ends."""
    from cnnative._native import correlate_nd as native_nd

    saved = dict(cn_signal._ROUNDING)
    natives = [(module, module.rounding()) for module in (native, native_nd)]
    yield
    cn_signal._ROUNDING.clear()
    cn_signal._ROUNDING.update(saved)
    for module, old in natives:
        module.set_rounding(old)


def _emulated_scipy(fused):
    """Stand-ins for scipy.signal.correlate2d / correlate computing scipy's loops under one
    pattern, exactly (so the probe can be checked for either build on any machine)."""
    import fma_emulation

    def correlate2d(image, kernel, mode):
        full = fma_emulation.correlate2d_full(image, kernel, "fill", 0, False, fused)
        return fma_emulation.crop2d(full, image.shape, kernel.shape, mode, False)

    def correlate(in1, in2, mode, method):
        assert method == "direct"
        full = fma_emulation.correlate_nd_full(in1, in2, fused)
        return fma_emulation.crop_nd(full, in1.shape, in2.shape, mode)

    return correlate2d, correlate


@pytest.mark.parametrize("fused,signatures", [(False, ("0000", "0")), (True, ("1101", "1"))],
                         ids=["separate", "fused"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_probe_tells_the_patterns_apart(monkeypatch, fused, signatures, dtype):
    correlate2d, correlate = _emulated_scipy(fused)
    monkeypatch.setattr(scipy.signal, "correlate2d", correlate2d)
    monkeypatch.setattr(scipy.signal, "correlate", correlate)
    assert (cn_signal._probe("2d", dtype), cn_signal._probe("nd", dtype)) == signatures


def test_the_installed_scipy_probes_as_a_known_pattern():
    import platform

    for family, expected in [("2d", {"0000", "1101"}), ("nd", {"0", "1"})]:
        signatures = {cn_signal._probe(family, dtype) for dtype in ("float32", "float64")}
        assert len(signatures) == 1 and signatures <= expected, signatures
        if platform.machine() in ("x86_64", "AMD64"):
            assert signatures == {min(expected)}  # x86-64 wheels do not contract


@pytest.mark.parametrize("signatures,pattern", [
    ({"float32": "0000", "float64": "0000"}, "separate"),
    ({"float32": "1101", "float64": "1101"}, "fused"),
    ({"float32": "1011", "float64": "1011"}, "scipy"),   # fused, the other product rounded
    ({"float32": "0000", "float64": "1101"}, "scipy"),   # dtypes disagree
    ({"float32": "00?0", "float64": "00?0"}, "scipy")])
def test_signatures_map_to_patterns(monkeypatch, restore_rounding, signatures, pattern):
    monkeypatch.delenv("CNNATIVE_ROUNDING", raising=False)
    monkeypatch.setattr(cn_signal, "_probe", lambda family, dtype: signatures[dtype])
    if pattern == "fused" and not native.fused_available():
        pattern = "scipy"
    assert cn_signal._decide_rounding("2d") == pattern
    assert native.rounding() == cn_signal._PATTERNS[pattern]
    assert "float32 " + signatures["float32"] in cn_signal._ROUNDING["2d"][1]


def test_an_unknown_pattern_hands_float_calls_to_scipy(restore_rounding):
    from cnnative._native import correlate_nd as native_nd

    for family in ("2d", "nd"):
        cn_signal._decide_rounding(family, "scipy")
    rng = np.random.default_rng(3)
    image, kernel = rng.standard_normal((9, 14)), rng.standard_normal((3, 5))
    # The native fast paths stand aside, and the result is scipy's own.
    assert native.correlate_small(image, kernel, "full", "fill", 0, "direct", False, 1e9) is None
    assert native_nd.correlate_small(image, kernel, "full", "direct", False, 1e9, 1e9) is None
    for ours, theirs in PAIRS:
        for mode in MODES:
            assert_same_as_scipy(ours(image.astype(np.float32), kernel.astype(np.float32), mode,
                                      "symm"),
                                 theirs(image.astype(np.float32), kernel.astype(np.float32),
                                        mode, "symm"))
            # Swapped inputs ('valid': in2 the larger), float64.
            assert_same_as_scipy(ours(kernel, image, mode), theirs(kernel, image, mode))
    for ours, theirs in [(cnnative.correlate, scipy.signal.correlate),
                         (cnnative.convolve, scipy.signal.convolve)]:
        for mode in MODES:
            assert_same_as_scipy(ours(image, kernel, mode, "direct"),
                                 theirs(image, kernel, mode, "direct"))
            assert_same_as_scipy(ours(kernel, image, mode, "direct"),
                                 theirs(kernel, image, mode, "direct"))


def test_the_environment_overrides_the_probe(monkeypatch, restore_rounding):
    def no_probe(family, dtype):
        raise AssertionError("probed although $CNNATIVE_ROUNDING is set")

    monkeypatch.setattr(cn_signal, "_probe", no_probe)
    for choice in ("separate", "scipy") + (("fused",) if native.fused_available() else ()):
        monkeypatch.setenv("CNNATIVE_ROUNDING", choice)
        assert cn_signal._decide_rounding("2d") == choice
        assert cn_signal._ROUNDING["2d"] == (choice, f"$CNNATIVE_ROUNDING={choice}")
    monkeypatch.setenv("CNNATIVE_ROUNDING", "contracted")
    with pytest.raises(ValueError, match="CNNATIVE_ROUNDING must be one of"):
        cn_signal._decide_rounding("2d")
    with pytest.raises(ValueError, match="rounding must be in"):
        native.set_rounding(3)


def test_the_pattern_is_decided_on_the_first_float_call_of_a_fresh_process():
    import subprocess
    import sys

    code = ("import sys, numpy as np, cnnative\n"
            "from cnnative._native import correlate, correlate_nd\n"
            "before = correlate.rounding(), 'scipy.signal' in sys.modules\n"
            "cnnative.correlate2d(np.ones((3, 3)), np.ones((2, 2)))\n"
            "print(before, correlate.rounding(), correlate_nd.rounding(),"
            " cnnative.signal._ROUNDING['2d'][1])\n")
    env = dict(__import__("os").environ, CNNATIVE_ROUNDING="scipy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=env)
    assert done.stdout.split(None, 4)[:4] == ["(-1,", "False)", "2", "-1"], done.stdout
    assert "$CNNATIVE_ROUNDING=scipy" in done.stdout


@pytest.mark.parametrize("claim,parts", [(1, 0), (3, 0), (1, 1), (1, 2), (1, 4), (5, 3), (50, 4)])
@pytest.mark.parametrize("start,stop,taken", [(0, 40, 0), (5, 33, 0), (5, 33, 11)])
def test_claimed_pieces_cover_each_row_once(claim, parts, start, stop, taken):
    """Fixed pieces (parts=0) and guided ones (1/parts of the rows left, at least claim): from
    a counter that has already handed out ``taken`` rows, a call computes exactly rows
    [start + taken, stop), and guided pieces never claim past the end."""
    rng = np.random.default_rng(claim * 10 + parts)
    image, kernel = rng.standard_normal((40, 9)), rng.standard_normal((3, 3))
    expected = scipy.signal.correlate2d(image, kernel, "same")
    out = np.full_like(expected, 7.0)
    counter = np.array([taken], np.int64)
    native.correlate_direct(image, kernel, False, 1, 0, 0.0, out, start, stop, counter, claim,
                            parts)
    computed = slice(start + taken, stop)
    assert_same_as_scipy(out[computed], expected[computed])
    assert (np.delete(out, np.arange(40)[computed], axis=0) == 7.0).all()
    if parts:
        assert counter[0] == stop - start
    else:
        assert counter[0] >= stop - start
