"""Which rounding pattern does the installed scipy's 2-D direct correlation follow?

    python tools/arm64/pattern.py [--cases 3000] [--seed 7] [--probe]

scipy (_firfilter.cc, pylab_convolve_2d) computes each output as: sum = 0; for each kernel row j
in ascending order, call onemultadd(sum, kernel row j, image values of that row's taps):

    dsum = *sum
    for k in 0, 4, 8, ... while k + 4 <= K:          # groups of four taps
        dsum += t0*v0 + t1*v1 + t2*v2 + t3*v3         # = dsum + (((t0v0 + t1v1) + t2v2) + t3v3)
    for the K % 4 taps left:  dsum += t*v
    *sum = dsum

(t: kernel value, v: image value or the fill value).  This script re-computes that loop in
NumPy under several rounding patterns -- which products are rounded on their own and which go
into a fused multiply-add (exact C fma()/fmaf() through a small helper compiled on the spot) --
and counts, over random cases of every mode, boundary, dtype and kernel shape, which patterns
give scipy's result bit for bit.  --probe prints the probe computation's outputs (see
tools/arm64/NOTES.md) from scipy and from each pattern.
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np
import scipy
import scipy.signal

# ---------------------------------------------------------------------------- exact fma
_C = r"""
#include <math.h>
#include <stddef.h>
void vfma(const double *a, const double *b, const double *c, double *o, size_t n)
{ for (size_t i = 0; i < n; i++) o[i] = fma(a[i], b[i], c[i]); }
void vfmaf(const float *a, const float *b, const float *c, float *o, size_t n)
{ for (size_t i = 0; i < n; i++) o[i] = fmaf(a[i], b[i], c[i]); }
"""


def _load_fma():
    import platform
    path = os.path.join(tempfile.gettempdir(), f"cnnative-fma-{platform.machine()}.so")
    if not os.path.exists(path):
        src = path[:-3] + ".c"
        with open(src, "w") as f:
            f.write(_C)
        subprocess.run(["cc", "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", path, src,
                        "-lm"], check=True)
    lib = ctypes.CDLL(path)
    for name in ("vfma", "vfmaf"):
        getattr(lib, name).restype = None
    return lib


_LIB = _load_fma()


def fma(a, b, c):
    """Element-wise correctly rounded a*b + c of one float dtype (broadcast)."""
    a, b, c = np.broadcast_arrays(a, b, c)
    dtype = a.dtype
    a, b, c = (np.ascontiguousarray(x, dtype) for x in (a, b, c))
    out = np.empty_like(a)
    fn, ct = (_LIB.vfmaf, ctypes.c_float) if dtype == np.float32 else (_LIB.vfma, ctypes.c_double)
    ptr = lambda x: x.ctypes.data_as(ctypes.POINTER(ct))  # noqa: E731
    fn(ptr(a), ptr(b), ptr(c), ptr(out), ctypes.c_size_t(a.size))
    return out


# ---------------------------------------------------------------------------- scipy's taps
def _reflect(j, m):
    k = np.where(j >= 0, j % (2 * m), np.abs(j + 1) % (2 * m))
    return np.where(k >= m, 2 * m - k - 1, k)


def _wrap(j, m):
    return j % m


def taps(image, kernel, mode, boundary, fill, convolve):
    """(X, H, fill): X[j, k, m, n] the value scipy's loop multiplies with kernel[j, k] for
    output (m, n) of pylab_convolve_2d(image, kernel) -- no swap, no flip of the result."""
    Ns, Nw = image.shape, kernel.shape
    if mode == "full":
        Os = (Ns[0] + Nw[0] - 1, Ns[1] + Nw[1] - 1)
    elif mode == "same":
        Os = Ns
    else:
        Os = (Ns[0] - Nw[0] + 1, Ns[1] - Nw[1] + 1)

    def index(axis):
        o = np.arange(Os[axis])
        w = Nw[axis]
        if mode == "full":
            new = o if convolve else o - w + 1
        elif mode == "same":
            new = o + ((w - 1) >> 1) if convolve else o - ((w - 1) >> 1)
        else:
            new = o + w - 1 if convolve else o
        t = np.arange(w)[:, None]
        ind = new[None, :] - t if convolve else new[None, :] + t   # (w, O)
        out = (ind < 0) | (ind >= Ns[axis])
        if boundary == "symm":
            ind, pad = _reflect(ind, Ns[axis]), np.zeros_like(out)
        elif boundary == "wrap":
            ind, pad = _wrap(ind, Ns[axis]), np.zeros_like(out)
        else:
            ind, pad = np.clip(ind, 0, Ns[axis] - 1), out
        return ind, pad

    i0, p0 = index(0)
    i1, p1 = index(1)
    X = image[i0[:, None, :, None], i1[None, :, None, :]]          # (J, K, Om, On)
    pad = p0[:, None, :, None] | p1[None, :, None, :]
    X = np.where(pad, image.dtype.type(fill), X)
    return X, kernel


# ---------------------------------------------------------------------------- patterns
def _mul(t, x):
    return t * x


def accumulate(X, H, pattern):
    """scipy's loop over X/H with one rounding pattern; returns (Om, On)."""
    T = X.dtype.type
    J, K = H.shape
    acc = np.zeros(X.shape[2:], X.dtype)
    group, left = PATTERNS[pattern]
    for j in range(J):
        k = 0
        while k + 4 <= K:
            p = [(H[j, k + i], X[j, k + i]) for i in range(4)]
            acc = acc + group(p)
            k += 4
        while k < K:
            acc = left(acc, H[j, k], X[j, k])
            k += 1
    return acc


