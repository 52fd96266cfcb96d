"""GMAC/s of correlate_direct per SIMD level (median of repeats), for kernel tuning.

Usage: python benchmarks/kernel_gmacs.py [--levels 3,2] [--sizes 28,64,256,1024]
       [--kernels 3,5,7,15] [--modes valid,same,full] [--dtypes f32,f64] [--json out.json]
MACs counted as out_rows * out_cols * kernel taps (the work the kernel does, padding included).
Times are CPU time of the calling thread, so being descheduled on a busy machine does not
count.  Reports the median and, with --best, the fastest sample: on a shared machine the fastest one is
the better estimate of what the code can do, the median of what a user sees.
"""
import argparse
import json
import time

import numpy as np

from cnnative._native import correlate as C

MODES = {"valid": 0, "same": 1, "full": 2}


def bench(a, b, mode, flip, budget):
    f = C.correlate_direct
    f(a, b, flip, mode, 0, 0.0)
    # Calibrate the inner loop count so one sample takes ~budget/15.
    t0 = time.thread_time(); f(a, b, flip, mode, 0, 0.0); one = time.thread_time() - t0
    inner = max(1, int(budget / 15 / max(one, 1e-7)))
    samples = []
    for _ in range(15):
        t0 = time.thread_time()
        for _ in range(inner):
            f(a, b, flip, mode, 0, 0.0)
        samples.append((time.thread_time() - t0) / inner)
    return float(np.median(samples)), float(np.min(samples))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--levels", default="3,2")
    p.add_argument("--sizes", default="28,64,256,1024")
    p.add_argument("--kernels", default="3,5,7,15")
    p.add_argument("--modes", default="valid,same,full")
    p.add_argument("--dtypes", default="f32,f64")
    p.add_argument("--flip", type=int, default=0)
    p.add_argument("--budget", type=float, default=0.15, help="seconds per configuration")
    p.add_argument("--best", action="store_true", help="print the fastest sample, not the median")
    p.add_argument("--json")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    old = C.set_simd_cap(3)
    try:
        for lv in map(int, args.levels.split(",")):
            C.set_simd_cap(lv)
            name = C.SIMD_LEVEL_NAMES[lv]
            for dt in args.dtypes.split(","):
                dtype = np.float32 if dt == "f32" else np.float64
                for mode in args.modes.split(","):
                    row = []
                    for s in map(int, args.sizes.split(",")):
                        for k in map(int, args.kernels.split(",")):
                            a = rng.standard_normal((s, s)).astype(dtype)
                            b = rng.standard_normal((k, k)).astype(dtype)
                            med, best = bench(a, b, MODES[mode], bool(args.flip), args.budget)
                            o = {"valid": s - k + 1, "same": s, "full": s + k - 1}[mode]
                            macs = o * o * k * k
                            results[f"{name}/{dt}/{mode}/{s}/{k}"] = {
                                "gmacs_median": macs / med / 1e9, "gmacs_best": macs / best / 1e9,
                                "us_median": med * 1e6, "us_best": best * 1e6}
                            t = best if args.best else med
                            g = macs / t / 1e9
                            row.append(f"{s}/{k}:{g:6.2f}" + (f"({t*1e6:.1f}us)" if s <= 64 else ""))
                    print(f"{name:8s} {dt} {mode:5s} " + "  ".join(row), flush=True)
    finally:
        C.set_simd_cap(old)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
