"""The fuzzing oracle and argument makers shared by tests/fuzz_targets.py and tests/fuzz_native.py.

A public call must either return the right answer or raise ValueError/TypeError whose message
starts with ``"<function>: "`` and names one of the function's parameters.  Anything else fails:
another exception type, a warning, a wrong value, an input modified, an output sharing memory
with an input or another output.  Crashes and hangs are caught one level up, by tools/fuzz.py
running each target in a child process.

Each call is made from one seed by a NumPy generator, so the odds written in the targets are
the odds that apply (hypothesis's own integers favour boundary values) and
``Target.call(seed)`` rebuilds any failing case.  Hypothesis supplies the seeds and the budget.
"""
import dataclasses
import functools
import inspect
import math
import numbers
import re
import warnings
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from conftest import with_layout

import cnnative

# Seeds for Target.call; any 64-bit value.
SEEDS = st.integers(0, 2**64 - 1)

# ------------------------------------------------------------------------------------ the oracle


@dataclasses.dataclass
class Call:
    """One call of ``cnnative.<func>(*args, **kwargs)``."""

    func: str
    args: tuple
    kwargs: dict = dataclasses.field(default_factory=dict)
    seed: Any = None

    def __repr__(self):
        parts = [describe(a) for a in self.args]
        parts += [f"{k}={describe(v)}" for k, v in self.kwargs.items()]
        return f"[seed {self.seed}] cnnative.{self.func}({', '.join(parts)})"


@dataclasses.dataclass
class Value:
    """The call is valid: it must return, and ``check(result)`` asserts the result is right."""

    check: Callable[[Any], None]


class _Marker:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


ERROR = _Marker("ERROR")      # the call must raise ValueError or TypeError
TOO_BIG = _Marker("TOO_BIG")  # valid, but the output would not fit: MemoryError is fine too

# Outputs above this many bytes count as too big to check (and, under tools/fuzz.py's address
# space limit, to allocate).
BIG_BYTES = 1 << 30


class Invalid(Exception):
    """Raised inside a spec when a rule is broken."""


@dataclasses.dataclass
class Target:
    """A fuzz target: ``make(rng)`` builds a call, ``checker(call, spec)`` holds it to ``spec``."""

    name: str
    make: Callable[[np.random.Generator], Any]
    spec: Callable[[Any], Any]
    checker: Callable[[Any, Any], str] = None

    def call(self, seed):
        call = self.make(np.random.default_rng(seed))
        call.seed = seed
        return call

    def check(self, seed):
        """Makes and checks the call of ``seed``; returns the outcome ('value', 'error', ...)."""
        return (self.checker or check)(self.call(seed), self.spec)


def check(call, spec):
    """Runs ``call`` against its spec; returns 'value', 'error' or 'too big', or raises AssertionError."""
    expected = _expectation(call, spec)
    inputs = [a for a in (*call.args, *call.kwargs.values()) if isinstance(a, np.ndarray)]
    before = [a.tobytes() for a in inputs]
    func = getattr(cnnative, call.func)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as in the test suite's configuration
        try:
            result = func(*call.args, **call.kwargs)
        except (ValueError, TypeError) as exc:
            assert not isinstance(expected, Value), f"raised {exc!r} on a valid call"
            _check_message(call.func, exc)
            outcome = "error"
        except MemoryError as exc:
            assert expected is TOO_BIG, f"raised {exc!r} on a call whose output is small"
            outcome = "too big"
        else:
            assert expected is not ERROR, f"accepted an invalid call, returned {describe(result)}"
            outputs = [r for r in (result if isinstance(result, tuple) else (result,)) if r is not None]
            _check_fresh(outputs, inputs)
            if isinstance(expected, Value):
                expected.check(result)
            outcome = "value"
    if expected is TOO_BIG:
        outcome = "too big"  # however it ended
    for array, saved in zip(inputs, before):
        assert array.tobytes() == saved, f"an input was modified: {describe(array)}"
    return outcome


def _expectation(call, spec):
    try:
        return spec(call)
    except Invalid:
        return ERROR


@functools.lru_cache(maxsize=None)
def _parameter_pattern(func):
    names = inspect.signature(getattr(cnnative, func)).parameters
    return re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")


