"""Ready-made networks."""
from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from . import _validation
from .nn import (AvgPool2D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D,
                 Layer, MaxPool2D, ReLU, Residual, Sequential, Tanh)
from .network import Network

__all__ = ["nielsen", "resnet", "lenet5", "vgg"]


def nielsen(dtype: DTypeLike = np.float32, seed: int | None = 0, dropout: float = 0.0) -> Network:
    """Nielsen's MNIST network ("Neural Networks and Deep Learning", chapter 6), for
    (N, 1, 28, 28) digits and 10 classes, with ReLU and softmax cross-entropy.

    Conv2D(1, 20, 5) + ReLU + MaxPool2D(2) -> Conv2D(20, 40, 5) + ReLU + MaxPool2D(2) ->
    Flatten -> Dense(640, 100) + ReLU -> Dense(100, 10).  ``dropout`` > 0 puts a Dropout layer
    before each dense layer.  ``seed`` fixes the He-initialised weights.  In torch, with the
    same :meth:`~cnnative.Network.state_dict` keys ("0.weight", ..., "9.bias")::

        drop = [nn.Dropout(dropout)] if dropout else []     # no module at all for 0
        nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(20, 40, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      *drop, nn.Linear(640, 100), nn.ReLU(),
                      *drop, nn.Linear(100, 10))

    Exported to ONNX (:func:`cnnative.io.export_onnx`) with ``input_shape=(1, 28, 28)``.
    """
    seeds = np.random.SeedSequence(seed).spawn(4)

    def drop() -> list[Layer]:
        return [Dropout(dropout)] if dropout else []

    return Network([
        Conv2D(1, 20, 5, dtype=dtype, rng=seeds[0]), ReLU(), MaxPool2D(2),
        Conv2D(20, 40, 5, dtype=dtype, rng=seeds[1]), ReLU(), MaxPool2D(2),
        Flatten(),
        *drop(), Dense(640, 100, dtype=dtype, rng=seeds[2]), ReLU(),
        *drop(), Dense(100, 10, dtype=dtype, rng=seeds[3]),
    ])


def resnet(depth: int = 20, in_channels: int = 1, num_classes: int = 10, width: int = 16,
           dtype: DTypeLike = np.float32, seed: int = 0) -> Network:
    """The CIFAR-style residual network of He et al. (2016, section 4.2), for 28x28 inputs.

    A 3x3 convolution (``width`` filters) with batch norm and ReLU, then three stages of
    (depth - 2) / 6 basic blocks with ``width``, 2 * ``width`` and 4 * ``width`` filters; each
    block is two 3x3 convolutions with batch norm (ReLU between them, and after the sum), the
    first block of stages 2 and 3 halving the resolution with stride 2 and a projection
    shortcut (a strided 1x1 convolution with batch norm); then global average pooling and one
    dense layer.  Convolutions before a batch norm have no bias.  ``depth`` = 6n + 2: 20, 32,
    44, 56, 110.

    The same network in torch, with the same :meth:`~cnnative.Network.state_dict` keys
    ("0.weight", "1.running_mean", "3.body.0.weight", "9.shortcut.0.weight", ...)::

        class Residual(nn.Module):                      # cnnative.nn.Residual
            def __init__(self, *body, shortcut=None):
                super().__init__()
                self.body = nn.Sequential(*body)
                self.shortcut = nn.Identity() if shortcut is None else shortcut

            def forward(self, x):
                return self.body(x) + self.shortcut(x)

        def block(cin, cout, stride):                   # two positions: the block, its ReLU
            shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))
                        if stride != 1 or cin != cout else None)
            return [Residual(nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                             shortcut=shortcut), nn.ReLU()]

        nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                      nn.BatchNorm2d(width), nn.ReLU(),
                      *blocks,                          # block(...) of each stage, in order
                      nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),  # one position
                      nn.Linear(4 * width, num_classes))

    (:func:`cnnative.testing.torch_models.resnet` builds it.)  Exported to ONNX with
    ``input_shape=(in_channels, 28, 28)`` (or any other height and width: global average
    pooling makes the network take any).
    """
    depth = _validation.positive_int(depth, "depth", "resnet")
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"resnet: depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), "
                         f"got {depth}")
    in_channels = _validation.positive_int(in_channels, "in_channels", "resnet")
    num_classes = _validation.positive_int(num_classes, "num_classes", "resnet")
    width = _validation.positive_int(width, "width", "resnet")
    blocks_per_stage = (depth - 2) // 6
    # One seed per weighted layer: the stem, two convolutions a block, the two projection
    # shortcuts and the dense layer.
    seeds = iter(np.random.SeedSequence(seed).spawn(6 * blocks_per_stage + 4))

    def conv(cin: int, cout: int, kernel: int, stride: int = 1) -> Conv2D:
        return Conv2D(cin, cout, kernel, stride, kernel // 2, bias=False, dtype=dtype,
                      rng=next(seeds))

    def norm(channels: int) -> BatchNorm2D:
        return BatchNorm2D(channels, dtype=dtype)

    layers: list[Layer] = [conv(in_channels, width, 3), norm(width), ReLU()]
    channels = width
    for stage in range(3):
        out = width << stage
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            shortcut = (Sequential(conv(channels, out, 1, stride), norm(out))
                        if stride != 1 or channels != out else None)
            layers += [Residual(conv(channels, out, 3, stride), norm(out), ReLU(),
                                conv(out, out, 3), norm(out), shortcut=shortcut), ReLU()]
            channels = out
    layers += [GlobalAvgPool2D(), Dense(channels, num_classes, dtype=dtype, rng=next(seeds))]
    return Network(layers)


