"""Dense layer: cnnative.dense / dense_backward against plain NumPy, at 1 and 2 BLAS threads.

    python benchmarks/bench_dense.py [--repeats 31] [--threads 1 2]

Each thread count runs in a fresh interpreter, because OpenBLAS reads OPENBLAS_NUM_THREADS
once, when it is loaded; NumPy and scipy each bundle their own OpenBLAS and both honour it.
Contenders are timed interleaved (``cnnative.bench.timing.time_interleaved``: one sample of
each in turn, in an order shuffled every repeat), so a slow phase of the machine hits all of
them; each cell is the median per-call time.  The ratio is NumPy's time over cnnative's: above 1 means cnnative is faster.
"""
import argparse
import json
import os
import subprocess
import sys

SHAPES = [(64, 640, 100), (64, 784, 100)]  # (batch, in, out)
DTYPES = ["float32", "float64"]
PASSES = ["forward", "backward", "forward+backward"]


def worker(threads, repeats):
    # Before NumPy (and through cnnative, scipy) load their BLAS, which read these once.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "CNNATIVE_NUM_THREADS"):
        os.environ[var] = str(threads)
    import numpy as np

    import cnnative
    from cnnative.bench import timing

    rows = []
    for n, n_in, n_out in SHAPES:
        for dtype in DTYPES:
            rng = np.random.default_rng(0)
            x = rng.standard_normal((n, n_in)).astype(dtype)
            w = rng.standard_normal((n_out, n_in)).astype(dtype)
            b = rng.standard_normal(n_out).astype(dtype)
            grad_y = rng.standard_normal((n, n_out)).astype(dtype)

            def numpy_forward():
                return x @ w.T + b

            def numpy_backward():
                return grad_y @ w, grad_y.T @ x, grad_y.sum(0)

            def numpy_step():
                numpy_forward()
                numpy_backward()

            def ours_forward():
                return cnnative.dense(x, w, b)

            def ours_backward():
                return cnnative.dense_backward(grad_y, x, w)

            def ours_step():
                ours_forward()
                ours_backward()

            contenders = {
                ("forward", "numpy"): numpy_forward, ("forward", "cnnative"): ours_forward,
                ("backward", "numpy"): numpy_backward, ("backward", "cnnative"): ours_backward,
                ("forward+backward", "numpy"): numpy_step,
                ("forward+backward", "cnnative"): ours_step,
            }
            timings = timing.time_interleaved(contenders, 0.0, min_repeats=repeats,
                                              max_repeats=repeats)
            for name in PASSES:
                rows.append({
                    "shape": f"{n}x{n_in} -> {n_out}", "dtype": dtype, "threads": threads,
                    "pass": name,
                    "numpy": timings[name, "numpy"].median,
                    "cnnative": timings[name, "cnnative"].median,
                })
    print(json.dumps(rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.threads[0], args.repeats)
        return
    rows = []
    for threads in args.threads:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", "--threads", str(threads),
             "--repeats", str(args.repeats)],
            check=True, capture_output=True, text=True,
        ).stdout
        rows += json.loads(out)
    # Timings at 2 threads mean little when other processes hold the CPUs: print the load.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPUs: {os.cpu_count()}, 1-minute load average after the run: {load:.2f}\n")
    print("| shape (N x in -> out) | dtype | threads | pass | numpy (us) | cnnative (us) "
          "| numpy / cnnative |")
    print("|---|---|---|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['shape']} | {row['dtype']} | {row['threads']} | {row['pass']} | "
              f"{row['numpy'] * 1e6:.1f} | {row['cnnative'] * 1e6:.1f} | "
              f"{row['numpy'] / row['cnnative']:.2f}x |")


if __name__ == "__main__":
    main()
