"""The layer contract, and building layers back from their configs (what model files store)."""
from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Iterator

import numpy as np

from .. import _validation
from .init import init_weights

__all__ = ["Layer", "layer_class", "layer_from_config", "register", "named_layers", "spec_of",
           "state_arrays"]

#: Parameter name -> (shape, dtype), as :meth:`Layer.param_shapes` reports them.
ParamShapes = dict[str, tuple[tuple[int, ...], np.dtype]]

#: ``build(spec, name)`` -> Layer: how a container's :meth:`Layer.from_config` builds each child
#: from its ``{"type": ..., "config": ...}`` spec; ``name`` is the child's name in the container.
Builder = Callable[[Any, str], "Layer"]

_LAYER_TYPES: dict[str, type[Layer]] = {}


class Layer:
    """Base class of every layer: no parameters, an empty config.

    A layer has ``forward(x, training=True)`` returning its output and ``backward(grad)``
    returning the gradient with respect to the input of the last ``forward``.  Trainable
    layers keep their arrays in ``params`` (name -> ndarray, updated in place by the
    optimizers) and the gradients of the last ``backward`` in ``grads`` (same names).
    Layers that keep state which is not trained (batch norm's running statistics) hold it in
    ``buffers`` (name -> ndarray), which model files save and load too.
    ``get_config()`` gives the constructor arguments, which is what model files store next
    to the arrays, and the class method ``param_shapes(config)`` the shapes and dtypes of the
    parameters such a config implies, without building the layer (``buffer_shapes`` likewise).

    Containers (:class:`~cnnative.nn.Sequential`, :class:`~cnnative.nn.Residual`) hold other
    layers: ``sublayers()`` names them, and :func:`named_layers` walks a tree of layers.
    """

    #: Set False (a network does this for its first layer) to skip computing the input
    #: gradient, which nothing consumes there; ``backward`` then returns None.
    input_grad: ClassVar[bool] | bool = True

    #: The names torch gives this layer's parameters and buffers where they differ from the
    #: keys of ``params`` and ``buffers`` (Conv2D's ``w`` is torch's ``weight``): state dicts
    #: (:func:`state_arrays`) use torch's names so that weights move between the two.
    torch_names: ClassVar[dict[str, str]] = {}
    #: Parameters whose gradients this layer computes for the whole batch even when it holds
    #: one shard of it in data-parallel training (batch norm's, from combined sums); the other
    #: parameters' gradients are the shard's part, which cnnative.distributed adds up.
    whole_batch_grads: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    def sublayers(self) -> list[tuple[str, Layer]]:
        """(name, layer) of the layers this one contains, in order; none but in containers."""
        return []

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def param_shapes(cls, config: dict[str, Any]) -> ParamShapes:
        """{name: (shape, dtype)} of the parameters a layer built from ``config`` holds,
        found without allocating them (model files check their arrays against it first).

        Raises ``TypeError``/``ValueError`` where the constructor would refuse ``config``.
        """
        layer = cls.__new__(cls)
        Layer.__init__(layer)
        layer._configure(**config)
        return layer._shapes()

    @classmethod
    def buffer_shapes(cls, config: dict[str, Any]) -> ParamShapes:
        """{name: (shape, dtype)} of the buffers a layer built from ``config`` holds."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any], build: Builder) -> Layer:
        """A layer built from ``get_config()`` output; containers build their children from
        the specs in ``config`` with ``build``."""
        return cls(**config)

    def _configure(self, *args: Any, **config: Any) -> None:
        """Checks the constructor's arguments and keeps them; trainable layers override it
        together with :meth:`_shapes`, which both the constructor and :meth:`param_shapes`
        use."""

    def _shapes(self) -> ParamShapes:
        return {}

    def _allocate(self, rng: Any) -> None:
        """Creates ``params`` from :meth:`_shapes`: weights (``w``) by ``self.init``, the rest
        zero."""
        for name, (shape, dtype) in self._shapes().items():
            if name == "w":
                fan_in = math.prod(shape[1:])
                fan_out = shape[0] * math.prod(shape[2:])
                self.params[name] = init_weights(shape, fan_in, fan_out, self.init, dtype, rng)
            else:
                self.params[name] = np.zeros(shape, dtype)

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _cached(self, name: str) -> Any:
        value = getattr(self, name, None)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return value


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: makes ``cls`` known to :func:`layer_from_config` by its name."""
    _LAYER_TYPES[cls.__name__] = cls
    return cls


def layer_class(name: str) -> type[Layer]:
    """The registered layer class called ``name``; ValueError listing the known ones."""
    return _validation.choice(name, _LAYER_TYPES, "layer type", "layer_from_config")


def check_config(name: str, config: Any) -> dict[str, Any]:
    """``config`` if it is a dict with string keys; ValueError otherwise."""
    if not isinstance(config, dict) or not all(isinstance(key, str) for key in config):
        raise ValueError(f"layer_from_config: config for {name} must be a dict, got {config!r}")
    return config


def spec_of(layer: Layer) -> dict[str, Any]:
    """``{"type": class name, "config": get_config()}``: what model files store of a layer."""
    return {"type": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(name: str, config: dict[str, Any]) -> Layer:
    """A new layer of type ``name`` (a registered class name) built from ``get_config()``
    output (a container's children from their specs, likewise); ValueError for an unknown
    type or a config its constructor refuses."""
    cls = layer_class(name)
    config = check_config(name, config)

    def build(spec: Any, child: str) -> Layer:
        if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
            raise ValueError(f"layer_from_config: {name}'s {child} must be a layer spec "
                             f"{{'type': ..., 'config': ...}}, got {spec!r}")
        return layer_from_config(spec["type"], spec["config"])

    try:
        return cls.from_config(config, build)
    except TypeError as error:
        raise ValueError(f"layer_from_config: bad config for {name}: {error}") from None


def named_layers(layers: list[Layer] | list[tuple[str, Layer]],
                 prefix: str = "") -> Iterator[tuple[str, Layer]]:
    """(dotted name, layer) of every layer in ``layers`` and, depth first, of every layer they
    contain: "0", "1", "1.body.0", ... (a plain list is named by position)."""
    named = [item if isinstance(item, tuple) else (str(index), item)
             for index, item in enumerate(layers)]
    for name, layer in named:
        full = f"{prefix}{name}"
        yield full, layer
        yield from named_layers(layer.sublayers(), f"{full}.")


def state_arrays(layers: list[Layer]) -> Iterator[tuple[str, np.ndarray]]:
    """(key, array) of every parameter and then every buffer of each layer in ``layers`` and in
    the layers they contain, in :func:`named_layers` order, keyed as ``torch.nn.Sequential``'s
    ``state_dict`` keys those of the same modules: "<layer name>.<torch's array name>" ("0.weight",
    "3.body.1.running_mean", ...).  The arrays are the layers' own, not copies."""
    for prefix, layer in named_layers(layers):
        for name, array in {**layer.params, **layer.buffers}.items():
            yield f"{prefix}.{layer.torch_names.get(name, name)}", array
