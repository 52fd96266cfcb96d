"""Finite-difference check of the gradients a layer or a network computes in ``backward``."""
from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from .nn import Layer, named_layers
from .network import Network

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the finite-difference estimate."""


def gradcheck(target: Layer | Network, x: ArrayLike, y: ArrayLike | None = None, *,
              eps: float = 1e-6, rtol: float = 1e-4, atol: float = 1e-8, samples: int = 20,
              seed: int = 0, raise_exception: bool = True) -> dict[str, float | int | bool]:
    """Compare ``backward``'s gradients with central differences ``(f(v+eps) - f(v-eps)) / 2eps``.

    For a :class:`~cnnative.nn.Layer`, f is ``sum(layer.forward(x) * g)`` with a fixed random
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
        For each checked array (``"x"``, ``"<layer name>.<param>"`` for a network, with the
        dotted names of :meth:`Network.named_layers`, or the param name for a layer): the largest ``|analytic - numeric|`` found over the compared
        coordinates; under key ``"ok"`` whether every one passed, and under ``"kinks"`` how
        many were skipped as kinks.

    Notes
    -----
    Where the function has a kink within ``eps`` of a coordinate (a ReLU input at 0, which
    real images with zero-valued pixels and zero biases produce in numbers, or a tie in a
    max-pool window), the central difference is not the derivative.  A coordinate whose
    central difference disagrees with ``backward`` is looked at again with half the step:
    if the central difference then agrees, it passes; if its one-sided differences disagree
    and their gap does not shrink with the step (a smooth function's would halve), it sits on
    a kink and is skipped and counted.  Anything else is a failure.
    """
    is_network = isinstance(target, Network)
    if not is_network and not isinstance(target, Layer):
        raise TypeError(f"gradcheck: target must be a Layer or a Network, got {target!r}")
    if is_network:
        if y is None:
            raise ValueError("gradcheck: a network needs targets y")
        x = target.prepare(x, "gradcheck")  # type: ignore[union-attr]  # a Network here
        layers = target.layers  # type: ignore[union-attr]
        named = list(named_layers(layers))
    else:
        layers = [target]
        named = [("", target), *named_layers(target.sublayers())]
    x = np.array(x, copy=True)
    arrays = {"x": x}
    for path, layer in named:
        for name, param in layer.params.items():
            arrays[f"{path}.{name}" if path else name] = param
    for name, array in arrays.items():
        if not array.flags.c_contiguous:
            raise ValueError(f"gradcheck: {name} must be C-contiguous to be perturbed in place")
        if array.dtype != np.float64:
            raise TypeError(f"gradcheck: {name} must be float64 for a meaningful finite "
                            f"difference, got {array.dtype}")

    rngs = [layer.rng for _, layer in named if hasattr(layer, "rng")]
    states = [rng.bit_generator.state for rng in rngs]
    # Training-mode evaluations move batch norm's running statistics: put them back after.
    buffers = [(layer.buffers, {key: value.copy() for key, value in layer.buffers.items()})
               for _, layer in named if layer.buffers]
    first = layers[0]
    saved_input_grad, first.input_grad = first.input_grad, True

    def replay_rngs() -> None:
        for rng, state in zip(rngs, states):
            rng.bit_generator.state = state

    def objective() -> float:
        replay_rngs()
        if is_network:
            return target.loss.forward(target.forward(x, training=True), y)  # type: ignore[union-attr]
        return float(np.sum(target.forward(x, training=True) * upstream))

    try:
        replay_rngs()
        upstream = None
        if not is_network:
            output = target.forward(x, training=True)
            upstream = np.random.default_rng(seed).standard_normal(np.shape(output))
        objective()
        # A Network when is_network, else a Layer with upstream set.
        grad_x = target.backward(target.loss.backward()  # type: ignore[union-attr, arg-type]
                                 if is_network else upstream)
        analytic = {"x": np.array(grad_x)}
        for path, layer in named:
            for name in layer.params:
                analytic[f"{path}.{name}" if path else name] = np.array(layer.grads[name])

        pick = np.random.default_rng(seed + 1)
        report, failures, kinks = {}, [], 0
        for name, array in arrays.items():
            flat = array.reshape(-1)  # a view: the arrays are contiguous
            chosen = (np.arange(flat.size) if flat.size <= samples
                      else pick.choice(flat.size, samples, replace=False))
            worst = 0.0
            for position in chosen:
                original = flat[position]

                def shifted(step: float) -> float:
                    flat[position] = original + step
                    return objective()

                upper, lower = shifted(eps), shifted(-eps)
                exact = analytic[name].reshape(-1)[position]
                numeric, at_kink = (upper - lower) / (2 * eps), False
                if not _close(exact, numeric, atol, rtol):
                    # Either a wrong gradient, or a kink (a ReLU input or a pooling tie) within
                    # eps, where a central difference is no derivative: look closer.
                    numeric, at_kink = _second_look(shifted, upper, lower, eps, exact, atol, rtol)
                flat[position] = original
                if at_kink:
                    kinks += 1
                    continue
                error = abs(exact - numeric)
                worst = max(worst, error)
                if not _close(exact, numeric, atol, rtol):
                    failures.append(f"{name}[{np.unravel_index(position, array.shape)}]: "
                                    f"backward {exact:.8g}, finite difference {numeric:.8g}")
            report[name] = worst
    finally:
        first.input_grad = saved_input_grad
        for live, saved in buffers:
            for key, value in saved.items():
                live[key][...] = value
    report["ok"] = not failures
    report["kinks"] = kinks
    if failures and raise_exception:
        raise GradcheckError("gradcheck: gradients disagree:\n  " + "\n  ".join(failures[:10]))
    return report


def _close(exact: float, numeric: float, atol: float, rtol: float) -> bool:
    return abs(exact - numeric) <= atol + rtol * abs(numeric)


def _second_look(shifted: Callable[[float], float], upper: float, lower: float, eps: float,
                 exact: float, atol: float, rtol: float) -> tuple[float, bool]:
    """(finite difference, at a kink) for a coordinate whose central difference disagreed.

    Half the step: a kink that lay between eps / 2 and eps away no longer spoils the central
    difference, which then stands.  Otherwise the coordinate sits on a kink when its one-sided
    differences disagree and keep disagreeing as the step halves (a smooth function's one-sided
    differences close in on each other in proportion to the step; a kink's jump stays).
    """
    centre = shifted(0.0)
    half = eps / 2
    upper_half, lower_half = shifted(half), shifted(-half)
    numeric = (upper_half - lower_half) / (2 * half)
    if _close(exact, numeric, atol, rtol):
        return numeric, False
    right, left = (upper - centre) / eps, (centre - lower) / eps
    jump = abs(right - left)
    half_jump = abs((upper_half - centre) / half - (centre - lower_half) / half)
    slack = atol + rtol * max(abs(right), abs(left))
    return numeric, jump > slack and half_jump > jump / 2
