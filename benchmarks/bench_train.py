"""One training epoch of Nielsen's MNIST network: cnnative vs torch vs the primer's scipy loops.

The network (``cnnative.models.nielsen``): Conv2D(1, 20, 5) + ReLU + MaxPool2D(2) ->
Conv2D(20, 40, 5) + ReLU + MaxPool2D(2) -> Dense(640, 100) + ReLU -> Dense(100, 10), softmax
cross-entropy, SGD lr 0.01 momentum 0.9, batch 64, over the 5,000 embedded digits.  torch runs
the same network and loop with the same thread count, on images converted to float once
beforehand (cnnative converts each uint8 batch inside ``fit``).  The primer-style contender
does what the article's code does, one image and one feature map at a time with
``scipy.signal`` and Python loops for pooling; it is timed on a small slice and scaled to the
epoch.

    python benchmarks/bench_train.py [--threads 1 2] [--dtypes float32 float64] [--repeats 3]
"""
import argparse
import os
import sys
import time

from cnnative.bench import timing

BATCH, LR, MOMENTUM = 64, 0.01, 0.9


def load_images():
    """The embedded 5,000 digits, or as many random images when the data is not available."""
    import numpy as np
    try:
        from cnnative import datasets
        (x, y), (x_val, y_val) = datasets.load_digits_5k()
        return np.concatenate([x, x_val]), np.concatenate([y, y_val]), "embedded 5k digits"
    except (ImportError, AttributeError, OSError):
        rng = np.random.default_rng(0)
        return (rng.integers(0, 256, (5000, 28, 28)).astype(np.uint8),
                rng.integers(0, 10, 5000), "random images (embedded data not found)")


def cnnative_epoch(x, y, dtype, threads):
    import cnnative
    cnnative.set_num_threads(threads)
    net = cnnative.models.nielsen(dtype=dtype, seed=0)
    optimizer = cnnative.optim.SGD(LR, momentum=MOMENTUM)
    return lambda: net.fit(x, y, epochs=1, batch_size=BATCH, optimizer=optimizer, seed=0,
                           progress=False)


def torch_epoch(torch, x, y, dtype, threads):
    import numpy as np
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 40, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(640, 100), nn.ReLU(), nn.Linear(100, 10),
    ).to(getattr(torch, dtype))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    images = torch.from_numpy((x[:, None] / 255.0).astype(dtype))
    labels = torch.from_numpy(y.astype(np.int64))
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)

    def epoch():
        order = torch.randperm(len(images), generator=generator)
        for first in range(0, len(images), BATCH):
            index = order[first:first + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(images[index]), labels[index]).backward()
            optimizer.step()

    return epoch


