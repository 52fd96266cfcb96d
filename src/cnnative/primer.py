"""The layers of Nested Software's "Convolutional Neural Networks: An Intuitive Primer" (2019),
on cnnative's native kernels.

The article builds a convolutional network from a few small classes that hold their input
(``a_prev``), weights and bias, with ``feed_forward()`` and ``propagate_backward(...)``.  This
module gives the same constructors, attributes and methods:

* :class:`FeatureMap`: one feature map, a 2-D input cross-correlated with shared weights;
* :class:`MaxPoolingMap`: max pooling with stride-1 (overlapping) windows;
* :class:`FullyConnectedLayer`: a sigmoid layer on the input flattened to a column;
* :class:`ConvolutionalLayer`: the article's chained form, F feature maps over a stack of C
  input maps, each map's filter C deep and its correlations summed over depth;

plus the helpers its demo uses (:func:`get_feature_map_shape`, :func:`as_col`) and
:func:`sigmoid` / :func:`sigmoid_prime`.  Weights are drawn with ``np.random.randn`` in the
article's order, so ``np.random.seed`` reproduces the article's weights.

Numbers: everything is float64, as in the article, whose randn weights make scipy upcast any
input to float64; integer and float16/32 inputs (its demo passes integer arrays) are converted.
``FeatureMap`` and ``MaxPoolingMap`` give the article's results to the bit (cnnative's
correlate2d/convolve2d repeat scipy's summation order; pooling gradients are added in the same
row-major order), ``FullyConnectedLayer`` makes the same NumPy/BLAS calls, and
``ConvolutionalLayer`` runs one native conv2d call per pass, equal to the per-map formula summed
over depth up to float64 rounding.

Arrays passed in or assigned later (``a_prev``, ``w``, ``b``) are validated and must keep their
shape; float64 arrays are kept by reference, as in the article, and ``propagate_backward``
updates ``w`` and ``b`` in place.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from . import _validation
from .conv import conv2d, conv2d_backward
from .pooling import max_pool2d, max_pool2d_backward
from .signal import convolve2d, correlate2d

__all__ = [
    "FeatureMap", "MaxPoolingMap", "FullyConnectedLayer", "ConvolutionalLayer",
    "sigmoid", "sigmoid_prime", "get_feature_map_shape", "as_col",
]


def sigmoid(z: ArrayLike) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-z))``, elementwise, without overflow warnings.

    Float input keeps its dtype; integers and bools give float64.  The article's expression is
    evaluated as is, so results are its results to the bit.  Where ``exp(-z)`` overflows
    (z below about -709 in float64) it becomes inf and the result 0, the true value then being
    below the smallest normal float; so the overflow is harmless and its warning is silenced.
    """
    z = _real_values(z, "z", "sigmoid")
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z: ArrayLike) -> np.ndarray:
    """Derivative of :func:`sigmoid`: ``s * (1 - s)`` with ``s = sigmoid(z)``, as in the article.

    For z above about 37 (float64), ``1 - s`` rounds to 0 and so does the result, as in the
    article; the true value is below 1e-16 there.
    """
    s = sigmoid(z)
    return s * (1.0 - s)


def get_feature_map_shape(input_data_shape: Sequence[int],
                          overlay_shape: Sequence[int]) -> tuple[int, ...]:
    """Shape ``(M - I + 1, N - J + 1)`` of the valid correlation of an (M, N) input with an
    (I, J) overlay (stride 1)."""
    func = "get_feature_map_shape"
    shape = _validation.shape_tuple(input_data_shape, "input_data_shape", func)
    if len(shape) != 2:
        raise ValueError(f"{func}: input_data_shape must have 2 entries (M, N), got {shape}")
    rows, cols = _overlay(overlay_shape, shape, func)
    return (shape[0] - rows + 1, shape[1] - cols + 1)


def as_col(matrix: ArrayLike) -> np.ndarray:
    """``matrix`` reshaped to a column, shape ``(matrix.size, 1)`` (a view when possible)."""
    matrix = np.asarray(matrix)
    return matrix.reshape(matrix.size, 1)


