"""Timing helpers shared by ``cnnative bench`` and the scripts in ``benchmarks/``.

Only the standard library is imported at module level.  BLAS/OpenMP pools read their size
once, when numpy, scipy or torch start, so ``configure_threads`` re-executes the process with
the thread environment in place when one of them is already imported (as it is once
``cnnative`` is).

Typical use in a benchmark script::

    args = parser.parse_args()
    threads = timing.configure_threads(args.threads)
    import numpy as np
    budget = timing.Budget(args.budget, n_cells)
    for cell in cells:
        timings = timing.time_interleaved({"a": f, "b": g}, budget.for_next_cell())
        budget.cell_done()
"""
from __future__ import annotations

import gc
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from .._optional import import_pyplot, optional_import

__all__ = [
    "configure_threads", "optional_import", "import_pyplot",
    "Timing", "calibrate", "time_interleaved", "Budget", "median_spread",
    "format_us", "format_ratio", "markdown_table",
    "environment", "write_json",
]

# Variables read by the thread pools numpy/scipy/torch/cnnative may start. Setting all of them
# keeps "1 thread" honest whatever BLAS the wheels happen to bundle.
_THREAD_ENV_VARS = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "CNNATIVE_NUM_THREADS",
)
_LATE_MODULES = ("numpy", "scipy", "torch")
_REEXECUTED = "CNNATIVE_BENCH_REEXECUTED"


def configure_threads(threads: int | None = None, reexec: bool = True) -> int:
    """Pin every library thread pool to ``threads`` (default 1) via the environment; returns it.

    When numpy, scipy or torch is already imported and the environment did not say so yet,
    their pools are sized already.  With ``reexec`` (for a program's main), the process is then
    re-executed once, same command line (``sys.orig_argv``), with the environment set, so the
    call does not return; otherwise it warns.
    """
    n = 1 if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    settled = all(os.environ.get(var) == str(n) for var in _THREAD_ENV_VARS)
    for var in _THREAD_ENV_VARS:
        os.environ[var] = str(n)
    # OpenMP workers (torch's) otherwise spin for a while after each call; with contenders
    # interleaved on a 2-core machine that spinning steals the cores from whoever runs next.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    early = [name for name in _LATE_MODULES if name in sys.modules]
    if early and not settled:
        if os.environ.get(_REEXECUTED) or not reexec:
            print(f"warning: {', '.join(early)} started before the thread settings; their "
                  "pools may ignore them", file=sys.stderr)
        else:
            os.environ[_REEXECUTED] = "1"
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    return n


