"""Slow, obvious pure-NumPy references for cnnative's kernels, for tests and benchmarks.

Each function here computes what a public kernel computes, the plain way (loops over kernel
taps or windows, float64 accumulation), so that the fast kernels can be checked against it
over many shapes, dtypes and layouts (as bottleneck's ``bn.slow`` does for bottleneck).
``correlate2d``/``convolve2d`` need none: scipy.signal is their reference, to the bit.

- :func:`conv2d`, :func:`conv2d_backward`: batched convolution and its gradients;
- :func:`max_pool2d`, :func:`max_pool2d_backward`: max pooling with PyTorch's argmax rule;
- :func:`avg_pool2d`, :func:`avg_pool2d_backward`, :func:`global_avg_pool2d`,
  :func:`global_avg_pool2d_backward`: average pooling;
- :func:`batch_norm`, :func:`batch_norm_backward`: batch normalisation from the formulas;
- :func:`dense`, :func:`dense_backward`: fully connected layers; :func:`batch_sum`: a sum over
  a batch in the order of cnnative's batch reductions (blocks of 8 rows, then a tree);
- :func:`numeric_gradient`: central differences of a scalar function;
- :func:`correlate`, :func:`convolve`: N-d correlation in scipy's direct summation order
  (bit-exact with scipy.signal.correlate's N-d path, and covering 1-D, where scipy uses
  numpy.correlate);
- :func:`random_crop`, :func:`random_flip`: the augmentations of cnnative.datasets.augment,
  drawing the same random numbers;
- :mod:`cnnative.testing.primer`: the primer article's scipy formulas, written out plainly.
- :mod:`cnnative.testing.torch_models`: the torch definitions in cnnative.models' docstrings,
  built from the torch module the caller passes in.
"""
from .augment import random_crop, random_flip
from .conv import conv2d, conv2d_backward
from .dense import batch_sum, dense, dense_backward
from .gradients import numeric_gradient
from .norm import batch_norm, batch_norm_backward
from .signal import convolve, correlate
from .pooling import (avg_pool2d, avg_pool2d_backward, global_avg_pool2d,
                      global_avg_pool2d_backward, max_pool2d, max_pool2d_backward)

__all__ = ["conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "dense",
           "dense_backward", "numeric_gradient", "avg_pool2d", "avg_pool2d_backward",
           "global_avg_pool2d", "global_avg_pool2d_backward", "batch_norm", "batch_norm_backward",
           "random_crop", "random_flip", "correlate", "convolve", "batch_sum"]
