"""cnnative.correlate2d against scipy.signal.correlate2d, scipy.signal.fftconvolve and torch.

Grid: square images x square kernels x modes x dtypes. Per cell the contenders are

* scipy      scipy.signal.correlate2d, the reference the speedup is measured against;
* cnnative   cnnative.correlate2d(method='direct'), checked bit-identical to scipy first;
* auto       cnnative.correlate2d(method='auto'), compared with ...
* fft        scipy.signal.fftconvolve on the flipped kernel in the same mode, i.e. what a
             user would write by hand to get correlation through FFT;
* torch      torch.nn.functional.conv2d on a (1, 1, H, W) tensor, when torch imports;
* cnnative×N cnnative.correlate2d(..., num_threads=N) with --scaling N, checked bit-identical to
             scipy too; the table then gives its speedup over cnnative on one thread (the
             median of the two contenders' per-repeat ratios, which a host whose speed drifts
             between repeats moves less than the ratio of their medians).

Usage (``cnnative bench`` is the same as ``python -m cnnative.bench`` and
``python benchmarks/bench_signal.py``, except for where results go by default):
    cnnative bench --quick          # smoke run, well under a minute
    cnnative bench                  # full grid, ~3 minutes by default
    cnnative bench --sizes 256 --kernels 15 --modes same --budget 30
    cnnative bench --sizes 1024 --scaling 2     # also cnnative on two threads

The markdown table goes to stdout; progress and any mismatch report go to stderr. Exit status is
1 if any cell's cnnative output was not identical to scipy's (or another contender disagreed).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from .._optional import import_pyplot, optional_import
from . import timing

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

_T = TypeVar("_T")

# Where results go unless --json says otherwise: the working directory, since the installed
# package's own directory is no place for them.
RESULTS = "cnnative-bench"

FULL_GRID: dict[str, list[Any]] = {"sizes": [28, 64, 256, 1024], "kernels": [3, 5, 7, 15],
             "modes": ["valid", "same", "full"], "dtypes": ["float32", "float64"]}
QUICK_GRID: dict[str, list[Any]] = {"sizes": [28, 256], "kernels": [3, 15],
              "modes": ["valid", "full"], "dtypes": ["float32", "float64"]}
# Sized for a 2-core machine: the full grid's fixed costs (checks, calibration, three repeats
# of ~0.4 s scipy calls at 1024 px) are about a minute, the rest buys extra repeats.
DEFAULT_BUDGET = {"quick": 15.0, "full": 180.0}

# Loose on purpose: these only catch a benchmark that times the wrong computation (shifted
# window, wrong padding), not rounding differences of FFT or torch's summation order.
SANITY_RTOL = {"float32": 1e-3, "float64": 1e-8}

HEADERS = ["image", "kernel", "mode", "dtype", "scipy µs", "cnnative µs", "speedup",
           "auto µs", "auto picks", "fftconvolve µs", "auto-vs-fft", "torch µs"]
SCALING_HEADERS = ["cnnative×N µs", "×N threads"]


def _list_of(kind: Callable[[str], _T]) -> Callable[[str], list[_T]]:
    def parse(text: str) -> list[_T]:
        items = [item for item in text.replace(",", " ").split() if item]
        try:
            return [kind(item) for item in items]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def parse_args(argv: Sequence[str] | None = None, results: str = RESULTS) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="subset grid 28,256 x 3,15 x valid,full x both dtypes (smoke run)")
    parser.add_argument("--sizes", type=_list_of(int), help="image sizes, e.g. 28,256")
    parser.add_argument("--kernels", type=_list_of(int), help="kernel sizes, e.g. 3,15")
    parser.add_argument("--modes", type=_list_of(str), help="subset of valid,same,full")
    parser.add_argument("--dtypes", type=_list_of(str), help="subset of float32,float64")
    parser.add_argument("--budget", type=float,
                        help=f"total seconds to aim for (default {DEFAULT_BUDGET['full']:g}, "
                             f"{DEFAULT_BUDGET['quick']:g} with --quick); every cell still gets "
                             "--min-repeats repeats")
    parser.add_argument("--threads", type=int,
                        help="threads for every library (env vars, torch, cnnative); default 1")
    parser.add_argument("--json", metavar="PATH",
                        help=f"raw results (default {results}/signal.json, "
                             "signal_quick.json with --quick)")
    parser.add_argument("--plot", metavar="PATH",
                        help="speedup plot, if matplotlib imports (default next to the JSON, .png)")
    parser.add_argument("--no-torch", action="store_true", help="leave torch out even if installed")
    parser.add_argument("--scaling", type=int, metavar="N",
                        help="also time cnnative with num_threads=N and report its speedup over "
                             "one thread (the other contenders keep --threads)")
    parser.add_argument("--min-sample-ms", type=float, default=2.0,
                        help="each timing sample runs enough calls to last this long (default 2)")
    parser.add_argument("--min-repeats", type=int, default=3)
    parser.add_argument("--max-repeats", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    base = QUICK_GRID if args.quick else FULL_GRID
    for key in ("sizes", "kernels", "modes", "dtypes"):
        if getattr(args, key) is None:
            setattr(args, key, list(base[key]))
    bad = [m for m in args.modes if m not in FULL_GRID["modes"]]
    bad += [d for d in args.dtypes if d not in FULL_GRID["dtypes"]]
    bad += [str(n) for n in args.sizes + args.kernels if n < 1]
    if args.scaling is not None and args.scaling < 1:
        bad.append(f"--scaling {args.scaling}")
    if bad:
        parser.error(f"unsupported grid values: {', '.join(bad)}")
    if args.budget is None:
        args.budget = DEFAULT_BUDGET["quick" if args.quick else "full"]
    if args.json is None:
        args.json = os.path.join(results, "signal_quick.json" if args.quick else "signal.json")
    if args.plot is None:
        args.plot = os.path.splitext(args.json)[0] + ".png"
    return args


def torch_padding(mode: str, kernel: int) -> int | str:
    """conv2d padding giving scipy.signal.correlate2d's output for a square kernel, stride 1."""
    if mode == "valid":
        return 0
    if mode == "full":
        return kernel - 1
    # torch's 'same' (stride 1 only) pads (K-1)//2 before and the rest after, which lands on
    # correlate2d's 'same' window for odd and even K alike; run_cell checks it against scipy.
    return "same"


