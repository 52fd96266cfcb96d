"""Arrays in unusual memory layouts (misaligned, packed record fields, odd strides on length-1
axes) reach every kernel as the same values: copied where a kernel cannot read them in place,
never refused."""
import numpy as np
import pytest
import scipy.signal

import cnnative
from conftest import with_layout


def unaligned(kind):
    """Random values of a shape and dtype as a packed record field (strides not multiples of
    the item size) or a misaligned view."""
    def make(shape, dtype):
        values = np.random.default_rng(1).standard_normal(shape).astype(dtype)
        return with_layout(values, kind)
    return make


@pytest.mark.parametrize("make", [unaligned("packed"), unaligned("misaligned")],
                         ids=["packed", "misaligned"])
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


def test_length_one_axis_with_an_odd_stride_is_read():
    # NumPy ignores the stride of a length-1 axis (it calls such an array aligned, and its own
    # operations may leave any value there); the kernels refused a non-multiple of the item size.
    def odd(values, shape, strides):
        return np.lib.stride_tricks.as_strided(values, shape, strides, writeable=False)

    image = odd(np.arange(9, dtype=np.float32), (1, 9), (3, 4))
    kernel = odd(np.arange(3, dtype=np.float32), (3, 1), (4, 7))
    assert image.flags.aligned and kernel.flags.aligned
    for mode in ("full", "same"):
        np.testing.assert_array_equal(
            cnnative.correlate2d(image, kernel, mode, "wrap"),
            scipy.signal.correlate2d(np.array(image), np.array(kernel), mode, "wrap"))
    planes = odd(np.arange(6.0), (1, 1, 6), (5, 3, 8))
    assert planes.flags.aligned
    for ours, theirs in zip(cnnative.max_pool2d(planes, (1, 2)), cnnative.max_pool2d(np.array(planes), (1, 2))):
        assert np.array_equal(ours, theirs)
