"""Containers: layers made of layers."""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import Builder, Layer, register, spec_of

__all__ = ["Sequential", "Residual"]


def _check_layers(layers: tuple[Any, ...], func: str) -> list[Layer]:
    if not layers or not all(isinstance(layer, Layer) for layer in layers):
        raise TypeError(f"{func}: layers must be one or more Layer objects, got {layers!r}")
    return list(layers)


def _indented(text: str) -> str:
    return text.replace("\n", "\n    ")


@register
class Sequential(Layer):
    """Layers applied in order, as one layer (``torch.nn.Sequential``).

    Parameters
    ----------
    *layers : Layer
        One or more layers (containers included); named "0", "1", ... in model files and
        state dicts.
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        self.layers = _check_layers(layers, "Sequential")

    def sublayers(self) -> list[tuple[str, Layer]]:
        return [(str(index), layer) for index, layer in enumerate(self.layers)]

    @property  # type: ignore[override]
    def input_grad(self) -> bool:
        """Whether ``backward`` returns the input gradient: its first layer's setting."""
        return self.layers[0].input_grad

    @input_grad.setter
    def input_grad(self, value: bool) -> None:
        self.layers[0].input_grad = value

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def get_config(self) -> dict[str, Any]:
        return {"layers": [spec_of(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any], build: Builder) -> Layer:
        specs = config.get("layers")
        if set(config) != {"layers"} or not isinstance(specs, list):
            raise TypeError(f"Sequential: config must be {{'layers': [layer specs]}}, got {config!r}")
        return cls(*(build(spec, str(index)) for index, spec in enumerate(specs)))

    def __repr__(self) -> str:
        inner = ",\n".join(map(repr, self.layers))
        return f"Sequential(\n    {_indented(inner)}\n)"


@register
class Residual(Layer):
    """``body(x) + shortcut(x)``: the residual block of He et al. (2016).

    Parameters
    ----------
    *layers : Layer
        The body, applied in order (named "body.0", "body.1", ... in model files).
    shortcut : Layer, optional
        None (default) for the identity, or a layer (for example a :class:`Sequential` of a
        strided 1x1 :class:`Conv2D` and a :class:`BatchNorm2D` where the body changes the
        shape), named "shortcut" (its layers "shortcut.0", ... when it is a Sequential).

    Notes
    -----
    The body's and the shortcut's outputs must have the same shape: the first ``forward``
    where they differ raises ValueError naming both.
    """

    def __init__(self, *layers: Layer, shortcut: Layer | None = None) -> None:
        super().__init__()
        self.body = _check_layers(layers, "Residual")
        if shortcut is not None and not isinstance(shortcut, Layer):
            raise TypeError(f"Residual: shortcut must be a Layer or None, got {shortcut!r}")
        self.shortcut = shortcut
        # Through the setter: a body layer reused from elsewhere may have had it turned off.
        self.input_grad = True

    def sublayers(self) -> list[tuple[str, Layer]]:
        named = [(f"body.{index}", layer) for index, layer in enumerate(self.body)]
        if self.shortcut is not None:
            named.append(("shortcut", self.shortcut))
        return named

    @property  # type: ignore[override]
    def input_grad(self) -> bool:
        return self._input_grad

    @input_grad.setter
    def input_grad(self, value: bool) -> None:
        # Both branches' input gradients add up to the block's; without it neither is needed.
        self._input_grad = value
        self.body[0].input_grad = value
        if self.shortcut is not None:
            self.shortcut.input_grad = value

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        out = x
        for layer in self.body:
            out = layer.forward(out, training=training)
        skip = x if self.shortcut is None else self.shortcut.forward(x, training=training)
        if np.shape(out) != np.shape(skip):
            raise ValueError(f"Residual: the body's output has shape {np.shape(out)} but the "
                             f"shortcut's has shape {np.shape(skip)}; give a shortcut that "
                             "maps the input to the body's output shape")
        return out + skip

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        body_grad = grad
        for layer in reversed(self.body):
            body_grad = layer.backward(body_grad)
        skip_grad = grad if self.shortcut is None else self.shortcut.backward(grad)
        if not self._input_grad:
            return None
        return body_grad + skip_grad

    def get_config(self) -> dict[str, Any]:
        return {"layers": [spec_of(layer) for layer in self.body],
                "shortcut": None if self.shortcut is None else spec_of(self.shortcut)}

    @classmethod
    def from_config(cls, config: dict[str, Any], build: Builder) -> Layer:
        specs = config.get("layers")
        if set(config) != {"layers", "shortcut"} or not isinstance(specs, list):
            raise TypeError("Residual: config must be {'layers': [layer specs], 'shortcut': "
                            f"spec or None}}, got {config!r}")
        shortcut = None if config["shortcut"] is None else build(config["shortcut"], "shortcut")
        return cls(*(build(spec, f"body.{index}") for index, spec in enumerate(specs)),
                   shortcut=shortcut)

    def __repr__(self) -> str:
        inner = ",\n".join(map(repr, self.body))
        if self.shortcut is not None:
            inner += f",\nshortcut={self.shortcut!r}"
        return f"Residual(\n    {_indented(inner)}\n)"
