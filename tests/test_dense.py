"""dense / dense_backward against NumPy's matmul formulas, finite differences and an error table."""
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cnnative
from cnnative import _validation, testing
from cnnative._native import dense as native
from cnnative._reduce import BLOCK, tree_sum
from conftest import with_layout as layout

DTYPES = [np.float32, np.float64]
LAYOUTS = ["C", "F", "strided", "reversed", "transposed", "byteswapped", "misaligned"]
# (N, in, out)
SHAPES = [(1, 1, 1), (1, 5, 3), (7, 1, 4), (3, 17, 1), (5, 8, 6), (64, 784, 100), (33, 65, 129)]


def random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def assert_product_close(ours, reference, bound_scale, k, dtype):
    """|ours - reference| <= 2 k eps (|a| @ |b| + |c|): the standard dot-product error bound.

    reference is computed in float64 from the same (rounded) inputs; bound_scale is
    |a| @ |b| + |c| in float64.
    """
    assert ours.dtype == dtype
    assert ours.shape == reference.shape
    eps = np.finfo(dtype).eps
    error = np.abs(ours.astype(np.float64) - reference)
    allowed = 2 * (k + 1) * eps * bound_scale + np.finfo(dtype).tiny
    assert np.all(error <= allowed), (error / allowed).max()


def forward_reference(x, w, b):
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = x64 @ w64.T
    scale = np.abs(x64) @ np.abs(w64).T
    if b is not None:
        y = y + b
        scale = scale + np.abs(b.astype(np.float64))
    return y, scale


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_forward_matches_numpy(dtype, shape, with_bias):
    n, n_in, n_out = shape
    rng = np.random.default_rng(sum(shape))
    x, w, b = random(rng, (n, n_in), dtype), random(rng, (n_out, n_in), dtype), random(rng, n_out, dtype)
    b = b if with_bias else None
    y = cnnative.dense(x, w, b)
    assert y.flags.c_contiguous
    reference, scale = forward_reference(x, w, b)
    assert_product_close(y, reference, scale, n_in, dtype)
    numpy_y = x @ w.T + (b if b is not None else 0)
    if dtype is np.float64:
        np.testing.assert_allclose(y, numpy_y, rtol=1e-12, atol=1e-12 * np.sqrt(n_in))
    else:
        np.testing.assert_allclose(y, numpy_y, rtol=1e-5, atol=1e-5 * np.sqrt(n_in))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_numpy_formulas(dtype, shape):
    n, n_in, n_out = shape
    rng = np.random.default_rng(sum(shape) + 1)
    x, w, grad_y = random(rng, (n, n_in), dtype), random(rng, (n_out, n_in), dtype), random(rng, (n, n_out), dtype)
    grad_x, grad_w, grad_b = cnnative.dense_backward(grad_y, x, w)
    g64, x64, w64 = grad_y.astype(np.float64), x.astype(np.float64), w.astype(np.float64)
    assert_product_close(grad_x, g64 @ w64, np.abs(g64) @ np.abs(w64), n_out, dtype)
    assert_product_close(grad_w, g64.T @ x64, np.abs(g64).T @ np.abs(x64), n, dtype)
    assert_product_close(grad_b, g64.sum(0), np.abs(g64).sum(0), n, dtype)
    assert grad_x.shape == x.shape and grad_w.shape == w.shape and grad_b.shape == (n_out,)
    for out in (grad_x, grad_w, grad_b):
        assert out.flags.c_contiguous