def _g_sep(p):
    return ((_mul(*p[0]) + _mul(*p[1])) + _mul(*p[2])) + _mul(*p[3])


def _g_fma_second_rounded(p):  # fma(t0,v0, t1*v1) then chain: GCC's widening_mul / clang order
    return fma(*p[3], fma(*p[2], fma(*p[0], _mul(*p[1]))))


def _g_fma_first_rounded(p):  # fma(t1,v1, t0*v0) then chain
    return fma(*p[3], fma(*p[2], fma(*p[1], _mul(*p[0]))))


def _l_sep(acc, t, x):
    return acc + t * x


def _l_fma(acc, t, x):
    return fma(t, x, acc)


PATTERNS = {
    "separate": (_g_sep, _l_sep),
    "fused/second-rounded": (_g_fma_second_rounded, _l_fma),   # GCC -ffp-contract=fast, clang
    "fused/first-rounded": (_g_fma_first_rounded, _l_fma),
    "fused-leftover-only": (_g_sep, _l_fma),
    "fused-groups-only/second-rounded": (_g_fma_second_rounded, _l_sep),
    "fused-groups-only/first-rounded": (_g_fma_first_rounded, _l_sep),
}


def emulate(func, in1, in2, mode, boundary, fill, pattern):
    """scipy.signal.correlate2d/convolve2d(in1, in2, ...) re-computed under ``pattern``."""
    swapped = False
    if mode == "valid":
        ok1 = all(a >= b for a, b in zip(in1.shape, in2.shape))
        ok2 = all(b >= a for a, b in zip(in1.shape, in2.shape))
        if not (ok1 or ok2):
            raise ValueError("valid needs one input to contain the other")
        swapped = not ok1
    if swapped:
        in1, in2 = in2, in1
    convolve = func == "convolve2d"
    X, H = taps(in1, in2, mode, boundary, fill, convolve)
    out = accumulate(X, H, pattern)
    if swapped and not convolve:
        out = out[::-1, ::-1]
    return out


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------- the probe
PROBE_E = {np.float32: 2.0 ** -13, np.float64: 2.0 ** -30}


def probe_inputs(dtype):
    """The probe: correlate2d(image, kernel, 'valid') with a 1x5 kernel of u = 1 + e and a 4x5
    image, so each image row gives one output from one group of four taps and one leftover.
    e = 2**-30 (float64) or 2**-13 (float32): u*u = 1 + 2e + e*e rounds to 1 + 2e, so a product
    u*u fused into a sum with -u leaves e + e*e where a rounded one leaves e.  Rows:
      A [ 0,  0, -1, 0, u]  leftover tap fused?           (group gives -u, then + u*u)
      B [ u, -1,  0, 0, 0]  first product of a group fused, second rounded?
      C [-1,  u,  0, 0, 0]  second product fused, first rounded?
      D [ 0,  0, -1, u, 0]  later products of a group fused into the chain?
    Every output is e or e + e*e, all exactly representable."""
    T = np.dtype(dtype).type
    e = T(PROBE_E[T])
    u = T(1) + e
    kernel = np.full((1, 5), u, T)
    image = np.array([[0, 0, -1, 0, u], [u, -1, 0, 0, 0], [-1, u, 0, 0, 0], [0, 0, -1, u, 0]], T)
    return image, kernel, e


