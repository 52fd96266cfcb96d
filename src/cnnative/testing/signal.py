"""N-d correlation and convolution the plain way: one kernel tap at a time, in scipy's order.

``scipy.signal.correlate(..., method='direct')`` computes every output element of its N-d
direct method as ``acc = 0; acc = acc + x * y`` over in2's elements in C order; these
functions add whole shifted slices of the (zero-padded) first input in that same order, so
for float32 and float64 they give scipy's N-d result to the bit, including in 1-D, where
scipy itself hands most modes to numpy.correlate and rounds differently.  Input swapping
follows scipy: 'valid' swaps when in2 is the larger (correlate then reverses the result),
and correlate's 'full' swaps (and reverses) when in2 has more elements.
"""
import itertools

import numpy as np

__all__ = ["correlate", "convolve"]


def correlate(in1, in2, mode="full"):
    """scipy.signal.correlate(in1, in2, mode, method='direct') for real float inputs."""
    in1, in2 = np.asarray(in1), np.asarray(in2)
    dtype = np.result_type(in1, in2)
    valid_swap = mode == "valid" and not all(n >= k for n, k in zip(in1.shape, in2.shape))
    swapped = valid_swap or (mode == "full" and in2.size > in1.size)
    if swapped:
        in1, in2 = in2, in1
    if mode == "valid":
        frame = in1
    else:
        before = [k // 2 if mode == "same" else k - 1 for k in in2.shape]
        after = [k - 1 - b for k, b in zip(in2.shape, before)] if mode == "same" else before
        frame = np.pad(in1, list(zip(before, after)))
    frame, kernel = frame.astype(dtype), in2.astype(dtype)
    out_shape = tuple(n - k + 1 for n, k in zip(frame.shape, kernel.shape))
    acc = np.zeros(out_shape, dtype)
    # 0 * inf against the padding is NaN, and sums may overflow, as in scipy: quietly.
    with np.errstate(invalid="ignore", over="ignore"):
        for tap in itertools.product(*(range(k) for k in kernel.shape)):
            window = tuple(slice(t, t + n) for t, n in zip(tap, out_shape))
            acc = acc + frame[window] * kernel[tap]
    if swapped:
        acc = acc[(slice(None, None, -1),) * acc.ndim]
    return acc


def convolve(in1, in2, mode="full"):
    """scipy.signal.convolve(in1, in2, mode, method='direct') for real float inputs: after
    'valid''s swap, the correlation with the kernel reversed in every axis."""
    in1, in2 = np.asarray(in1), np.asarray(in2)
    if mode == "valid" and not all(n >= k for n, k in zip(in1.shape, in2.shape)):
        in1, in2 = in2, in1
    return correlate(in1, in2[(slice(None, None, -1),) * in2.ndim], mode)
