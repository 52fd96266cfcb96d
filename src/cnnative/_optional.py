"""Optional dependencies (matplotlib, torch, ...), imported in one place.

The package itself needs only numpy, scipy and tqdm; anything else is imported through
:func:`optional_import`, whose caller turns a missing module into one clear message.
"""
import importlib
from types import ModuleType
from typing import Optional

__all__ = ["optional_import", "import_pyplot"]


def optional_import(name: str) -> tuple[Optional[ModuleType], Optional[str]]:
    """``(module, None)`` if ``name`` imports, else ``(None, reason)``.

    Catches more than ImportError because broken binary installs (torch in particular) fail with
    OSError or RuntimeError, and a benchmark should then skip the contender, not crash.
    """
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]


def import_pyplot() -> tuple[Optional[ModuleType], Optional[str]]:
    """matplotlib.pyplot on the non-interactive Agg backend, or ``(None, reason)``."""
    matplotlib, reason = optional_import("matplotlib")
    if matplotlib is None:
        return None, reason
    # Agg so plotting works on headless machines and never opens a window mid-benchmark.
    matplotlib.use("Agg")
    return optional_import("matplotlib.pyplot")
