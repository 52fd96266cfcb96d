"""Rounding pattern of scipy.signal.correlate's N-d direct path (_sigtools._correlateND).

    python tools/arm64/nd_pattern.py [--cases 600]

scipy's loop (_correlate_nd.cc) is, for each output, acc = 0 and then for every kernel tap in C
order `acc += x * y;`, the image taken zero-padded.  Compares scipy's 'valid' and 'full' results
(2-d and 3-d: scipy hands 1-d to numpy.correlate; float32 and float64) with that loop computed two ways: a rounded product added
separately, and acc = fma(x, y, acc) (what GCC/clang make of it when they contract).
"""
import argparse
import itertools
import os
import sys

import numpy as np
import scipy.signal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pattern import fma  # noqa: E402


def loop(x, y, fused):
    out_shape = tuple(a - b + 1 for a, b in zip(x.shape, y.shape))
    acc = np.zeros(out_shape, x.dtype)
    for j in itertools.product(*(range(n) for n in y.shape)):
        window = x[tuple(slice(j[d], j[d] + out_shape[d]) for d in range(x.ndim))]
        acc = fma(window, y[j], acc) if fused else acc + window * y[j]
    return acc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=600)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    hits = {False: 0, True: 0}
    for _ in range(args.cases):
        ndim = int(rng.integers(2, 4))   # 1-d goes to numpy.correlate
        dtype = (np.float32, np.float64)[rng.integers(2)]
        xs = tuple(int(v) for v in rng.integers(1, 12, size=ndim))
        ys = tuple(int(min(v, s)) for v, s in zip(rng.integers(1, 6, size=ndim), xs))
        x = rng.standard_normal(xs).astype(dtype)
        y = rng.standard_normal(ys).astype(dtype)
        mode = ("valid", "full")[rng.integers(2)]
        ref = scipy.signal.correlate(x, y, mode, method="direct")
        frame = x if mode == "valid" else np.pad(x, [(n - 1, n - 1) for n in ys])
        for fused in hits:
            got = loop(frame, y, fused)
            hits[fused] += got.shape == ref.shape and got.tobytes() == ref.tobytes()
    print(f"scipy {scipy.__version__} N-d direct correlate, {args.cases} cases: "
          f"separate {hits[False]}, fused (acc = fma(x, y, acc)) {hits[True]} bit-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
