"""Export to ONNX: a :class:`~cnnative.Network` or an :class:`~cnnative.Ensemble` as one ONNX
graph, for onnxruntime and the other runtimes and converters that read ONNX.

The graph's input, named "input", is what :meth:`cnnative.Network.forward` takes: floats of
the network's dtype, uint8 images already divided by 255, with their channel axis: shape
("N", C, H, W), or ("N", features) for a network that begins with a dense layer, the batch
size "N" symbolic.  Its output, named "output", is ("N", K): a network's last layer's outputs
(logits for the usual losses), or an ensemble's averaged probabilities (each member's softmax,
or sigmoid, then their ``Mean``), what :meth:`cnnative.Ensemble.predict_proba` gives.

Layers map to ONNX operators one to one: Conv2D to ``Conv`` (padding 'same' written out as the
explicit pads it stands for), BatchNorm2D/1D to ``BatchNormalization`` with the running
statistics (inference), MaxPool2D to ``MaxPool``, AvgPool2D to ``AveragePool`` (with its
``count_include_pad``), GlobalAvgPool2D to ``GlobalAveragePool`` then ``Flatten``, Dense to
``Gemm`` (transB=1: ``w`` is (out, in)), Flatten, ReLU, LeakyReLU, Sigmoid and Tanh to their
namesakes, a Residual to its body, its shortcut (or none, for the identity) and ``Add``;
Dropout disappears and Sequential containers are inlined.  Weights are named as the state dict
names them ("0.weight", "3.body.1.running_mean"; an ensemble's member i's prefixed with
"members.<i>.").  float64 networks export as double graphs, valid ONNX, but onnxruntime's CPU
provider has no double ``Conv`` or average pooling kernels.
"""
# onnx is imported when a model is exported (see _onnx): it is an optional dependency.
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from .. import _validation
from .._files import atomic_write
from .._optional import optional_import
from ..conv import same_padding
from ..ensemble import Ensemble
from ..network import Network
from ..nn import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten,
                  GlobalAvgPool2D, Layer, LeakyReLU, MaxPool2D, ReLU, Residual, Sequential,
                  Sigmoid, Tanh, named_layers)

__all__ = ["export_onnx"]

# Softmax's axis argument means one axis (not all axes from it on) from opset 13.
_MIN_OPSET = 13


def export_onnx(model: Network | Ensemble, path: str | os.PathLike, opset: int = 17, *,
                input_shape: Sequence[int] | None = None) -> Any:
    """Write ``model`` to ``path`` as an ONNX model, atomically (see
    :func:`cnnative._files.atomic_write`), after ``onnx.checker.check_model(full_check=True)``.

    Parameters
    ----------
    model : cnnative.Network or cnnative.Ensemble
        A network exports its outputs (logits), an ensemble its averaged probabilities.
    path : str or PathLike
        The file to write (exactly that name).
    opset : int
        The ONNX operator set, from 13 to the newest the installed onnx knows.
    input_shape : (C, H, W) or (features,), optional
        One sample's shape.  Needed unless the (first) network begins with a Dense or
        BatchNorm1D layer, which fixes it; a network beginning with a convolution fixes C but
        not H and W.  ``(1, 28, 28)`` for :func:`cnnative.models.nielsen` and
        :func:`~cnnative.models.lenet5`, ``(in_channels, H, W)`` for
        :func:`~cnnative.models.resnet`.  A forward pass on one sample of zeros checks it.

    Returns
    -------
    onnx.ModelProto
        The model written: input "input" of shape ``("N", *input_shape)``, output "output"
        of shape ``("N", K)``.

    Raises
    ------
    ImportError
        onnx is not installed (``pip install 'cnnative[onnx]'``).
    TypeError
        ``model`` is neither, or holds a layer type with no ONNX counterpart (the message
        names the layer), or an argument has the wrong type.
    ValueError
        ``input_shape`` is needed but missing, or does not fit the network; ``opset`` is out
        of range.
    """
    func = "export_onnx"
    if not isinstance(model, (Network, Ensemble)):
        raise TypeError(f"{func}: model must be a cnnative.Network or cnnative.Ensemble, got "
                        f"{type(model).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{func}: path must be a str or os.PathLike, got {type(path).__name__}")
    opset = _validation.positive_int(opset, "opset", func)
    onnx = _onnx(func)
    newest = onnx.defs.onnx_opset_version()
    if not _MIN_OPSET <= opset <= newest:
        raise ValueError(f"{func}: opset must be in [{_MIN_OPSET}, {newest}] (the newest the "
                         f"installed onnx {onnx.__version__} knows), got {opset}")
    networks: list[Network]
    if isinstance(model, Ensemble):
        networks = list(model)
        prefixes = [f"members.{index}." for index in range(len(model))]
        activation: str | None = model.activation
    else:
        networks, prefixes, activation = [model], [""], None
    ensemble = activation is not None
    shape = _input_shape(networks[0], input_shape, func)
    output_shape = _output_shape(networks, shape, func)

    graph = _Graph(onnx, model.dtype)
    outputs = []
    for network, prefix in zip(networks, prefixes):
        y = graph.chain([(f"{prefix}{index}", layer)
                         for index, layer in enumerate(network.layers)], "input")
        if activation is not None:
            # The member's predict_proba: softmax over the classes, or a sigmoid per output.
            op, attributes = {"softmax": ("Softmax", {"axis": 1}),
                              "sigmoid": ("Sigmoid", {})}[activation]
            y = graph.node(op, [y], f"{prefix}probabilities", **attributes)
        outputs.append(y)
    if ensemble:
        graph.node("Mean", outputs, "output")
    else:
        graph.rename_output(outputs[0], "output")

    helper = onnx.helper
    elem_type = helper.np_dtype_to_tensor_dtype(model.dtype)
    onnx_graph = helper.make_graph(
        graph.nodes, "cnnative_ensemble" if ensemble else "cnnative_network",
        [helper.make_tensor_value_info("input", elem_type, ["N", *shape])],
        [helper.make_tensor_value_info("output", elem_type, ["N", *output_shape])],
        graph.initializers)
    opsets = [helper.make_opsetid("", opset)]
    onnx_model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="cnnative",
                                   doc_string=("averaged class probabilities of "
                                               f"{len(networks)} networks" if ensemble
                                               else "the network's outputs (logits)"))
    # The oldest IR version the opset allows, so that older runtimes read the file too.
    onnx_model.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(onnx_model, full_check=True)
    data = onnx_model.SerializeToString()
    atomic_write(os.fspath(path), lambda stream: stream.write(data), func)
    return onnx_model


