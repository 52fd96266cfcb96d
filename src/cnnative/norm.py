"""Batch normalisation over the channel axis of (N, C, H, W) and (N, C) arrays, torch's semantics.

``batch_norm`` normalises each channel with the batch's mean and biased variance (training,
updating the running statistics in place) or with the running statistics (evaluation), then
scales by gamma and shifts by beta; ``batch_norm_backward`` returns the gradients for x, gamma
and beta.  The kernels (``cnnative._native.norm``) do each channel on one thread in one fixed
order, so results are bit-identical at any thread count.  Sums over the batch follow the
batch's reduction tree (``cnnative._reduce``): in data-parallel training, where x is one
process's shard of the batch, the statistics and the backward sums are those of the whole
batch, the same bits as one process computing it all.
"""
import functools
import numbers

import numpy as np

from . import _reduce, _threads, _validation
from ._native import norm as _norm

__all__ = ["batch_norm", "batch_norm_backward", "BatchNormCache"]

# Elements per piece of work a thread claims (whole channels; at least one).
_CLAIM_ELEMENTS = 1 << 14

# Elements (of x) per thread below which a second thread costs more than it saves.
_MIN_WORK_PER_THREAD = 1 << 16


class BatchNormCache:
    """What :func:`batch_norm_backward` needs from the forward pass.  Opaque: pass it on as is.

    It refers to the forward call's x (as torch's autograd saves its input), so x must not be
    modified in place before the backward call.
    """

    __slots__ = ("_x", "_mean", "_inv_std", "_gamma", "_training", "_shape", "_shard")

    def __init__(self, x, mean, inv_std, gamma, training, shape, shard=None):
        self._x, self._mean, self._inv_std = x, mean, inv_std
        self._gamma, self._training, self._shape = gamma, training, shape
        self._shard = shard  # the data-parallel shard x was, in training

    def __repr__(self):
        mode = "training" if self._training else "evaluation"
        return f"<BatchNormCache {mode} {self._shape} {self._x.dtype}>"


