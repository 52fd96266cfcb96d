"""Pictures of a trained model (``cnnative show``): filters, feature maps, confusion, mistakes.

:func:`show` loads a model file, runs it on test images and writes four PNGs:

``filters.png``
    The first convolutional layer's filters, a greyscale tile per filter and input channel,
    on one scale for all tiles (mid-grey is 0, white positive, black negative).
``feature_maps.png``
    One test image and what each top-level convolutional layer makes of it (its outputs
    before the activation), every layer's maps on one scale.  A container (a
    :class:`~cnnative.nn.Residual` block, a :class:`~cnnative.nn.Sequential`) is shown by its
    output as a whole, not layer by layer.
``confusion.png``
    The confusion matrix, true class against predicted class, with the counts in the cells.
``mistakes.png``
    The images misclassified with the highest predicted probability, each with its true and
    predicted class.

For an :class:`~cnnative.Ensemble`, confusion and mistakes come from the averaged
probabilities, filters and feature maps from its first member.  The data are the embedded
digits' validation split (:func:`cnnative.datasets.load_digits_5k`) or the t10k files of an
MNIST-format directory.  Drawing needs matplotlib (``pip install matplotlib``); the NumPy
parts (:func:`confusion_matrix`, :func:`confident_mistakes`, :func:`feature_maps`) do not.
"""
from __future__ import annotations

import math
import os
import sys
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _optional
from .ensemble import Ensemble
from .io import load
from .network import Network
from .nn import Conv2D, Layer, named_layers

__all__ = ["show", "draw", "confusion_matrix", "confident_mistakes", "feature_maps",
           "first_conv", "PICTURES"]

#: The files :func:`show` writes, in order.
PICTURES = ("filters.png", "feature_maps.png", "confusion.png", "mistakes.png")

# Resolution of the saved figures: tiles stay crisp without the files growing past ~100 kB.
_DPI = 100


def show(model_path: str | os.PathLike, out: str | os.PathLike = ".",
         data: str | os.PathLike | None = None, *, count: int = 16) -> int:
    """Write the four pictures of the model at ``model_path`` into ``out``; the exit status.

    Parameters
    ----------
    model_path : str or os.PathLike
        A model file written by :func:`cnnative.save` (a network or an ensemble).
    out : str or os.PathLike
        Directory for the PNGs (see :data:`PICTURES`), created if missing.
    data : str or os.PathLike, optional
        A directory of MNIST-format files whose t10k pair is used; default: the 1,000
        validation digits of :func:`cnnative.datasets.load_digits_5k`.
    count : int
        How many mistakes ``mistakes.png`` shows at most.

    Returns
    -------
    status : int
        0 when the pictures were written; 1 without matplotlib (a message on stderr says how
        to install it).

    Raises
    ------
    SystemExit
        With a message naming the problem: no model file, a file that is not a model, no
        data, or images the model does not accept.
    """
    pyplot, reason = _optional.import_pyplot()
    if pyplot is None:
        print(f"cnnative show: drawing needs matplotlib, which is not available ({reason}); "
              "install it with `pip install matplotlib`", file=sys.stderr)
        return 1
    try:
        model = load(model_path)
    except (OSError, ValueError) as error:
        raise SystemExit(f"cnnative show: cannot load the model: {error}") from None
    (x, y), source = _test_data(data)
    try:
        paths = draw(model, x, y, out, pyplot=pyplot, count=count, source=source)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"cnnative show: model {os.fspath(model_path)!r} on {source}: "
                         f"{error}") from None
    print(f"model {os.fspath(model_path)} on {source}: {len(y)} images")
    for path in paths:
        print(f"wrote {path}")
    return 0


