"""cnnative: native kernels for training convolutional networks from scratch in NumPy.

The top level is the kernel API: scipy.signal-style ``correlate2d``/``convolve2d`` and
``correlate``/``convolve`` (N-d), and
torch.nn.functional-style ``conv2d``, ``max_pool2d``, ``avg_pool2d``, ``global_avg_pool2d``,
``batch_norm`` and ``dense`` (with their backward passes), plus :class:`Network`,
:class:`Ensemble`, :func:`load`, :func:`save` and :func:`gradcheck`.  Subpackages: :mod:`cnnative.nn` (layers,
containers, losses), :mod:`cnnative.optim`, :mod:`cnnative.models`, :mod:`cnnative.io`, and,
loaded on first use, :mod:`cnnative.datasets`, :mod:`cnnative.training` (the loop behind
``Network.fit``: callbacks, checkpoints), :mod:`cnnative.primer`,
:mod:`cnnative.testing` (slow NumPy references) and :mod:`cnnative.bench`.
"""
import importlib

from ._threads import get_num_threads, set_num_threads
from .conv import conv2d, conv2d_backward
from .dense import dense, dense_backward
from .pooling import max_pool2d, max_pool2d_backward
from .pooling import (avg_pool2d, avg_pool2d_backward, global_avg_pool2d,
                      global_avg_pool2d_backward)
from .norm import batch_norm, batch_norm_backward
from .signal import choose_method, convolve, convolve2d, correlate, correlate2d
from . import nn, optim
from .network import Network
from .ensemble import Ensemble
from . import models
from ._gradcheck import GradcheckError, gradcheck
from .io import load, save

__version__ = "0.1.0"

__all__ = [
    "correlate2d", "convolve2d", "correlate", "convolve", "choose_method",
    "conv2d", "conv2d_backward",
    "dense", "dense_backward",
    "max_pool2d", "max_pool2d_backward",
    "avg_pool2d", "avg_pool2d_backward", "global_avg_pool2d", "global_avg_pool2d_backward",
    "batch_norm", "batch_norm_backward",
    "get_num_threads", "set_num_threads",
    "Network", "Ensemble", "load", "save", "gradcheck", "GradcheckError",
    "nn", "optim", "models", "datasets", "io", "training", "primer", "testing", "bench",
    "__version__",
]

# Imported when first used, as `cnnative.datasets` or `import cnnative.datasets`: each pulls
# in modules (gzip, hashlib, scipy.signal, the benchmark machinery) most programs never need.
_LAZY_SUBPACKAGES = ("datasets", "training", "primer", "testing", "bench")


def __getattr__(name):
    if name in _LAZY_SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBPACKAGES))