@dataclass
class Timing:
    """Per-call seconds of one contender: one sample per repeat, each the mean of ``number`` calls."""
    name: str
    number: int
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median: a quick noise indicator for the reader."""
        if len(self.samples) < 4:
            return math.nan
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return (q3 - q1) / self.median

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median, "number": self.number, "repeats": len(self.samples),
            "iqr_over_median": None if math.isnan(self.spread) else self.spread,
            "samples_s": self.samples,
        }


def paired_ratio(numerator: Timing, denominator: Timing) -> float:
    """Median over repeats of the ratio of the two contenders' samples in the same repeat.

    The samples of one repeat (see :func:`time_interleaved`) ran moments apart, so when the
    machine's speed drifts from repeat to repeat (a shared host), both move alike and their
    ratio stays put, where the ratio of the two medians would mix different moments.
    """
    ratios = [a / b for a, b in zip(numerator.samples, denominator.samples) if b > 0]
    return statistics.median(ratios) if ratios else math.nan


def _run_batch(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


def calibrate(fn: Callable[[], object], min_sample_s: float = 2e-3) -> tuple[int, float]:
    """``(number, seconds_per_call)``, ``number`` calls making one sample last >= ``min_sample_s``.

    perf_counter resolution and loop overhead are negligible against ~2 ms, while fast calls
    (tens of microseconds) would otherwise be dominated by timer jitter.
    """
    first = _run_batch(fn, 1)  # warm-up: first calls pay for caches, page faults, plan setup
    if first >= 5 * min_sample_s:
        # Slow enough that a second calibration call would only burn budget; the warm-up
        # overestimates a little, which merely errs toward fewer repeats.
        return 1, first
    number = 1
    while True:
        elapsed = _run_batch(fn, number)
        if elapsed >= min_sample_s:
            return number, elapsed / number
        # Jump close to the target in one step instead of doubling from 1 for 1 µs calls.
        guess = int(number * 1.2 * min_sample_s / max(elapsed, 1e-9)) + 1
        number = max(2 * number, min(guess, 100 * number))


def time_interleaved(contenders: Mapping[str, Callable[[], object]], budget_s: float, *,
                     min_sample_s: float = 2e-3, min_repeats: int = 3,
                     max_repeats: int = 21) -> dict[str, Timing]:
    """Time several callables against each other; returns ``{name: Timing}``.

    Each repeat runs every contender once, in an order shuffled per repeat, so slow drift
    (thermal or frequency changes, other load) and "who ran just before" effects hit all
    contenders alike; the medians are then compared.  (Rotating a fixed order would not do
    for the second: each contender would nearly always follow the same one, and a call
    after a large one that evicted the caches is measured slower.) The number of repeats is what fits in
    what is left of ``budget_s`` after calibration, clamped to ``[min_repeats, max_repeats]``;
    ``min_repeats`` wins over the budget so every median is over a few samples at least.
    """
    names = list(contenders)
    start = time.perf_counter()
    plan = {name: calibrate(contenders[name], min_sample_s) for name in names}
    # Calibration is charged to the same budget, so a cell's total stays near what it was given.
    left = budget_s - (time.perf_counter() - start)
    round_cost = sum(number * per_call for number, per_call in plan.values())
    repeats = int(left / round_cost) if round_cost > 0 else max_repeats
    repeats = max(min_repeats, min(max_repeats, repeats))
    timings = {name: Timing(name, plan[name][0]) for name in names}

    # A collection pass landing inside one contender's sample would bias that sample; timeit
    # disables gc for the same reason.
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        order = random.Random(0)
        for _ in range(repeats):
            for name in order.sample(names, len(names)):
                number = timings[name].number
                timings[name].samples.append(_run_batch(contenders[name], number) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings


class Budget:
    """Splits a total wall-clock budget over cells as the run goes.

    Each cell gets (time left) / (cells left). Cheap cells stop at ``max_repeats`` well under
    their share, so the unspent time rolls over to the expensive cells that come later; order
    the cells cheap-first to benefit.
    """

    def __init__(self, total_s: float, n_cells: int) -> None:
        self.total_s = float(total_s)
        self.cells_left = int(n_cells)
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def for_next_cell(self) -> float:
        left = max(self.total_s - self.elapsed, 0.0)
        return left / max(self.cells_left, 1)

    def cell_done(self) -> None:
        self.cells_left -= 1


def format_us(seconds: float | None) -> str:
    """Microseconds with about three significant digits; '-' for missing values."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    us = seconds * 1e6
    if us < 10:
        return f"{us:.2f}"
    if us < 100:
        return f"{us:.1f}"
    return f"{us:,.0f}"


def format_ratio(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def markdown_table(headers: Sequence[str], rows: Iterable[Iterable[object]],
                   align: str | None = None) -> str:
    """A GitHub-flavoured markdown table padded so it also reads well as plain text.

    ``align`` is a string of 'l'/'r' per column (default: first column left, the rest right).
    """
    rows = [[str(cell) for cell in row] for row in rows]
    align = align or "l" + "r" * (len(headers) - 1)
    # rows is now a list of lists (mypy keeps the parameter's Iterable type).
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]  # type: ignore[index]

    def line(cells):
        padded = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + (":" if a == "r" else "-") for w, a in zip(widths, align)]
    return "\n".join([line(headers), line(rule)] + [line(row) for row in rows])


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for text in f:
                if text.startswith("model name"):
                    return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_revision() -> str | None:
    # Which commit was measured matters when comparing result files; a dirty tree is flagged.
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _loadavg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def median_spread(timings: Iterable[Timing]) -> float:
    """Median of the relative IQRs of a set of Timing objects (NaN if none has enough samples).

    One number to print next to a results table: a few percent is a quiet machine, tens of
    percent means something else was competing for the CPU and the table deserves a rerun.
    """
    spreads = [t.spread for t in timings if not math.isnan(t.spread)]
    return statistics.median(spreads) if spreads else math.nan


def environment(**extra: Any) -> dict[str, Any]:
    """Machine and software description to store next to the numbers."""
    versions = {}
    for name in ("numpy", "scipy", "torch", "cnnative"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", None)
    try:
        cpus: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    info = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus_available": cpus,
        "versions": versions,
        "git": _git_revision(),
        "thread_env": {var: os.environ.get(var) for var in _THREAD_ENV_VARS},
        # Other load on the machine is the usual reason two runs disagree; keep the evidence.
        "loadavg": _loadavg(),
        "command": [sys.executable] + sys.argv,
    }
    info.update(extra)
    return info


def _json_safe(value: Any) -> Any:
    # NaN/inf are not valid JSON; null keeps the file loadable by strict parsers.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: str, payload: Any) -> str:
    """Write ``payload`` as indented JSON, creating parent directories; returns the path."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    # Write-then-rename so an interrupted run never leaves a truncated results file behind.
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(_json_safe(payload), f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    return path