def _channels_run(kernel, channels, per_channel, threads):
    """kernel(0, channels, counter, claim) on as many threads as the work pays for."""
    claim = max(1, _CLAIM_ELEMENTS // max(1, per_channel))
    workers = min(threads, -(-channels // claim),
                  max(1, channels * per_channel // _MIN_WORK_PER_THREAD))
    counter = np.zeros(1, np.int64)
    _threads.run_chunks(lambda start, stop: kernel(0, channels, counter, claim), workers, 1,
                        workers, calls_blas=False)


def _channel_array(value, name, func, x, channels, *, running=False):
    """A (C,) parameter of x's dtype; ``running`` ones must be writeable ndarrays (updated in
    place) and are returned as themselves."""
    if running and not isinstance(value, np.ndarray):
        raise TypeError(f"{func}: {name} must be a numpy array (it is updated in place), got "
                        f"{type(value).__name__}")
    array = _validation.array(value, name, func, ndim=1, like=(x.dtype, "x"), layout="C",
                              allow_empty=True)
    if array.shape != (channels,):
        raise ValueError(f"{func}: {name} must have shape ({channels},) (x's channels), got "
                         f"{array.shape}")
    return array


def _real(value, name, func):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{func}: {name} must be a real number, got {value!r}")
    return float(value)


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5, *,
               num_threads=None):
    """Batch normalisation of ``x`` over its channel axis (axis 1), as torch's ``batch_norm``.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W) or (N, C)
        float32 or float64, non-empty; it is not modified.
    gamma, beta : array_like, shape (C,)
        Scale and shift, of x's dtype.
    running_mean, running_var : ndarray, shape (C,)
        Running statistics, of x's dtype.  In training they are updated in place (so they must
        be writeable): ``running = (1 - momentum) * running + momentum * batch`` in x's dtype,
        ``batch`` being the batch mean and the unbiased batch variance (rounded to x's dtype).
        In evaluation they normalise x and are only read.
    training : bool
        Normalise with the batch statistics (and update the running ones) or with the running
        statistics.
    momentum : float
        In [0, 1].
    eps : float
        > 0, added to the variance.
    num_threads : int, optional
        Threads to split the channels over; defaults to :func:`cnnative.get_num_threads`.
        Results are identical for every thread count.

    Returns
    -------
    y : ndarray, x's shape and dtype
        ``(x - mean) * (gamma * inv_std) + beta`` with ``inv_std = 1 / sqrt(var + eps)``; the
        batch mean and biased variance (training) are computed in double (the mean, then the
        sum of squared deviations from it) and rounded once to x's dtype.
    cache : BatchNormCache
        Opaque, for :func:`batch_norm_backward`; it refers to x.

    Raises
    ------
    TypeError
        x, gamma, beta or the running statistics are not float32/float64 or differ in dtype;
        running_mean or running_var is not a numpy array; training is not a bool; momentum
        or eps is not a real number.
    ValueError
        x is not 2-D or 4-D or is empty; a (C,) argument has another shape; a running
        statistic is read-only in training; momentum outside [0, 1]; eps <= 0 (or NaN);
        training with one value per channel (N * H * W == 1).
    """
    func = "batch_norm"
    x = _validation.array(x, "x", func, ndim=(2, 4), floating=True, layout="C")
    channels = x.shape[1]
    gamma = _channel_array(gamma, "gamma", func, x, channels)
    beta = _channel_array(beta, "beta", func, x, channels)
    mean_in = _channel_array(running_mean, "running_mean", func, x, channels, running=True)
    var_in = _channel_array(running_var, "running_var", func, x, channels, running=True)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{func}: training must be a bool, got {training!r}")
    training = bool(training)
    momentum = _real(momentum, "momentum", func)
    eps = _real(eps, "eps", func)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{func}: momentum must be in [0, 1], got {momentum!r}")
    if not eps > 0.0 or eps == float("inf"):
        raise ValueError(f"{func}: eps must be a positive finite number, got {eps!r}")
    threads = _threads.thread_count(num_threads, func)
    per_channel = x.size // channels
    shard = _reduce.active_shard() if training else None
    count = per_channel if shard is None else shard.total * (per_channel // x.shape[0])
    if training:
        if count < 2:
            raise ValueError(f"{func}: training needs more than one value per channel, got x "
                             f"of shape {x.shape}")
        for name, array in (("running_mean", running_mean), ("running_var", running_var)):
            if not array.flags.writeable:
                raise ValueError(f"{func}: {name} must be writeable (it is updated in place "
                                 "in training)")

    planes = x.reshape(x.shape[0], channels, -1)
    y = np.empty(x.shape, x.dtype)
    mean = np.empty(channels, x.dtype)
    inv_std = np.empty(channels, x.dtype)
    if training:
        var = np.empty(channels, x.dtype)
        given = None
        if shard is not None:
            batch_mean = shard.combine(_norm.channel_sums(0, planes)) / count
            given = np.stack([batch_mean, shard.combine(_norm.channel_sums(1, planes, None,
                                                                           batch_mean))])
        kernel = functools.partial(_norm.batch_norm_train, planes, gamma, beta, eps,
                                   y.reshape(planes.shape), mean, inv_std, var,
                                   given=given, count=float(count))
        _channels_run(kernel, channels, per_channel, threads)
        dtype = x.dtype.type
        # Non-finite statistics propagate as in torch, without NumPy's warnings.
        with np.errstate(all="ignore"):
            for running, batch in ((running_mean, mean), (running_var, var)):
                running[...] = dtype(1.0 - momentum) * np.asarray(running) + dtype(momentum) * batch
    else:
        mean[...] = mean_in
        with np.errstate(all="ignore"):  # a negative running_var gives NaN, as in torch
            inv_std[...] = 1.0 / np.sqrt(var_in.astype(np.float64) + eps)
        kernel = functools.partial(_norm.batch_norm_eval, planes, gamma, beta, mean, inv_std,
                                   y.reshape(planes.shape))
        _channels_run(kernel, channels, per_channel, threads)
    return y, BatchNormCache(planes, mean, inv_std, gamma, training, x.shape, shard)


def batch_norm_backward(grad_y, cache, *, num_threads=None):
    """Gradients of :func:`batch_norm` for x, gamma and beta.

    Parameters
    ----------
    grad_y : array_like, shape and dtype of the forward call's x
        Gradient of y.
    cache : BatchNormCache
        The forward call's cache.  In training the batch statistics depend on x (torch's
        training gradient); in evaluation the running statistics are constants.
    num_threads : int, optional
        As for :func:`batch_norm`; results are identical for every thread count.

    Returns
    -------
    grad_x : ndarray, x's shape and dtype
        Training: ``gamma * inv_std * (grad_y - mean(grad_y) - x_hat * mean(grad_y * x_hat))``
        per channel; evaluation: ``grad_y * gamma * inv_std``.
    grad_gamma : ndarray, shape (C,)
        ``sum(grad_y * x_hat)`` per channel, ``x_hat = (x - mean) * inv_std``.
    grad_beta : ndarray, shape (C,)
        ``sum(grad_y)`` per channel.  Both sums are taken in double in a fixed order.

    Raises
    ------
    TypeError
        cache is not a BatchNormCache; grad_y is not float32/float64 or not of x's dtype.
    ValueError
        grad_y's shape differs from x's, or grad_y is empty.
    """
    func = "batch_norm_backward"
    if not isinstance(cache, BatchNormCache):
        raise TypeError(f"{func}: cache must be the BatchNormCache batch_norm returned, got "
                        f"{type(cache).__name__}")
    x = cache._x
    grad_y = _validation.array(grad_y, "grad_y", func, like=(x.dtype, "x"), layout="C")
    if grad_y.shape != cache._shape:
        raise ValueError(f"{func}: grad_y must have the forward input's shape {cache._shape}, "
                         f"got {grad_y.shape}")
    threads = _threads.thread_count(num_threads, func)
    channels = x.shape[1]
    grad_x = np.empty(cache._shape, x.dtype)
    grad_gamma = np.empty(channels, x.dtype)
    grad_beta = np.empty(channels, x.dtype)
    grad_y = grad_y.reshape(x.shape)
    given, count = None, float(x.size // channels)
    if cache._shard is not None:
        shard = cache._shard
        given = shard.combine(_norm.channel_sums(2, grad_y, x, cache._mean.astype(np.float64)))
        count = float(shard.total * (x.size // channels // x.shape[0]))
    kernel = functools.partial(_norm.batch_norm_backward, grad_y, x,
                               cache._gamma, cache._mean, cache._inv_std, cache._training,
                               grad_x.reshape(x.shape), grad_gamma, grad_beta, given=given,
                               count=count)
    _channels_run(kernel, channels, x.size // channels, threads)
    return grad_x, grad_gamma, grad_beta
