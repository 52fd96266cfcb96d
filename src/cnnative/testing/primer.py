"""The primer article's formulas written out plainly (scipy.signal and Python loops), to test
cnnative.primer against and to time it against in benchmarks/bench_primer.py.

Each function takes the layer's weights explicitly and returns new arrays; nothing is updated
in place.  The expressions follow the article's (Nested Software, "Convolutional Neural
Networks: An Intuitive Primer", 2019), so results can be compared to the bit.
"""
import numpy as np
import scipy.signal


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


def feature_map_forward(a_prev, w, b):
    """(z, a) of one feature map."""
    z = scipy.signal.correlate2d(a_prev, w, mode="valid") + b
    return z, sigmoid(z)


def feature_map_backward(a_prev, w, b, z, a_gradient, step_size):
    """(w after the step, b after the step, a_prev_gradient)."""
    components = sigmoid_prime(z) * a_gradient
    b_gradient = scipy.signal.correlate2d(sigmoid_prime(z), a_gradient, mode="valid")
    w_gradient = scipy.signal.correlate2d(a_prev, components, mode="valid")
    a_prev_gradient = scipy.signal.convolve2d(w, components, mode="full")
    return w - w_gradient * step_size, b - b_gradient * step_size, a_prev_gradient


def max_pool_forward(a_prev, overlay_shape):
    """(max_values, max_positions): window by window, np.argmax picking the first maximum."""
    rows, cols = overlay_shape
    out_rows, out_cols = a_prev.shape[0] - rows + 1, a_prev.shape[1] - cols + 1
    values = np.zeros((out_rows, out_cols))
    positions = np.zeros((out_rows, out_cols), dtype=object)
    for r in range(out_rows):
        for c in range(out_cols):
            window = a_prev[r:r + rows, c:c + cols]
            i, j = np.unravel_index(np.argmax(window), window.shape)
            values[r][c] = np.amax(window)
            positions[r][c] = (r + int(i), c + int(j))
    return values, positions


def max_pool_backward(a_prev_shape, max_positions, a_gradient):
    a_prev_gradient = np.zeros(a_prev_shape)
    out_rows, out_cols = max_positions.shape
    for r in range(out_rows):
        for c in range(out_cols):
            a_prev_gradient[max_positions[r][c]] += a_gradient[r][c]
    return a_prev_gradient


def fully_connected_forward(a_prev, w, b):
    z = np.dot(w, a_prev.reshape(a_prev.size, 1)) + b
    return z, sigmoid(z)


def fully_connected_backward(a_prev, w, b, z, a_gradient, step_size):
    """(w after the step, b after the step, a_prev_gradient shaped like a_prev)."""
    b_gradient = sigmoid_prime(z) * a_gradient
    w_gradient = np.dot(b_gradient, a_prev.reshape(a_prev.size, 1).transpose())
    a_prev_gradient = np.dot(w.transpose(), b_gradient).reshape(a_prev.shape)
    return w - w_gradient * step_size, b - b_gradient * step_size, a_prev_gradient


def convolutional_layer_forward(a_prev, w, b):
    """(z, a) for a_prev (C, M, N), w (F, C, I, J), b (F, 1, 1): per-map correlations summed
    over depth, plus the map's bias."""
    maps = []
    for f in range(w.shape[0]):
        total = sum(scipy.signal.correlate2d(a_prev[c], w[f, c], mode="valid")
                    for c in range(a_prev.shape[0]))
        maps.append(total + b[f])
    z = np.array(maps)
    return z, sigmoid(z)


def convolutional_layer_backward(a_prev, w, b, z, a_gradient, step_size):
    """(w after the step, b after the step, a_prev_gradient), map by map and slice by slice."""
    new_w, new_b = w.copy(), b.copy()
    a_prev_gradient = np.zeros(a_prev.shape)
    for f in range(w.shape[0]):
        components = sigmoid_prime(z[f]) * a_gradient[f]
        b_gradient = scipy.signal.correlate2d(sigmoid_prime(z[f]), a_gradient[f], mode="valid")
        for c in range(a_prev.shape[0]):
            w_gradient = scipy.signal.correlate2d(a_prev[c], components, mode="valid")
            a_prev_gradient[c] += scipy.signal.convolve2d(w[f, c], components, mode="full")
            new_w[f, c] -= w_gradient * step_size
        new_b[f] -= b_gradient * step_size
    return new_w, new_b, a_prev_gradient
