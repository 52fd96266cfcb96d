"""correlate / convolve (N-d) against scipy.signal: bit-exact values, dtypes, shapes and errors."""
import warnings

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnative
from cnnative import _threads
from cnnative import signal as cn_signal
from cnnative import testing as reference
from cnnative._native import correlate_nd as native
from conftest import split_into_rows
from conftest import with_layout as layout

MODES = ["full", "same", "valid"]
PAIRS = [(cnnative.correlate, scipy.signal.correlate, reference.correlate),
         (cnnative.convolve, scipy.signal.convolve, reference.convolve)]
PAIR_IDS = ["correlate", "convolve"]


def assert_identical(ours, theirs):
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs, equal_nan=True), np.nanmax(np.abs(ours - theirs))


def scipy_uses_numpy(in1, in2, mode):
    """Whether scipy hands this direct call to numpy.correlate/convolve (1-D, BLAS order)."""
    return in1.ndim == 1 and (mode != "same" or in1.size >= in2.size)


def valid_refused(shape1, shape2, mode):
    return mode == "valid" and not (all(a >= b for a, b in zip(shape1, shape2))
                                    or all(b >= a for a, b in zip(shape1, shape2)))


def assert_matches_scipy(ours, theirs, slow, in1, in2, mode, **kwargs):
    """Bit-identical to scipy's direct method, except where scipy itself uses numpy's 1-D
    functions: there bit-identical to the reference in scipy's N-d order, and equal to scipy's
    result to rounding."""
    out = ours(in1, in2, mode, method="direct", **kwargs)
    expected = theirs(in1, in2, mode, method="direct")
    if not scipy_uses_numpy(np.asarray(in1), np.asarray(in2), mode):
        assert_identical(out, expected)
        return out
    # The N-d order itself: scipy's own N-d loop on the inputs lifted to 2-D (which rounds as
    # that scipy build does, fused on aarch64), and the reference where that is separate.
    lifted = theirs(np.asarray(in1)[None], np.asarray(in2)[None], mode, method="direct")[0]
    assert_identical(out, lifted)
    if cn_signal._rounding("nd") == "separate":
        assert_identical(out, slow(in1, in2, mode))
    if not (np.isfinite(in1).all() and np.isfinite(in2).all()):
        # numpy.correlate leaves out the products with the zero padding, so an inf or NaN in
        # in2 does not reach the edges there as it does in scipy's N-d method (and here).
        return out
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(out), finite)
    def finite_abs(a):
        a = np.abs(np.asarray(a, np.float64))
        return np.where(np.isfinite(a), a, 0.0)

    scale = finite_abs(in1).max() * finite_abs(in2).sum()
    tolerance = (1e-5 if out.dtype == np.float32 else 1e-13) * scale
    assert np.all(np.abs(out[finite] - expected[finite]) <= tolerance)
    return out


@st.composite
def problems(draw, max_side=9, special=True):
    ndim = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    side = st.integers(1, max_side if ndim > 1 else 40)
    shape1 = tuple(draw(side) for _ in range(ndim))
    # Kernels larger than the input in some or all axes, even and odd.
    shape2 = tuple(draw(side) for _ in range(ndim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    in1 = rng.standard_normal(shape1).astype(dtype)
    in2 = rng.standard_normal(shape2).astype(dtype)
    if special and draw(st.booleans()):
        for array in (in1, in2):
            flat = array.reshape(-1)
            for value in draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0]),
                                       max_size=2)):
                flat[rng.integers(flat.size)] = value
    kinds = ["C", "F", "strided", "reversed", "transposed", "rows"]
    in1 = layout(in1, draw(st.sampled_from(kinds)))
    in2 = layout(in2, draw(st.sampled_from(kinds)))
    return in1, in2, draw(st.sampled_from(MODES))


