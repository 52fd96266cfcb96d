"""Layers for NCHW batches, each a thin object over one native kernel call per batch.

Every layer has ``forward(x, training=True)`` returning its output and ``backward(grad)``
returning the gradient with respect to the input of the last ``forward``.  Trainable layers
keep their arrays in ``params`` (name -> ndarray, updated in place by the optimizers) and the
gradients of the last ``backward`` in ``grads`` (same names).  ``get_config()`` gives the
constructor arguments, which is what model files store next to the arrays.

Parameters are float32 unless a layer is built with ``dtype="float64"``; a layer fed another
float dtype raises ``TypeError`` (as the kernels do) instead of converting every batch.
"""
import contextvars

import numpy as np

from . import _validation
from .conv import conv2d, conv2d_backward
from .dense import dense, dense_backward
from .pooling import max_pool2d, max_pool2d_backward

__all__ = ["sigmoid", "Layer", "Conv2D", "MaxPool2D", "Dense", "Flatten", "ReLU", "Sigmoid", "Tanh",
           "Dropout", "layer_from_config"]

_INITS = ("he", "xavier")

# Set by layer_from_config(check_weights=...): called before a layer's weights are allocated.
_CHECK_WEIGHTS = contextvars.ContextVar("cnnative_check_weights", default=None)


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for any x, in x's float dtype."""
    # Imported on first use: scipy.special takes longer to import than the rest of cnnative.
    from scipy.special import expit
    return expit(x)


class Layer:
    """Base class: no parameters, identity config."""

    #: Set False (a network does this for its first layer) to skip computing the input
    #: gradient, which nothing consumes there; ``backward`` then returns None.
    input_grad = True

    def __init__(self):
        self.params = {}
        self.grads = {}

    def forward(self, x, training=True):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def get_config(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _cached(self, name):
        value = getattr(self, name, None)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return value


def _init_weights(shape, fan_in, fan_out, init, dtype, rng, func):
    """He (normal, std sqrt(2/fan_in)) for ReLU networks, or Xavier/Glorot (uniform,
    limit sqrt(6/(fan_in+fan_out))) for sigmoid/tanh ones.  Drawn in float64 so a float32 and a
    float64 layer built from one seed start from the same weights, up to rounding."""
    if init not in _INITS:
        raise ValueError(f"{func}: init must be one of {_INITS}, got {init!r}")
    check = _CHECK_WEIGHTS.get()
    if check is not None:
        check(shape, dtype)
    rng = np.random.default_rng(rng)
    if init == "he":
        weights = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    else:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights = rng.uniform(-limit, limit, shape)
    return weights.astype(dtype)


class Conv2D(Layer):
    """2-D convolution (cross-correlation, like ``torch.nn.Conv2d``) of an NCHW batch.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : int or (int, int)
        Window (kh, kw), step (>= 1) and zero padding (>= 0) per (height, width).
    init : {"he", "xavier"}
        Weight initialisation (biases start at zero).
    dtype : float32 (default) or float64
    rng : int, numpy.random.Generator or None
        Seed or generator for the initial weights.

    ``params``: ``w`` of shape (out_channels, in_channels, kh, kw) and ``b`` of shape
    (out_channels,).  ``forward`` maps (N, in_channels, H, W) to (N, out_channels, Ho, Wo) with
    Ho = (H + 2*ph - kh) // sh + 1.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
                 init="he", dtype=np.float32, rng=None):
        super().__init__()
        func = "Conv2D"
        self.in_channels = _validation.positive_int(in_channels, "in_channels", func)
        self.out_channels = _validation.positive_int(out_channels, "out_channels", func)
        self.kernel_size = _validation.int_pair(kernel_size, "kernel_size", func, minimum=1)
        self.stride = _validation.int_pair(stride, "stride", func, minimum=1)
        self.padding = _validation.int_pair(padding, "padding", func, minimum=0)
        self.init = init
        dtype = _validation.float_type(dtype, "dtype", func)
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        self.params["w"] = _init_weights((self.out_channels, self.in_channels, kh, kw), fan_in,
                                         self.out_channels * kh * kw, init, dtype, rng, func)
        self.params["b"] = np.zeros(self.out_channels, dtype)
        self._x = None

    def forward(self, x, training=True):
        self._x = x
        return conv2d(x, self.params["w"], self.params["b"], self.stride, self.padding)

    def backward(self, grad):
        grad_x, self.grads["w"], self.grads["b"] = conv2d_backward(
            grad, self._cached("_x"), self.params["w"], self.stride, self.padding,
            need_grad_x=self.input_grad)
        return grad_x

    def get_config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "init": self.init,
                "dtype": self.params["w"].dtype.name}


class Dense(Layer):
    """Fully connected layer ``y = x @ w.T + b`` on BLAS (like ``torch.nn.Linear``).

    Parameters
    ----------
    in_features, out_features : int
    init, dtype, rng : as for :class:`Conv2D`

    ``params``: ``w`` of shape (out_features, in_features) and ``b`` of shape (out_features,).
    ``forward`` maps (N, in_features) to (N, out_features).
    """

    def __init__(self, in_features, out_features, *, init="he", dtype=np.float32, rng=None):
        super().__init__()
        func = "Dense"
        self.in_features = _validation.positive_int(in_features, "in_features", func)
        self.out_features = _validation.positive_int(out_features, "out_features", func)
        self.init = init
        dtype = _validation.float_type(dtype, "dtype", func)
        self.params["w"] = _init_weights((self.out_features, self.in_features), self.in_features,
                                         self.out_features, init, dtype, rng, func)
        self.params["b"] = np.zeros(self.out_features, dtype)
        self._x = None

    def forward(self, x, training=True):
        self._x = x
        return dense(x, self.params["w"], self.params["b"])

    def backward(self, grad):
        grad_x, self.grads["w"], self.grads["b"] = dense_backward(grad, self._cached("_x"),
                                                                  self.params["w"])
        return grad_x if self.input_grad else None

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "init": self.init, "dtype": self.params["w"].dtype.name}


class MaxPool2D(Layer):
    """Max pooling over the last two axes, with PyTorch's argmax rule (see
    :func:`cnnative.max_pool2d`); the gradient goes back only to each window's maximum.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size`` (non-overlapping windows).
    padding : int or (int, int)
        Implicit -inf border, at most half the window.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        func = "MaxPool2D"
        self.kernel_size = _validation.int_pair(kernel_size, "kernel_size", func, minimum=1)
        self.stride = (self.kernel_size if stride is None
                       else _validation.int_pair(stride, "stride", func, minimum=1))
        self.padding = _validation.int_pair(padding, "padding", func, minimum=0)
        self._indices = None
        self._input_shape = None

    def forward(self, x, training=True):
        y, self._indices = max_pool2d(x, self.kernel_size, self.stride, self.padding)
        self._input_shape = np.shape(x)
        return y

    def backward(self, grad):
        return max_pool2d_backward(grad, self._cached("_indices"), self._input_shape)

    def get_config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}


