"""Benchmark machinery: timing helpers (:mod:`cnnative.bench.timing`) shared by
``cnnative bench`` and the scripts in ``benchmarks/``, and the native-vs-scipy benchmark
behind ``cnnative bench`` (:mod:`cnnative.bench.signal`, also ``python -m cnnative.bench``)."""
from . import timing
from .signal import main

__all__ = ["timing", "main"]
