"""Reading and writing models: cnnative's own model files, and ONNX export.

This package builds on :class:`cnnative.Network` and :mod:`cnnative.nn`; nothing in them
imports it back.
"""
from .model_file import FORMAT, VERSION, load, save
from .onnx_export import export_onnx

__all__ = ["save", "load", "export_onnx", "FORMAT", "VERSION"]
