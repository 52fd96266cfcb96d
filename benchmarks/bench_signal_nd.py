"""cnnative.correlate (N-d) and method='auto' against scipy.signal, as markdown tables.

    python benchmarks/bench_signal_nd.py [--quick] [--budget 240] [--threads 1] [--fit]

Three tables, every contender on one thread (``--threads`` for all of them) and timed
interleaved in this one process (medians of shuffled repeats, see cnnative.bench.timing):

* stacked  correlate(maps (C,H,W), filters (C,kh,kw), 'valid'), the seed article's case, and
  3-D volumes 64^3 with 5^3 in every mode: cnnative direct and auto against
  scipy.signal.correlate with method='direct' and 'auto'.  Goals: >= 20x scipy direct and no
  slower than scipy auto.
* 2-D      square images x square kernels ('same'): cnnative.correlate2d and correlate with
  method='auto' against the better of scipy's direct (correlate2d, its faster direct 2-D
  kernel) and scipy.signal.fftconvolve.  Goal: auto/best <= 1.
* --fit    times both direct kernels and FFTs over a range of sizes and prints the cost-model
  constants of cnnative.signal (method='auto') fitted to this machine, in its source format.

Every cnnative result is checked first: bit-identical to scipy for direct (N-d), within 1e-10
(float64) of it for auto.  Exit status 1 on a mismatch.
"""
import argparse
import math
import os
import platform
import statistics
import sys
import time

from cnnative.bench import timing

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
STACKED = [((20, 12, 12), (20, 5, 5), "valid")]
VOLUMES = [((64, 64, 64), (5, 5, 5), mode) for mode in ("valid", "same", "full")]
GRID_SIZES, GRID_KERNELS = [256, 1024], [5, 15, 31, 63]
QUICK_GRID = ([256, 1024], [15, 31])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer cells, smaller budget")
    parser.add_argument("--budget", type=float, help="total seconds to aim for (default 240, "
                                                      "60 with --quick)")
    parser.add_argument("--threads", type=int, default=1, help="threads for every library")
    parser.add_argument("--fit", action="store_true",
                        help="only fit and print the cost-model constants")
    parser.add_argument("--json", default=None, help="raw results (default "
                                                     "benchmarks/results/signal_nd.json)")
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = 60.0 if args.quick else 240.0
    return args


def host_line(np, scipy, cnnative):
    detected, active = cnnative._native.correlate_nd.simd_info()
    return (f"host: {platform.node()}, {timing._cpu_model() or platform.processor()}, "
            f"{len(os.sched_getaffinity(0))} CPUs available, load average "
            f"{os.getloadavg()[0]:.1f}; SIMD {active}; numpy {np.__version__}, scipy "
            f"{scipy.__version__}, cnnative {cnnative.__version__}")


def check(np, name, out, ref, exact):
    if out.shape != ref.shape or out.dtype != ref.dtype:
        return f"{name}: shape/dtype {out.shape}/{out.dtype} vs {ref.shape}/{ref.dtype}"
    if exact:
        return None if np.array_equal(out, ref) else f"{name}: not bit-identical to scipy"
    rtol = 1e-10 if out.dtype == np.float64 else 1e-4
    err = float(np.max(np.abs(out - ref))) / max(float(np.max(np.abs(ref))), 1e-300)
    return None if err <= rtol else f"{name}: relative error {err:.3g} > {rtol:g}"


def stacked_rows(libs, args, budget, rng, problems):
    np, signal, cnnative = libs
    rows, cells = [], []
    for shape1, shape2, mode in STACKED + VOLUMES:
        for dtype in (np.float32, np.float64):
            a = rng.standard_normal(shape1).astype(dtype)
            b = rng.standard_normal(shape2).astype(dtype)
            contenders = {
                "scipy direct": lambda: signal.correlate(a, b, mode, method="direct"),
                "scipy auto": lambda: signal.correlate(a, b, mode, method="auto"),
                "cnnative direct": lambda: cnnative.correlate(a, b, mode, method="direct"),
                "cnnative auto": lambda: cnnative.correlate(a, b, mode, method="auto"),
            }
            ref = contenders["scipy direct"]()
            label = f"{shape1}⊛{shape2} {mode} {np.dtype(dtype).name}"
            for name, exact in (("cnnative direct", True), ("cnnative auto", False)):
                problem = check(np, f"{label} {name}", contenders[name](), ref, exact)
                if problem:
                    problems.append(problem)
            t = timing.time_interleaved(contenders, budget.for_next_cell(), min_repeats=3,
                                        max_repeats=15)
            budget.cell_done()
            med = {name: value.median for name, value in t.items()}
            cells.append({"case": label, "medians_s": med})
            rows.append([
                "x".join(map(str, shape1)), "x".join(map(str, shape2)), mode,
                np.dtype(dtype).name, timing.format_us(med["scipy direct"]),
                timing.format_us(med["scipy auto"]), timing.format_us(med["cnnative direct"]),
                timing.format_us(med["cnnative auto"]),
                cnnative.choose_method(a, b, mode),
                timing.format_ratio(med["scipy direct"] / med["cnnative direct"]),
                timing.format_ratio(med["scipy auto"] / med["cnnative auto"]),
            ])
            print(f"[{budget.elapsed:6.1f} s] {label}", file=sys.stderr)
    headers = ["in1", "in2", "mode", "dtype", "scipy direct µs", "scipy auto µs",
               "cnnative direct µs", "cnnative auto µs", "auto picks", "direct speedup",
               "auto: scipy/cnnative"]
    return timing.markdown_table(headers, rows, align="llllrrrrlrr"), cells


