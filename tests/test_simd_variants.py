"""Every instruction-set variant of every kernel module with SIMD variants, forced level by level.

Each of cnnative._native.correlate, .conv and .pool picks its variants at run time up to its
own cap (set_simd_cap); the tests here lower that cap to each level the CPU has, so the scalar,
128-bit, AVX2 and AVX-512 code all run on one machine.  Correlation and pooling must be exact at
every level; convolution's AVX2/AVX-512 variants fuse multiply-adds, so it is held to the
reference within rounding, and to bit-identity across thread counts at each level.
"""
import numpy as np
import pytest
import scipy.signal

import cnnative
from cnnative import signal as cn_signal
from cnnative import testing as reference
from cnnative._native import conv as native_conv
from cnnative._native import correlate as native_correlate
from cnnative._native import correlate_nd as native_correlate_nd
from cnnative._native import norm as native_norm
from cnnative._native import pool as native_pool
import fma_emulation
from conftest import LEVEL_NAMES, detected_level
from conftest import with_layout as layout

MODULES = {"correlate": native_correlate, "conv": native_conv, "pool": native_pool,
           "norm": native_norm}
DTYPES = [np.float32, np.float64]


# ------------------------------------------------------------------------------ the cap itself


@pytest.mark.parametrize("name", MODULES)
def test_simd_info_and_cap(name):
    module = MODULES[name]
    detected, active = module.simd_info()
    assert detected in ("scalar", "sse2", "neon", "avx2", "avx512f") and active == detected
    old = module.set_simd_cap(2)
    try:
        assert module.simd_info()[1] == ("avx2" if detected == "avx512f" else detected)
        # Each module has a cap of its own.
        assert all(other.simd_info()[1] == other.simd_info()[0]
                   for other in MODULES.values() if other is not module)
        with pytest.raises(ValueError, match="level must be in"):
            module.set_simd_cap(4)
        with pytest.raises(ValueError, match="level must be in"):
            module.set_simd_cap(-1)
        assert module.set_simd_cap(0) == 2
        assert module.simd_info()[1] == "scalar"
    finally:
        module.set_simd_cap(old)
    assert module.simd_info() == (detected, active)


# ------------------------------------------------------------------------------- correlation


def assert_same_as_scipy(ours, theirs):
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert np.array_equal(ours, theirs, equal_nan=True), np.nanmax(np.abs(ours - theirs))