@pytest.mark.scipy_order
@pytest.mark.parametrize("ours,theirs,slow", PAIRS, ids=PAIR_IDS)
@given(problem=problems())
def test_matches_scipy_bit_for_bit(ours, theirs, slow, problem):
    in1, in2, mode = problem
    if valid_refused(in1.shape, in2.shape, mode):
        with pytest.raises(ValueError, match="valid"):
            ours(in1, in2, mode)
        return
    assert_matches_scipy(ours, theirs, slow, in1, in2, mode)


@pytest.mark.scipy_order
@pytest.mark.parametrize("ours,theirs,slow", PAIRS, ids=PAIR_IDS)
@settings(max_examples=60)
@given(problem=problems(max_side=7), threads=st.sampled_from([1, 2, 3]))
def test_matches_scipy_at_every_thread_count(ours, theirs, slow, problem, threads):
    in1, in2, mode = problem
    if valid_refused(in1.shape, in2.shape, mode):
        return
    expected = assert_matches_scipy(ours, theirs, slow, in1, in2, mode)
    with split_into_rows() as calls:
        assert_identical(ours(in1, in2, mode, method="direct", num_threads=threads), expected)
    rows = int(np.prod(expected.shape[:-1]))
    assert calls == ([min(threads, rows)] if min(threads, rows) > 1 else [])