def primer_epoch(x, y, slice_size):
    """The article's style: per image and per map scipy.signal calls, Python-loop pooling,
    one SGD step per image (its propagate_backward updates as it goes)."""
    import numpy as np
    from scipy import signal

    rng = np.random.default_rng(0)
    w1, b1 = rng.standard_normal((20, 5, 5)) * 0.2, np.zeros(20)
    w2, b2 = rng.standard_normal((40, 20, 5, 5)) * 0.06, np.zeros(40)
    w3, b3 = rng.standard_normal((100, 640)) * 0.05, np.zeros((100, 1))
    w4, b4 = rng.standard_normal((10, 100)) * 0.1, np.zeros((10, 1))

    def pool(maps):
        out = np.empty((maps.shape[0], maps.shape[1] // 2, maps.shape[2] // 2))
        where = {}
        for m in range(maps.shape[0]):
            for r in range(out.shape[1]):
                for c in range(out.shape[2]):
                    window = maps[m, 2 * r:2 * r + 2, 2 * c:2 * c + 2]
                    i, j = np.unravel_index(np.argmax(window), window.shape)
                    out[m, r, c] = window[i, j]
                    where[m, r, c] = (2 * r + i, 2 * c + j)
        return out, where

    def unpool(grad, where, shape):
        result = np.zeros(shape)
        for (m, r, c), (i, j) in where.items():
            result[m, i, j] += grad[m, r, c]
        return result

    def step(image, label):
        a0 = image / 255.0
        z1 = np.array([signal.correlate2d(a0, w1[f], "valid") + b1[f] for f in range(20)])
        p1, where1 = pool(np.maximum(z1, 0))
        z2 = np.array([sum(signal.correlate2d(p1[c], w2[f, c], "valid") for c in range(20))
                       + b2[f] for f in range(40)])
        p2, where2 = pool(np.maximum(z2, 0))
        a2 = p2.reshape(-1, 1)
        z3 = w3 @ a2 + b3
        a3 = np.maximum(z3, 0)
        z4 = w4 @ a3 + b4
        p = np.exp(z4 - z4.max())
        p /= p.sum()
        d4 = p.copy()
        d4[label] -= 1
        d3 = (w4.T @ d4) * (z3 > 0)
        d2 = unpool((w3.T @ d3).reshape(p2.shape), where2, z2.shape) * (z2 > 0)
        d1_pooled = np.zeros_like(p1)
        for f in range(40):
            for c in range(20):
                d1_pooled[c] += signal.convolve2d(w2[f, c], d2[f], "full")
                w2[f, c] -= LR * signal.correlate2d(p1[c], d2[f], "valid")
        d1 = unpool(d1_pooled, where1, z1.shape) * (z1 > 0)
        for f in range(20):
            w1[f] -= LR * signal.correlate2d(a0, d1[f], "valid")
        b1[:] -= LR * d1.sum(axis=(1, 2))
        b2[:] -= LR * d2.sum(axis=(1, 2))
        w4[:] -= LR * d4 @ a3.T
        b4[:] -= LR * d4
        w3[:] -= LR * d3 @ a2.T
        b3[:] -= LR * d3

    def some_images():
        for image, label in zip(x[:slice_size], y[:slice_size]):
            step(image, label)

    return some_images


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32"])
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per contender")
    parser.add_argument("--primer-slice", type=int, default=16,
                        help="images the primer-style loop is timed on (0 skips it)")
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                       "train.json"))
    args = parser.parse_args()

    timing.configure_threads(1)
    torch, torch_missing = timing.optional_import("torch")
    if torch is None:
        print(f"torch not available ({torch_missing}); timing cnnative only", file=sys.stderr)
    x, y, source = load_images()
    print(f"data: {source}, {len(x)} images", file=sys.stderr)

    rows, results = [], []
    for threads in args.threads:
        for dtype in args.dtypes:
            contenders = {"cnnative": cnnative_epoch(x, y, dtype, threads)}
            if torch is not None:
                contenders["torch"] = torch_epoch(torch, x, y, dtype, threads)
            # One epoch is seconds long: repeats, not the budget, decide the sample count.
            timings = timing.time_interleaved(contenders, 0.0, min_sample_s=0.0,
                                               min_repeats=args.repeats)
            ours = timings["cnnative"].median
            theirs = timings["torch"].median if "torch" in timings else float("nan")
            rows.append([str(threads), dtype, f"{ours:.2f}", f"{theirs:.2f}",
                         timing.format_ratio(theirs / ours),
                         f"{timings['cnnative'].spread:.0%}"])
            results.append({"threads": threads, "dtype": dtype,
                            **{name: t.as_dict() for name, t in timings.items()}})
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    print(timing.markdown_table(
        ["threads", "dtype", "cnnative s/epoch", "torch s/epoch", "torch / cnnative",
         "cnnative IQR/median"], rows))

    if args.primer_slice:
        primer = primer_epoch(x, y, args.primer_slice)
        start = time.perf_counter()
        primer()
        per_image = (time.perf_counter() - start) / args.primer_slice
        ours_1 = next((r["cnnative"]["median_s"] for r in results
                       if r["threads"] == 1 and r["dtype"] == args.dtypes[0]), float("nan"))
        print(f"\nprimer-style scipy loops (float64, 1 thread): {per_image * 1e3:.1f} ms per "
              f"image, {per_image * len(x):.0f} s per epoch (scaled from {args.primer_slice} "
              f"images); cnnative ({args.dtypes[0]}, 1 thread) is "
              f"{per_image * len(x) / ours_1:.0f}x faster")
        results.append({"primer_seconds_per_image": per_image})
    timing.write_json(args.json, {"environment": timing.environment(), "data": source,
                                   "results": results})


if __name__ == "__main__":
    main()
