"""conv2d forward + backward against torch conv2d forward + autograd backward.

Shapes of Nielsen's MNIST network at batch 64: (1, 28x28) -> 20 maps 5x5 and (20, 12x12) -> 40
maps 5x5.  The first layer is timed twice: with the input gradient (what a generic layer
computes) and without it (a network's first layer never needs it; torch then skips it too,
since its input does not require grad).  Both contenders get the same thread count.

    python benchmarks/bench_conv.py [--threads 1 2] [--budget SECONDS] [--json PATH]
"""
import argparse
import os
import sys

from cnnative.bench import timing

SHAPES = [  # (channels, size, filters, need_grad_x)
    (1, 28, 20, False),
    (1, 28, 20, True),
    (20, 12, 40, True),
]
BATCH, KERNEL = 64, 5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for the whole run")
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "conv.json"))
    args = parser.parse_args()

    # BLAS inside cnnative runs one thread per worker; torch's intra-op pool is set per cell.
    timing.configure_threads(1)
    import numpy as np

    import cnnative

    torch, torch_missing = timing.optional_import("torch")
    if torch is None:
        print(f"torch not available ({torch_missing}); timing cnnative only", file=sys.stderr)
    cells = [(t, d, s) for t in args.threads for d in args.dtypes for s in SHAPES]
    budget = timing.Budget(args.budget, len(cells))
    rows, results = [], []
    rng = np.random.default_rng(0)
    for threads, dtype_name, (channels, size, filters, need_grad_x) in cells:
        dtype = np.dtype(dtype_name)
        x = rng.standard_normal((BATCH, channels, size, size)).astype(dtype)
        w = (rng.standard_normal((filters, channels, KERNEL, KERNEL)) * 0.1).astype(dtype)
        b = np.zeros(filters, dtype)
        grad_y = rng.standard_normal(cnnative.conv2d(x, w, b).shape).astype(dtype)

        def ours():
            cnnative.conv2d(x, w, b, num_threads=threads)
            cnnative.conv2d_backward(grad_y, x, w, need_grad_x=need_grad_x, num_threads=threads)

        contenders = {"cnnative": ours}
        if torch is not None:
            torch.set_num_threads(threads)
            tx = torch.from_numpy(x).requires_grad_(need_grad_x)
            tw = torch.from_numpy(w).requires_grad_(True)
            tb = torch.from_numpy(b).requires_grad_(True)
            tgy = torch.from_numpy(grad_y)

            def theirs():
                tw.grad = tb.grad = tx.grad = None
                torch.nn.functional.conv2d(tx, tw, tb).backward(tgy)

            contenders["torch"] = theirs
        timings = timing.time_interleaved(contenders, budget.for_next_cell(), min_repeats=5)
        budget.cell_done()
        ours_s = timings["cnnative"].median
        torch_s = timings["torch"].median if "torch" in timings else float("nan")
        label = f"({channels}, {size}x{size}) -> {filters}" + ("" if need_grad_x else ", no grad_x")
        rows.append([label, dtype_name, str(threads), timing.format_us(ours_s),
                     timing.format_us(torch_s), timing.format_ratio(torch_s / ours_s)])
        results.append({"layer": label, "dtype": dtype_name, "threads": threads,
                        **{name: t.as_dict() for name, t in timings.items()}})
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)

    print(timing.markdown_table(
        ["layer (batch 64, 5x5)", "dtype", "threads", "cnnative fwd+bwd µs", "torch fwd+bwd µs",
         "torch / cnnative"], rows))
    timing.write_json(args.json, {"environment": timing.environment(), "results": results})


if __name__ == "__main__":
    main()
