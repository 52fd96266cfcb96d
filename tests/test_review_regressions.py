"""Regression tests for problems a review of the native code, and fuzzing, found."""
import io
import json
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
import scipy.signal

import cnnative
import pool_reference
from cnnative import _threads
from cnnative._native import conv as native_conv
from cnnative._native import pool as native_pool
from cnnative.layers import Dense, ReLU


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


# -- found by fuzzing (tests/fuzz_targets.py) ---------------------------------------------------


def test_window_far_wider_than_the_plane_does_not_loop_over_every_tap():
    # Valid (padding is half the window) and used to take minutes: the kernel stepped through
    # all 2**31 - 1 taps of each window row.
    x = np.random.default_rng(4).standard_normal((2, 5, 7))
    for kernel, stride, padding in [(2**31 - 1, 1, 2**30 - 1), ((3, 2**20 + 1), (1, 3), (1, 2**19))]:
        y, indices = cnnative.max_pool2d(x, kernel, stride, padding)
        y_ref, indices_ref = pool_reference.max_pool2d(x, kernel, stride, padding)
        assert np.array_equal(y, y_ref) and np.array_equal(indices, indices_ref)


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


@pytest.mark.parametrize("algorithm", ["direct", "gemm"])
def test_non_finite_weight_does_not_reach_input_positions_it_never_touches(algorithm):
    # The direct input gradient used to multiply every weight by the zero border of grad_y, so
    # an inf weight put NaN (inf * 0) at positions whose gradient has no term with that weight.
    x = np.ones((1, 1, 1, 6))
    w = np.array([np.inf, 2.0, 3.0]).reshape(1, 1, 1, 3)
    grad_y = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 1, 4)
    previous = native_conv.set_algorithm(algorithm)
    try:
        grad_x, _, _ = cnnative.conv2d_backward(grad_y, x, w)
    finally:
        native_conv.set_algorithm(previous)
    # grad_x[j] = sum over k of grad_y[j - k] * w[k]; w[0] is in the terms of j = 0..3 only.
    np.testing.assert_array_equal(grad_x.ravel(), [np.inf] * 4 + [4 * 2 + 3 * 3, 4 * 3])


def test_chunk_sums_of_opposite_infinities_are_quiet_nan():
    # Batches above 8 samples are summed chunk by chunk in Python; inf + -inf warned there
    # (an error under -W error) while the same sum inside one chunk is a quiet NaN.
    x = np.ones((32, 1, 4, 4))
    x[0], x[20] = np.inf, -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, grad_w, _ = cnnative.conv2d_backward(np.ones((32, 1, 4, 4)), x, np.ones((1, 1, 1, 1)))
    assert np.isnan(grad_w).all()


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


def test_huge_window_parameters_are_refused_by_the_pooling_kernel_too():
    x = np.zeros((1, 5, 7))
    y, indices = np.empty((1, 5, 7)), np.empty((1, 5, 7), np.int64)
    with pytest.raises(ValueError, match=r"at most 2\*\*31 - 1"):
        native_pool.max_pool2d_planes(x, y, indices, 2**63 - 1, 2**63 - 1, 1, 1, 2**62 - 1, 2**62 - 1, 0, 1)


@pytest.mark.parametrize("output", ["y", "grad_x", "grad_w", "grad_b"])
def test_conv_kernels_refuse_read_only_outputs(output):
    # A read-only array may sit on read-only memory (np.frombuffer of bytes, a read-only mmap);
    # the pooling kernels refused it, the conv kernels wrote through it.
    x, w = np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3))
    arrays = {"y": np.zeros((2, 4, 6, 6)), "grad_x": np.zeros_like(x), "grad_w": np.zeros_like(w),
              "grad_b": np.zeros(4)}
    arrays[output].flags.writeable = False
    with pytest.raises(ValueError, match=f"{output} must be writeable"):
        if output == "y":
            native_conv.forward(x, w, None, arrays["y"], 1, 1, 0, 0, 0, 2)
        else:
            native_conv.backward(np.ones((2, 4, 6, 6)), x, w, arrays["grad_x"], arrays["grad_w"],
                                 arrays["grad_b"], 1, 1, 0, 0, 0, 2)
    assert not any(a.any() for a in arrays.values())


# -- found by tools/sanitize.sh (AddressSanitizer + UndefinedBehaviorSanitizer build) ---------
# The sanitized build aborted on these calls; a plain build went on silently (the conv call then
# raised its ValueError, the pool call returned a result).


@pytest.mark.parametrize("start, stop", [(2**63 - 1, 2**63 - 1), (-(2**63), 1), (3, 3)])
def test_native_conv_backward_checks_the_chunk_before_offsetting_grad_x(start, stop):
    # grad_x's pointer was offset by start * sample bytes before start was range-checked: a
    # start near +-2**63 overflowed Py_ssize_t (undefined behaviour) on the way to the ValueError.
    x, w, grad_y = np.ones((2, 1, 4, 4)), np.ones((1, 1, 3, 3)), np.ones((2, 1, 2, 2))
    with pytest.raises(ValueError, match="outside the batch"):
        native_conv.backward(grad_y, x, w, np.empty_like(x), np.empty_like(w), np.empty(1),
                             1, 1, 0, 0, start, stop)


def test_native_pool_backward_refuses_misaligned_indices():
    # The scatter loaded int64 indices from a misaligned (contiguous) view: undefined behaviour,
    # and a fault on CPUs that trap misaligned loads.  The public function copies such views.
    grad_y = np.random.default_rng(5).standard_normal((2, 3, 4))
    indices = np.arange(24, dtype=np.int64).reshape(2, 3, 4) % 30
    buffer = np.zeros(indices.nbytes + 1, np.uint8)
    shifted = np.frombuffer(buffer.data, np.int64, count=indices.size, offset=1).reshape(indices.shape)
    shifted[...] = indices
    assert shifted.flags.c_contiguous and not shifted.flags.aligned
    with pytest.raises(ValueError, match="indices must be C-contiguous and aligned"):
        native_pool.max_pool2d_backward_planes(grad_y, shifted, np.empty((2, 5, 6)), 0, 2)
    np.testing.assert_array_equal(cnnative.max_pool2d_backward(grad_y, shifted, (2, 5, 6)),
                                  cnnative.max_pool2d_backward(grad_y, indices, (2, 5, 6)))


# -- model files (found by tests/fuzz_files.py) ---------------------------------------------

def model_file(tmp_path, architecture=None, replace=None):
    """A small saved model; its architecture JSON or members' bytes optionally replaced."""
    path = tmp_path / "model.npz"
    cnnative.Network([Dense(3, 4, rng=0), ReLU(), Dense(4, 2, rng=1)]).save(path)
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


def test_model_member_declaring_a_huge_shape_fails_before_allocating_it(tmp_path):
    def huge(name, data):
        if name != "0.w.npy":
            return data
        stream = io.BytesIO(data)
        np.lib.format.read_magic(stream)
        np.lib.format.read_array_header_1_0(stream)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (2**20, 2**20)})
        return header.getvalue() + data[stream.tell():]
    load_refused(model_file(tmp_path, replace=huge), "declares float32 .* does not fit")


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