def _onnx(func: str) -> Any:
    onnx, reason = optional_import("onnx")
    if onnx is None:
        raise ImportError(f"{func}: exporting to ONNX needs the onnx package ({reason}); "
                          "install it with: pip install 'cnnative[onnx]'")
    return onnx


def _input_shape(network: Network, input_shape: Sequence[int] | None,
                 func: str) -> tuple[int, ...]:
    """One sample's shape: ``input_shape`` checked, or what the first layer fixes."""
    if input_shape is not None:
        shape = _validation.shape_tuple(input_shape, "input_shape", func)
        if len(shape) not in (1, 3) or min(shape) < 1:
            raise ValueError(f"{func}: input_shape must be (C, H, W) or (features,) of "
                             f"positive sizes, got {input_shape!r}")
        return shape
    first = next(layer for _, layer in named_layers(network.layers) if not layer.sublayers())
    if isinstance(first, Dense):
        return (first.in_features,)
    if isinstance(first, BatchNorm1D):
        return (first.num_features,)
    raise ValueError(f"{func}: input_shape is needed: the network begins with "
                     f"{type(first).__name__}, which does not fix the shape of its input; give "
                     "input_shape=(C, H, W), e.g. (1, 28, 28) for cnnative.models' digit "
                     "networks")


def _output_shape(networks: list[Network], shape: tuple[int, ...],
                  func: str) -> tuple[int, ...]:
    """One sample's output shape, from a forward pass of one sample of zeros through each
    network (which checks that the input shape fits them all)."""
    shapes = []
    for index, network in enumerate(networks):
        which = "the network" if len(networks) == 1 else f"member {index}"
        try:
            output = network.forward(np.zeros((1, *shape), network.dtype), training=False)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{func}: input_shape {shape} does not fit {which}: {error}") from None
        shapes.append(output.shape[1:])
    if len(set(shapes)) > 1:
        raise ValueError(f"{func}: the members' outputs for input_shape {shape} differ in "
                         f"shape (one sample's: {shapes})")
    return shapes[0]


class _Graph:
    """The nodes and initializers of a graph under construction; tensors are named after the
    layers that compute them."""

    def __init__(self, onnx: Any, dtype: np.dtype) -> None:
        self._onnx = onnx
        self._dtype = dtype
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def node(self, op: str, inputs: list[str], name: str, **attributes: Any) -> str:
        """Add a node computing the tensor ``name``; returns that name."""
        self.nodes.append(self._onnx.helper.make_node(op, inputs, [name], name=name,
                                                      **attributes))
        return name

    def weight(self, layer: Layer, array_name: str, name: str) -> str:
        """Add a layer's parameter or buffer as an initializer named as the state dict key."""
        key = f"{name}.{layer.torch_names.get(array_name, array_name)}"
        array = {**layer.params, **layer.buffers}[array_name]
        self.initializers.append(self._onnx.numpy_helper.from_array(array, key))
        return key

    def layer(self, layer: Layer, x: str, name: str) -> str:
        """Add the nodes of one layer (a container's inlined) applied to ``x``; returns the
        output's name."""
        export = _EXPORTS.get(type(layer))
        if export is None:
            exportable = ", ".join(sorted(cls.__name__ for cls in _EXPORTS))
            raise TypeError(f"export_onnx: layer {name!r} ({type(layer).__name__}) has no ONNX "
                            f"counterpart; exportable layers: {exportable}")
        return export(self, layer, x, name)

    def chain(self, named: list[tuple[str, Layer]], x: str) -> str:
        for name, layer in named:
            x = self.layer(layer, x, name)
        return x

    def rename_output(self, tensor: str, name: str) -> None:
        """Call ``tensor`` ``name``: the last node's output, or an Identity of the input."""
        if self.nodes and self.nodes[-1].output[0] == tensor:
            self.nodes[-1].output[0] = name
        else:
            self.node("Identity", [tensor], name)