def _check_message(func, exc):
    message = str(exc)
    assert message.startswith(f"{func}: "), f"message does not start with '{func}: ': {exc!r}"
    assert _parameter_pattern(func).search(message), f"message names no parameter: {exc!r}"


def _check_fresh(outputs, inputs):
    for i, out in enumerate(outputs):
        assert isinstance(out, np.ndarray) and out.flags.writeable, describe(out)
        for other in inputs + outputs[:i]:
            assert not np.shares_memory(out, other), f"output aliases {describe(other)}"


def describe(value):
    if isinstance(value, np.ndarray):
        flags = "".join(k for k, f in (("C", "c_contiguous"), ("F", "f_contiguous"),
                                        ("a", "aligned"), ("w", "writeable")) if getattr(value.flags, f))
        text = f"array(shape={value.shape}, dtype={value.dtype.str}, strides={value.strides}, flags={flags}"
        if value.size <= 24 and value.dtype.kind in "biufc":
            text += f", values={value.ravel().tolist()}"
        return text + ")"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(describe, value)) + ")"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


# ------------------------------------------------------------------------- shared spec rules


def bound_arguments(call):
    """The call's arguments by parameter name, defaults filled in."""
    bound = inspect.signature(getattr(cnnative, call.func)).bind(*call.args, **call.kwargs)
    bound.apply_defaults()
    return bound.arguments


def as_array(value):
    try:
        return np.asarray(value)
    except (ValueError, TypeError):  # ragged nested lists
        raise Invalid from None


def float_array(value, ndims, itemsize=None):
    """A non-empty float32/float64 array (any byte order) of one of ``ndims``, item size as given."""
    array = as_array(value)
    if array.ndim not in ndims or array.size == 0:
        raise Invalid
    if array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):
        raise Invalid
    if itemsize is not None and array.dtype.itemsize != itemsize:
        raise Invalid
    return array


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


# Stride, padding and window sizes go to the kernels as C ints.
INT_MAX = 2**31 - 1