def grid_rows(libs, args, budget, rng, problems):
    np, signal, cnnative = libs
    sizes, kernels = QUICK_GRID if args.quick else (GRID_SIZES, GRID_KERNELS)
    rows, cells = [], []
    for size in sizes:
        for kernel in kernels:
            for dtype in (np.float32, np.float64):
                image = rng.standard_normal((size, size)).astype(dtype)
                weights = rng.standard_normal((kernel, kernel)).astype(dtype)
                flipped = np.ascontiguousarray(weights[::-1, ::-1])
                # correlate2d's 'same' window starts at K//2 of 'full', fftconvolve's (and
                # correlate's) at (K-1)//2: odd kernels only, so that all compute one window.
                contenders = {
                    "scipy direct": lambda: signal.correlate2d(image, weights, "same"),
                    "fftconvolve": lambda: signal.fftconvolve(image, flipped, "same"),
                    "correlate2d auto": lambda: cnnative.correlate2d(image, weights, "same",
                                                                     method="auto"),
                    "correlate auto": lambda: cnnative.correlate(image, weights, "same",
                                                                 method="auto"),
                }
                ref = contenders["scipy direct"]()
                label = f"{size}² {kernel}x{kernel} same {np.dtype(dtype).name}"
                for name in ("correlate2d auto", "correlate auto"):
                    problem = check(np, f"{label} {name}", contenders[name](), ref,
                                    exact=False)
                    if problem:
                        problems.append(problem)
                t = timing.time_interleaved(contenders, budget.for_next_cell(), min_repeats=3,
                                            max_repeats=15)
                budget.cell_done()
                med = {name: value.median for name, value in t.items()}
                best = min(med["scipy direct"], med["fftconvolve"])
                cells.append({"case": label, "medians_s": med})
                rows.append([
                    f"{size}²", f"{kernel}x{kernel}", np.dtype(dtype).name,
                    timing.format_us(med["scipy direct"]), timing.format_us(med["fftconvolve"]),
                    timing.format_us(med["correlate2d auto"]),
                    cnnative.choose_method(image, weights, "same"),
                    timing.format_ratio(med["correlate2d auto"] / best),
                    timing.format_us(med["correlate auto"]),
                    cnnative.choose_method(image, weights, "same", function="correlate"),
                    timing.format_ratio(med["correlate auto"] / best),
                ])
                print(f"[{budget.elapsed:6.1f} s] {label}", file=sys.stderr)
    headers = ["image", "kernel", "dtype", "scipy direct µs", "fftconvolve µs",
               "correlate2d auto µs", "picks", "/best", "correlate auto µs", "picks", "/best"]
    return timing.markdown_table(headers, rows, align="lllrrrlrrlr"), cells


def _cpu_time(fn, repeats=5):
    """Median CPU seconds of the calling thread per call: every call timed here runs on one
    thread, and CPU time, unlike wall time, does not count the waits of a loaded machine."""
    number, _ = timing.calibrate(fn, 5e-3)
    samples = []
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(number):
            fn()
        samples.append((time.thread_time() - start) / number)
    return statistics.median(samples)


