"""Batch normalisation straight from the formulas, in float64 NumPy."""
import numpy as np

__all__ = ["batch_norm", "batch_norm_backward"]


def _axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """(y, new_running_mean, new_running_var, (mean, var)) for x (N, C) or (N, C, H, W).

    Training: mean and biased variance of the batch normalise x; the running statistics move
    toward the mean and the unbiased variance.  Evaluation: the running statistics normalise
    and are returned unchanged.  Everything in float64; y in x's dtype.  Nothing is modified.
    """
    x = np.asarray(x)
    x64 = x.astype(np.float64)
    running_mean = np.asarray(running_mean, np.float64)
    running_var = np.asarray(running_var, np.float64)
    if training:
        axes = _axes(x)
        count = x.size // x.shape[1]
        mean = x64.mean(axis=axes)
        var = ((x64 - _per_channel(mean, x)) ** 2).mean(axis=axes)
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * count / (count - 1)
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean, running_var
    x_hat = (x64 - _per_channel(mean, x)) / np.sqrt(_per_channel(var, x) + eps)
    y = x_hat * _per_channel(np.asarray(gamma, np.float64), x) + _per_channel(
        np.asarray(beta, np.float64), x)
    return y.astype(x.dtype), new_mean, new_var, (mean, var)


def batch_norm_backward(grad_y, x, gamma, mean, var, training, eps=1e-5):
    """(grad_x, grad_gamma, grad_beta) in float64 for the statistics ``mean``, ``var`` used
    forward (the batch's in training, where they depend on x; the running ones otherwise)."""
    x64 = np.asarray(x, np.float64)
    g64 = np.asarray(grad_y, np.float64)
    axes = _axes(x64)
    count = x64.size // x64.shape[1]
    inv_std = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    x_hat = (x64 - _per_channel(np.asarray(mean, np.float64), x64)) * _per_channel(inv_std, x64)
    grad_beta = g64.sum(axis=axes)
    grad_gamma = (g64 * x_hat).sum(axis=axes)
    scale = _per_channel(np.asarray(gamma, np.float64) * inv_std, x64)
    if training:
        grad_x = scale * (g64 - _per_channel(grad_beta / count, x64)
                          - x_hat * _per_channel(grad_gamma / count, x64))
    else:
        grad_x = scale * g64
    return grad_x, grad_gamma, grad_beta