class _SameShape:
    """An array attribute that may be reassigned, to a real array of the same shape only.

    The value is stored as float64 (a float64 array by reference).  Keeping the shape keeps
    the layer consistent: weights, outputs and gradients were all sized from it.
    """

    def __set_name__(self, owner, name):
        self.name = name
        self.slot = "_" + name

    def __get__(self, obj, objtype=None):
        return self if obj is None else getattr(obj, self.slot)

    def __set__(self, obj, value):
        current = getattr(obj, self.slot)
        setattr(obj, self.slot, _shaped(value, current.shape, self.name, type(obj).__name__))


class FeatureMap:
    """One feature map: ``a = sigmoid(correlate2d(a_prev, w, 'valid') + b)``.

    Parameters
    ----------
    a_prev : array_like, shape (M, N)
        Activations of the previous layer (integers or floats; stored as float64).
    overlay_shape : (int, int)
        Shape (I, J) of the shared weights, each in [1, M] and [1, N].

    Attributes
    ----------
    a_prev : ndarray, shape (M, N)
    w : ndarray, shape (I, J)
        Shared weights, ``np.random.randn(*overlay_shape)``.
    b : ndarray, shape (1, 1)
        Shared bias, ``np.random.randn(1, 1)`` (drawn after w).
    overlay_shape : (int, int)
    z, a : ndarray, shape (M - I + 1, N - J + 1)
        Raw and sigmoid activations of the last :meth:`feed_forward` (None before).
    a_prev_gradient : ndarray, shape (M, N)
        Gradient returned by the last :meth:`propagate_backward` (None before).
    """

    a_prev = _SameShape()
    w = _SameShape()
    b = _SameShape()

    def __init__(self, a_prev: ArrayLike, overlay_shape: Sequence[int]) -> None:
        func = "FeatureMap"
        self._a_prev = _real(_validation.array(a_prev, "a_prev", func, ndim=2), "a_prev", func)
        self.overlay_shape = _overlay(overlay_shape, self._a_prev.shape, func)
        self._w = np.random.randn(*self.overlay_shape)
        self._b = np.random.randn(1, 1)
        self.z = self.a = self.a_prev_gradient = None

    def feed_forward(self) -> np.ndarray:
        """Compute and return ``a``, shape (M - I + 1, N - J + 1)."""
        self.z = correlate2d(self._a_prev, self._w, "valid") + self._b
        self.a = sigmoid(self.z)
        return self.a

    def propagate_backward(self, a_gradient: ArrayLike, step_size: float) -> np.ndarray:
        """Take one gradient step on w and b; return the gradient for a_prev.

        Parameters
        ----------
        a_gradient : array_like, shape of ``a``
            Gradient of the cost with respect to this map's activations.
        step_size : real
            Learning rate; the update is ``w -= w_gradient * step_size`` (likewise b).

        Returns
        -------
        a_prev_gradient : ndarray, shape (M, N)
            ``convolve2d(w, sigmoid'(z) * a_gradient, 'full')`` with w before the update.
        """
        func = "FeatureMap.propagate_backward"
        z = _after_forward(self.z, func)
        a_gradient = _shaped(a_gradient, z.shape, "a_gradient", func)
        step_size = _step_size(step_size, func)
        slope = sigmoid_prime(z)
        components = slope * a_gradient  # the bias gradient of each feature neuron
        b_gradient = correlate2d(slope, a_gradient, "valid")
        w_gradient = correlate2d(self._a_prev, components, "valid")
        self.a_prev_gradient = convolve2d(self._w, components, "full")
        self._b -= b_gradient * step_size
        self._w -= w_gradient * step_size
        return self.a_prev_gradient


