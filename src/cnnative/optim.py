"""Optimizers with PyTorch's update rules, and learning-rate schedulers.

An optimizer's ``step(pairs)`` takes a list of (parameter, gradient) arrays, in the same order
every call (a network's order), and updates the parameters in place; per-parameter state
(momentum buffers, moving averages) is kept by position and created on the first step.
``state_dict()`` and ``load_state_dict()`` save and restore everything a step depends on, so
that training resumed from a checkpoint is bit-identical to training that never stopped.

A :class:`Scheduler` sets an optimizer's ``lr``: ``attach(optimizer)`` before the first step,
then ``step()`` after every epoch or every batch, as its ``interval`` says.
"""
from __future__ import annotations

import copy
import inspect
import math
import numbers
from typing import Any, Mapping, Sequence

import numpy as np

from . import _validation

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop",
           "Scheduler", "StepLR", "CosineAnnealing", "OneCycle"]


def _non_negative(value: Any, name: str, func: str, *, positive: bool = False) -> float:
    value = _validation.real_scalar(value, name, func)
    if not np.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{func}: {name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _fraction(value: Any, name: str, func: str, *, below_one: bool = False) -> float:
    value = _non_negative(value, name, func)
    if value > 1 or (below_one and value == 1):
        interval = "[0, 1)" if below_one else "[0, 1]"
        raise ValueError(f"{func}: {name} must lie in {interval}, got {value!r}")
    return value


def _count(value: Any, name: str, func: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{func}: {name} must be an integer >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{func}: {name} must be an integer >= 0, got {value!r}")
    return int(value)


def _flag(value: Any, name: str, func: str) -> bool:
    # Only real booleans: bool("false") from a hand-edited checkpoint would be True.
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be True or False, got {value!r}")
    return bool(value)


def _check_keys(mapping: Any, expected: Sequence[str], what: str, func: str) -> None:
    if not isinstance(mapping, Mapping):
        raise ValueError(f"{func}: {what} must be a dict, got {type(mapping).__name__}")
    wanted = set(expected)
    missing = [key for key in expected if key not in mapping]
    unexpected = sorted(repr(key) for key in mapping if key not in wanted)
    if missing:
        raise ValueError(f"{func}: {what} is missing {', '.join(map(repr, missing))}")
    if unexpected:
        raise ValueError(f"{func}: {what} has unexpected keys {', '.join(unexpected)}")


def _check_state(state: Any, keys: Sequence[str], cls: str, func: str) -> None:
    if not isinstance(state, Mapping):
        raise TypeError(f"{func}: state must be a dict, got {type(state).__name__}")
    _check_keys(state, keys, "state", func)
    if state["type"] != cls:
        raise ValueError(f"{func}: state is for {state['type']!r}, not {cls!r}")


def _option_names(obj: object) -> list[str]:
    # The constructor's parameters are the options: one list for state_dict, load_state_dict
    # and __repr__.
    return list(inspect.signature(type(obj)).parameters)


def _moving_average(average: np.ndarray, value: np.ndarray, beta: float) -> None:
    """``average = beta * average + (1 - beta) * value`` in place (torch's running averages)."""
    average *= average.dtype.type(beta)
    average += average.dtype.type(1 - beta) * value


def _momentum(state: dict[str, Any], value: np.ndarray, momentum: float,
              dtype: np.dtype) -> np.ndarray:
    """torch's momentum buffer: ``buf = value`` on the first step, then
    ``buf = momentum * buf + value``."""
    buffer = state["momentum_buffer"]
    if buffer is None:
        buffer = state["momentum_buffer"] = np.array(value, dtype=dtype)
    else:
        buffer *= dtype.type(momentum)
        buffer += value
    return buffer


class Optimizer:
    """Base class of the optimizers: the step loop, L2 weight decay and checkpoint state.

    Subclasses check their options in ``_options`` (for the constructor and for
    :meth:`load_state_dict` alike), create a parameter's state in ``_new_state`` and apply one
    update in ``_update``.

    Attributes
    ----------
    lr : float
        The learning rate; a :class:`Scheduler` changes it between steps.
    steps : int
        The number of steps taken.
    """

    lr: float
    weight_decay: float

    def __init__(self, **options: Any) -> None:
        vars(self).update(self._options(options, type(self).__name__))
        self.steps = 0
        self._state: list[dict[str, Any]] | None = None
        # Set by load_state_dict: its arrays are checked against the parameters at the next
        # step, the first time the optimizer sees them.
        self._loaded = False

    def _options(self, given: Mapping[str, Any], func: str) -> dict[str, Any]:
        return {"lr": _non_negative(given["lr"], "lr", func),
                "weight_decay": _non_negative(given["weight_decay"], "weight_decay", func)}

    def _new_state(self, param: np.ndarray) -> dict[str, Any]:
        # None marks an array created from the first step's values.
        raise NotImplementedError

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _decay(self, param: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return grad + param.dtype.type(self.weight_decay) * param

    def step(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        pairs : sequence of (numpy.ndarray, numpy.ndarray)
            (parameter, gradient) pairs, float32 or float64, in the same order at every step.

        Raises
        ------
        ValueError
            A different number of parameters than at earlier steps, or state restored by
            :meth:`load_state_dict` whose shapes or dtypes differ from the parameters'.
        """
        if self._state is None:
            self._state = [self._new_state(param) for param, _ in pairs]
        else:
            self.check_state([param for param, _ in pairs], f"{type(self).__name__}.step")
        self._loaded = False
        self.steps += 1
        for (param, grad), state in zip(pairs, self._state):
            if self.weight_decay:
                grad = self._decay(param, grad)
            self._update(param, grad, state)

    def check_state(self, params: Sequence[np.ndarray], func: str | None = None) -> None:
        """Raise ValueError unless the state (if any) fits ``params``: their number and, for
        state restored by :meth:`load_state_dict`, each array's shape and dtype.  ``step``
        checks this itself; a trainer resuming from a checkpoint checks it up front."""
        func = func or f"{type(self).__name__}.check_state"
        if self._state is None:
            return
        if len(self._state) != len(params):
            raise ValueError(f"{func}: got {len(params)} parameters, but the optimizer's state "
                             f"is for {len(self._state)}")
        if self._loaded:
            for index, (param, state) in enumerate(zip(params, self._state)):
                for name, array in state.items():
                    if array.shape != param.shape or array.dtype != param.dtype:
                        raise ValueError(
                            f"{func}: the loaded state '{index}.{name}' has shape {array.shape} "
                            f"and dtype {array.dtype}, but parameter {index} has shape "
                            f"{param.shape} and dtype {param.dtype}")

    def state_dict(self) -> dict[str, Any]:
        """Everything the next steps depend on, for a checkpoint.

        Returns
        -------
        dict
            ``{"type": class name, "config": {option: value, ..., "steps": int},
            "arrays": {"<parameter index>.<state name>": numpy.ndarray, ...}}``.  The config
            is JSON-serialisable; the arrays are copies (none before the first step).
        """
        config = {name: getattr(self, name) for name in _option_names(self)}
        config = {name: list(value) if isinstance(value, tuple) else value
                  for name, value in config.items()}
        config["steps"] = self.steps
        arrays = {f"{index}.{name}": array.copy()
                  for index, state in enumerate(self._state or ())
                  for name, array in state.items() if array is not None}
        return {"type": type(self).__name__, "config": config, "arrays": arrays}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the options, step count and per-parameter state of :meth:`state_dict`.

        Everything is checked before anything changes.  The arrays' shapes and dtypes are
        checked against the parameters at the next :meth:`step`.  Values in the arrays are not
        checked: a resumed run repeats whatever the interrupted one would have done.

        Parameters
        ----------
        state : dict
            A dict from :meth:`state_dict` of the same class, possibly after a round trip
            through JSON (config) and ``np.savez``/``np.load`` (arrays).

        Raises
        ------
        TypeError
            ``state`` is not a dict.
        ValueError
            Another class's state, missing or unexpected keys, an invalid option or step
            count, array keys that do not fit the options and step count, or arrays that are
            not float32/float64 ndarrays.
        """
        cls = type(self).__name__
        func = f"{cls}.load_state_dict"
        _check_state(state, ("type", "config", "arrays"), cls, func)
        config, arrays = state["config"], state["arrays"]
        names = _option_names(self)
        _check_keys(config, [*names, "steps"], "config", func)
        restored = copy.copy(self)
        try:
            vars(restored).update(self._options(config, func))
            restored.steps = _count(config["steps"], "steps", func)
        except TypeError as exc:
            # A checkpoint's wrong content is a bad value, whichever Python type it has.
            raise ValueError(str(exc)) from None
        if not isinstance(arrays, Mapping):
            raise ValueError(f"{func}: arrays must be a dict, got {type(arrays).__name__}")
        per_parameter = list(restored._new_state(np.zeros(0)))
        indices = [int(index) for index, _, name in (str(key).partition(".") for key in arrays)
                   if index.isascii() and index.isdecimal() and name in per_parameter]
        # Capped: a key with a huge index must not make a huge list of expected keys.
        count = min(max(indices) + 1, len(arrays)) if indices and restored.steps else 0
        expected = [f"{index}.{name}" for index in range(count) for name in per_parameter]
        try:
            _check_keys(arrays, expected, "arrays", func)
        except ValueError as exc:
            raise ValueError(f"{exc} (after {restored.steps} steps, expected "
                             f"'<parameter index>.<name>' for names {per_parameter} and "
                             "parameter indices 0, 1, ...)") from None
        restored._state = None
        if count:
            restored._state = [{name: _state_array(arrays[f"{index}.{name}"],
                                                   f"{index}.{name}", func)
                                for name in per_parameter} for index in range(count)]
        restored._loaded = count > 0
        vars(self).update(vars(restored))


def _state_array(value: Any, key: str, func: str) -> np.ndarray:
    if (not isinstance(value, np.ndarray) or value.dtype.kind != "f"
            or value.dtype.itemsize not in (4, 8)):
        what = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        raise ValueError(f"{func}: arrays[{key!r}] must be a float32 or float64 ndarray, "
                         f"got {what}")
    # A copy in native byte order: the updates run in place on it.
    return np.array(value, dtype=value.dtype.newbyteorder("="), order="C", copy=True)


class SGD(Optimizer):
    """Stochastic gradient descent with ``torch.optim.SGD``'s rule.

    With ``g`` the gradient plus ``weight_decay * p`` (L2 decay):
    without momentum ``p -= lr * g``; with momentum ``m``, ``buf = m * buf + g`` (``buf = g`` on
    the first step), then ``p -= lr * buf``, or with Nesterov ``p -= lr * (g + m * buf)``.

    Parameters
    ----------
    lr : float
        Learning rate, >= 0.
    momentum : float
        Momentum factor, >= 0.
    weight_decay : float
        L2 penalty added to the gradient, >= 0.
    nesterov : bool
        Nesterov momentum (needs ``momentum > 0``).
    """

    momentum: float
    nesterov: bool

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    def _options(self, given: Mapping[str, Any], func: str) -> dict[str, Any]:
        options = super()._options(given, func)
        options["momentum"] = _non_negative(given["momentum"], "momentum", func)
        options["nesterov"] = _flag(given["nesterov"], "nesterov", func)
        if options["nesterov"] and options["momentum"] == 0:
            raise ValueError(f"{func}: nesterov needs a momentum > 0")
        return options

    def _new_state(self, param: np.ndarray) -> dict[str, Any]:
        return {"momentum_buffer": None} if self.momentum else {}

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        if self.momentum:
            buffer = _momentum(state, grad, self.momentum, param.dtype)
            grad = grad + param.dtype.type(self.momentum) * buffer if self.nesterov else buffer
        param -= param.dtype.type(self.lr) * grad


class Adam(Optimizer):
    """Adam with ``torch.optim.Adam``'s rule (``weight_decay`` is L2 decay on the gradient).

    At step ``t``, with ``g`` the gradient plus ``weight_decay * p``:
    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g**2`` (both zero at first), then
    ``p -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``.

    Parameters
    ----------
    lr : float
        Learning rate, >= 0.
    betas : (float, float)
        Decay rates ``(b1, b2)`` of the moving averages, each in [0, 1).
    eps : float
        Added to the denominator, >= 0.
    weight_decay : float
        L2 penalty added to the gradient, >= 0.
    """

    betas: tuple[float, float]
    eps: float

    def __init__(self, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _options(self, given: Mapping[str, Any], func: str) -> dict[str, Any]:
        options = super()._options(given, func)
        betas = given["betas"]
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"{func}: betas must be a pair, got {betas!r}") from None
        options["betas"] = (_fraction(beta1, "betas[0]", func, below_one=True),
                            _fraction(beta2, "betas[1]", func, below_one=True))
        options["eps"] = _non_negative(given["eps"], "eps", func)
        return options

    def _new_state(self, param: np.ndarray) -> dict[str, Any]:
        return {"exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param)}

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        beta1, beta2 = self.betas
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        _moving_average(exp_avg, grad, beta1)
        _moving_average(exp_avg_sq, grad * grad, beta2)
        dtype = param.dtype.type
        # torch's order of operations, so that float32 results stay within a few ulp of its.
        denominator = np.sqrt(exp_avg_sq)
        denominator /= dtype((1 - beta2 ** self.steps) ** 0.5)
        denominator += dtype(self.eps)
        update = np.divide(exp_avg, denominator, out=denominator)
        update *= dtype(self.lr / (1 - beta1 ** self.steps))
        param -= update


class AdamW(Adam):
    """Adam with decoupled weight decay, ``torch.optim.AdamW``'s rule.

    Before the Adam update of :class:`Adam` (which then sees the plain gradient),
    ``p *= 1 - lr * weight_decay``, i.e. ``p -= lr * weight_decay * p``.

    Parameters
    ----------
    lr : float
        Learning rate, >= 0.
    betas : (float, float)
        Decay rates ``(b1, b2)`` of the moving averages, each in [0, 1).
    eps : float
        Added to the denominator, >= 0.
    weight_decay : float
        Decoupled weight decay, >= 0.
    """

    def __init__(self, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(lr, betas, eps, weight_decay)

    def _decay(self, param: np.ndarray, grad: np.ndarray) -> np.ndarray:
        param *= param.dtype.type(1 - self.lr * self.weight_decay)
        return grad


class RMSprop(Optimizer):
    """RMSprop with ``torch.optim.RMSprop``'s rule.

    With ``g`` the gradient plus ``weight_decay * p`` (L2 decay):
    ``s = alpha*s + (1-alpha)*g**2``; centered, also ``a = alpha*a + (1-alpha)*g`` and the
    denominator is ``d = sqrt(s - a**2) + eps``, else ``d = sqrt(s) + eps`` (``s`` and ``a``
    zero at first).  Then ``p -= lr * g / d``, or with momentum ``m``,
    ``buf = m * buf + g / d`` (zero at first) and ``p -= lr * buf``.

    Parameters
    ----------
    lr : float
        Learning rate, >= 0.
    alpha : float
        Decay rate of the moving averages, in [0, 1].
    eps : float
        Added to the denominator, >= 0.
    weight_decay : float
        L2 penalty added to the gradient, >= 0.
    momentum : float
        Momentum factor, >= 0.
    centered : bool
        Divide by an estimate of the gradient's standard deviation rather than of its root
        mean square.
    """

    alpha: float
    eps: float
    momentum: float
    centered: bool

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered)

    def _options(self, given: Mapping[str, Any], func: str) -> dict[str, Any]:
        options = super()._options(given, func)
        options["alpha"] = _fraction(given["alpha"], "alpha", func)
        options["eps"] = _non_negative(given["eps"], "eps", func)
        options["momentum"] = _non_negative(given["momentum"], "momentum", func)
        options["centered"] = _flag(given["centered"], "centered", func)
        return options

    def _new_state(self, param: np.ndarray) -> dict[str, Any]:
        state: dict[str, Any] = {"square_avg": np.zeros_like(param)}
        if self.centered:
            state["grad_avg"] = np.zeros_like(param)
        if self.momentum:
            state["momentum_buffer"] = None
        return state

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        square_avg = state["square_avg"]
        _moving_average(square_avg, grad * grad, self.alpha)
        if self.centered:
            grad_avg = state["grad_avg"]
            _moving_average(grad_avg, grad, self.alpha)
            denominator = square_avg - grad_avg * grad_avg
            np.sqrt(denominator, out=denominator)
        else:
            denominator = np.sqrt(square_avg)
        denominator += param.dtype.type(self.eps)
        update = np.divide(grad, denominator, out=denominator)
        if self.momentum:
            update = _momentum(state, update, self.momentum, param.dtype)
        param -= param.dtype.type(self.lr) * update


def _half_cosine(start: float, end: float, angle: float) -> float:
    """From ``start`` at angle 0 to ``end`` at angle pi, along half a cosine."""
    return end + (start - end) * (1 + math.cos(angle)) / 2


class Scheduler:
    """Base class of the learning-rate schedulers.

    ``attach(optimizer)`` once before training, then ``step()`` after every epoch or every
    batch, as ``interval`` says; each sets ``optimizer.lr`` to :meth:`lr_at` of the new step
    count.  Subclasses define the formula in ``_lr``.

    Attributes
    ----------
    interval : {"epoch", "batch"}
        When :meth:`step` is meant to be called.
    steps : int
        The number of steps taken since :meth:`attach`.
    base_lr : float or None
        The optimizer's lr when it was attached (None before).
    """

    interval = "epoch"

    def __init__(self) -> None:
        self.steps = 0
        self.base_lr: float | None = None
        self.optimizer: Optimizer | None = None
        # Set by load_state_dict before attach: attach then keeps steps and base_lr.
        self._restored = False

    def _lr(self, step: int) -> float:
        raise NotImplementedError

    def _base(self, func: str) -> float:
        if self.base_lr is None:
            raise RuntimeError(f"{func}: base_lr is unknown until attach(optimizer)")
        return self.base_lr

    def attach(self, optimizer: Optimizer) -> None:
        """Start scheduling ``optimizer``: record ``base_lr = optimizer.lr`` and set the lr of
        step 0 (or, after :meth:`load_state_dict`, keep the loaded step count and base_lr and
        set the lr of that step).

        Raises
        ------
        TypeError
            ``optimizer`` is not an :class:`Optimizer`.
        """
        func = f"{type(self).__name__}.attach"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{func}: optimizer must be an Optimizer, got {optimizer!r}")
        if not self._restored or self.base_lr is None:
            self.steps, self.base_lr = 0, optimizer.lr
        self._restored = False
        self.optimizer = optimizer
        optimizer.lr = self.lr_at(self.steps)

    def step(self) -> None:
        """Advance one step (epoch or batch, see ``interval``) and set the optimizer's lr.

        Raises
        ------
        RuntimeError
            No optimizer is attached.
        """
        if self.optimizer is None:
            raise RuntimeError(f"{type(self).__name__}.step: call attach(optimizer) first")
        self.steps += 1
        self.optimizer.lr = self.lr_at(self.steps)

    def lr_at(self, step: int) -> float:
        """The learning rate after ``step`` steps (the schedule's formula; changes nothing).

        Raises
        ------
        TypeError, ValueError
            ``step`` is not an integer >= 0.
        RuntimeError
            The formula needs ``base_lr`` and no optimizer has been attached.
        """
        return self._lr(_count(step, "step", f"{type(self).__name__}.lr_at"))

    def state_dict(self) -> dict[str, Any]:
        """``{"type": class name, "steps": int, "base_lr": float or None}`` (JSON-serialisable).

        The schedule's own parameters are the constructor's, not part of the state.
        """
        return {"type": type(self).__name__, "steps": self.steps, "base_lr": self.base_lr}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the step count and base_lr of :meth:`state_dict`, and if an optimizer is
        attached, set its lr for that step (else :meth:`attach` will).

        Raises
        ------
        TypeError
            ``state`` is not a dict.
        ValueError
            Another class's state, missing or unexpected keys, a step count that is not an
            integer >= 0, or a base_lr that is neither None nor a finite number >= 0 (or None
            after steps).
        """
        cls = type(self).__name__
        func = f"{cls}.load_state_dict"
        _check_state(state, ("type", "steps", "base_lr"), cls, func)
        try:
            steps = _count(state["steps"], "steps", func)
            base_lr = state["base_lr"]
            if base_lr is not None:
                base_lr = _non_negative(base_lr, "base_lr", func)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        if steps and base_lr is None:
            raise ValueError(f"{func}: base_lr is None after {steps} steps")
        self.steps, self.base_lr = steps, base_lr
        if self.optimizer is None:
            self._restored = True
        else:
            self.optimizer.lr = self.lr_at(steps)

    def __repr__(self) -> str:
        options = ", ".join(f"{name}={getattr(self, name)!r}" for name in _option_names(self))
        return f"{type(self).__name__}({options})"


class StepLR(Scheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (stepped per epoch),
    as ``torch.optim.lr_scheduler.StepLR``.

    ``lr = base_lr * gamma ** (epoch // step_size)``.

    Parameters
    ----------
    step_size : int
        Epochs between decays, >= 1.
    gamma : float
        Decay factor, >= 0.
    """

    interval = "epoch"

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        super().__init__()
        self.step_size = _validation.positive_int(step_size, "step_size", "StepLR")
        self.gamma = _non_negative(gamma, "gamma", "StepLR")

    def _lr(self, step: int) -> float:
        return self._base("StepLR.lr_at") * self.gamma ** (step // self.step_size)


class CosineAnnealing(Scheduler):
    """Linear warm-up, then half a cosine down to ``min_lr`` (stepped per epoch).

    With ``W = warmup``, ``T = total`` and ``b = base_lr``::

        epoch < W:        lr = b * (epoch + 1) / (W + 1)
        W <= epoch <= T:  lr = min_lr + (b - min_lr) * (1 + cos(pi * (epoch - W) / (T - W))) / 2
        epoch > T:        lr = min_lr

    so the warm-up climbs in equal steps to ``base_lr`` at epoch ``W``.  Without warm-up this is
    the closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=total,
    eta_min=min_lr)`` up to epoch ``total`` (torch's rises again after it).

    Parameters
    ----------
    total : int
        The epoch at which ``min_lr`` is reached, >= 1.
    warmup : int
        Warm-up epochs, 0 <= warmup < total.
    min_lr : float
        The final learning rate, >= 0.
    """

    interval = "epoch"

    def __init__(self, total: int, warmup: int = 0, min_lr: float = 0.0) -> None:
        super().__init__()
        func = "CosineAnnealing"
        self.total = _validation.positive_int(total, "total", func)
        self.warmup = _count(warmup, "warmup", func)
        if self.warmup >= self.total:
            raise ValueError(f"{func}: warmup must be less than total, got warmup={warmup!r} "
                             f"and total={total!r}")
        self.min_lr = _non_negative(min_lr, "min_lr", func)

    def _lr(self, step: int) -> float:
        base = self._base("CosineAnnealing.lr_at")
        if step < self.warmup:
            return base * (step + 1) / (self.warmup + 1)
        if step >= self.total:
            return self.min_lr
        angle = math.pi * (step - self.warmup) / (self.total - self.warmup)
        return _half_cosine(base, self.min_lr, angle)


class OneCycle(Scheduler):
    """The 1cycle policy of ``torch.optim.lr_scheduler.OneCycleLR`` (cosine annealing, two
    phases; stepped per batch).

    ``max_lr`` replaces the optimizer's lr (whose value is only recorded as ``base_lr``);
    momentum is not cycled.  With ``initial = max_lr / div_factor``,
    ``final = initial / final_div_factor``, the peak step ``P = pct_start * total - 1`` and
    ``c(a, b, x) = b + (a - b) * (1 + cos(pi * x)) / 2``::

        step <= P:               lr = c(initial, max_lr, step / P)
        P < step <= total - 1:   lr = c(max_lr, final, (step - P) / (total - 1 - P))
        step > total - 1:        lr = the value at step total - 1

    (A peak at step 0 gives ``max_lr`` there, where torch divides 0 by 0.)

    Parameters
    ----------
    max_lr : float
        The peak learning rate, >= 0.
    total : int
        Number of batches in the whole schedule, >= 1.
    pct_start : float
        Fraction of ``total`` spent rising, in [0, 1].
    div_factor : float
        ``max_lr / div_factor`` is the first learning rate, > 0.
    final_div_factor : float
        The last learning rate is the first one divided by this, > 0.
    """

    interval = "batch"

    def __init__(self, max_lr: float, total: int, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4) -> None:
        super().__init__()
        func = "OneCycle"
        self.max_lr = _non_negative(max_lr, "max_lr", func)
        self.total = _validation.positive_int(total, "total", func)
        self.pct_start = _fraction(pct_start, "pct_start", func)
        self.div_factor = _non_negative(div_factor, "div_factor", func, positive=True)
        self.final_div_factor = _non_negative(final_div_factor, "final_div_factor", func,
                                              positive=True)

    def _lr(self, step: int) -> float:
        initial = self.max_lr / self.div_factor
        final = initial / self.final_div_factor
        peak = self.pct_start * self.total - 1
        step = min(step, self.total - 1)
        if step <= peak:
            fraction = step / peak if peak > 0 else 1.0
            return _half_cosine(initial, self.max_lr, math.pi * fraction)
        fraction = (step - peak) / (self.total - 1 - peak)
        return _half_cosine(self.max_lr, final, math.pi * fraction)