def test_backward_against_finite_differences():
    rng = np.random.default_rng(7)
    n, n_in, n_out = 3, 4, 2
    x, w, b = rng.standard_normal((n, n_in)), rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
    # loss = sum(y * weights), so dloss/dy = weights.
    weights = rng.standard_normal((n, n_out))
    grad_x, grad_w, grad_b = cnnative.dense_backward(weights, x, w)

    def loss(x, w, b):
        return float(np.sum(cnnative.dense(x, w, b) * weights))

    step = 1e-6
    for array, grad, which in ((x, grad_x, 0), (w, grad_w, 1), (b, grad_b, 2)):
        numeric = np.empty_like(array)
        for index in np.ndindex(array.shape):
            args = [x.copy(), w.copy(), b.copy()]
            args[which][index] += step
            up = loss(*args)
            args[which][index] -= 2 * step
            down = loss(*args)
            numeric[index] = (up - down) / (2 * step)
        np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", LAYOUTS)
def test_any_layout_gives_the_contiguous_result(dtype, kind):
    rng = np.random.default_rng(3)
    x, w, b = random(rng, (9, 13), dtype), random(rng, (5, 13), dtype), random(rng, 5, dtype)
    grad_y = random(rng, (9, 5), dtype)
    expected_y = cnnative.dense(x, w, b)
    expected_grads = cnnative.dense_backward(grad_y, x, w)
    for argument in range(3):
        args = [x, w, b]
        args[argument] = layout(args[argument], kind)
        np.testing.assert_array_equal(cnnative.dense(*args), expected_y)
    for argument in range(3):
        args = [grad_y, x, w]
        args[argument] = layout(args[argument], kind)
        for ours, expected in zip(cnnative.dense_backward(*args), expected_grads):
            np.testing.assert_array_equal(ours, expected)
    all_args = [layout(a, kind) for a in (x, w, b)]
    np.testing.assert_array_equal(cnnative.dense(*all_args), expected_y)


def test_contiguous_and_transposed_operands_are_not_copied():
    w = np.ones((4, 3))

    def operand(a):
        return _validation.array(a, "w", "dense", ndim=2, floating=True, layout="blas")

    assert operand(w) is w
    assert operand(w.T).base is w
    assert operand(np.asfortranarray(w)).flags.f_contiguous
    assert not np.shares_memory(operand(w[:, ::2]), w)


@pytest.mark.parametrize("dtype", DTYPES)
def test_single_sample(dtype):
    rng = np.random.default_rng(4)
    x, w, b, grad_y = random(rng, 6, dtype), random(rng, (3, 6), dtype), random(rng, 3, dtype), random(rng, 3, dtype)
    y = cnnative.dense(x, w, b)
    assert y.shape == (3,) and y.dtype == dtype
    np.testing.assert_array_equal(y, cnnative.dense(x[np.newaxis], w, b)[0])
    grad_x, grad_w, grad_b = cnnative.dense_backward(grad_y, x, w)
    batch = cnnative.dense_backward(grad_y[np.newaxis], x[np.newaxis], w)
    assert grad_x.shape == (6,) and grad_w.shape == (3, 6) and grad_b.shape == (3,)
    np.testing.assert_array_equal(grad_x, batch[0][0])
    np.testing.assert_array_equal(grad_w, batch[1])
    np.testing.assert_array_equal(grad_b, grad_y)


