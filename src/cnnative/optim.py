"""Optimizers with PyTorch's update rules, applied in place to a network's parameters.

``step(pairs)`` takes a list of (parameter, gradient) arrays, in the same order every call (a
network's order); per-parameter state (momentum buffers, Adam moments) is kept by position and
created on the first step.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from . import _validation

__all__ = ["Optimizer", "SGD", "Adam", "cosine_schedule"]


def _non_negative(value: Any, name: str, func: str) -> float:
    value = _validation.real_scalar(value, name, func)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{func}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


class Optimizer:
    def __init__(self, lr: float, weight_decay: float) -> None:
        func = type(self).__name__
        self.lr = _non_negative(lr, "lr", func)
        self.weight_decay = _non_negative(weight_decay, "weight_decay", func)
        self._state: list[dict[str, Any]] | None = None
        self.steps = 0

    def step(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Update every parameter in place from its gradient."""
        if self._state is None:
            self._state = [self._new_state(param) for param, _ in pairs]
        elif len(self._state) != len(pairs):
            raise ValueError(f"{type(self).__name__}.step: got {len(pairs)} parameters, but "
                             f"the optimizer's state is for {len(self._state)}")
        self.steps += 1
        for (param, grad), state in zip(pairs, self._state):
            if self.weight_decay:
                grad = grad + param.dtype.type(self.weight_decay) * param
            self._update(param, grad, state)

    def _new_state(self, param: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, ``torch.optim.SGD``'s rule: with momentum m,
    ``buf = m * buf + g`` (buf = g on the first step), then ``p -= lr * buf``, or with Nesterov
    ``p -= lr * (g + m * buf)``; ``weight_decay`` adds ``weight_decay * p`` to g first."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(lr, weight_decay)
        self.momentum = _non_negative(momentum, "momentum", "SGD")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov needs a momentum > 0")

    def _new_state(self, param: np.ndarray) -> dict[str, Any]:
        return {"buffer": None}

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        lr = param.dtype.type(self.lr)
        if self.momentum == 0:
            param -= lr * grad
            return
        momentum = param.dtype.type(self.momentum)
        buffer = state["buffer"]
        if buffer is None:
            buffer = state["buffer"] = np.array(grad, dtype=param.dtype)
        else:
            buffer *= momentum
            buffer += grad
        param -= lr * (grad + momentum * buffer if self.nesterov else buffer)


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``'s rule, L2 ``weight_decay`` added to the gradient):
    m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g**2, p -= lr * m_hat / (sqrt(v_hat) + eps) with the
    bias-corrected m_hat = m / (1 - b1**t), v_hat = v / (1 - b2**t)."""

    def __init__(self, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"Adam: betas must be a pair, got {betas!r}") from None
        self.betas = (_non_negative(beta1, "betas[0]", "Adam"),
                      _non_negative(beta2, "betas[1]", "Adam"))
        if max(self.betas) >= 1:
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas!r}")
        self.eps = _non_negative(eps, "eps", "Adam")

    def _new_state(self, param: np.ndarray) -> dict[str, Any]:
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        beta1, beta2 = self.betas
        m, v = state["m"], state["v"]
        m *= param.dtype.type(beta1)
        m += param.dtype.type(1 - beta1) * grad
        v *= param.dtype.type(beta2)
        v += param.dtype.type(1 - beta2) * grad * grad
        step_size = self.lr / (1 - beta1 ** self.steps)
        denominator = np.sqrt(v / param.dtype.type(1 - beta2 ** self.steps))
        denominator += param.dtype.type(self.eps)
        param -= param.dtype.type(step_size) * (m / denominator)


def cosine_schedule(lr: float, epochs: int, final_fraction: float = 0.0) -> Callable[[int], float]:
    """``epoch -> lr`` falling from ``lr`` at epoch 0 along half a cosine to
    ``final_fraction * lr`` after the last of ``epochs`` epochs (for ``Network.fit``)."""
    lr = _non_negative(lr, "lr", "cosine_schedule")
    epochs = _validation.positive_int(epochs, "epochs", "cosine_schedule")
    final = _non_negative(final_fraction, "final_fraction", "cosine_schedule") * lr

    def schedule(epoch: int) -> float:
        return final + (lr - final) * 0.5 * (1 + np.cos(np.pi * epoch / epochs))

    return schedule
