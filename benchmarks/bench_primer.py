"""The primer article's layer, its scipy + Python-loop formulas against cnnative.primer.

One 28x28 input, one feature map with a 5x5 overlay, then 2x2 max pooling at stride 1 (23x23
overlapping windows), forward and backward.  The reference is the article's code path
(``scipy.signal.correlate2d``/``convolve2d`` and a Python loop over the pooling windows, from
cnnative.testing.primer); cnnative.primer runs the same formulas on the native kernels and is
checked to give identical numbers first.  Its forward pass leaves the (row, col) tuples of
``max_positions`` to be built on first access, so a third contender also reads them.

    python benchmarks/bench_primer.py [--budget SECONDS] [--json PATH]
"""
import argparse
import os

from cnnative.bench import timing

HERE = os.path.dirname(os.path.abspath(__file__))

SIZE, OVERLAY, POOL, STEP = 28, (5, 5), (2, 2), 0.1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=12.0, help="seconds for the whole run")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "primer.json"))
    args = parser.parse_args()

    timing.configure_threads(1)
    import numpy as np

    import cnnative
    from cnnative.testing import primer as ref
    from cnnative import primer

    image = np.random.default_rng(0).standard_normal((SIZE, SIZE))
    np.random.seed(0)
    fm = primer.FeatureMap(image, OVERLAY)
    mpl = primer.MaxPoolingMap(fm.feed_forward(), POOL)
    pooled_gradient = np.random.default_rng(1).standard_normal(mpl.feed_forward().shape)
    w, b = fm.w.copy(), fm.b.copy()

    def reference():
        z, a = ref.feature_map_forward(image, w, b)
        values, positions = ref.max_pool_forward(a, POOL)
        a_gradient = ref.max_pool_backward(a.shape, positions, pooled_gradient)
        return values, ref.feature_map_backward(image, w, b, z, a_gradient, STEP)

    def native(read_positions=False):
        # The weights are reset so every call does the same arithmetic as the reference.
        fm.w[...], fm.b[...] = w, b
        mpl.a_prev = fm.feed_forward()
        values = mpl.feed_forward()
        if read_positions:
            mpl.max_positions  # noqa: B018 - building the tuples is what is timed
        a_prev_gradient = fm.propagate_backward(mpl.propagate_backward(pooled_gradient), STEP)
        return values, (fm.w, fm.b, a_prev_gradient)

    expected, ours = reference(), native(True)
    np.testing.assert_array_equal(ours[0], expected[0])
    for got, want in zip(ours[1], expected[1]):
        np.testing.assert_array_equal(got, want)

    contenders = {
        "scipy + loops": reference,
        "cnnative.primer": native,
        "cnnative.primer + max_positions": lambda: native(True),
    }
    timings = timing.time_interleaved(contenders, args.budget, min_repeats=5)
    base = timings["scipy + loops"].median
    rows = [[name, timing.format_us(t.median), timing.format_ratio(base / t.median)]
            for name, t in timings.items()]
    print(f"28x28 input, 5x5 feature map, 2x2 stride-1 max pooling, forward + backward, 1 thread; "
          f"spread {timing.median_spread(timings.values()):.1%}\n")
    print(timing.markdown_table(["contender", "µs per step", "scipy + loops / contender"], rows))
    timing.write_json(args.json, {"environment": timing.environment(),
                                   "results": {n: t.as_dict() for n, t in timings.items()}})


if __name__ == "__main__":
    main()