def compare_exact(name: str, out: np.ndarray, ref: np.ndarray) -> str | None:
    """None if identical (shape, dtype, every bit incl. NaN positions), else a description."""
    import numpy as np
    if out.shape != ref.shape:
        return f"{name}: shape {out.shape} != scipy's {ref.shape}"
    if out.dtype != ref.dtype:
        return f"{name}: dtype {out.dtype} != scipy's {ref.dtype}"
    if np.array_equal(out, ref, equal_nan=True):
        return None
    differ = ~((out == ref) | (np.isnan(out) & np.isnan(ref)))
    first = tuple(int(i) for i in np.argwhere(differ)[0])
    return (f"{name}: {int(differ.sum())} of {ref.size} elements differ from scipy, max |diff| "
            f"{float(np.nanmax(np.abs(out.astype(np.float64) - ref))):.3g}, first at {first}: "
            f"{out[first]!r} vs {ref[first]!r}")


def compare_close(name: str, out: ArrayLike, ref: np.ndarray, rtol: float) -> str | None:
    import numpy as np
    out = np.asarray(out)
    if out.shape != ref.shape:
        return f"{name}: shape {out.shape} != scipy's {ref.shape}"
    scale = max(float(np.max(np.abs(ref))), 1e-30)
    err = float(np.max(np.abs(out.astype(np.float64) - ref))) / scale
    if not err <= rtol:
        return f"{name}: max |diff| / max |scipy| = {err:.3g} > {rtol:g}"
    return None


