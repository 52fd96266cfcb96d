"""A short training run whose weights are compared across machines (x86-64 host vs arm64 root).

    python tools/arm64/train_compare.py --save weights.npz      # on the host
    python tools/arm64/train_compare.py --compare weights.npz   # in the arm64 root

Trains models.nielsen(seed=0) for one epoch on the first 512 of the built-in digits (batches
of 64, shuffled with seed 0), once on one thread and once on two.  The two runs must give
identical weights on either machine (every kernel is bit-identical at any thread count); the
arm64 weights must then agree with the host's to rtol 1e-4 (relative to each array's largest
magnitude, so weights near zero are not held to a tighter bound than the large ones).  The
layer kernels are not scipy-exact: their SIMD variants fuse multiply-adds and BLAS sums in its
own order, so the two machines differ by rounding, which eight SGD steps must not amplify.
"""
import argparse
import sys
import time

import numpy as np

import cnnative
from cnnative import datasets, models

RTOL = 1e-4


def train(threads):
    cnnative.set_num_threads(threads)
    (x, y), _ = datasets.load_digits_5k()
    net = models.nielsen(seed=0)
    net.fit(x[:512], y[:512], epochs=1, batch_size=64, seed=0, progress=False)
    return net.state_dict()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", metavar="NPZ", help="train and save the weights here")
    group.add_argument("--compare", metavar="NPZ", help="train and compare with these weights")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    one, two = train(1), train(2)
    print(f"train_compare: 2 runs of 1 epoch x 512 digits in {time.perf_counter() - start:.1f} s")
    for key in one:
        if one[key].tobytes() != two[key].tobytes():
            print(f"train_compare: FAIL: {key} differs between 1 and 2 threads")
            return 1
    if args.save:
        np.savez(args.save, **one)
        print(f"train_compare: weights saved to {args.save}")
        return 0
    with np.load(args.compare) as theirs:
        reference = {key: theirs[key] for key in theirs.files}
    if sorted(reference) != sorted(one):
        print(f"train_compare: FAIL: parameters {sorted(one)} vs {sorted(reference)}")
        return 1
    worst = 0.0
    for key, ours in one.items():
        scale = float(np.max(np.abs(reference[key]))) or 1.0
        worst = max(worst, float(np.max(np.abs(ours - reference[key]))) / scale)
    verdict = "ok" if worst <= RTOL else "FAIL"
    print(f"train_compare: {verdict}: largest difference from the host's weights "
          f"{worst:.2e} of the array's largest magnitude (allowed {RTOL:g})")
    return 0 if worst <= RTOL else 1


if __name__ == "__main__":
    sys.exit(main())