def test_accepts_array_likes():
    y = cnnative.dense([[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]], [0.5, -0.5])
    np.testing.assert_array_equal(y, [[11.5, 16.5]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_not_modified_and_outputs_not_aliased(dtype):
    rng = np.random.default_rng(5)
    x, w, b, grad_y = random(rng, (4, 6), dtype), random(rng, (3, 6), dtype), random(rng, 3, dtype), random(rng, (4, 3), dtype)
    inputs = [x, w, b, grad_y, x[0], grad_y[0]]
    saved = [a.copy() for a in inputs]
    outputs = [cnnative.dense(x, w, b), cnnative.dense(x[0], w, b), cnnative.dense(x, w),
               *cnnative.dense_backward(grad_y, x, w), *cnnative.dense_backward(grad_y[0], x[0], w)]
    for array, copy in zip(inputs, saved):
        np.testing.assert_array_equal(array, copy)
    for out in outputs:
        assert out.flags.writeable
        assert not any(np.shares_memory(out, array) for array in inputs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_b_is_a_block_tree_of_row_order_sums_for_every_layout(dtype):
    rng = np.random.default_rng(6)
    grad_y = (random(rng, (257, 11), dtype) * 1e3).astype(dtype)
    x, w = random(rng, (257, 2), dtype), random(rng, (11, 2), dtype)
    expected = testing.batch_sum(grad_y)
    for kind in ("C", "F", "strided"):
        _, _, grad_b = cnnative.dense_backward(layout(grad_y, kind), x, w)
        np.testing.assert_array_equal(grad_b, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 8, 9, 57, 130])
def test_grad_w_is_the_block_tree_of_per_block_products(dtype, n):
    # One BLAS product per block of 8 samples, added by the batch's tree (built one slot per
    # level, not one per block), for C and Fortran operands alike.
    rng = np.random.default_rng(9)
    x, w, grad_y = random(rng, (n, 30), dtype), random(rng, (7, 30), dtype), random(rng, (n, 7), dtype)
    per_block = [cnnative.dense_backward(grad_y[s:s + BLOCK], x[s:s + BLOCK], w)[1]
                 for s in range(0, n, BLOCK)]
    expected = tree_sum(per_block)
    for kind in ("C", "F"):
        np.testing.assert_array_equal(
            cnnative.dense_backward(layout(grad_y, kind), layout(x, kind), w)[1], expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, split", [(64, 32), (57, 32), (13, 8)])
def test_a_node_of_the_reduction_tree_computes_its_part_exactly(dtype, n, split):
    # What data-parallel training relies on: the rows of a slice of the batch that is a node
    # of the tree, and the node's gradient sums, are bit-identical to the whole batch's.
    rng = np.random.default_rng(7)
    x, w, b = random(rng, (n, 40), dtype), random(rng, (9, 40), dtype), random(rng, 9, dtype)
    grad_y = random(rng, (n, 9), dtype)
    y = cnnative.dense(x, w, b, block_rows=True)
    grads = cnnative.dense_backward(grad_y, x, w)
    left = cnnative.dense_backward(grad_y[:split], x[:split], w)
    right = cnnative.dense_backward(grad_y[split:], x[split:], w)
    np.testing.assert_array_equal(np.concatenate([cnnative.dense(x[:split], w, b, block_rows=True),
                                                  cnnative.dense(x[split:], w, b, block_rows=True)]),
                                  y)
    np.testing.assert_array_equal(np.concatenate([left[0], right[0]]), grads[0])
    np.testing.assert_array_equal(left[1] + right[1], grads[1])
    np.testing.assert_array_equal(left[2] + right[2], grads[2])


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_propagate_like_numpy(dtype):
    rng = np.random.default_rng(8)
    x, w, b = random(rng, (5, 7), dtype), random(rng, (4, 7), dtype), random(rng, 4, dtype)
    x[1, 2] = np.nan
    x[3, 0] = np.inf
    w[2, 0] = 0.0  # inf * 0 gives NaN in that output
    b[3] = -np.inf
    ours = cnnative.dense(x, w, b)
    with np.errstate(invalid="ignore"):
        theirs = x @ w.T + b
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs))
    np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-5)
    grad_y = random(rng, (5, 4), dtype)
    grad_y[0, 1] = np.nan
    with np.errstate(invalid="ignore"):
        references = grad_y @ w, grad_y.T @ x, grad_y.sum(0)
    for ours, theirs in zip(cnnative.dense_backward(grad_y, x, w), references):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))


