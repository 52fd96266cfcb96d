"""Regression tests for problems a review of the native code found."""
import numpy as np
import pytest
import scipy.signal

import cnnative
from cnnative import _threads
from cnnative._native import conv as native_conv


def test_float32_gemm_path_is_bit_identical_across_thread_counts_and_restores_blas():
    """Chunks used to toggle scipy's (process-wide) BLAS thread count against each other."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 3, 28, 28)).astype(np.float32)
    w = rng.standard_normal((20, 3, 5, 5)).astype(np.float32)
    grad_y = rng.standard_normal((37, 20, 28, 28)).astype(np.float32)
    control = _threads.blas_control()
    before = control[0]() if control else None
    previous = native_conv.set_algorithm("gemm")
    try:
        reference = cnnative.conv2d_backward(grad_y, x, w, padding=2, num_threads=1)
        for _ in range(6):
            for a, b in zip(reference, cnnative.conv2d_backward(grad_y, x, w, padding=2, num_threads=2)):
                assert np.array_equal(a, b)
    finally:
        native_conv.set_algorithm(previous)
    if before is not None:
        assert control[0]() == before


def test_native_conv_geometry_does_not_overflow_int():
    x, w = np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError):
        native_conv.forward(x, w, None, np.empty((1, 1, 1, 3)), 1, 1, 2**31 - 1, 0, 0, 1)


def packed_field(shape, dtype):
    """A float view whose strides are not multiples of its item size (a packed record field)."""
    record = np.zeros(shape, dtype=[("value", dtype), ("tag", "i1")])
    record["value"] = np.random.default_rng(1).standard_normal(shape)
    return record["value"]


def misaligned(shape, dtype):
    itemsize = np.dtype(dtype).itemsize
    buffer = np.zeros(int(np.prod(shape)) * itemsize + 1, np.uint8)
    array = np.frombuffer(buffer.data, dtype, count=int(np.prod(shape)), offset=1).reshape(shape)
    array[...] = np.random.default_rng(2).standard_normal(shape)
    return array


@pytest.mark.parametrize("make", [packed_field, misaligned])
def test_unaligned_layouts_are_copied_not_refused(make):
    image, kernel = make((9, 8), np.float64), make((3, 2), np.float64)
    assert not image.flags.aligned
    np.testing.assert_array_equal(cnnative.correlate2d(image, kernel, "same"),
                                  scipy.signal.correlate2d(np.array(image), np.array(kernel), "same"))
    stack = make((2, 3, 8, 8), np.float32)
    y, indices = cnnative.max_pool2d(stack, 2)
    y_ref, indices_ref = cnnative.max_pool2d(np.array(stack), 2)
    assert np.array_equal(y, y_ref) and np.array_equal(indices, indices_ref)
    w = make((4, 3, 3, 3), np.float32)
    b = make((4,), np.float32)
    np.testing.assert_array_equal(cnnative.conv2d(stack, w, b),
                                  cnnative.conv2d(np.array(stack), np.array(w), np.array(b)))


def test_strided_bias_and_equal_but_distinct_dtype_objects_are_accepted():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.dtype("f4").newbyteorder("="))
    b = np.ones(8, np.float32)[::2]
    np.testing.assert_array_equal(cnnative.conv2d(x, w, b), cnnative.conv2d(x, w.astype(np.float32), b.copy()))
