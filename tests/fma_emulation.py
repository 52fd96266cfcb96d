"""Exact emulation of scipy's direct correlation loops under both rounding patterns.

scipy's loops are plain C, and how their multiply-adds round depends on the compiler: each
product rounded on its own (x86-64 wheels) or fused into the sum (aarch64, where GCC and clang
contract the source).  This re-computes them from exact rationals, rounding to the dtype
exactly where the pattern rounds, so the fused kernels can be checked on any machine (Python's
math.fma only exists from 3.13, and long double is too short to emulate a double fma).
"""
from fractions import Fraction

import numpy as np

# (significand bits, smallest normal exponent) of each dtype.
_FORMATS = {np.dtype(np.float32): (24, -126), np.dtype(np.float64): (53, -1022)}


def rounded(q, fmt):
    """The rational q rounded to nearest, ties to even, in the format (bits, emin); a Fraction.
    Overflow is not modelled (the tests' values stay far from it)."""
    if q == 0:
        return Fraction(0)
    bits, emin = fmt
    a = abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if a < Fraction(2) ** e:
        e -= 1  # now 2**e <= a < 2**(e + 1)
    quantum = Fraction(2) ** (max(e, emin) - bits + 1)  # subnormals share emin's quantum
    value = round(a / quantum) * quantum  # Fraction.__round__ rounds half to even
    return value if q > 0 else -value


def _exact(array):
    return [[Fraction(float(v)) for v in row] for row in np.asarray(array).reshape(-1, array.shape[-1])]


def _to_array(values, shape, dtype):
    # Every value is representable in dtype, so the conversions through float are exact.
    return np.array([float(v) for v in values], np.float64).astype(dtype).reshape(shape)


def _index(i, n, boundary):
    """Image index of extended index i under scipy's 'symm' / 'wrap' rules (None: fill)."""
    if 0 <= i < n:
        return i
    if boundary == "wrap":
        return i % n
    if boundary == "symm":
        k = i % (2 * n)
        return 2 * n - 1 - k if k >= n else k
    return None


def correlate2d_full(image, kernel, boundary, fillvalue, convolve, fused):
    """scipy.signal.correlate2d / convolve2d(image, kernel, 'full', boundary, fillvalue) as
    scipy's loop computes it: per output, kernel rows ascending, within a row groups of four
    taps then the rest; ``fused`` selects the contracted pattern (see corr_simd.h)."""
    dtype = image.dtype
    fmt = _FORMATS[dtype]
    (m_, n_), (j_, k_) = image.shape, kernel.shape
    img, ker = _exact(image), _exact(kernel)
    fill = Fraction(float(dtype.type(fillvalue)))
    rows = [_index(r, m_, boundary) for r in range(-(j_ - 1), m_ + j_ - 1)]
    cols = [_index(c, n_, boundary) for c in range(-(k_ - 1), n_ + k_ - 1)]
    frame = [[fill if r is None or c is None else img[r][c] for c in cols] for r in rows]

    def rnd(q):
        return rounded(q, fmt)

    out = []
    for m in range(m_ + j_ - 1):
        for n in range(n_ + k_ - 1):
            acc = Fraction(0)
            for j in range(j_):
                row = frame[m + (j_ - 1 - j if convolve else j)]
                x = [row[n + (k_ - 1 - k if convolve else k)] for k in range(k_)]
                c = ker[j]
                k = 0
                while k + 4 <= k_:
                    if fused:
                        g = rnd(c[k + 1] * x[k + 1])
                        g = rnd(c[k] * x[k] + g)
                        g = rnd(c[k + 2] * x[k + 2] + g)
                        g = rnd(c[k + 3] * x[k + 3] + g)
                    else:
                        g = rnd(rnd(c[k] * x[k]) + rnd(c[k + 1] * x[k + 1]))
                        g = rnd(g + rnd(c[k + 2] * x[k + 2]))
                        g = rnd(g + rnd(c[k + 3] * x[k + 3]))
                    acc = rnd(acc + g)
                    k += 4
                for k in range(k, k_):
                    acc = rnd(c[k] * x[k] + acc) if fused else rnd(acc + rnd(c[k] * x[k]))
            out.append(acc)
    return _to_array(out, (m_ + j_ - 1, n_ + k_ - 1), dtype)


def crop2d(full, image_shape, kernel_shape, mode, convolve):
    """The 'valid' or 'same' part of a 'full' correlate2d/convolve2d result (in1 dominating)."""
    (m_, n_), (j_, k_) = image_shape, kernel_shape
    if mode == "full":
        return full
    if mode == "valid":
        return full[j_ - 1:m_, k_ - 1:n_]
    top, left = ((j_ - 1) // 2, (k_ - 1) // 2) if convolve else (j_ // 2, k_ // 2)
    return full[top:top + m_, left:left + n_]


def correlate_nd_full(in1, in2, fused):
    """scipy.signal.correlate(in1, in2, 'full', method='direct') for N-d inputs (N >= 2, in1
    dominating): per output, acc = acc + c*x over in2's taps in C order, one product at a time,
    rounded separately or fused."""
    dtype = in1.dtype
    fmt = _FORMATS[dtype]
    frame = np.pad(in1, [(k - 1, k - 1) for k in in2.shape])
    taps = [(Fraction(float(c)), index) for index, c in np.ndenumerate(in2)]
    out_shape = tuple(n + k - 1 for n, k in zip(in1.shape, in2.shape))
    values = {}
    out = []
    for pos in np.ndindex(*out_shape):
        acc = Fraction(0)
        for c, index in taps:
            where = tuple(p + i for p, i in zip(pos, index))
            x = values.get(where)
            if x is None:
                x = values[where] = Fraction(float(frame[where]))
            acc = rounded(c * x + acc, fmt) if fused else rounded(acc + rounded(c * x, fmt), fmt)
        out.append(acc)
    return _to_array(out, out_shape, dtype)


def crop_nd(full, shape1, shape2, mode):
    """The 'valid' or 'same' part of a 'full' N-d correlation (in1 dominating)."""
    if mode == "full":
        return full
    if mode == "valid":
        return full[tuple(slice(k - 1, n) for n, k in zip(shape1, shape2))]
    return full[tuple(slice((k - 1) // 2, (k - 1) // 2 + n) for n, k in zip(shape1, shape2))]


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()