class Flatten(Layer):
    """(N, ...) -> (N, prod(...)), a view when the input is contiguous."""

    def __init__(self):
        super().__init__()
        self._input_shape = None

    def forward(self, x, training=True):
        x = np.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"Flatten: x must have a batch axis, got ndim={x.ndim}")
        self._input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad):
        return np.reshape(grad, self._cached("_input_shape"))


class ReLU(Layer):
    """max(x, 0); the gradient passes where the output is positive (0 at x == 0, as torch)."""

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x, training=True):
        self._y = np.maximum(x, 0)
        return self._y

    def backward(self, grad):
        return np.multiply(grad, self._cached("_y") > 0, dtype=self._y.dtype)


class Sigmoid(Layer):
    """1 / (1 + exp(-x)), evaluated without overflow (:func:`sigmoid`)."""

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x, training=True):
        self._y = sigmoid(x)
        return self._y

    def backward(self, grad):
        y = self._cached("_y")
        return grad * (y * (1 - y))


class Tanh(Layer):
    """tanh(x); its derivative is 1 - tanh(x)**2."""

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x, training=True):
        self._y = np.tanh(x)
        return self._y

    def backward(self, grad):
        y = self._cached("_y")
        return grad * (1 - y * y)


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    rest by 1 / (1 - p), so inference (``training=False``) is the identity.

    ``rng`` (seed or Generator) draws the masks; :meth:`cnnative.Network.fit` reseeds it from
    its own ``seed`` so a seeded run is reproducible.
    """

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        p = _validation.real_scalar(p, "p", "Dropout")
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = np.random.default_rng(rng)
        self._mask = None

    def forward(self, x, training=True):
        x = np.asarray(x)
        if not training or self.p == 0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape, dtype=x.dtype if x.dtype == np.float32 else np.float64)
        self._mask = (keep >= self.p).astype(x.dtype) / x.dtype.type(1 - self.p)
        return x * self._mask

    def backward(self, grad):
        return grad if self._mask is None else grad * self._mask

    def get_config(self):
        return {"p": self.p}


_LAYER_TYPES = {cls.__name__: cls for cls in
                (Conv2D, Dense, MaxPool2D, Flatten, ReLU, Sigmoid, Tanh, Dropout)}


def layer_from_config(name, config, check_weights=None):
    """A new layer of type ``name`` (a class name above) built from ``get_config()`` output.

    ``check_weights(shape, dtype)``, if given, is called before the layer's weights
    (``params["w"]``) are allocated and may raise to refuse them: model files check them
    against the arrays they hold, so that a damaged config cannot ask for terabytes.
    """
    cls = _validation.choice(name, _LAYER_TYPES, "layer type", "layer_from_config")
    if not isinstance(config, dict) or not all(isinstance(key, str) for key in config):
        raise ValueError(f"layer_from_config: config for {name} must be a dict, got {config!r}")
    token = _CHECK_WEIGHTS.set(check_weights)
    try:
        return cls(**config)
    except TypeError as error:
        raise ValueError(f"layer_from_config: bad config for {name}: {error}") from None
    finally:
        _CHECK_WEIGHTS.reset(token)