def run_cell(size: int, kernel: int, mode: str, dtype_name: str, args: argparse.Namespace,
             libs: tuple[Any, Any, Any, Any], budget: timing.Budget,
             rng: np.random.Generator) -> dict[str, Any]:
    np, scipy_signal, cnnative, torch = libs
    dtype = np.dtype(dtype_name)
    image = rng.standard_normal((size, size)).astype(dtype)
    weights = rng.standard_normal((kernel, kernel)).astype(dtype)
    # Flipped once outside the timed call: a user correlating through fftconvolve would keep
    # the flipped kernel around too, and a contiguous copy avoids timing a strided view.
    flipped = np.ascontiguousarray(weights[::-1, ::-1])

    contenders = {
        "scipy": lambda: scipy_signal.correlate2d(image, weights, mode),
        "cnnative": lambda: cnnative.correlate2d(image, weights, mode, method="direct"),
        "auto": lambda: cnnative.correlate2d(image, weights, mode, method="auto"),
        "fft": lambda: scipy_signal.fftconvolve(image, flipped, mode),
    }
    if mode == "same" and kernel % 2 == 0:
        # For even kernels fftconvolve's 'same' window starts at (K-1)//2 of the full result
        # and correlate2d's at K//2; slicing 'full' costs the same (fftconvolve computes the
        # full result for 'same' anyway) and keeps the comparison about the same output.
        lo = kernel // 2
        contenders["fft"] = lambda: scipy_signal.fftconvolve(image, flipped, "full")[
            lo:lo + size, lo:lo + size]
    if torch is not None:
        x = torch.from_numpy(image).reshape(1, 1, size, size)
        w = torch.from_numpy(weights).reshape(1, 1, kernel, kernel)
        pad = torch_padding(mode, kernel)
        conv2d = torch.nn.functional.conv2d

        # No grad-mode context needed: the tensors do not require grad, so no graph is built.
        contenders["torch"] = lambda: conv2d(x, w, padding=pad)[0, 0]
    if args.scaling is not None:
        scaled = args.scaling
        contenders["scaled"] = lambda: cnnative.correlate2d(image, weights, mode, method="direct",
                                                            num_threads=scaled)

    # One untimed pass doubles as the correctness check and warms every contender up.
    problems = []
    reference = contenders["scipy"]()
    mismatch = compare_exact("cnnative direct", contenders["cnnative"](), reference)
    exact = mismatch is None
    if mismatch:
        problems.append(mismatch)
    if "scaled" in contenders:
        mismatch = compare_exact(f"cnnative on {args.scaling} threads", contenders["scaled"](),
                                 reference)
        exact = exact and mismatch is None
        if mismatch:
            problems.append(mismatch)
    rtol = SANITY_RTOL[dtype_name]
    for name in ("auto", "fft", "torch"):
        if name in contenders:
            out = contenders[name]()
            out = out.numpy() if name == "torch" else out
            problem = compare_close(name, out, reference, rtol)
            if problem:
                problems.append(problem)

    timings = timing.time_interleaved(
        contenders, budget.for_next_cell(), min_sample_s=args.min_sample_ms * 1e-3,
        min_repeats=args.min_repeats, max_repeats=args.max_repeats)
    budget.cell_done()

    med = {name: t.median for name, t in timings.items()}
    return {
        "image": size, "kernel": kernel, "mode": mode, "dtype": dtype_name,
        "exact": exact, "problems": problems,
        "auto_method": cnnative.choose_method(image, weights, mode),
        "speedup": med["scipy"] / med["cnnative"],
        "auto_vs_fft": med["fft"] / med["auto"],
        "torch_vs_cnnative": med["torch"] / med["cnnative"] if "torch" in med else None,
        "scaling": (timing.paired_ratio(timings["cnnative"], timings["scaled"])
                    if "scaled" in timings else None),
        "timings": {name: t.as_dict() for name, t in timings.items()},
        "spread": timing.median_spread(timings.values()),
    }


