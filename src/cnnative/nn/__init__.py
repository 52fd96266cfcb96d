"""Layers, losses and initialisation: the building blocks of a :class:`cnnative.Network`.

Every layer has ``forward(x, training=True)``, ``backward(grad)``, ``params``/``grads`` dicts
and ``get_config()`` (see :class:`Layer`); each is a thin object over the stateless kernel
functions of the top-level :mod:`cnnative` (``conv2d``, ``max_pool2d``, ``dense``, ...).
Parameters are float32 unless a layer is built with ``dtype="float64"``; a layer fed another
float dtype raises ``TypeError`` (as the kernels do) instead of converting every batch.
"""
from . import init, losses
from .activations import LeakyReLU, ReLU, Sigmoid, Tanh, sigmoid
from .base import (Layer, layer_class, layer_from_config, named_layers, register, spec_of,
                   state_arrays)
from .containers import Residual, Sequential
from .conv import Conv2D
from .dropout import Dropout
from .linear import Dense, Flatten
from .losses import Loss, QuadraticCost, SigmoidCrossEntropy, SoftmaxCrossEntropy, get_loss
from .normalization import BatchNorm1D, BatchNorm2D
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D

__all__ = [
    "Layer", "Conv2D", "MaxPool2D", "Dense", "Flatten", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
    "Dropout", "Sequential", "Residual", "AvgPool2D", "GlobalAvgPool2D", "BatchNorm2D",
    "BatchNorm1D",
    "sigmoid", "layer_class", "layer_from_config", "named_layers", "register", "spec_of",
    "state_arrays",
    "Loss", "SoftmaxCrossEntropy", "QuadraticCost", "SigmoidCrossEntropy", "get_loss",
    "init", "losses",
]