class MaxPoolingMap:
    """Max pooling over every stride-1 (overlapping) window of a 2-D input.

    Parameters
    ----------
    a_prev : array_like, shape (M, N)
        Input map (integers or floats; stored as float64).
    overlay_shape : (int, int)
        Window shape (I, J), each in [1, M] and [1, N].

    Attributes
    ----------
    a_prev : ndarray, shape (M, N)
    overlay_shape : (int, int)
    max_values : ndarray, shape (M - I + 1, N - J + 1)
        Maximum of each window, after :meth:`feed_forward` (None before).
    max_positions : ndarray of object, shape of max_values
        ``max_positions[r][c]`` is the ``(row, col)`` tuple of window (r, c)'s maximum in
        a_prev, usable as an index: the first maximum in row-major order on ties, the first
        NaN if the window has any.  Built on first access, from max_indices.
    max_indices : ndarray of int64, shape of max_values
        The same positions as flat indices ``row * N + col``.
    a_prev_gradient : ndarray, shape (M, N)
        Gradient returned by the last :meth:`propagate_backward` (None before).
    """

    a_prev = _SameShape()

    def __init__(self, a_prev: ArrayLike, overlay_shape: Sequence[int]) -> None:
        func = "MaxPoolingMap"
        self._a_prev = _real(_validation.array(a_prev, "a_prev", func, ndim=2), "a_prev", func)
        self.overlay_shape = _overlay(overlay_shape, self._a_prev.shape, func)
        self.max_values = self.a_prev_gradient = None
        self._max_indices = self._max_positions = None

    @property
    def max_indices(self) -> np.ndarray | None:
        return self._max_indices

    @property
    def max_positions(self) -> np.ndarray | None:
        # Tuples are built lazily: making hundreds of Python objects costs more than the
        # pooling itself, and propagate_backward works from the flat indices.
        if self._max_positions is None and self._max_indices is not None:
            rows, cols = np.divmod(self._max_indices, self._a_prev.shape[1])
            pairs = zip(rows.ravel().tolist(), cols.ravel().tolist())
            positions = np.fromiter(pairs, dtype=object, count=rows.size)
            self._max_positions = positions.reshape(rows.shape)
        return self._max_positions

    def feed_forward(self) -> np.ndarray:
        """Compute and return ``max_values``; record where each maximum is."""
        values, indices = max_pool2d(self._a_prev, self.overlay_shape, 1)
        nan_windows = np.isnan(values)
        if nan_windows.any():
            # The kernel follows PyTorch (the last NaN of a window wins); the article's
            # argmax takes the first.
            indices = np.where(nan_windows, _first_nan_indices(self._a_prev, self.overlay_shape),
                               indices)
        self.max_values, self._max_indices, self._max_positions = values, indices, None
        return self.max_values

    def propagate_backward(self, a_gradient: ArrayLike) -> np.ndarray:
        """Route each window's gradient to its maximum; return the gradient for a_prev.

        Parameters
        ----------
        a_gradient : array_like, shape of ``max_values``

        Returns
        -------
        a_prev_gradient : ndarray, shape (M, N)
            Zero except at maxima, which receive the sum of the gradients of every window
            whose maximum they are (windows overlap), added in row-major window order.
        """
        func = "MaxPoolingMap.propagate_backward"
        indices = _after_forward(self._max_indices, func)
        a_gradient = _shaped(a_gradient, indices.shape, "a_gradient", func)
        self.a_prev_gradient = max_pool2d_backward(a_gradient, indices, self._a_prev.shape)
        return self.a_prev_gradient