def vgg(width: int = 24, in_channels: int = 1, num_classes: int = 10,
        dtype: DTypeLike = np.float32, seed: int = 0) -> Network:
    """A small VGG-style network with batch norm, for 28x28 images (``--preset fashion``).

    Blocks of a 3x3 convolution (padding 1, no bias), batch norm and ReLU: two with ``width``
    filters at 28x28, max pooling, two with 2 * ``width`` at 14x14, max pooling, one with
    4 * ``width`` at 7x7; then global average pooling and one dense layer.  Plain stride-1
    convolutions with many channels are what the kernels run fastest, which is why, for the
    same time, this network trains further on Fashion-MNIST than :func:`resnet`.

    The same network in torch, with the same :meth:`~cnnative.Network.state_dict` keys::

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        nn.Sequential(*block(in_channels, width), *block(width, width), nn.MaxPool2d(2),
                      *block(width, 2 * width), *block(2 * width, 2 * width), nn.MaxPool2d(2),
                      *block(2 * width, 4 * width),
                      nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),  # one position
                      nn.Linear(4 * width, num_classes))

    (:func:`cnnative.testing.torch_models.vgg` builds it.)  Exported to ONNX with
    ``input_shape=(in_channels, 28, 28)`` (global average pooling makes it take any height and
    width of at least 4).
    """
    func = "vgg"
    width = _validation.positive_int(width, "width", func)
    in_channels = _validation.positive_int(in_channels, "in_channels", func)
    num_classes = _validation.positive_int(num_classes, "num_classes", func)
    seeds = iter(np.random.SeedSequence(seed).spawn(6))

    def block(cin: int, cout: int) -> list[Layer]:
        return [Conv2D(cin, cout, 3, padding=1, bias=False, dtype=dtype, rng=next(seeds)),
                BatchNorm2D(cout, dtype=dtype), ReLU()]

    return Network([
        *block(in_channels, width), *block(width, width), MaxPool2D(2),
        *block(width, 2 * width), *block(2 * width, 2 * width), MaxPool2D(2),
        *block(2 * width, 4 * width), GlobalAvgPool2D(),
        Dense(4 * width, num_classes, dtype=dtype, rng=next(seeds)),
    ])


def lenet5(dtype: DTypeLike = np.float32, seed: int = 0, num_classes: int = 10) -> Network:
    """LeNet-5 (LeCun et al. 1998) as usually reimplemented, for (N, 1, 28, 28) digits: tanh
    activations, average pooling, Xavier initialisation, softmax cross-entropy.

    Conv2D(1, 6, 5, padding=2) + Tanh + AvgPool2D(2) -> Conv2D(6, 16, 5) + Tanh + AvgPool2D(2)
    -> Flatten -> Dense(400, 120) + Tanh -> Dense(120, 84) + Tanh -> Dense(84, num_classes).
    The historical counterpart of :func:`nielsen`.  In torch, with the same
    :meth:`~cnnative.Network.state_dict` keys::

        nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
                      nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                      nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                      nn.Linear(84, num_classes))

    Exported to ONNX with ``input_shape=(1, 28, 28)``.
    """
    num_classes = _validation.positive_int(num_classes, "num_classes", "lenet5")
    seeds = np.random.SeedSequence(seed).spawn(5)
    xavier = {"init": "xavier", "dtype": dtype}
    return Network([
        Conv2D(1, 6, 5, padding=2, rng=seeds[0], **xavier), Tanh(), AvgPool2D(2),
        Conv2D(6, 16, 5, rng=seeds[1], **xavier), Tanh(), AvgPool2D(2),
        Flatten(),
        Dense(400, 120, rng=seeds[2], **xavier), Tanh(),
        Dense(120, 84, rng=seeds[3], **xavier), Tanh(),
        Dense(84, num_classes, rng=seeds[4], **xavier),
    ])