def test_runs_in_parallel_threads():
    rng = np.random.default_rng(9)
    x, w, b = rng.standard_normal((64, 300)), rng.standard_normal((100, 300)), rng.standard_normal(100)
    expected = cnnative.dense(x, w, b)
    results = [None] * 4

    def work(i):
        results[i] = [cnnative.dense(x, w, b) for _ in range(20)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for per_thread in results:
        for y in per_thread:
            np.testing.assert_array_equal(y, expected)


# ---- errors -------------------------------------------------------------------------------

F64 = np.ones((2, 3))
W64 = np.ones((4, 3))
B64 = np.ones(4)
G64 = np.ones((2, 4))
F32, W32, B32, G32 = (a.astype(np.float32) for a in (F64, W64, B64, G64))

ERRORS = [
    # (function, args, exception, message fragment)
    ("dense", (np.ones((2, 3, 1)), W64), ValueError, "x must be a 1-D or 2-D array"),
    ("dense", (np.float64(1.0), W64), ValueError, "x must be a 1-D or 2-D array"),
    ("dense", (F64, np.ones(3)), ValueError, "w must be a 2-D array"),
    ("dense", (F64, W64, np.ones((1, 4))), ValueError, "b must be a 1-D array"),
    ("dense", (F64, W64, 1.0), ValueError, "b must be a 1-D array"),
    ("dense", (np.ones((0, 3)), W64), ValueError, "x must be non-empty"),
    ("dense", (np.ones((2, 0)), np.ones((4, 0))), ValueError, "x must be non-empty"),
    ("dense", (F64, np.ones((0, 3))), ValueError, "w must be non-empty"),
    ("dense", (np.ones(0), W64), ValueError, "x must be non-empty"),
    ("dense", (F64, W64, np.ones(0)), ValueError, "b must be non-empty"),
    ("dense", (np.ones((2, 5)), W64), ValueError, "x has 5 input features"),
    ("dense", (np.ones(5), W64), ValueError, "x has 5 input features"),
    ("dense", (F64, W64, np.ones(3)), ValueError, "b must have shape (4,)"),
    ("dense", (F64.astype(np.int64), W64), TypeError, "x must be float32 or float64"),
    ("dense", (F64.astype(np.float16), W64), TypeError, "x must be float32 or float64"),
    ("dense", (F64.astype(bool), W64), TypeError, "x must be float32 or float64"),
    ("dense", (F64.astype(np.complex128), W64), TypeError, "x must be float32 or float64"),
    ("dense", (F64.astype(object), W64), TypeError, "x must be float32 or float64"),
    ("dense", (F64, W64.astype(np.int32)), TypeError, "w must be float32 or float64"),
    ("dense", (F64, W64, B64.astype(np.complex64)), TypeError, "b must be float32 or float64"),
    ("dense", (F32, W64), TypeError, "w has dtype float64 but x has float32"),
    ("dense", (F64, W32), TypeError, "w has dtype float32 but x has float64"),
    ("dense", (F32, W32, B64), TypeError, "b has dtype float64 but x has float32"),
    ("dense_backward", (G64, np.ones((2, 3, 1)), W64), ValueError, "x must be a 1-D or 2-D array"),
    ("dense_backward", (G64, F64, np.ones(3)), ValueError, "w must be a 2-D array"),
    ("dense_backward", (np.ones((2, 4, 1)), F64, W64), ValueError, "grad_y must be a 1-D or 2-D array"),
    ("dense_backward", (np.ones((0, 4)), np.ones((0, 3)), W64), ValueError, "x must be non-empty"),
    ("dense_backward", (np.ones((2, 0)), F64, np.ones((0, 3))), ValueError, "w must be non-empty"),
    ("dense_backward", (G64, np.ones((2, 5)), W64), ValueError, "x has 5 input features"),
    ("dense_backward", (np.ones((3, 4)), F64, W64), ValueError, "grad_y must have shape (2, 4)"),
    ("dense_backward", (np.ones((2, 5)), F64, W64), ValueError, "grad_y must have shape (2, 4)"),
    ("dense_backward", (np.ones(4), F64, W64), ValueError, "grad_y must have shape (2, 4)"),
    ("dense_backward", (G64, np.ones(3), W64), ValueError, "grad_y must have shape (4,)"),
    ("dense_backward", (G64.astype(np.int8), F64, W64), TypeError, "grad_y must be float32 or float64"),
    ("dense_backward", (G64, F64.astype(np.float16), W64), TypeError, "x must be float32 or float64"),
    ("dense_backward", (G32, F64, W64), TypeError, "grad_y has dtype float32 but x has float64"),
    ("dense_backward", (G64, F64, W32), TypeError, "w has dtype float32 but x has float64"),
    ("dense_backward", (G32, F32, W64), TypeError, "w has dtype float64 but x has float32"),
]


@pytest.mark.parametrize("func, args, exception, fragment", ERRORS)
def test_errors_name_the_argument(func, args, exception, fragment):
    saved = [np.array(a, copy=True) for a in args]
    with pytest.raises(exception, match=f"^{func}: .*" + fragment.replace("(", r"\(").replace(")", r"\)")):
        getattr(cnnative, func)(*args)
    for array, copy in zip(args, saved):
        np.testing.assert_array_equal(array, copy)


def huge(shape, dtype=np.float32):
    """A read-only zero-stride view of the given shape: no memory is allocated for it."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def test_dimensions_beyond_blas_int_are_refused_before_allocating():
    big = 2**31
    with pytest.raises(ValueError, match=r"^dense: x has shape \(2, 2147483648\).*2\*\*31 - 1"):
        cnnative.dense(huge((2, big)), huge((3, big)))
    with pytest.raises(ValueError, match=r"^dense: w has shape \(2147483648, 3\)"):
        cnnative.dense(np.ones((2, 3), np.float32), huge((big, 3)))
    with pytest.raises(ValueError, match=r"^dense: x has shape \(2147483648, 3\)"):
        cnnative.dense(huge((big, 3)), np.ones((2, 3), np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match=r"^dense_backward: x has shape \(2147483648, 3\)"):
        cnnative.dense_backward(huge((big, 2)), huge((big, 3)), np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"^dense_backward: grad_y has shape"):
        _validation.array(huge((2, big)), "grad_y", "dense_backward", layout="blas")
    # At the limit the array passes as it is: a C-contiguous view claiming 2**31 - 1 columns of
    # a one-element buffer, which the check never reads (a copy would need 16 GB).
    limit = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (2, big - 1),
                                            (4 * (big - 1), 4), writeable=False)
    assert limit.flags.c_contiguous
    assert _validation.array(limit, "x", "dense", floating=True, layout="blas") is limit


# ---- the kernel's own checks (memory safety whatever Python passes) ------------------------

def test_kernel_rechecks_its_preconditions():
    a, b = np.ones((2, 3)), np.ones((3, 4))
    with pytest.raises(ValueError, match="cannot be multiplied"):
        native.matmul(a, a)
    with pytest.raises(TypeError, match="a must be float32 or float64"):
        native.matmul(a.astype(np.int64), b)
    with pytest.raises(TypeError, match="b must have the dtype"):
        native.matmul(a, b.astype(np.float32))
    with pytest.raises(ValueError, match="b must be C- or Fortran-contiguous"):
        native.matmul(a, np.ones((3, 8))[:, ::2])
    with pytest.raises(TypeError, match="a must be in native byte order"):
        native.matmul(a.astype(a.dtype.newbyteorder()), b)
    with pytest.raises(ValueError, match="a must be aligned"):
        native.matmul(layout(a, "misaligned"), b)
    with pytest.raises(ValueError, match="b must be 2-D"):
        native.matmul(a, np.ones(3))
    with pytest.raises(ValueError, match="a must be non-empty"):
        native.matmul(np.ones((0, 3)), b)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        native.matmul(a, b, np.ones(3))
    with pytest.raises(TypeError, match="bias must have the dtype"):
        native.matmul(a, b, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="bias must be C- or Fortran-contiguous"):
        native.matmul(a, b, np.ones(8)[::2])
    with pytest.raises(TypeError):
        native.matmul(None, b)
    with pytest.raises(ValueError, match="a must be C- or Fortran-contiguous"):
        native.column_sums(np.ones((3, 8))[:, ::2])
    with pytest.raises(TypeError, match="a must be float32 or float64"):
        native.column_sums(np.ones((3, 8), np.float16))


def test_kernel_refuses_dimensions_beyond_blas_int():
    # A contiguous-looking view of 2**31 elements over a one-element buffer: the kernel must
    # refuse it from its shape alone, before reading any element (nothing here reads it).
    base = np.zeros(1, np.float32)
    wide = np.lib.stride_tricks.as_strided(base, shape=(1, 2**31), strides=(2**33, 4))
    tall = np.lib.stride_tricks.as_strided(base, shape=(2**31, 1), strides=(4, 4))
    assert wide.flags.c_contiguous and tall.flags.c_contiguous
    with pytest.raises(ValueError, match=r"a has a dimension above 2\*\*31 - 1"):
        native.matmul(wide, tall)
    with pytest.raises(ValueError, match=r"b has a dimension above 2\*\*31 - 1"):
        native.matmul(np.ones((1, 1), np.float32), wide)
    with pytest.raises(ValueError, match=r"a has a dimension above 2\*\*31 - 1"):
        native.column_sums(tall)


# ---- properties ---------------------------------------------------------------------------

@given(
    n=st.integers(1, 12), n_in=st.integers(1, 12), n_out=st.integers(1, 12),
    dtype=st.sampled_from(DTYPES), with_bias=st.booleans(),
    kinds=st.tuples(*[st.sampled_from(LAYOUTS)] * 4), seed=st.integers(0, 2**32 - 1),
)
def test_property_forward_and_backward(n, n_in, n_out, dtype, with_bias, kinds, seed):
    rng = np.random.default_rng(seed)
    x, w, b = random(rng, (n, n_in), dtype), random(rng, (n_out, n_in), dtype), random(rng, n_out, dtype)
    grad_y = random(rng, (n, n_out), dtype)
    b = b if with_bias else None
    lx, lw, lg = layout(x, kinds[0]), layout(w, kinds[1]), layout(grad_y, kinds[3])
    lb = None if b is None else layout(b, kinds[2])
    reference, scale = forward_reference(x, w, b)
    assert_product_close(cnnative.dense(lx, lw, lb), reference, scale, n_in, dtype)
    grad_x, grad_w, grad_b = cnnative.dense_backward(lg, lx, lw)
    g64, x64, w64 = grad_y.astype(np.float64), x.astype(np.float64), w.astype(np.float64)
    assert_product_close(grad_x, g64 @ w64, np.abs(g64) @ np.abs(w64), n_out, dtype)
    assert_product_close(grad_w, g64.T @ x64, np.abs(g64).T @ np.abs(x64), n, dtype)
    np.testing.assert_array_equal(grad_b, testing.batch_sum(grad_y))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_are_bit_identical_across_thread_counts(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((700, 33)).astype(dtype)  # several row chunks
    w = rng.standard_normal((17, 33)).astype(dtype)
    b = rng.standard_normal(17).astype(dtype)
    grad_y = rng.standard_normal((700, 17)).astype(dtype)
    one = cnnative.dense(x, w, b, num_threads=1), *cnnative.dense_backward(grad_y, x, w, num_threads=1)
    two = cnnative.dense(x, w, b, num_threads=2), *cnnative.dense_backward(grad_y, x, w, num_threads=2)
    for a, c in zip(one, two):
        np.testing.assert_array_equal(a, c)
    # A relative tolerance fails on outputs that cancel to near zero: bound by |x| @ |w.T| + |b|.
    assert_product_close(one[0], *forward_reference(x, w, b), x.shape[1], dtype)