class FullyConnectedLayer:
    """A sigmoid layer on a_prev flattened to a column: ``a = sigmoid(w @ as_col(a_prev) + b)``.

    Parameters
    ----------
    a_prev : array_like, any non-empty shape
        Input (integers or floats; stored as float64), read as a column of ``a_prev.size``.
    num_neurons : int
        Number of neurons, >= 1.

    Attributes
    ----------
    a_prev : ndarray, shape of the input
    num_neurons : int
    w : ndarray, shape (num_neurons, a_prev.size)
        ``np.random.randn(num_neurons, a_prev.size)``.
    b : ndarray, shape (num_neurons, 1)
        ``np.random.randn(num_neurons, 1)`` (drawn after w).
    z, a : ndarray, shape (num_neurons, 1)
        After :meth:`feed_forward` (None before).
    a_prev_gradient : ndarray, shape of a_prev
        After :meth:`propagate_backward` (None before).
    """

    a_prev = _SameShape()
    w = _SameShape()
    b = _SameShape()

    def __init__(self, a_prev: ArrayLike, num_neurons: int) -> None:
        func = "FullyConnectedLayer"
        a_prev = np.asarray(a_prev)
        if a_prev.size == 0:
            raise ValueError(f"{func}: a_prev must be non-empty, got shape {a_prev.shape}")
        self._a_prev = _real(a_prev, "a_prev", func)
        self.num_neurons = _validation.positive_int(num_neurons, "num_neurons", func)
        self._w = np.random.randn(self.num_neurons, self._a_prev.size)
        self._b = np.random.randn(self.num_neurons, 1)
        self.z = self.a = self.a_prev_gradient = None

    def feed_forward(self) -> np.ndarray:
        """Compute and return ``a``, shape (num_neurons, 1)."""
        self.z = np.dot(self._w, as_col(self._a_prev)) + self._b
        self.a = sigmoid(self.z)
        return self.a

    def propagate_backward(self, a_gradient: ArrayLike, step_size: float) -> np.ndarray:
        """Take one gradient step on w and b; return the gradient for a_prev.

        Parameters
        ----------
        a_gradient : array_like, shape (num_neurons, 1) or (num_neurons,)
            Gradient of the cost with respect to ``a``; a flat vector is read as the column.
        step_size : real
            Learning rate.

        Returns
        -------
        a_prev_gradient : ndarray, shape of a_prev
            ``w.T @ (sigmoid'(z) * a_gradient)`` with w before the update, reshaped.
        """
        func = "FullyConnectedLayer.propagate_backward"
        z = _after_forward(self.z, func)
        a_gradient = np.asarray(a_gradient)
        if a_gradient.shape == (self.num_neurons,):
            a_gradient = a_gradient.reshape(z.shape)
        a_gradient = _shaped(a_gradient, z.shape, "a_gradient", func)
        step_size = _step_size(step_size, func)
        b_gradient = sigmoid_prime(z) * a_gradient
        w_gradient = np.dot(b_gradient, as_col(self._a_prev).T)
        self.a_prev_gradient = np.dot(self._w.T, b_gradient).reshape(self._a_prev.shape)
        self._b -= b_gradient * step_size
        self._w -= w_gradient * step_size
        return self.a_prev_gradient


class ConvolutionalLayer:
    """F feature maps over a stack of C input maps, each map's filter C deep (the article's
    chained layers): ``z[f] = sum_c correlate2d(a_prev[c], w[f, c], 'valid') + b[f]``.

    Both passes are one native :func:`cnnative.conv2d` / :func:`cnnative.conv2d_backward` call.

    Parameters
    ----------
    a_prev : array_like, shape (C, M, N), or (M, N) for a single input map
        Activations of the previous layer (integers or floats; stored as float64).
    num_maps : int
        Number F of feature maps, >= 1.
    overlay_shape : (int, int)
        Shape (I, J) of each filter slice, each in [1, M] and [1, N].

    Attributes
    ----------
    a_prev : ndarray, shape of the input
    num_maps : int
    overlay_shape : (int, int)
    w : ndarray, shape (F, C, I, J)
    b : ndarray, shape (F, 1, 1)
        Drawn map by map, ``w[f] = np.random.randn(C, I, J)`` then ``b[f] = np.random.randn(1,
        1)``, so that with C = 1 the layer holds the weights of F FeatureMaps made in turn.
    z, a : ndarray, shape (F, M - I + 1, N - J + 1)
        After :meth:`feed_forward` (None before).
    a_prev_gradient : ndarray, shape of a_prev
        After :meth:`propagate_backward` (None before).
    """

    a_prev = _SameShape()
    w = _SameShape()
    b = _SameShape()

    def __init__(self, a_prev: ArrayLike, num_maps: int, overlay_shape: Sequence[int]) -> None:
        func = "ConvolutionalLayer"
        a_prev = _real(_validation.array(a_prev, "a_prev", func, ndim=(2, 3)), "a_prev", func)
        self.num_maps = _validation.positive_int(num_maps, "num_maps", func)
        self.overlay_shape = _overlay(overlay_shape, a_prev.shape[-2:], func)
        self._a_prev = a_prev
        depth = 1 if a_prev.ndim == 2 else a_prev.shape[0]
        self._w = np.empty((self.num_maps, depth, *self.overlay_shape))
        self._b = np.empty((self.num_maps, 1, 1))
        for f in range(self.num_maps):  # construction only: the draw order of separate maps
            self._w[f] = np.random.randn(depth, *self.overlay_shape)
            self._b[f] = np.random.randn(1, 1)
        self.z = self.a = self.a_prev_gradient = None

    def _stack(self):
        return self._a_prev if self._a_prev.ndim == 3 else self._a_prev[np.newaxis]

    def feed_forward(self) -> np.ndarray:
        """Compute and return ``a``, shape (F, M - I + 1, N - J + 1)."""
        self.z = conv2d(self._stack(), self._w) + self._b
        self.a = sigmoid(self.z)
        return self.a

    def propagate_backward(self, a_gradient: ArrayLike, step_size: float) -> np.ndarray:
        """Take one gradient step on w and b; return the gradient for a_prev.

        Per map f, with ``d[f] = sigmoid'(z[f]) * a_gradient[f]``: ``b[f]`` moves by the sum
        of ``d[f]``, ``w[f, c]`` by ``correlate2d(a_prev[c], d[f], 'valid')``, and the
        returned ``a_prev_gradient[c]`` is ``sum_f convolve2d(w[f, c], d[f], 'full')`` (w
        before the update).

        Parameters
        ----------
        a_gradient : array_like, shape (F, M - I + 1, N - J + 1)
        step_size : real
        """
        func = "ConvolutionalLayer.propagate_backward"
        z = _after_forward(self.z, func)
        a_gradient = _shaped(a_gradient, z.shape, "a_gradient", func)
        step_size = _step_size(step_size, func)
        components = sigmoid_prime(z) * a_gradient
        a_prev_gradient, w_gradient, b_gradient = conv2d_backward(components, self._stack(),
                                                                  self._w)
        self.a_prev_gradient = a_prev_gradient.reshape(self._a_prev.shape)
        self._b -= b_gradient.reshape(self._b.shape) * step_size
        self._w -= w_gradient * step_size
        return self.a_prev_gradient