def _conv(graph: _Graph, layer: Conv2D, x: str, name: str) -> str:
    if isinstance(layer.padding, str):
        top, bottom, left, right = (same_padding(layer.kernel_size, layer.dilation)
                                    if layer.padding == "same" else (0, 0, 0, 0))
    else:
        (top, left), (bottom, right) = layer.padding, layer.padding  # symmetric
    inputs = [x, graph.weight(layer, "w", name)]
    if layer.bias:
        inputs.append(graph.weight(layer, "b", name))
    return graph.node("Conv", inputs, name, kernel_shape=list(layer.kernel_size),
                      strides=list(layer.stride), pads=[top, left, bottom, right],
                      dilations=list(layer.dilation), group=layer.groups)


def _batch_norm(graph: _Graph, layer: BatchNorm2D | BatchNorm1D, x: str, name: str) -> str:
    inputs = [x] + [graph.weight(layer, array, name)
                    for array in ("gamma", "beta", "running_mean", "running_var")]
    return graph.node("BatchNormalization", inputs, name, epsilon=layer.eps)


def _pool_window(layer: MaxPool2D | AvgPool2D) -> dict[str, list[int]]:
    pad_h, pad_w = layer.padding
    return {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride),
            "pads": [pad_h, pad_w, pad_h, pad_w]}


def _max_pool(graph: _Graph, layer: MaxPool2D, x: str, name: str) -> str:
    return graph.node("MaxPool", [x], name, **_pool_window(layer))


def _avg_pool(graph: _Graph, layer: AvgPool2D, x: str, name: str) -> str:
    return graph.node("AveragePool", [x], name, count_include_pad=int(layer.count_include_pad),
                      **_pool_window(layer))


def _global_avg_pool(graph: _Graph, layer: GlobalAvgPool2D, x: str, name: str) -> str:
    # GlobalAveragePool keeps 1x1 spatial axes, which the layer drops.
    pooled = graph.node("GlobalAveragePool", [x], f"{name}.pool")
    return graph.node("Flatten", [pooled], name, axis=1)


def _dense(graph: _Graph, layer: Dense, x: str, name: str) -> str:
    return graph.node("Gemm", [x, graph.weight(layer, "w", name), graph.weight(layer, "b", name)],
                      name, transB=1)


def _flatten(graph: _Graph, layer: Flatten, x: str, name: str) -> str:
    return graph.node("Flatten", [x], name, axis=1)


def _leaky_relu(graph: _Graph, layer: LeakyReLU, x: str, name: str) -> str:
    return graph.node("LeakyRelu", [x], name, alpha=layer.negative_slope)


def _elementwise(op: str) -> Callable[[_Graph, Layer, str, str], str]:
    return lambda graph, layer, x, name: graph.node(op, [x], name)


def _dropout(graph: _Graph, layer: Dropout, x: str, name: str) -> str:
    return x  # the identity in inference


def _sequential(graph: _Graph, layer: Sequential, x: str, name: str) -> str:
    return graph.chain([(f"{name}.{child}", sub) for child, sub in layer.sublayers()], x)


def _residual(graph: _Graph, layer: Residual, x: str, name: str) -> str:
    body = graph.chain([(f"{name}.body.{index}", sub) for index, sub in enumerate(layer.body)],
                       x)
    skip = x if layer.shortcut is None else graph.layer(layer.shortcut, x, f"{name}.shortcut")
    return graph.node("Add", [body, skip], name)


# Exact types: a subclass may compute something else, and is refused rather than guessed at.
_EXPORTS: dict[type, Callable[[_Graph, Any, str, str], str]] = {
    Conv2D: _conv, BatchNorm2D: _batch_norm, BatchNorm1D: _batch_norm, MaxPool2D: _max_pool,
    AvgPool2D: _avg_pool, GlobalAvgPool2D: _global_avg_pool, Dense: _dense, Flatten: _flatten,
    ReLU: _elementwise("Relu"), LeakyReLU: _leaky_relu, Sigmoid: _elementwise("Sigmoid"),
    Tanh: _elementwise("Tanh"), Dropout: _dropout, Sequential: _sequential,
    Residual: _residual,
}
