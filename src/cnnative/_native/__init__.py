"""Compiled kernels, one extension module per kernel family."""
import importlib


class LazyModule:
    """Stands for the extension module ``cnnative._native.<name>`` and imports it on first use.

    The conv and dense kernels cimport ``scipy.linalg.cython_blas``, whose import pulls in
    scipy.linalg: most of the time ``import cnnative`` would otherwise take, spent even by
    programs that never call them.  Each attribute is looked up once and then kept here.
    """

    def __init__(self, name):
        self._name = f"{__name__}.{name}"

    def __getattr__(self, attribute):
        value = getattr(importlib.import_module(self._name), attribute)
        setattr(self, attribute, value)
        return value
