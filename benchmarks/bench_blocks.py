"""Building blocks of modern CNNs, forward + backward, cnnative against torch.

Each cell is a (name, setup) pair: setup(np, cnnative, torch, dtype, threads) returns
(cnnative_fn, torch_fn), torch_fn None when torch is missing.  Both contenders get the same
thread count; they are interleaved in one process and the medians compared.  To add a block,
append a cell to CELLS.

    python benchmarks/bench_blocks.py [--threads 1 2] [--dtypes float32] [--cells NAME ...]
                                      [--budget SECONDS] [--json PATH]
"""
import argparse
import os
import sys

from cnnative.bench import timing
from cnnative.testing import torch_models


def _conv_cell(x_shape, filters, kernel, padding=0, dilation=1, groups=1, stride=1):
    """forward + backward (every gradient) of one conv2d layer."""

    def setup(np, cnnative, torch, dtype, threads):
        rng = np.random.default_rng(0)
        channels = x_shape[1]
        x = rng.standard_normal(x_shape).astype(dtype)
        w = (rng.standard_normal((filters, channels // groups, kernel, kernel)) * 0.1).astype(dtype)
        b = np.zeros(filters, dtype)
        options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        grad_y = rng.standard_normal(cnnative.conv2d(x, w, b, **options).shape).astype(dtype)

        def ours():
            cnnative.conv2d(x, w, b, num_threads=threads, **options)
            cnnative.conv2d_backward(grad_y, x, w, num_threads=threads, **options)

        if torch is None:
            return ours, None
        tx = torch.from_numpy(x).requires_grad_(True)
        tw = torch.from_numpy(w).requires_grad_(True)
        tb = torch.from_numpy(b).requires_grad_(True)
        tgy = torch.from_numpy(grad_y)

        def theirs():
            tw.grad = tb.grad = tx.grad = None
            torch.nn.functional.conv2d(tx, tw, tb, **options).backward(tgy)

        return ours, theirs

    return setup


#: (name, setup) pairs; setup(np, cnnative, torch, dtype, threads) -> (cnnative_fn, torch_fn).
CELLS = [
    # The plain 3x3 layers of cnnative.models.vgg(24) (--preset fashion), first and widest.
    ("3x3 pad 1, (128, 24, 28x28) -> 24", _conv_cell((128, 24, 28, 28), 24, 3, padding=1)),
    ("3x3 pad 1, (128, 48, 7x7) -> 96", _conv_cell((128, 48, 7, 7), 96, 3, padding=1)),
    ("strided 3x3 stride 2 pad 1, (128, 16, 28x28) -> 32",
     _conv_cell((128, 16, 28, 28), 32, 3, padding=1, stride=2)),
    ("depthwise 3x3 pad 1, (128, 64, 14x14) -> 64",
     _conv_cell((128, 64, 14, 14), 64, 3, padding=1, groups=64)),
    ("dilated 3x3 dil 2 pad 2, (128, 32, 28x28) -> 32",
     _conv_cell((128, 32, 28, 28), 32, 3, padding=2, dilation=2)),
    ("grouped 3x3 groups 4 pad 1, (128, 64, 14x14) -> 64",
     _conv_cell((128, 64, 14, 14), 64, 3, padding=1, groups=4)),
]


# -- normalisation and pooling (issue 15) -------------------------------------------------------


def _batch_norm_cell(x_shape):
    """batch_norm forward (training, running statistics updated) + backward."""

    def setup(np, cnnative, torch, dtype, threads):
        rng = np.random.default_rng(0)
        channels = x_shape[1]
        x = rng.standard_normal(x_shape).astype(dtype)
        grad_y = rng.standard_normal(x_shape).astype(dtype)
        gamma, beta = np.ones(channels, dtype), np.zeros(channels, dtype)
        running_mean, running_var = np.zeros(channels, dtype), np.ones(channels, dtype)

        def ours():
            _, cache = cnnative.batch_norm(x, gamma, beta, running_mean, running_var, True,
                                           num_threads=threads)
            cnnative.batch_norm_backward(grad_y, cache, num_threads=threads)

        if torch is None:
            return ours, None
        tx = torch.from_numpy(x).requires_grad_(True)
        tg = torch.from_numpy(gamma.copy()).requires_grad_(True)
        tb = torch.from_numpy(beta.copy()).requires_grad_(True)
        trm, trv = torch.from_numpy(running_mean.copy()), torch.from_numpy(running_var.copy())
        tgy = torch.from_numpy(grad_y)

        def theirs():
            tx.grad = tg.grad = tb.grad = None
            torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, True).backward(tgy)

        return ours, theirs

    return setup


def _avg_pool_cell(x_shape, kernel, stride):
    def setup(np, cnnative, torch, dtype, threads):
        rng = np.random.default_rng(0)
        x = rng.standard_normal(x_shape).astype(dtype)
        grad_y = rng.standard_normal(cnnative.avg_pool2d(x, kernel, stride).shape).astype(dtype)

        def ours():
            cnnative.avg_pool2d(x, kernel, stride, num_threads=threads)
            cnnative.avg_pool2d_backward(grad_y, x.shape, kernel, stride, num_threads=threads)

        if torch is None:
            return ours, None
        tx = torch.from_numpy(x).requires_grad_(True)
        tgy = torch.from_numpy(grad_y)

        def theirs():
            tx.grad = None
            torch.nn.functional.avg_pool2d(tx, kernel, stride).backward(tgy)

        return ours, theirs

    return setup


def _global_avg_pool_cell(x_shape):
    def setup(np, cnnative, torch, dtype, threads):
        rng = np.random.default_rng(0)
        x = rng.standard_normal(x_shape).astype(dtype)
        grad_y = rng.standard_normal(x_shape[:2]).astype(dtype)

        def ours():
            cnnative.global_avg_pool2d(x, num_threads=threads)
            cnnative.global_avg_pool2d_backward(grad_y, x.shape, num_threads=threads)

        if torch is None:
            return ours, None
        tx = torch.from_numpy(x).requires_grad_(True)
        tgy = torch.from_numpy(grad_y)

        def theirs():
            tx.grad = None
            torch.nn.functional.adaptive_avg_pool2d(tx, 1).flatten(1).backward(tgy)

        return ours, theirs

    return setup


CELLS += [
    ("batch norm training, (128, 32, 28x28)", _batch_norm_cell((128, 32, 28, 28))),
    ("avg pool 2x2/s2, (128, 32, 28x28)", _avg_pool_cell((128, 32, 28, 28), 2, 2)),
    ("global avg pool, (128, 64, 7x7)", _global_avg_pool_cell((128, 64, 7, 7))),
]


# -- a whole network ----------------------------------------------------------------------------


def _training_step_cell(model, size, batch):
    """One SGD-with-momentum training step (forward, loss, backward, update) of
    cnnative.models.<model>(size) on (batch, 1, 28, 28) against the same network in torch
    (cnnative.testing.torch_models.<model>)."""

    def setup(np, cnnative, torch, dtype, threads):
        rng = np.random.default_rng(0)
        x = rng.random((batch, 1, 28, 28)).astype(dtype)
        y = rng.integers(0, 10, batch)
        cnnative.set_num_threads(threads)
        net = getattr(cnnative.models, model)(size, dtype=dtype)
        optimizer = cnnative.optim.SGD(0.05, momentum=0.9)

        def ours():
            output = net.forward(x, training=True)
            net.loss.forward(output, y)
            net.backward(net.loss.backward())
            optimizer.step(net.parameters())

        if torch is None:
            return ours, None
        torch_model = getattr(torch_models, model)(torch, size).to(getattr(torch, dtype.name))
        torch_optimizer = torch.optim.SGD(torch_model.parameters(), lr=0.05, momentum=0.9)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def theirs():
            torch_optimizer.zero_grad()
            torch.nn.functional.cross_entropy(torch_model(tx), ty).backward()
            torch_optimizer.step()

        return ours, theirs

    return setup


# resnet(depth): the CIFAR-style ResNet; vgg(width): --preset fashion's network (five plain 3x3
# convolutions with batch norm).
CELLS += [("resnet(20) training step, batch 128", _training_step_cell("resnet", 20, 128)),
          ("vgg(24) training step, batch 128", _training_step_cell("vgg", 24, 128)),
          ("vgg(32) training step, batch 128", _training_step_cell("vgg", 32, 128))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32"])
    parser.add_argument("--cells", nargs="+", help="names (or prefixes) of the cells to run")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for the whole run")
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "blocks.json"))
    args = parser.parse_args()

    # BLAS inside cnnative runs one thread per worker; torch's intra-op pool is set per cell.
    timing.configure_threads(1)
    import numpy as np

    import cnnative

    torch, torch_missing = timing.optional_import("torch")
    if torch is None:
        print(f"torch not available ({torch_missing}); timing cnnative only", file=sys.stderr)
    chosen = [(name, setup) for name, setup in CELLS
              if not args.cells or any(name.startswith(prefix) for prefix in args.cells)]
    cells = [(t, d, c) for t in args.threads for d in args.dtypes for c in chosen]
    budget = timing.Budget(args.budget, len(cells))
    rows, results = [], []
    for threads, dtype_name, (name, setup) in cells:
        if torch is not None:
            torch.set_num_threads(threads)
        ours, theirs = setup(np, cnnative, torch, np.dtype(dtype_name), threads)
        contenders = {"cnnative": ours}
        if theirs is not None:
            contenders["torch"] = theirs
        timings = timing.time_interleaved(contenders, budget.for_next_cell(), min_repeats=5)
        budget.cell_done()
        ours_s = timings["cnnative"].median
        torch_s = timings["torch"].median if "torch" in timings else float("nan")
        rows.append([name, dtype_name, str(threads), timing.format_us(ours_s),
                     timing.format_us(torch_s), timing.format_ratio(torch_s / ours_s)])
        results.append({"block": name, "dtype": dtype_name, "threads": threads,
                        **{key: t.as_dict() for key, t in timings.items()}})
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)

    print(timing.markdown_table(
        ["block (fwd + bwd)", "dtype", "threads", "cnnative µs", "torch µs", "torch / cnnative"],
        rows))
    timing.write_json(args.json, {"environment": timing.environment(), "results": results})


if __name__ == "__main__":
    main()