@pytest.mark.scipy_order
@pytest.mark.parametrize("ours,theirs,slow", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_simd_level_and_thread_count(cap_simd, ours, theirs, slow, dtype):
    """Rows wide enough for every vector width and their overlapping last vector, narrow ones
    for the scalar code, even and odd kernels, every mode, at each instruction-set level."""
    cap_simd(native)
    rng = np.random.default_rng(12)
    for shape1, shape2 in [((3, 11, 37), (2, 4, 5)), ((5, 7, 6, 19), (2, 3, 4, 3)),
                           ((40, 53), (6, 7)), ((6, 3), (5, 9)), ((300,), (17,)),
                           ((20, 12, 12), (20, 5, 5))]:
        in1 = rng.standard_normal(shape1).astype(dtype)
        in2 = rng.standard_normal(shape2).astype(dtype)
        in1.reshape(-1)[7] = np.inf
        for mode in MODES:
            if valid_refused(shape1, shape2, mode):
                continue
            expected = assert_matches_scipy(ours, theirs, slow, in1, in2, mode)
            with split_into_rows():
                for threads in [2, 3]:
                    assert_identical(ours(in1, in2, mode, "direct", num_threads=threads),
                                     expected)


def test_results_do_not_depend_on_the_thread_count():
    """At the default thresholds: large enough for several threads to share it."""
    rng = np.random.default_rng(13)
    in1, in2 = rng.standard_normal((30, 60, 70)), rng.standard_normal((3, 5, 4))
    for func in (cnnative.correlate, cnnative.convolve):
        for mode in MODES:
            one = func(in1, in2, mode, "direct", num_threads=1)
            for threads in [2, 3, None]:
                assert np.array_equal(func(in1, in2, mode, "direct", num_threads=threads), one)


def test_small_calls_stay_on_the_calling_thread(monkeypatch):
    calls = []

    def run_chunks(func, n_items, chunk_size, num_threads=None, *, calls_blas=True):
        calls.append(num_threads)
        return [func(start, min(start + chunk_size, n_items))
                for start in range(0, n_items, chunk_size)]

    monkeypatch.setattr(_threads, "run_chunks", run_chunks)
    maps, filters = np.ones((20, 12, 12)), np.ones((20, 5, 5))
    for threads in [None, 1, 2, 3]:
        cnnative.correlate(maps, filters, "valid", num_threads=threads)
        cnnative.convolve(maps[:4].astype(np.float32), filters[:4].astype(np.float32), "full",
                          num_threads=threads)
    assert calls == []
    large = np.ones((40, 100, 100))
    assert np.array_equal(cnnative.correlate(large, filters, "same", "direct", num_threads=2),
                          cnnative.correlate(large, filters, "same", "direct", num_threads=1))
    assert calls == [2]


def test_stacked_maps_are_one_native_call(monkeypatch):
    """The seed article's case: (C, H, W) maps with (C, kh, kw) filters, 'valid', goes
    straight to the native fast path (one call) and gives (1, H-kh+1, W-kw+1)."""
    calls = []
    fast = native.correlate_small

    def counted(*args):
        calls.append(args[2])
        return fast(*args)

    monkeypatch.setattr(cn_signal, "_correlate_nd_small", counted)
    monkeypatch.setattr(cn_signal, "_correlate_or_convolve_nd", None)  # must not be reached
    rng = np.random.default_rng(14)
    maps, filters = rng.standard_normal((20, 12, 12)), rng.standard_normal((20, 5, 5))
    for method in ["auto", "direct"]:
        out = cnnative.correlate(maps, filters, "valid", method=method)
        assert out.shape == (1, 8, 8)
        assert_identical(out, scipy.signal.correlate(maps, filters, "valid", method="direct"))
    assert calls == ["valid", "valid"]


def test_appendix_b_identity():
    """Summing per-channel 2-D correlations is the stacked 3-D 'valid' correlation."""
    rng = np.random.default_rng(15)
    for dtype, rtol in [(np.float64, 1e-12), (np.float32, 1e-5)]:
        maps = rng.standard_normal((20, 12, 12)).astype(dtype)
        filters = rng.standard_normal((20, 5, 5)).astype(dtype)
        summed = sum(cnnative.correlate2d(m, f, "valid") for m, f in zip(maps, filters))
        stacked = cnnative.correlate(maps, filters, "valid")
        assert stacked.shape == (1, 8, 8) and stacked.dtype == dtype
        np.testing.assert_allclose(stacked[0], summed, rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize("ours,theirs,slow", PAIRS, ids=PAIR_IDS)
def test_swapped_inputs_follow_scipy(ours, theirs, slow):
    """'valid' with in2 the larger swaps (and correlate reverses); 'full' with more elements
    in in2 swaps inside scipy's direct correlation; 'same' never swaps."""
    rng = np.random.default_rng(16)
    small, large = rng.standard_normal((3, 4, 2)), rng.standard_normal((9, 8, 5))
    for mode in MODES:
        for a, b in [(small, large), (large, small), (small, small)]:
            out = assert_matches_scipy(ours, theirs, slow, a, b, mode)
            assert out.shape == theirs(a, b, mode, method="direct").shape


@pytest.mark.parametrize("ours,theirs,slow", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("dtype1,dtype2", [
    (np.float32, np.float64), (np.int8, np.float32), (np.int64, np.float32), (np.uint8, np.int8),
    (np.complex64, np.float64), (np.int16, np.int16), (np.longdouble, np.float64),
])
def test_result_dtype_and_values_follow_scipy(ours, theirs, slow, dtype1, dtype2):
    rng = np.random.default_rng(17)

    def values(shape, dtype):
        # Integers through int64: a negative float cast straight to unsigned is "invalid" on
        # aarch64 (it wraps quietly on x86-64).
        data = rng.standard_normal(shape) * 10
        return (data.astype(np.int64) if np.dtype(dtype).kind in "iu" else data).astype(dtype)

    in1 = values((6, 5, 4), dtype1)
    in2 = values((3, 2, 2), dtype2)
    for mode in MODES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            # scipy casts its uninitialised output buffer to the result dtype first.
            warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning)
            expected = theirs(in1, in2, mode, method="direct")
        assert_identical(ours(in1, in2, mode, method="direct"), expected)


@pytest.mark.parametrize("ours,theirs,slow", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("method", ["auto", "fft", "direct"])
def test_byte_swapped_inputs_handed_to_scipy_work(ours, theirs, slow, method):
    # scipy's FFT raises "unsupported data type" for a big-endian float16 beside complex values
    # (found by the fuzz harness); cnnative hands scipy the same values in native byte order.
    rng = np.random.default_rng(19)
    in1 = rng.standard_normal((6, 8, 8)).astype(">f2")
    in2 = (rng.standard_normal((3, 6, 2)) + 1j * rng.standard_normal((3, 6, 2))).astype(">c16")
    with warnings.catch_warnings():
        # scipy's direct method casts its uninitialised output buffer to the result dtype
        # first, which can warn about whatever the buffer held.
        warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning)
        expected = theirs(in1.astype("=f2"), in2.astype("=c16"), "full", method=method)
    assert_identical(ours(in1, in2, "full", method=method), expected)


def test_zero_dimensional_and_many_dimensional_inputs():
    assert cnnative.correlate(np.array(2.0), np.array(3.0)) == 6.0
    rng = np.random.default_rng(18)
    in1, in2 = rng.standard_normal((3, 2, 4, 2, 3)), rng.standard_normal((2, 1, 2, 2, 2))
    for mode in MODES:
        assert_identical(cnnative.correlate(in1, in2, mode, "direct"),
                         scipy.signal.correlate(in1, in2, mode, "direct"))


@pytest.mark.parametrize("func", [cnnative.correlate, cnnative.convolve], ids=PAIR_IDS)
def test_inputs_are_not_modified(func):
    rng = np.random.default_rng(19)
    in1, in2 = rng.standard_normal((10, 9, 8)), rng.standard_normal((3, 4, 2))
    strided = layout(in1, "strided")
    saved = [a.copy() for a in (in1, in2, strided)]
    for source in (in1, strided, in2):
        for mode in MODES:
            for method in ["direct", "fft", "auto"]:
                out = func(source, in2, mode, method=method)
                assert not np.shares_memory(out, source) and not np.shares_memory(out, in2)
            with split_into_rows():
                func(source, in2, mode, method="direct", num_threads=3)
    for array, copy in zip((in1, in2, strided), saved):
        assert np.array_equal(array, copy)


# -- fft and auto ---------------------------------------------------------------------------------

@pytest.mark.parametrize("func", [cnnative.correlate, cnnative.convolve], ids=PAIR_IDS)
@settings(max_examples=60)
@given(problem=problems(max_side=12, special=False))
def test_fft_and_auto_agree_with_direct(func, problem):
    in1, in2, mode = problem
    if valid_refused(in1.shape, in2.shape, mode):
        return
    in1, in2 = in1.astype(np.float64), in2.astype(np.float64)
    direct = func(in1, in2, mode, method="direct")
    for method in ["fft", "auto"]:
        out = func(in1, in2, mode, method=method)
        assert out.dtype == direct.dtype and out.shape == direct.shape
        assert np.max(np.abs(out - direct)) <= 1e-10 * np.max(np.abs(direct))
    single = func(in1.astype(np.float32), in2.astype(np.float32), mode, method="fft")
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, direct, atol=1e-4 * np.max(np.abs(direct)))


def test_choose_method_covers_the_nd_functions():
    assert cnnative.choose_method(np.ones((20, 12, 12)), np.ones((20, 5, 5)), "valid") == "direct"
    assert cnnative.choose_method(np.ones((64, 64, 64)), np.ones((5, 5, 5)), "same") == "direct"
    assert cnnative.choose_method(np.ones((64, 64, 64)), np.ones((31, 31, 31)), "same") == "fft"
    assert cnnative.choose_method(np.ones((1024, 1024)), np.ones((63, 63)), "same",
                                  function="correlate") == "fft"
    assert cnnative.choose_method(np.ones(1000), np.ones(3), function="convolve") == "direct"
    assert cnnative.choose_method(np.ones((64, 64, 64), int), np.ones((31, 31, 31), int)) == "direct"
    # 'valid' with in2 the larger is the swapped problem's choice.
    assert (cnnative.choose_method(np.ones((5, 5, 5)), np.ones((64, 64, 64)), "valid")
            == cnnative.choose_method(np.ones((64, 64, 64)), np.ones((5, 5, 5)), "valid"))
    with pytest.raises(ValueError, match="choose_method: in2 must be a 2-D array"):
        cnnative.choose_method(np.ones((4, 4)), np.ones((2, 2, 2)), function="correlate2d")
    with pytest.raises(ValueError, match="choose_method: function must be one of"):
        cnnative.choose_method(np.ones((4, 4)), np.ones((2, 2)), function="conv2d")


def test_auto_large_kernels_use_fft_and_stay_close():
    rng = np.random.default_rng(20)
    in1, in2 = rng.standard_normal((60, 60, 60)), rng.standard_normal((25, 25, 25))
    direct = reference.correlate(in1[:40, :40, :40], in2, "valid")
    auto = cnnative.correlate(in1[:40, :40, :40], in2, "valid")
    assert np.max(np.abs(auto - direct)) <= 1e-10 * np.max(np.abs(direct))


def test_fft_is_quiet_about_non_finite_values():
    in1 = np.ones((6, 6, 6))
    in1[2, 3, 1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(cnnative.correlate(in1, np.ones((3, 3, 3)), method="fft")).all()
        out = cnnative.convolve(in1.astype(complex), np.ones((3, 3, 3)), method="fft")
    assert np.isnan(out).all()


# -- bad input ------------------------------------------------------------------------------------

GOOD = np.ones((5, 5, 5))


@pytest.mark.parametrize("func", [cnnative.correlate, cnnative.convolve], ids=PAIR_IDS)
@pytest.mark.parametrize("args,kwargs,error,message", [
    ((np.ones(5), GOOD), {}, ValueError,
     r"in1 and in2 must have the same number of dimensions, got in1 ndim=1 and in2 ndim=3"),
    ((np.ones((0, 3, 3)), GOOD), {}, ValueError, r"in1 must be non-empty"),
    ((GOOD, np.ones((2, 0, 1))), {}, ValueError, r"in2 must be non-empty"),
    ((np.ones((3, 5, 5)), np.ones((4, 2, 5)), "valid"), {}, ValueError,
     r"for 'valid' mode, one must be at least"),
    ((GOOD, GOOD, "bogus"), {}, ValueError, r"mode must be one of 'valid', 'same', 'full'; got 'bogus'"),
    ((GOOD, GOOD), {"method": "fast"}, ValueError, r"method must be one of 'direct', 'fft', 'auto'"),
    ((GOOD, GOOD), {"mode": ["full"]}, ValueError, r"mode must be one of"),
    ((GOOD > 0, GOOD > 0), {}, ValueError, r"bool, float16 and object"),
    ((GOOD.astype(np.float16), GOOD.astype(np.float16)), {}, ValueError, r"not supported"),
    ((GOOD.astype(object), GOOD), {}, ValueError, r"not supported"),
    ((GOOD.astype("U3"), GOOD), {}, TypeError, r"in1 must have a numeric dtype"),
    ((GOOD, GOOD.astype("datetime64[s]")), {}, TypeError, r"in2 must have a numeric dtype"),
    ((GOOD, GOOD), {"num_threads": 0}, ValueError, r"num_threads must be a positive integer"),
    ((GOOD, GOOD), {"num_threads": 1.5}, TypeError, r"num_threads must be a positive integer"),
])
def test_bad_input_raises_naming_the_argument(func, args, kwargs, error, message):
    name = func.__name__
    with pytest.raises(error, match=rf"^{name}: .*{message}"):
        func(*args, **kwargs)


def test_native_entry_points_check_their_own_preconditions():
    """The kernel module refuses inputs that would make it read or write out of bounds."""
    a = np.ones((4, 4, 4))
    k = np.ones((2, 2, 2))
    valid = native.correlate_valid
    for frame, kernel in [(np.ones((2, 2, 2)), np.ones((3, 2, 2))), (np.ones((0, 2, 2)), k),
                          (np.ones(4), k), (np.array(1.0), np.array(1.0)),
                          (a[..., ::2], np.ones((2, 2, 1)))]:
        with pytest.raises(ValueError):
            valid(frame, kernel, False)
    for frame, kernel in [(a, k.astype(np.float32)), (a.astype(int), k.astype(int)),
                          (a.astype(">f8"), k.astype(">f8"))]:
        with pytest.raises(TypeError):
            valid(frame, kernel, False)
    for out in [np.empty((3, 3, 4)), np.empty((3, 3, 3), np.float32),
                np.empty((3, 3, 3), order="F")[:, :, :2], np.empty((6, 6, 6))[::2, ::2, ::2],
                np.empty(27)]:
        with pytest.raises((ValueError, TypeError)):
            valid(a, k, False, out)
    out = np.empty((3, 3, 3))
    for start, stop in [(-1, 9), (0, 10), (3, 2), (10, 10)]:
        with pytest.raises(ValueError, match="rows"):
            valid(a, k, False, out, start, stop)
    with pytest.raises(ValueError, match="claim"):
        valid(a, k, False, out, 0, 9, np.zeros(1, np.int64), 0)
    with pytest.raises(ValueError, match="parts must be >= 0, got -2"):
        valid(a, k, False, out, 0, 9, np.zeros(1, np.int64), 1, -2)
    for taken in [9, 2**40, -3]:  # a counter past the end (or negative) leaves out alone
        for parts in [0, 2]:
            out = np.full((3, 3, 3), 7.0)
            valid(a, k, False, out, 0, 9, np.array([taken]), 1, parts)
            assert (out == 7.0).all()
    for parts in [0, 1, 2, 5]:  # guided pieces or fixed ones, the same rows
        out = np.full((3, 3, 3), 7.0)
        valid(a, k, False, out, 0, 9, np.array([2]), 1, parts)
        assert (out.reshape(9, 3)[:2] == 7.0).all()
        assert np.array_equal(out.reshape(9, 3)[2:], valid(a, k, False).reshape(9, 3)[2:])
    with pytest.raises(ValueError, match="without out"):
        valid(a, k, False, None, 1)
    out = np.full((3, 3, 3), 7.0)
    valid(a, k, False, out, 2, 5)  # rows 2..4: plane 0's last row, plane 1's first two
    assert (out.reshape(9, 3)[[0, 1, 5, 6, 7, 8]] == 7.0).all()
    assert (out.reshape(9, 3)[2:5] == 8.0).all()
    for before, after in [((1, 1), (1, 1, 1)), ((-1, 0, 0), (0, 0, 0)), ((2**41, 0, 0), (0, 0, 0))]:
        with pytest.raises(ValueError):
            native.padded(a, before, after)
    assert native.padded(a[::-1, :, ::2], (1, 0, 2), (0, 1, 0)).shape == (5, 5, 4)


def test_native_fast_path_declines_what_it_does_not_handle():
    a, k = np.ones((6, 6, 6)), np.ones((2, 2, 2))
    fast = native.correlate_small
    assert fast(a, k, "full", "direct", False, 1e9, 1e9).shape == (7, 7, 7)
    declined = [
        (a.tolist(), k, "full", "direct"), (a, k.astype(np.float32), "full", "direct"),
        (a.astype(int), k.astype(int), "full", "direct"), (a, k, np.str_("full"), "direct"),
        (a, k, "full", "fft"), (k, a, "valid", "direct"), (k, a, "full", "direct"),
        (np.ones((0, 3, 3)), k, "full", "direct"), (a.astype(">f8"), k.astype(">f8"), "full", "direct"),
        (a.view(np.ma.MaskedArray), k, "full", "direct"), (a[None], k, "full", "direct"),
        (np.array(1.0), np.array(1.0), "full", "direct"), (a, k, "bogus", "direct"),
    ]
    for args in declined:
        assert fast(*args, False, 1e9, 1e9) is None, args
    assert fast(a, k, "full", "direct", False, 48.0, 1e9) is None  # 7**3 * 8 > 48
    assert fast(a, k, "full", "auto", False, 1e9, 48.0) is None