def probe_signature(out, e):
    """The probe's 4 outputs as a string of '0' (= e) and '1' (= e + e*e), '?' otherwise."""
    T = type(e)
    return "".join("0" if v == e else "1" if v == e + T(e * e) else "?" for v in out.ravel())


def run_probe():
    print("probe: correlate2d(image 4x5, kernel 1x5, 'valid'); outputs as 0 = e, 1 = e + e*e")
    for dtype in (np.float32, np.float64):
        image, kernel, e = probe_inputs(dtype)
        got = scipy.signal.correlate2d(image, kernel, "valid")
        sig = probe_signature(got, e)
        print(f"  {np.dtype(dtype).name}: scipy gives {sig}  ({got.ravel().tolist()})")
        for p in PATTERNS:
            emu = emulate("correlate2d", image, kernel, "valid", "fill", 0.0, p)
            mark = "  <= installed scipy" if same_bits(emu, got) else ""
            print(f"      {p:36s} {probe_signature(emu, e)}{mark}")


def values(rng, shape, dtype, wide):
    x = rng.standard_normal(shape)
    if wide:
        lo, hi = (-75, 40) if dtype == np.float32 else (-560, 500)
        x = np.ldexp(x, rng.integers(lo, hi, size=shape))
        x[rng.random(shape) < 0.1] = 0.0
        x[rng.random(shape) < 0.05] = -0.0
    return x.astype(dtype)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--patterns", nargs="*", default=list(PATTERNS))
    parser.add_argument("--max-kernel", type=int, default=9)
    parser.add_argument("--probe", action="store_true", help="only run the probe")
    parser.add_argument("--wide", action="store_true",
                        help="values spread over many binades, with zeros and subnormal products")
    args = parser.parse_args(argv)
    if args.probe:
        run_probe()
        return 0
    rng = np.random.default_rng(args.seed)
    hits = {p: 0 for p in args.patterns}
    by_dtype = {p: {"float32": 0, "float64": 0} for p in args.patterns}
    n_dtype = {"float32": 0, "float64": 0}
    first_miss = {}
    for case in range(args.cases):
        func = ("correlate2d", "convolve2d")[rng.integers(2)]
        mode = ("full", "same", "valid")[rng.integers(3)]
        boundary = ("fill", "wrap", "symm")[rng.integers(3)]
        dtype = (np.float32, np.float64)[rng.integers(2)]
        h, w = (int(v) for v in rng.integers(1, 25, size=2))
        kh, kw = (int(v) for v in rng.integers(1, args.max_kernel + 1, size=2))
        if rng.integers(4) == 0:          # sometimes a kernel larger than the image (swap)
            h, w, kh, kw = min(h, 9), min(w, 9), kh, kw
        if mode == "valid" and rng.integers(2):
            kh, kw = min(kh, h), min(kw, w)
        image = values(rng, (h, w), dtype, args.wide)
        kernel = values(rng, (kh, kw), dtype, args.wide)
        fill = float(np.round(rng.standard_normal(), 3)) if boundary == "fill" and rng.integers(2) else 0.0
        try:
            ref = getattr(scipy.signal, func)(image, kernel, mode, boundary, fill)
        except ValueError:
            continue
        n_dtype[np.dtype(dtype).name] += 1
        for p in args.patterns:
            got = emulate(func, image, kernel, mode, boundary, fill, p)
            if same_bits(got, ref):
                hits[p] += 1
                by_dtype[p][np.dtype(dtype).name] += 1
            elif p not in first_miss:
                first_miss[p] = (case, func, mode, boundary, np.dtype(dtype).name, image.shape,
                                 kernel.shape, fill)
    total = sum(n_dtype.values())
    print(f"{sys.platform} {os.uname().machine}: numpy {np.__version__}, scipy "
          f"{scipy.__version__}, seed {args.seed}, {total} cases ({n_dtype})")
    for p in args.patterns:
        print(f"  {p:36s} {hits[p]:5d} of {total} bit-identical  {by_dtype[p]}")
        if p in first_miss and hits[p] > total * 0.9:
            print(f"      first miss: {first_miss[p]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