def _real_values(value, name, func):
    """``value`` as an array of floats: float dtypes kept, bools and integers as float64."""
    array = np.asarray(value)
    if array.dtype.kind in "biu":
        return array.astype(np.float64)
    if array.dtype.kind != "f":
        raise TypeError(f"{func}: {name} must be real (integer or float), got dtype {array.dtype}")
    return array


def _real(array, name, func):
    """``array`` as float64: integers and float16/32/64 are converted (float64 is kept as is).

    bool, complex, long double and object arrays raise TypeError (long double would lose
    precision silently).
    """
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind in "iu" or (kind == "f" and size <= 8):
        return np.asarray(array, dtype=np.float64)
    raise TypeError(f"{func}: {name} must be an integer or float (at most 64-bit) array, got "
                    f"dtype {array.dtype}")


def _shaped(value, shape, name, func):
    """``value`` as a float64 array that must have ``shape``."""
    array = np.asarray(value)
    if array.shape != shape:
        raise ValueError(f"{func}: {name} must have shape {shape}, got {array.shape}")
    return _real(array, name, func)


def _overlay(overlay_shape, input_shape, func):
    pair = _validation.int_pair(overlay_shape, "overlay_shape", func, minimum=1)
    if pair[0] > input_shape[0] or pair[1] > input_shape[1]:
        raise ValueError(f"{func}: overlay_shape {pair} is larger than the input "
                         f"{tuple(input_shape)}")
    return pair


def _step_size(value, func):
    step = float(_validation.real_scalar(value, "step_size", func))
    if not np.isfinite(step):
        raise ValueError(f"{func}: step_size must be finite, got {value!r}")
    return step


def _after_forward(state, func):
    if state is None:
        raise RuntimeError(f"{func}: call feed_forward() first; there is no forward pass to "
                           "propagate back through")
    return state


def _first_nan_indices(a_prev, overlay_shape):
    """Flat index in a_prev of the first NaN (row-major) of every stride-1 window; a window
    without NaN gets the index of its first element."""
    rows, cols = overlay_shape
    windows = np.lib.stride_tricks.sliding_window_view(np.isnan(a_prev), overlay_shape)
    out_rows, out_cols = windows.shape[:2]
    first = windows.reshape(out_rows, out_cols, rows * cols).argmax(axis=-1)
    window_rows = np.arange(out_rows)[:, np.newaxis] + first // cols
    window_cols = np.arange(out_cols)[np.newaxis, :] + first % cols
    return window_rows * a_prev.shape[1] + window_cols
