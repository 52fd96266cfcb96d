"""Max pooling: cnnative against torch (forward with indices, and backward), as a markdown table.

    python benchmarks/bench_pool.py [--repeats 31] [--quick]

For each case the contenders run interleaved (``cnnative.bench.timing.time_interleaved``: the
order shuffled every repeat) so drifts in machine load hit both alike, and the table reports
the median of the repeats plus the ratio torch / cnnative (above 1: cnnative is faster).  Both
sides get the same thread count.
torch is optional: without it only cnnative's times are printed.
"""
import argparse
import os

# torch's OpenMP workers otherwise spin after each call and, on 2 cores, steal the CPU from the
# contender timed next; this must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

import cnnative
from cnnative.bench import timing

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the table then has cnnative's column only
    torch = None

SHAPE = (64, 20, 24, 24)
WINDOWS = [((2, 2), (2, 2)), ((3, 3), (1, 1))]  # (kernel_size, stride), no padding
DTYPES = [np.float32, np.float64]
THREADS = [1, 2]


def _contenders(x, kernel, stride, threads):
    """(name, forward call, backward call) per contender, after checking they agree."""
    y, indices = cnnative.max_pool2d(x, kernel, stride, num_threads=threads)
    grad_y = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    ours = (
        lambda: cnnative.max_pool2d(x, kernel, stride, num_threads=threads),
        lambda: cnnative.max_pool2d_backward(grad_y, indices, x.shape, num_threads=threads),
    )
    if torch is None:
        return [("cnnative",) + ours]
    tx = torch.from_numpy(x)
    ty, tindices = F.max_pool2d(tx, kernel, stride, return_indices=True)
    if not (np.array_equal(tindices.numpy(), indices) and np.array_equal(ty.numpy(), y)):
        raise AssertionError(f"cnnative and torch disagree for kernel {kernel}, stride {stride}")
    tgrad_y = torch.from_numpy(grad_y)
    backward = torch.ops.aten.max_pool2d_with_indices_backward
    theirs = (
        lambda: F.max_pool2d(tx, kernel, stride, return_indices=True),
        lambda: backward(tgrad_y, tx, list(kernel), list(stride), [0, 0], [1, 1], False, tindices),
    )
    return [("cnnative",) + ours, ("torch",) + theirs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--quick", action="store_true", help="7 repeats")
    args = parser.parse_args(argv)
    repeats = 7 if args.quick else args.repeats

    x64 = np.random.default_rng(0).standard_normal(SHAPE)
    header = "| window | dtype | threads | pass | cnnative (µs) |"
    if torch is not None:
        header += " torch (µs) | torch / cnnative |"
        print(f"torch {torch.__version__}, cnnative {cnnative.__version__}, input {SHAPE}, "
              f"median of {repeats}\n")
    else:
        print(f"torch not importable: cnnative only; input {SHAPE}, median of {repeats}\n")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for kernel, stride in WINDOWS:
        for dtype in DTYPES:
            x = x64.astype(dtype)
            for threads in THREADS:
                if torch is not None:
                    torch.set_num_threads(threads)
                contenders = _contenders(x, kernel, stride, threads)
                for column, label in ((1, "forward"), (2, "backward")):
                    timings = timing.time_interleaved({c[0]: c[column] for c in contenders}, 0.0,
                                                      min_repeats=repeats, max_repeats=repeats)
                    times = [timings[c[0]].median for c in contenders]
                    row = (f"| {kernel[0]}x{kernel[1]}/s{stride[0]} | {np.dtype(dtype).name} | "
                           f"{threads} | {label} | {times[0] * 1e6:.0f} |")
                    if torch is not None:
                        row += f" {times[1] * 1e6:.0f} | {times[1] / times[0]:.1f} |"
                    print(row, flush=True)


if __name__ == "__main__":
    main()
