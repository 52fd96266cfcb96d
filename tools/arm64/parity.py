"""Random bit-parity of cnnative.correlate2d/convolve2d with the installed scipy.signal's.

    python tools/arm64/parity.py [--cases 5001] [--seed 2024] [--show 5]

Every case draws, from one seeded generator: the function (correlate2d or convolve2d), the mode
(full, same, valid), the boundary (fill, wrap, symm), the dtype (float32, float64), an image of
1-40 x 1-40 and a kernel of 1-9 x 1-9 (in 'valid' mode shrunk to fit the image), standard
normal values, and for 'fill' a fill value (0 half of the time).  A case counts as identical
when shape, dtype and every bit of the result agree.  Prints "N of CASES bit-identical", then
the cases that differ grouped by dtype, kernel width mod 4 and kernel height.  Exits 0
whatever the figure (it measures), unless --strict: then 1 when any case differs.
"""
import argparse
import collections
import sys

import numpy as np
import scipy
import scipy.signal

import cnnative


def draw(rng):
    func = ("correlate2d", "convolve2d")[rng.integers(2)]
    mode = ("full", "same", "valid")[rng.integers(3)]
    boundary = ("fill", "wrap", "symm")[rng.integers(3)]
    dtype = (np.float32, np.float64)[rng.integers(2)]
    h, w = (int(v) for v in rng.integers(1, 41, size=2))
    kh, kw = (int(v) for v in rng.integers(1, 10, size=2))
    if mode == "valid":
        kh, kw = min(kh, h), min(kw, w)
    image = rng.standard_normal((h, w)).astype(dtype)
    kernel = rng.standard_normal((kh, kw)).astype(dtype)
    fill = 0.0
    if boundary == "fill" and rng.integers(2):
        fill = float(np.round(rng.standard_normal(), 3))
    return func, mode, boundary, image, kernel, fill


def same_bits(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    width = {4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return bool(np.array_equal(np.ascontiguousarray(a).view(width),
                               np.ascontiguousarray(b).view(width)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5001)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--show", type=int, default=5, help="differing cases to print")
    parser.add_argument("--strict", action="store_true", help="exit 1 unless all are identical")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    same = 0
    bad = collections.Counter()
    total = collections.Counter()
    shown = 0
    for case in range(args.cases):
        func, mode, boundary, image, kernel, fill = draw(rng)
        ours = getattr(cnnative, func)(image, kernel, mode, boundary, fill)
        ref = getattr(scipy.signal, func)(image, kernel, mode, boundary, fill)
        key = (image.dtype.name, f"kw%4={kernel.shape[1] % 4}", f"kh={min(kernel.shape[0], 3)}")
        total[key] += 1
        if same_bits(ours, ref):
            same += 1
            continue
        bad[key] += 1
        if shown < args.show:
            shown += 1
            diff = int(np.count_nonzero(ours != ref)) if ours.shape == ref.shape else -1
            print(f"  case {case}: {func} {mode} {boundary} {image.dtype.name} image "
                  f"{image.shape} kernel {kernel.shape} fill {fill}: {diff} of {ref.size} differ")
    info = ""
    try:
        from cnnative._native import correlate as _c
        info = f", simd {_c.simd_info()}"
    except Exception:  # pragma: no cover - informational only
        pass
    print(f"numpy {np.__version__}, scipy {scipy.__version__}, seed {args.seed}{info}")
    if bad:
        print("differing cases by (dtype, kernel width mod 4, kernel height capped at 3): "
              "differ/total")
        for key in sorted(total):
            print(f"  {key}: {bad[key]}/{total[key]}")
    print(f"{same} of {args.cases} bit-identical")
    return 1 if args.strict and same != args.cases else 0


if __name__ == "__main__":
    sys.exit(main())