def table_rows(cells: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for c in cells:
        t = c["timings"]
        rows.append([
            f"{c['image']}²", f"{c['kernel']}x{c['kernel']}", c["mode"], c["dtype"],
            timing.format_us(t["scipy"]["median_s"]),
            timing.format_us(t["cnnative"]["median_s"]) + ("" if c["exact"] else " (!)"),
            timing.format_ratio(c["speedup"]),
            timing.format_us(t["auto"]["median_s"]),
            c["auto_method"],
            timing.format_us(t["fft"]["median_s"]),
            timing.format_ratio(c["auto_vs_fft"]),
            timing.format_us(t["torch"]["median_s"]) if "torch" in t else "-",
        ] + ([timing.format_us(t["scaled"]["median_s"]), timing.format_ratio(c["scaling"])]
             if c.get("scaling") is not None else []))
    return rows


def summarise(cells: Sequence[dict[str, Any]]) -> dict[str, Any]:
    speedups = [c["speedup"] for c in cells]
    worst = min(cells, key=lambda c: c["speedup"])
    summary = {
        "cells": len(cells),
        "median_speedup": statistics.median(speedups),
        "min_speedup": worst["speedup"],
        "min_speedup_cell": {k: worst[k] for k in ("image", "kernel", "mode", "dtype")},
        "all_exact": all(c["exact"] for c in cells),
        "auto_vs_fft_256_15": [
            {k: c[k] for k in ("mode", "dtype", "auto_method", "auto_vs_fft")}
            | {"auto_s": c["timings"]["auto"]["median_s"], "fft_s": c["timings"]["fft"]["median_s"]}
            for c in cells if c["image"] == 256 and c["kernel"] == 15],
    }
    torch_ratios = [c["torch_vs_cnnative"] for c in cells if c["torch_vs_cnnative"] is not None]
    if torch_ratios:
        summary["median_torch_vs_cnnative"] = statistics.median(torch_ratios)
    scaling = [c["scaling"] for c in cells if c.get("scaling") is not None]
    if scaling:
        summary["median_scaling"] = statistics.median(scaling)
    # 'same' and 'full' against 'valid' on the same image and kernel (cnnative's times): the
    # border handling should cost little beyond the extra outputs.
    valid = {(c["image"], c["kernel"], c["dtype"]): c["timings"]["cnnative"]["median_s"]
             for c in cells if c["mode"] == "valid"}
    summary["border_vs_valid"] = [
        {k: c[k] for k in ("image", "kernel", "mode", "dtype")}
        | {"ratio": c["timings"]["cnnative"]["median_s"] / valid[c["image"], c["kernel"], c["dtype"]]}
        for c in cells if c["mode"] != "valid" and (c["image"], c["kernel"], c["dtype"]) in valid]
    return summary


def summary_lines(summary: dict[str, Any]) -> list[str]:
    w = summary["min_speedup_cell"]
    lines = [
        f"Summary: median speedup (scipy/cnnative direct) over {summary['cells']} cells "
        f"{summary['median_speedup']:.1f}x; minimum {summary['min_speedup']:.2f}x at "
        f"{w['image']}² / {w['kernel']}x{w['kernel']} / {w['mode']} / {w['dtype']}; "
        f"bit-exact vs scipy: {'all cells' if summary['all_exact'] else 'NO, see errors above'}.",
    ]
    at_256 = summary["auto_vs_fft_256_15"]
    if at_256:
        us, ratio = timing.format_us, timing.format_ratio
        parts = [f"{c['mode']}/{c['dtype']} {us(c['auto_s'])} µs ({c['auto_method']}) "
                 f"vs {us(c['fft_s'])} µs = {ratio(c['auto_vs_fft'])}" for c in at_256]
        lines.append("256²/15x15 auto vs fftconvolve (fft/auto, >1 means auto is faster): "
                     + "; ".join(parts) + ".")
    else:
        lines.append("256²/15x15 auto vs fftconvolve: not in this grid.")
    if "median_torch_vs_cnnative" in summary:
        lines.append(f"torch conv2d / cnnative direct, median over the grid: "
                     f"{summary['median_torch_vs_cnnative']:.2f}x.")
    if "median_scaling" in summary:
        lines.append(f"cnnative on N threads vs one, median over the grid: "
                     f"{summary['median_scaling']:.2f}x.")
    large = [c for c in summary["border_vs_valid"] if c["image"] >= 512]
    if large:
        worst = max(large, key=lambda c: c["ratio"])
        lines.append(f"'same'/'full' vs 'valid' time at >= 512 px: at most {worst['ratio']:.2f}x "
                     f"({worst['image']}² / {worst['kernel']}x{worst['kernel']} / {worst['mode']} / "
                     f"{worst['dtype']}).")
    return lines


def plot(cells: Sequence[dict[str, Any]], path: str, pyplot: ModuleType) -> None:
    modes = list(dict.fromkeys(c["mode"] for c in cells))
    fig, axes = pyplot.subplots(1, len(modes), figsize=(4.2 * len(modes), 3.8), sharey=True,
                                squeeze=False)
    kernels = sorted({c["kernel"] for c in cells})
    colours = pyplot.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, mode in zip(axes[0], modes):
        for i, kernel in enumerate(kernels):
            for dtype, style in (("float32", "-"), ("float64", "--")):
                pts = sorted((c["image"], c["speedup"]) for c in cells
                             if c["mode"] == mode and c["kernel"] == kernel and c["dtype"] == dtype)
                if pts:
                    ax.plot(*zip(*pts), style, marker="o", color=colours[i % len(colours)],
                            label=f"{kernel}x{kernel} {dtype}")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xscale("log", base=2)
        # Label the measured sizes themselves; powers of two in exponent form read poorly.
        sizes = sorted({c["image"] for c in cells})
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xticks([], minor=True)
        ax.set_yscale("log")
        ax.set_title(f"mode='{mode}'")
        ax.set_xlabel("image size (px, square)")
    axes[0][0].set_ylabel("speedup over scipy.signal.correlate2d")
    axes[0][-1].legend(fontsize="small")
    fig.suptitle("cnnative.correlate2d(method='direct') vs scipy")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    pyplot.close(fig)


def main(argv: Sequence[str] | None = None, results: str = RESULTS,
         reexec: bool | None = None) -> int:
    """Run the benchmark; returns the exit status.  As a program's main (``argv`` None, or
    ``reexec`` true) it may restart the process to size the libraries' thread pools (see
    ``timing.configure_threads``); called with an explicit ``argv`` it never does."""
    args = parse_args(argv, results)
    threads = timing.configure_threads(args.threads, argv is None if reexec is None else reexec)

    import numpy as np
    import scipy
    import scipy.signal as scipy_signal
    import cnnative

    cnnative.set_num_threads(threads)
    if args.no_torch:
        torch, torch_reason = None, "--no-torch"
    else:
        torch, torch_reason = optional_import("torch")  # type: ignore[assignment]  # str if no torch
    if torch is not None:
        torch.set_num_threads(threads)
    detected, active = cnnative._native.correlate.simd_info()

    cells_spec = [(s, k, m, d) for s in sorted(args.sizes) for k in sorted(args.kernels)
                  for m in args.modes for d in args.dtypes]
    print(f"# cnnative {cnnative.__version__} (SIMD detected {detected}, active {active}), "
          f"numpy {np.__version__}, scipy {scipy.__version__}, "
          f"torch {torch.__version__ if torch is not None else 'not used (' + torch_reason + ')'}; "
          f"threads {threads}; {len(cells_spec)} cells, budget {args.budget:g} s", file=sys.stderr)

    rng = np.random.default_rng(args.seed)
    budget = timing.Budget(args.budget, len(cells_spec))
    cells, failures = [], 0
    for n, (size, kernel, mode, dtype) in enumerate(cells_spec, 1):
        if mode == "valid" and kernel > size:
            # scipy would swap the inputs: a different computation from the rest of the row.
            print(f"skip {size}²/{kernel}x{kernel}/valid: kernel larger than image",
                  file=sys.stderr)
            budget.cell_done()
            continue
        cell = run_cell(size, kernel, mode, dtype, args, (np, scipy_signal, cnnative, torch),
                        budget, rng)
        cells.append(cell)
        label = f"{size}²/{kernel}x{kernel}/{mode}/{dtype}"
        for problem in cell["problems"]:
            failures += 1
            print(f"\n!!!!! MISMATCH in {label}: {problem}\n", file=sys.stderr)
        print(f"[{n}/{len(cells_spec)} {budget.elapsed:6.1f} s] {label}: speedup "
              f"{cell['speedup']:.2f}x, repeats {cell['timings']['scipy']['repeats']}",
              file=sys.stderr)

    if not cells:
        print("nothing to time: the filters left no cells", file=sys.stderr)
        return 2
    summary = summarise(cells)
    scaled = args.scaling is not None
    print(timing.markdown_table(HEADERS + (SCALING_HEADERS if scaled else []), table_rows(cells),
                                align="llllrrrrlrrr" + ("rr" if scaled else "")))
    print()
    for text in summary_lines(summary):
        print(text)
    spreads = [c["spread"] for c in cells if not math.isnan(c["spread"])]
    noise = statistics.median(spreads) if spreads else math.nan
    print(f"(medians of interleaved repeats, each sample >= {args.min_sample_ms:g} ms; speedup = "
          f"scipy/cnnative; auto-vs-fft = fftconvolve/auto; noise: median IQR/median "
          f"{noise:.0%}; load average {os.getloadavg()[0]:.1f}; {budget.elapsed:.0f} s total)")

    payload = {
        "benchmark": "signal.correlate2d",
        "environment": timing.environment(
            threads=threads, simd={"detected": detected, "active": active},
            torch_skipped=None if torch is not None else torch_reason),
        "settings": {k: getattr(args, k) for k in ("quick", "sizes", "kernels", "modes", "dtypes",
                                                   "budget", "min_sample_ms", "min_repeats",
                                                   "max_repeats", "seed", "scaling")},
        "elapsed_s": budget.elapsed,
        "summary": summary,
        "cells": cells,
    }
    print(f"raw results: {timing.write_json(args.json, payload)}", file=sys.stderr)

    pyplot, reason = import_pyplot()
    if pyplot is None:
        print(f"no plot: matplotlib not importable ({reason})", file=sys.stderr)
    elif cells:
        plot(cells, args.plot, pyplot)
        print(f"plot: {args.plot}", file=sys.stderr)

    if failures:
        print(f"\n!!!!! {failures} mismatch(es) against scipy; see above.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