def int_pair(value, minimum):
    """An int or a pair of ints (a list, tuple or integer array), each in [minimum, 2**31 - 1]."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(is_int(v) and minimum <= v <= INT_MAX for v in items):
        raise Invalid
    return int(items[0]), int(items[1])


def num_threads(arguments):
    value = arguments.get("num_threads")
    if value is not None and not (is_int(value) and value >= 1):
        raise Invalid


def nbytes(shape, itemsize):
    return math.prod(shape) * itemsize


def assert_same_array(ours, expected):
    """Same dtype, shape and bits (NaN equal to NaN)."""
    assert isinstance(ours, np.ndarray), type(ours)
    assert ours.dtype == expected.dtype, (ours.dtype, expected.dtype)
    assert ours.shape == expected.shape, (ours.shape, expected.shape)
    assert np.array_equal(ours, expected, equal_nan=ours.dtype.kind in "fc"), (ours, expected)


def assert_sums_close(ours, expected, scale, terms, dtype):
    """ours (dtype) against a float64 sum of ``terms`` products, ``scale`` the sum of |products|.

    Non-finite entries must agree exactly (NaN, +inf, -inf); finite ones within the standard
    bound of a floating-point dot product, 2 (terms + 1) eps scale.
    """
    assert isinstance(ours, np.ndarray) and ours.dtype == dtype, (type(ours), getattr(ours, "dtype", None))
    assert ours.shape == expected.shape, (ours.shape, expected.shape)
    ours64 = ours.astype(np.float64)
    for test in (np.isnan, np.isposinf, np.isneginf):
        assert np.array_equal(test(ours64), test(expected)), (test.__name__, ours, expected)
    finite = np.isfinite(expected)
    eps = np.finfo(dtype).eps
    allowed = 2 * (terms + 1) * eps * scale[finite] + np.finfo(dtype).tiny
    error = np.abs(ours64[finite] - expected[finite])
    assert np.all(error <= allowed), (error / allowed).max()


# -------------------------------------------------------------------------- argument makers

FLOATS = [np.dtype(np.float32), np.dtype(np.float64)]
OTHER_DTYPES = [np.dtype(t) for t in (np.float16, np.longdouble, np.int8, np.int32, np.int64,
                                      np.uint8, np.uint64, np.bool_, np.complex64, np.complex128,
                                      object, "U3", "S2", "M8[s]")]
LAYOUTS = ["C", "C", "C", "F", "strided", "reversed", "transposed", "misaligned", "packed",
           "byteswapped", "readonly", "broadcast", "list"]
HUGE_INTS = [2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, 10**30]
BAD_SCALARS = [0, -1, -(2**63), 1.0, 2.5, True, False, None, "2", b"2", (), (1,), (1, 2, 3), [],
               (1, 1.5), (1, None), np.float64(2), np.array([1, 2, 3]), np.array([[1, 1]]),
               np.array([1.0, 1.0]), 1j, {1, 2}, np.uint64(2**63), *HUGE_INTS]


def integer(rng, low, high):
    """A uniform int in [low, high]."""
    return int(rng.integers(low, high, endpoint=True))


def chance(rng, p):
    return rng.random() < p


def size(rng, high, zero=0.02, one=0.15):
    """An axis length: 0 with probability ``zero``, 1 with ``one``, else uniform in [1, high]."""
    roll = rng.random()
    if roll < zero:
        return 0
    if roll < zero + one:
        return 1
    return integer(rng, 1, high)


def pick(rng, options):
    return options[int(rng.integers(len(options)))]


def float_or_other_dtype(rng, p_other):
    return pick(rng, OTHER_DTYPES) if chance(rng, p_other) else pick(rng, FLOATS)


def int_param(rng, low, high, p_bad):
    """An int or a pair in [low, high] in assorted spellings, or (with p_bad) something odd."""
    if chance(rng, p_bad):
        return pick(rng, BAD_SCALARS)
    return spell_pair(rng, integer(rng, low, high), integer(rng, low, high))


def spell_pair(rng, a, b):
    """The pair (a, b) as a tuple, list or array of Python or NumPy ints; a alone for both."""
    return pick(rng, [a, a, (a, b), [a, b], (np.int64(a), np.int32(b)), np.array([a, b]),
                      np.int64(a), np.array(a)])


def threads_kwarg(rng, kwargs):
    if chance(rng, 0.15):
        kwargs["num_threads"] = pick(rng, [1, 2, 3, 8, 64, 2**40, np.int64(2), 0, -1, 1.5, True,
                                            "2", None])


def values(rng, shape, dtype, special=0.0, pool=None):
    """Random values of ``dtype`` in C order; floats get NaN/inf/-0.0/denormals at rate ``special``.

    ``pool`` draws floats from a few values instead, so that windows tie.
    """
    dtype = np.dtype(dtype)
    kind = dtype.kind
    if kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -50), min(info.max, 50), shape, endpoint=True).astype(dtype)
    if kind == "b":
        return rng.random(shape) < 0.5
    if kind in "US":
        return rng.integers(0, 9, shape).astype(dtype)
    if kind == "M":
        return rng.integers(0, 10**6, shape).astype(dtype)
    if pool is not None:
        out = rng.choice(np.asarray(pool, np.float64), size=shape)
    else:
        out = rng.standard_normal(shape)
    if special and out.size:
        part = dtype.itemsize // (2 if kind == "c" else 1)  # bytes of one real component
        tiny = np.finfo(np.float32 if part <= 4 else np.float64).smallest_subnormal
        odd = rng.random(shape) < special
        out[odd] = rng.choice([np.nan, np.inf, -np.inf, -0.0, tiny], size=int(odd.sum()))
    if kind == "c":
        out = out + 1j * rng.standard_normal(shape)
    with np.errstate(over="ignore", invalid="ignore"):
        return out.astype(dtype)


def array_arg(rng, shape, dtype, special=0.0, pool=None, p_reshape=0.03):
    """An argument meant to be an array of ``shape`` and ``dtype``, in a random layout; with
    probability p_reshape its ndim is changed (a scalar, an extra or a missing axis)."""
    if chance(rng, p_reshape):
        shape = pick(rng, [(), shape[1:], (*shape, 2), (1, *shape)])
    array = np.asarray(values(rng, shape, dtype, special, pool))
    return with_layout(array, pick(rng, LAYOUTS))


