"""Reading and writing models: cnnative's own model files (and, later, export formats).

This package builds on :class:`cnnative.Network` and :mod:`cnnative.nn`; nothing in them
imports it back.
"""
from .model_file import FORMAT, VERSION, load, save

__all__ = ["save", "load", "FORMAT", "VERSION"]
