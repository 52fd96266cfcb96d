"""Slow, obvious pure-NumPy references for cnnative's kernels, for tests and benchmarks.

Each function here computes what a public kernel computes, the plain way (loops over kernel
taps or windows, float64 accumulation), so that the fast kernels can be checked against it
over many shapes, dtypes and layouts (as bottleneck's ``bn.slow`` does for bottleneck).
``correlate2d``/``convolve2d`` need none: scipy.signal is their reference, to the bit.

- :func:`conv2d`, :func:`conv2d_backward`: batched convolution and its gradients;
- :func:`max_pool2d`, :func:`max_pool2d_backward`: max pooling with PyTorch's argmax rule;
- :func:`dense`, :func:`dense_backward`: fully connected layers;
- :func:`numeric_gradient`: central differences of a scalar function;
- :mod:`cnnative.testing.primer`: the primer article's scipy formulas, written out plainly.
"""
from .conv import conv2d, conv2d_backward
from .dense import dense, dense_backward
from .gradients import numeric_gradient
from .pooling import max_pool2d, max_pool2d_backward

__all__ = ["conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "dense",
           "dense_backward", "numeric_gradient"]
