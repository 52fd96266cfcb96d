"""Finite-difference check of the gradients a layer or a network computes in ``backward``."""
import numpy as np

from .layers import Layer
from .network import Network

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the finite-difference estimate."""


def gradcheck(target, x, y=None, *, eps=1e-6, rtol=1e-4, atol=1e-8, samples=20, seed=0,
              raise_exception=True):
    """Compare ``backward``'s gradients with central differences ``(f(v+eps) - f(v-eps)) / 2eps``.

    For a :class:`~cnnative.layers.Layer`, f is ``sum(layer.forward(x) * g)`` with a fixed random
    g of the output's shape, whose gradient is what ``layer.backward(g)`` returns (and fills
    into ``layer.grads``).  For a :class:`~cnnative.Network`, f is its loss on (x, y).  Dropout
    masks are replayed identically for every evaluation.

    Parameters
    ----------
    target : Layer or Network, with float64 parameters
    x : float64 array, the input (a network's input as accepted by ``fit``)
    y : targets, for a network
    eps, rtol, atol : float
        Step, and the tolerance ``|analytic - numeric| <= atol + rtol * |numeric|``.
    samples : int
        Coordinates checked per array (chosen at random with ``seed``; all if fewer).
    raise_exception : bool
        Raise :class:`GradcheckError` on a mismatch (default), else just report it.

    Returns
    -------
    report : dict
        For each checked array (``"x"``, ``"<layer index>.<param>"`` for a network, or the
        param name for a layer): the largest ``|analytic - numeric|`` found, and under key
        ``"ok"`` whether every coordinate passed.
    """
    is_network = isinstance(target, Network)
    if not is_network and not isinstance(target, Layer):
        raise TypeError(f"gradcheck: target must be a Layer or a Network, got {target!r}")
    if is_network:
        if y is None:
            raise ValueError("gradcheck: a network needs targets y")
        x = target.prepare(x, "gradcheck")
        layers = target.layers
    else:
        layers = [target]
    x = np.array(x, copy=True)
    arrays = {"x": x}
    for index, layer in enumerate(layers):
        for name, param in layer.params.items():
            arrays[f"{index}.{name}" if is_network else name] = param
    for name, array in arrays.items():
        if not array.flags.c_contiguous:
            raise ValueError(f"gradcheck: {name} must be C-contiguous to be perturbed in place")
        if array.dtype != np.float64:
            raise TypeError(f"gradcheck: {name} must be float64 for a meaningful finite "
                            f"difference, got {array.dtype}")

    rngs = [layer.rng for layer in layers if hasattr(layer, "rng")]
    states = [rng.bit_generator.state for rng in rngs]
    first = layers[0]
    saved_input_grad, first.input_grad = first.input_grad, True

    def replay_rngs():
        for rng, state in zip(rngs, states):
            rng.bit_generator.state = state

    def objective():
        replay_rngs()
        if is_network:
            return target.loss.forward(target.forward(x, training=True), y)
        return float(np.sum(target.forward(x, training=True) * upstream))

    try:
        replay_rngs()
        upstream = None
        if not is_network:
            output = target.forward(x, training=True)
            upstream = np.random.default_rng(seed).standard_normal(np.shape(output))
        objective()
        grad_x = target.backward(target.loss.backward() if is_network else upstream)
        analytic = {"x": np.array(grad_x)}
        for index, layer in enumerate(layers):
            for name in layer.params:
                analytic[f"{index}.{name}" if is_network else name] = np.array(layer.grads[name])

        pick = np.random.default_rng(seed + 1)
        report, failures = {}, []
        for name, array in arrays.items():
            flat = array.reshape(-1)  # a view: the arrays are contiguous
            chosen = (np.arange(flat.size) if flat.size <= samples
                      else pick.choice(flat.size, samples, replace=False))
            worst = 0.0
            for position in chosen:
                original = flat[position]
                flat[position] = original + eps
                upper = objective()
                flat[position] = original - eps
                lower = objective()
                flat[position] = original
                numeric = (upper - lower) / (2 * eps)
                exact = analytic[name].reshape(-1)[position]
                error = abs(exact - numeric)
                worst = max(worst, error)
                if error > atol + rtol * abs(numeric):
                    failures.append(f"{name}[{np.unravel_index(position, array.shape)}]: "
                                    f"backward {exact:.8g}, finite difference {numeric:.8g}")
            report[name] = worst
    finally:
        first.input_grad = saved_input_grad
    report["ok"] = not failures
    if failures and raise_exception:
        raise GradcheckError("gradcheck: gradients disagree:\n  " + "\n  ".join(failures[:10]))
    return report
