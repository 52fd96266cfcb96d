"""cnnative: native kernels for training convolutional networks from scratch in NumPy."""
from ._threads import get_num_threads, set_num_threads
from .conv import conv2d, conv2d_backward
from .dense import dense, dense_backward
from .pooling import max_pool2d, max_pool2d_backward
from .signal import choose_method, convolve2d, correlate2d
from . import layers, losses, models, optim
from ._gradcheck import GradcheckError, gradcheck
from .network import Network
from .model_io import load

__version__ = "0.1.0"

__all__ = [
    "correlate2d", "convolve2d", "choose_method",
    "conv2d", "conv2d_backward",
    "dense", "dense_backward",
    "max_pool2d", "max_pool2d_backward",
    "get_num_threads", "set_num_threads",
    "layers", "losses", "optim", "models", "Network", "load", "gradcheck", "GradcheckError",
    "__version__",
]