def fit(libs, rng):
    """The cost-model constants of cnnative.signal for this machine, as source lines."""
    np, signal, cnnative = libs
    # Direct: seconds per output element = taps * per_tap + kernel rows * per_row (a row of
    # the kernel's last axis costs a loop's set-up and loads), least squares over relative
    # errors on shapes with long and short kernel rows.
    direct = {"2d": {}, "nd": {}}
    cases = {"2d": [((256, 256), (7, 7)), ((512, 512), (15, 15)), ((160, 160), (31, 31)),
                    ((512, 512), (3, 3)), ((300, 300), (25, 3))],
             "nd": [((256, 256), (7, 7)), ((512, 512), (15, 15)), ((160, 160), (31, 31)),
                    ((48, 48, 48), (5, 5, 5)), ((20, 40, 40), (20, 5, 5)), ((400, 400), (3, 3)),
                    ((16, 16, 16, 16), (3, 3, 3, 3)), ((60000,), (301,))]}
    for family, shapes in cases.items():
        for dtype in ("float32", "float64"):
            rows, ones = [], []
            for shape1, shape2 in shapes:
                a = rng.standard_normal(shape1).astype(dtype)
                b = rng.standard_normal(shape2).astype(dtype)
                if family == "2d":
                    def call():
                        return cnnative.correlate2d(a, b, "valid", num_threads=1)
                else:
                    def call():
                        return cnnative.correlate(a, b, "valid", "direct", num_threads=1)
                outputs = math.prod(n - k + 1 for n, k in zip(shape1, shape2))
                seconds = _cpu_time(call)
                rows.append([outputs * b.size / seconds, outputs * b.size / shape2[-1] / seconds])
                ones.append(1.0)
            (per_tap, per_row), *_ = np.linalg.lstsq(np.array(rows), np.array(ones), rcond=None)
            direct[family][dtype] = (per_tap, max(per_row, 0.0))
    # FFT: fixed + c * n log2 n over full-size transforms.  The slope from the large ones,
    # the fixed cost from the small ones, medians both: a few outliers do not move them.
    fft, fixed = {}, []
    shapes = [(n, n) for n in (8, 12, 16, 24, 90, 160, 300, 520, 800, 1100)] + [
        (n, n, n) for n in (6, 8, 40, 64, 80)]
    for dtype in ("float32", "float64"):
        points = []
        for shape in shapes:
            a = rng.standard_normal(shape).astype(dtype)
            b = rng.standard_normal(tuple(max(1, n // 8) for n in shape)).astype(dtype)
            size = math.prod(n + k - 1 for n, k in zip(a.shape, b.shape))
            points.append((size * math.log2(size),
                           _cpu_time(lambda: signal.fftconvolve(a, b, "full"))))
        # The large transforms set the slope: there the choice matters most, and their
        # memory traffic makes the cost per n*log2(n) grow with n.
        fft[dtype] = statistics.median(t / nlogn for nlogn, t in points if nlogn > 5e6)
        fixed += [t - fft[dtype] * nlogn for nlogn, t in points if nlogn < 1e4]
    fixed = max(statistics.median(fixed), 0.0)
    g = "{:.2g}".format
    tap, row = ({family: {dtype: g(direct[family][dtype][i]) for dtype in direct[family]}
                 for family in direct} for i in (0, 1))
    return [
        f"_DIRECT_SECONDS_PER_TAP = {{\"2d\": {{\"float32\": {tap['2d']['float32']}, "
        f"\"float64\": {tap['2d']['float64']}}},",
        f"                           \"nd\": {{\"float32\": {tap['nd']['float32']}, "
        f"\"float64\": {tap['nd']['float64']}}}}}",
        f"_DIRECT_SECONDS_PER_ROW = {{\"2d\": {{\"float32\": {row['2d']['float32']}, "
        f"\"float64\": {row['2d']['float64']}}},",
        f"                           \"nd\": {{\"float32\": {row['nd']['float32']}, "
        f"\"float64\": {row['nd']['float64']}}}}}",
        f"_FFT_SECONDS_PER_NLOGN = {{\"float32\": {g(fft['float32'])}, "
        f"\"float64\": {g(fft['float64'])}}}",
        f"_FFT_FIXED_SECONDS = {g(fixed)}",
    ]


def main(argv=None):
    args = parse_args(argv)
    threads = timing.configure_threads(args.threads, argv is None)

    import numpy as np
    import scipy
    import scipy.signal as signal

    import cnnative

    cnnative.set_num_threads(threads)
    libs = (np, signal, cnnative)
    rng = np.random.default_rng(0)
    print(f"# {host_line(np, scipy, cnnative)}; threads {threads}")
    if args.fit:
        print("\n".join(fit(libs, rng)))
        return 0
    problems = []
    n_cells = 2 * (len(STACKED) + len(VOLUMES)) + 2 * math.prod(
        map(len, QUICK_GRID if args.quick else (GRID_SIZES, GRID_KERNELS)))
    budget = timing.Budget(args.budget, n_cells)
    stacked, stacked_cells = stacked_rows(libs, args, budget, rng, problems)
    grid, grid_cells = grid_rows(libs, args, budget, rng, problems)
    print("\n## N-d: stacked maps and 3-D volumes\n")
    print(stacked)
    print("\n## 2-D 'same': method='auto' against the better of scipy's direct and "
          "fftconvolve\n")
    print(grid)
    print(f"\n(medians of interleaved repeats; /best = cnnative auto / min(scipy direct, "
          f"fftconvolve), <= 1 meets the goal; {budget.elapsed:.0f} s total)")
    path = args.json or os.path.join(RESULTS, "signal_nd.json")
    timing.write_json(path, {
        "benchmark": "signal.correlate (N-d) and method='auto'",
        "environment": timing.environment(threads=threads),
        "stacked_and_volumes": stacked_cells, "grid_2d": grid_cells, "problems": problems})
    print(f"raw results: {path}", file=sys.stderr)
    for problem in problems:
        print(f"!!!!! MISMATCH: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