@pytest.mark.scipy_order
@pytest.mark.parametrize("ours,theirs", [(cnnative.correlate2d, scipy.signal.correlate2d),
                                         (cnnative.convolve2d, scipy.signal.convolve2d)],
                         ids=["correlate2d", "convolve2d"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_correlation_variant_is_exact(cap_simd, simd_level, ours, theirs, dtype):
    """Each instruction-set variant rounds exactly like scipy."""
    cap_simd(native_correlate)
    rng = np.random.default_rng(simd_level)
    for image_shape, kernel_shape in [((37, 101), (5, 7)), ((70, 70), (15, 15)), ((9, 130), (4, 1)),
                                      ((3, 2), (6, 9)), ((64, 33), (2, 3))]:
        image = rng.standard_normal(image_shape).astype(dtype)
        kernel = rng.standard_normal(kernel_shape).astype(dtype)
        for mode in ["full", "same", "valid"]:
            for boundary in ["fill", "wrap", "symm"]:
                if mode == "valid" and kernel_shape[0] > image_shape[0] and kernel_shape[1] <= image_shape[1]:
                    continue
                assert_same_as_scipy(ours(image, kernel, mode, boundary, 0.5),
                                     theirs(image, kernel, mode, boundary, 0.5))


# ------------------------------------------------------------- fused rounding (aarch64's scipy)


@pytest.fixture
def rounding():
    """rounding(pattern) sets both correlation families' pattern until the test ends; a fused
    pattern is skipped where the CPU cannot run the fused kernels."""
    saved = dict(cn_signal._ROUNDING)
    natives = [(module, module.rounding()) for module in (native_correlate, native_correlate_nd)]

    def set_pattern(pattern):
        if pattern == "fused" and not native_correlate.fused_available():
            pytest.skip("the fused kernels need FMA instructions, which this CPU lacks")
        for family in ("2d", "nd"):
            assert cn_signal._decide_rounding(family, pattern) == pattern

    yield set_pattern
    cn_signal._ROUNDING.clear()
    cn_signal._ROUNDING.update(saved)
    for module, old in natives:
        module.set_rounding(old)


# Kernel widths with a group of four and left-over taps, only left-overs, only groups, two
# groups; shapes small enough for the exact emulation.
FUSED_2D_CASES = [((5, 9), (2, 6)), ((6, 11), (3, 3)), ((4, 13), (1, 4)), ((5, 12), (2, 9)),
                  ((3, 5), (4, 7))]


@pytest.mark.parametrize("convolve", [False, True], ids=["correlate2d", "convolve2d"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_correlation_variants_match_the_exact_emulation(rounding, cap_simd, simd_level,
                                                              convolve, dtype):
    """Forced to the fused pattern, every variant gives scipy's loop as an FMA-contracting
    compiler builds it (emulated exactly), in every mode and boundary."""
    rounding("fused")
    cap_simd(native_correlate)
    func = cnnative.convolve2d if convolve else cnnative.correlate2d
    rng = np.random.default_rng(11 + simd_level)
    for image_shape, kernel_shape in FUSED_2D_CASES:
        image = rng.standard_normal(image_shape).astype(dtype)
        kernel = rng.standard_normal(kernel_shape).astype(dtype)
        for boundary in ["fill", "wrap", "symm"]:
            full = fma_emulation.correlate2d_full(image, kernel, boundary, 0.5, convolve, True)
            for mode in ["full", "same", "valid"]:
                if mode == "valid" and kernel_shape[0] > image_shape[0]:
                    continue  # swapped inputs: checked against scipy itself on aarch64
                expected = fma_emulation.crop2d(full, image_shape, kernel_shape, mode, convolve)
                assert fma_emulation.same_bits(func(image, kernel, mode, boundary, 0.5),
                                               expected), (image_shape, kernel_shape, mode,
                                                           boundary)


@pytest.mark.parametrize("convolve", [False, True], ids=["correlate", "convolve"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_nd_variants_match_the_exact_emulation(rounding, cap_simd, simd_level, convolve,
                                                     dtype):
    rounding("fused")
    cap_simd(native_correlate_nd)
    func = cnnative.convolve if convolve else cnnative.correlate
    rng = np.random.default_rng(23 + simd_level)
    for shape1, shape2 in [((6, 11), (3, 4)), ((3, 4, 9), (2, 2, 3)), ((5, 7), (1, 5))]:
        in1 = rng.standard_normal(shape1).astype(dtype)
        in2 = rng.standard_normal(shape2).astype(dtype)
        kernel = in2[(slice(None, None, -1),) * in2.ndim] if convolve else in2
        full = fma_emulation.correlate_nd_full(in1, kernel, True)
        for mode in ["full", "same", "valid"]:
            expected = fma_emulation.crop_nd(full, shape1, shape2, mode)
            assert fma_emulation.same_bits(func(in1, in2, mode, "direct"), expected), (
                shape1, shape2, mode)


@pytest.mark.scipy_order
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_emulation_of_the_probed_pattern_is_scipy(dtype):
    """The emulation itself, checked against the installed scipy under the pattern the probe
    found there (separate on x86-64, fused on aarch64)."""
    pattern = cn_signal._rounding("2d")
    if pattern == "scipy":
        pytest.skip("this scipy follows neither pattern")
    rng = np.random.default_rng(5)
    image = rng.standard_normal((5, 9)).astype(dtype)
    kernel = rng.standard_normal((2, 6)).astype(dtype)
    for convolve, theirs in [(False, scipy.signal.correlate2d), (True, scipy.signal.convolve2d)]:
        full = fma_emulation.correlate2d_full(image, kernel, "symm", 0.0, convolve,
                                              pattern == "fused")
        assert fma_emulation.same_bits(full, theirs(image, kernel, "full", "symm"))
    full = fma_emulation.correlate_nd_full(image, kernel, cn_signal._rounding("nd") == "fused")
    assert fma_emulation.same_bits(full, scipy.signal.correlate(image, kernel, "full", "direct"))


# ----------------------------------------------------------------------------------- pooling


def assert_same_pooling(ours, expected):
    (y, indices), (y_ref, indices_ref) = ours, expected
    assert y.dtype == y_ref.dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(indices, indices_ref)
    np.testing.assert_array_equal(y, y_ref)  # NaN equals NaN here


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride_h,padding", [(2, 0), (2, 1), (1, 0), (3, (1, 0)), (2, (0, 1))])
def test_every_pooling_variant_of_2x2_stride_2_is_exact(cap_simd, dtype, stride_h, padding):
    """Every width from narrower than any vector to several vectors plus a partial one."""
    cap_simd(native_pool)
    rng = np.random.default_rng(31)
    pad_w = padding[1] if isinstance(padding, tuple) else padding
    for width in range(max(1, 2 - 2 * pad_w), 42):
        x = rng.integers(-2, 3, (3, 9, width)).astype(dtype)  # many ties
        x[rng.random(x.shape) < 0.05] = np.nan
        x[rng.random(x.shape) < 0.05] = -np.inf
        x[rng.random(x.shape) < 0.02] = np.inf
        for kind in ("C", "rows"):
            problem = (layout(x, kind), 2, (stride_h, 2), padding)
            assert_same_pooling(cnnative.max_pool2d(*problem), reference.max_pool2d(*problem))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling_variants_stay_inside_the_window_columns(cap_simd, dtype):
    # NaN right after each row's last column would win any window that read it, and guard
    # planes around the outputs catch stray writes.
    cap_simd(native_pool)
    for width in (3, 9, 16, 17, 33, 40):
        rows = np.full((2, 6, width + 1), np.nan, dtype)
        rows[..., :width] = np.random.default_rng(width).standard_normal((2, 6, width))
        x = rows[..., :width]
        out_w = width // 2
        y_all = np.full((4, 3, out_w), 7, dtype)
        i_all = np.full((4, 3, out_w), 7, np.int64)
        native_pool.max_pool2d_planes(x, y_all[1:3], i_all[1:3], (2, 2), (2, 2), (0, 0), 0, 2)
        assert_same_pooling((y_all[1:3], i_all[1:3]), reference.max_pool2d(x, 2))
        assert (y_all[[0, 3]] == 7).all() and (i_all[[0, 3]] == 7).all()


# ------------------------------------------------------------------------------- convolution


@pytest.fixture(params=["direct", "gemm"])
def conv_algorithm(request):
    """The direct (gather) kernels, which are what the cap selects among, or im2col + gemm,
    whose col2im fold is dispatched too."""
    previous = native_conv.set_algorithm(request.param)
    yield request.param
    native_conv.set_algorithm(previous)


def assert_close(ours, expected, dtype):
    tolerance = 1e-4 if dtype == np.float32 else 1e-11
    assert ours.dtype == dtype and ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=tolerance,
                               atol=tolerance * max(1.0, np.abs(expected).max()))


# Filters and output positions around the vector widths (4, 8, 16 float32 lanes; 2, 4, 8
# float64), strides and paddings, a 1x1 kernel and one wider than tall.
CONV_SHAPES = [
    # x shape, w shape, stride, padding
    ((3, 2, 9, 9), (5, 2, 3, 3), (1, 1), (1, 1)),
    ((2, 3, 12, 11), (16, 3, 3, 3), (2, 1), (0, 1)),
    ((4, 1, 10, 10), (20, 1, 5, 5), (1, 1), (0, 0)),
    ((2, 4, 7, 8), (9, 4, 1, 1), (1, 2), (0, 0)),
    ((3, 2, 6, 13), (3, 2, 2, 4), (2, 3), (1, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", CONV_SHAPES, ids=lambda s: "x{}w{}".format(*s[:2]))
def test_every_conv_variant_matches_the_reference(cap_simd, simd_level, conv_algorithm, dtype,
                                                  shapes):
    cap_simd(native_conv)
    x_shape, w_shape, stride, padding = shapes
    rng = np.random.default_rng(simd_level)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    y_ref = reference.conv2d(x, w, b, stride, padding)
    grad_y = rng.standard_normal(y_ref.shape).astype(dtype)
    grads_ref = reference.conv2d_backward(grad_y, x, w, stride, padding)
    runs = []
    for threads in (1, 2, 3):
        y = cnnative.conv2d(x, w, b, stride, padding, num_threads=threads)
        grads = cnnative.conv2d_backward(grad_y, x, w, stride, padding, num_threads=threads)
        runs.append((y, *grads))
    assert_close(runs[0][0], y_ref, dtype)
    for ours, expected in zip(runs[0][1:], grads_ref):
        assert_close(ours, expected, dtype)
    for run in runs[1:]:
        for ours, first in zip(run, runs[0]):
            np.testing.assert_array_equal(ours, first)


# Depthwise layers (groups == C) take their own kernels (lanes across output columns, masked
# row tails) at every level under the automatic choice: widths around every vector width,
# strides, dilations, 'same' with an even kernel, F = C and F = 2C.
DEPTHWISE_SHAPES = [
    # x shape, w shape, stride, padding, dilation
    ((3, 4, 14, 14), (4, 1, 3, 3), (1, 1), (1, 1), (1, 1)),
    ((2, 3, 9, 37), (6, 1, 3, 3), (1, 1), (0, 2), (2, 1)),
    ((2, 3, 11, 17), (3, 1, 4, 2), (1, 1), "same", (1, 2)),
    ((2, 2, 13, 33), (4, 1, 5, 3), (2, 3), (2, 1), (1, 1)),
    ((3, 5, 6, 5), (5, 1, 1, 1), (1, 2), (0, 0), (1, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", DEPTHWISE_SHAPES, ids=lambda s: "x{}w{}".format(*s[:2]))
def test_every_depthwise_variant_matches_the_reference(cap_simd, simd_level, dtype, shapes):
    cap_simd(native_conv)
    previous = native_conv.set_algorithm("auto")
    x_shape, w_shape, stride, padding, dilation = shapes
    groups = x_shape[1]
    rng = np.random.default_rng(simd_level)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    if padding == "same":
        total_h, total_w = dilation[0] * (w_shape[2] - 1), dilation[1] * (w_shape[3] - 1)
        pads = (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
    else:
        pads = padding
    try:
        y_ref = reference.conv2d(x, w, b, stride, pads, dilation, groups)
        grad_y = rng.standard_normal(y_ref.shape).astype(dtype)
        grads_ref = reference.conv2d_backward(grad_y, x, w, stride, pads, dilation, groups)
        runs = []
        for threads in (1, 2, 3):
            y = cnnative.conv2d(x, w, b, stride, padding, dilation, groups, num_threads=threads)
            grads = cnnative.conv2d_backward(grad_y, x, w, stride, padding, dilation, groups,
                                             num_threads=threads)
            runs.append((y, *grads))
    finally:
        native_conv.set_algorithm(previous)
    assert_close(runs[0][0], y_ref, dtype)
    for ours, expected in zip(runs[0][1:], grads_ref):
        assert_close(ours, expected, dtype)
    for run in runs[1:]:
        for ours, first in zip(run, runs[0]):
            np.testing.assert_array_equal(ours, first)