def draw(model: Network | Ensemble, x: ArrayLike, y: ArrayLike, out: str | os.PathLike, *,
         pyplot: ModuleType, count: int = 16, source: str = "test images") -> list[str]:
    """Draw the four pictures of ``model`` on images ``x`` with labels ``y`` into ``out``.

    Parameters
    ----------
    model : cnnative.Network or cnnative.Ensemble
    x : array_like, shape (N, H, W) or (N, C, H, W)
        Images as the model takes them (uint8 or floats); ``x[0]`` is the feature maps' image.
    y : array_like of int, shape (N,)
        True classes, each in [0, K) for a model with K outputs.
    out : str or os.PathLike
        Directory for the PNGs, created if missing.
    pyplot : module
        ``matplotlib.pyplot``, on a non-interactive backend.
    count : int
        How many mistakes to show at most.
    source : str
        Names the images in the figures' titles.

    Returns
    -------
    paths : list of str
        The four files written, in the order of :data:`PICTURES`.

    Raises
    ------
    ValueError, TypeError
        Images the model does not accept, or labels outside its classes.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x) or len(y) == 0:
        raise ValueError(f"labels must be one integer per image ({len(x)}), got "
                         f"{y.dtype} {y.shape}")
    probabilities = model.predict_proba(x)
    classes = probabilities.shape[1]
    if y.min() < 0 or y.max() >= classes:
        raise ValueError(f"the model has {classes} outputs but the labels lie in "
                         f"[{y.min()}, {y.max()}]")
    network = model.members[0] if isinstance(model, Ensemble) else model
    whose = f" (member 1 of {len(model)})" if isinstance(model, Ensemble) else ""
    predicted = probabilities.argmax(axis=1)

    os.makedirs(out, exist_ok=True)
    figures = [
        _filters_figure(pyplot, network, whose),
        _feature_maps_figure(pyplot, network, x[:1], int(y[0]), whose, source),
        _confusion_figure(pyplot, confusion_matrix(y, predicted, classes), source),
        _mistakes_figure(pyplot, x, y, probabilities, confident_mistakes(y, probabilities,
                                                                         count), source),
    ]
    paths = []
    for name, figure in zip(PICTURES, figures):
        path = os.path.join(out, name)
        try:
            figure.savefig(path, dpi=_DPI)
        finally:
            pyplot.close(figure)
        paths.append(path)
    return paths


# -- the numbers behind the pictures ---------------------------------------------------------

def confusion_matrix(y: ArrayLike, predicted: ArrayLike, classes: int) -> np.ndarray:
    """Counts (classes, classes) of int64: row = true class, column = predicted class.

    Parameters
    ----------
    y, predicted : array_like of int, shape (N,)
        True and predicted classes, each in [0, classes).
    classes : int
    """
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(y), np.asarray(predicted)), 1)
    return matrix


def confident_mistakes(y: ArrayLike, probabilities: ArrayLike, count: int) -> np.ndarray:
    """Indices (at most ``count``,) of the misclassified samples, most confident first.

    Parameters
    ----------
    y : array_like of int, shape (N,)
        True classes.
    probabilities : array_like, shape (N, K)
        Class probabilities; the prediction is each row's argmax, the confidence its maximum.
    count : int

    Returns
    -------
    indices : ndarray of int64, shape (min(count, mistakes),)
        Ordered by falling confidence; ties keep the samples' order.
    """
    probabilities = np.asarray(probabilities)
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != np.asarray(y))
    confidence = probabilities[wrong].max(axis=1)
    # A stable sort on the negated confidence: equal confidences stay in sample order.
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def first_conv(network: Network) -> tuple[str, Conv2D] | None:
    """(name, layer) of the first :class:`~cnnative.nn.Conv2D` in
    :meth:`~cnnative.Network.named_layers` order (containers searched too), or None."""
    for name, layer in network.named_layers():
        if isinstance(layer, Conv2D):
            return name, layer
    return None


def feature_maps(network: Network, image: ArrayLike) -> list[tuple[str, Layer, np.ndarray]]:
    """What each top-level convolutional layer of ``network`` outputs for one image.

    The network's top-level layers run in order, in inference mode.

    Parameters
    ----------
    network : cnnative.Network
    image : array_like, shape (1, H, W) or (1, C, H, W)
        One image as :meth:`~cnnative.Network.prepare` takes it.

    Returns
    -------
    maps : list of (name, layer, ndarray of shape (F, Ho, Wo))
        For each top-level :class:`~cnnative.nn.Conv2D` its output before the activation, and
        for each container holding one (a :class:`~cnnative.nn.Residual` block, say) the
        container's output, with its name in :meth:`~cnnative.Network.named_layers`.
    """
    a = network.prepare(image, "feature_maps")
    maps = []
    for name, layer in network.named_layers():
        if "." in name:  # inside a container, which runs as a whole
            continue
        a = layer.forward(a, training=False)
        convolves = isinstance(layer, Conv2D) or any(
            isinstance(inner, Conv2D) for _, inner in named_layers(layer.sublayers()))
        if convolves and a.ndim == 4:
            maps.append((name, layer, a[0]))
    return maps


# -- figures ---------------------------------------------------------------------------------

def _grid(count: int, max_columns: int = 10) -> tuple[int, int]:
    """(rows, columns) of a grid of ``count`` tiles, about square, at most max_columns wide."""
    columns = min(max_columns, math.ceil(math.sqrt(count)))
    return math.ceil(count / columns), columns


def _tiles(figure: Any, arrays: list[np.ndarray], columns: int, *, titles: list[str] | None =
           None, cmap: str = "gray", vmin: float | None = None,
           vmax: float | None = None) -> None:
    """One image per cell of a grid of ``columns``, axes off, unused cells hidden."""
    rows = math.ceil(len(arrays) / columns)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for index, ax in enumerate(axes):
        ax.set_axis_off()
        if index < len(arrays):
            ax.imshow(arrays[index], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[index], fontsize=8)


def _symmetric_limit(values: np.ndarray) -> float:
    """Half-width of a colour scale centred on 0 that holds ``values`` (1 if they are all 0)."""
    limit = float(np.max(np.abs(values))) if values.size else 0.0
    return limit if limit > 0 and math.isfinite(limit) else 1.0


def _placeholder(pyplot: ModuleType, text: str) -> Any:
    figure = pyplot.figure(figsize=(6, 1.5))
    figure.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return figure


def _displayable(image: np.ndarray) -> np.ndarray:
    """An (H, W) or (H, W, 3) image for imshow from one (H, W) or (C, H, W) sample."""
    if image.ndim == 3:
        image = image[0] if image.shape[0] != 3 else np.moveaxis(image, 0, -1)
    if image.dtype.kind == "f" and image.ndim == 3:
        image = np.clip(image, 0, 1)  # imshow clips RGB floats itself, with a warning
    return image


def _filters_figure(pyplot: ModuleType, network: Network, whose: str) -> Any:
    found = first_conv(network)
    if found is None:
        return _placeholder(pyplot, f"The network{whose} has no convolutional layer.")
    name, layer = found
    w = layer.params["w"]
    filters, channels = w.shape[:2]
    limit = _symmetric_limit(w)
    if channels == 1:
        rows, columns = _grid(filters)
        tiles = [w[f, 0] for f in range(filters)]
    else:
        # A row per filter, a column per input channel: a filter is a stack of C slices.
        rows, columns = filters, channels
        tiles = [w[f, c] for f in range(filters) for c in range(channels)]
    figure = pyplot.figure(figsize=(1.0 * columns + 0.4, 1.0 * rows + 0.9),
                           layout="constrained")
    _tiles(figure, tiles, columns, titles=[str(i) for i in range(len(tiles))]
           if channels == 1 else None, vmin=-limit, vmax=limit)
    shape = "x".join(map(str, w.shape[2:]))
    per_channel = "" if channels == 1 else ", a row per filter, a column per input channel"
    figure.suptitle(f"Layer {name}{whose}: {filters} filters {shape}{per_channel}\n"
                    f"grey = 0, white = +{limit:.2g}, black = -{limit:.2g}", fontsize=10)
    return figure


def _feature_maps_figure(pyplot: ModuleType, network: Network, image: np.ndarray, label: int,
                         whose: str, source: str) -> Any:
    maps = feature_maps(network, image)
    if not maps:
        return _placeholder(pyplot, f"The network{whose} has no convolutional layer.")
    # One width for every layer, so that the maps of all layers are drawn the same size.
    columns = min(10, max(len(outputs) for _, _, outputs in maps))
    grids = [(math.ceil(len(outputs) / columns), columns) for _, _, outputs in maps]
    heights = [2.0] + [1.0 * rows + 0.5 for rows, _ in grids]
    figure = pyplot.figure(figsize=(max(1.0 * columns, 6.0), sum(heights)),
                           layout="constrained")
    parts = figure.subfigures(len(heights), 1, height_ratios=heights)
    ax = parts[0].subplots()
    ax.imshow(_displayable(image[0]), cmap="gray_r", interpolation="nearest")
    ax.set_axis_off()
    parts[0].suptitle(f"Input: image 0 of {source} (class {label}){whose}", fontsize=10)
    for part, (name, layer, outputs), (_, cols) in zip(parts[1:], maps, grids):
        limit = _symmetric_limit(outputs)
        _tiles(part, list(outputs), cols, vmin=-limit, vmax=limit)
        what = ("output before the activation" if isinstance(layer, Conv2D)
                else "output of the whole block")
        shape = "x".join(map(str, outputs.shape[1:]))
        part.suptitle(f"Layer {name} {type(layer).__name__}: {len(outputs)} maps {shape}, "
                      f"{what} (black -{limit:.2g}, white +{limit:.2g})", fontsize=9)
    return figure


def _confusion_figure(pyplot: ModuleType, confusion: np.ndarray, source: str) -> Any:
    classes = len(confusion)
    size = max(4.0, 0.5 * classes + 2.0)
    figure = pyplot.figure(figsize=(size + 1.0, size), layout="constrained")
    ax = figure.subplots()
    # Colour by the share of the true class, so that a row's errors stand out whatever its size.
    totals = confusion.sum(axis=1, keepdims=True)
    shares = confusion / np.maximum(totals, 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if classes <= 30:
        for true in range(classes):
            for guess in range(classes):
                ax.text(guess, true, str(confusion[true, guess]), ha="center", va="center",
                        fontsize=8, color="white" if shares[true, guess] > 0.5 else "black")
    ax.set(xlabel="predicted class", ylabel="true class", xticks=range(classes),
           yticks=range(classes))
    figure.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    right = int(np.trace(confusion))
    total = int(confusion.sum())
    ax.set_title(f"{right:,} of {total:,} right ({right / total:.2%}) on {source}",
                 fontsize=10)
    return figure


def _mistakes_figure(pyplot: ModuleType, x: np.ndarray, y: np.ndarray,
                     probabilities: np.ndarray, indices: np.ndarray, source: str) -> Any:
    if len(indices) == 0:
        return _placeholder(pyplot, f"No mistakes on the {len(y)} images of {source}.")
    rows, columns = _grid(len(indices), max_columns=8)
    figure = pyplot.figure(figsize=(1.6 * columns, 1.8 * rows + 0.5), layout="constrained")
    titles = [f"#{i}: true {y[i]}\npredicted {probabilities[i].argmax()} "
              f"({probabilities[i].max():.2f})" for i in indices]
    _tiles(figure, [_displayable(x[i]) for i in indices], columns, titles=titles,
           cmap="gray_r")
    figure.suptitle(f"The {len(indices)} most confident mistakes on {source}\n"
                    "(sample number, true class, predicted class and its probability)",
                    fontsize=10)
    return figure


# -- data ------------------------------------------------------------------------------------

def _test_data(directory: str | os.PathLike | None) -> tuple[tuple[np.ndarray, np.ndarray], str]:
    from . import datasets

    if directory is None:
        return datasets.load_digits_5k()[1], "the 1,000 validation digits"
    try:
        _, test = datasets.load_mnist(directory)
    except (OSError, ValueError) as error:
        raise SystemExit(f"cnnative show: --data: {error}") from None
    return test, f"{os.fspath(directory)} (t10k)"
