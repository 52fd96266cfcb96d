"""The ``cnnative`` command line (also ``python -m cnnative``): train, evaluate, bench, info."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Sequence

import numpy as np

from . import _validation

# Named recipes for `cnnative train`; options given on the command line override them.
# "default" is the main job: Nielsen's network on the embedded digits in well under 3 minutes;
# augmentation (random shifts and small rotations) is what lifts it above 98% from 4,000
# images.  "best" trades time for accuracy: longer, with dropout (see the README for figures).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"epochs": 15, "batch_size": 64, "lr": 0.02, "momentum": 0.9, "dropout": 0.0,
                "augment": True, "weight_decay": 0.0, "schedule": "cosine"},
    "best": {"epochs": 60, "batch_size": 64, "lr": 0.03, "momentum": 0.9, "dropout": 0.3,
             "augment": True, "weight_decay": 5e-4, "schedule": "cosine"},
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; ``argv`` defaults to the process's arguments.  Returns the exit status."""
    command_line = argv is None
    argv = sys.argv[1:] if command_line else list(argv)  # type: ignore[arg-type]  # not None
    if argv[:1] == ["bench"]:
        # Every option belongs to the benchmark, which parses them itself.
        from .bench import main as bench_main
        return bench_main(argv[1:], reexec=command_line)
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    return args.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnative",
        description="Train and evaluate CNNs on cnnative's native kernels. "
                    "`cnnative bench [--quick ...]` runs the native-vs-scipy benchmark "
                    "(`cnnative bench --help` for its options).")
    commands = parser.add_subparsers(dest="command", metavar="{train,evaluate,bench,info}")

    train = commands.add_parser(
        "train", help="train Nielsen's network on MNIST-format data (default: embedded digits)",
        description="Train Nielsen's MNIST network (cnnative.models.nielsen) with SGD and "
                    "momentum; save the model and a learning-curve plot.")
    train.add_argument("--data", metavar="DIR",
                       help="directory of MNIST-format files (train and t10k pairs); default: "
                            "the 5,000 embedded digits, split 4,000 train / 1,000 validation")
    train.add_argument("--preset", choices=sorted(PRESETS), default="default",
                       help="recipe whose settings the options below override "
                            + "; ".join(f"{name}: {_describe(values)}"
                                        for name, values in PRESETS.items()))
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--momentum", type=float)
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--dropout", type=float, help="dropout before each dense layer")
    train.add_argument("--schedule", choices=["cosine", "constant"],
                       help="learning rate over the epochs: cosine decay to 0, or constant")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction,
                       help="random shifts (up to 2 px) and rotations (up to 10 degrees)")
    train.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    train.add_argument("--threads", type=int, help="kernel threads (default: all CPUs)")
    train.add_argument("--holdout", type=int, metavar="N",
                       help="embedded digits only: keep N training images out of training and "
                            "model choice, and report the final model's accuracy on them (an "
                            "estimate not tuned on, unlike the validation split)")
    train.add_argument("--seed", type=int, default=0,
                       help="seeds the weights, shuffling, dropout and augmentation")
    train.add_argument("--out", default="model.npz", help="model file to write")
    train.add_argument("--plot", help="learning-curve PNG (default: the model's name, .png)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "evaluate", help="accuracy and confusion matrix of a saved model",
        description="Accuracy, loss and confusion matrix of a model file on the t10k files of "
                    "an MNIST-format directory, or on the embedded digits' validation split.")
    evaluate.add_argument("model")
    evaluate.add_argument("--data", metavar="DIR")
    evaluate.add_argument("--threads", type=int)
    evaluate.set_defaults(run=_evaluate)

    commands.add_parser("bench", help="native-vs-scipy benchmark (markdown, JSON, PNG)",
                        add_help=False)

    info = commands.add_parser("info", help="versions, threads and active CPU code paths")
    info.set_defaults(run=_info)
    return parser


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items())


def _load_data(directory, holdout=None):
    """((x_train, y_train) or None, (x_eval, y_eval), (x_holdout, y_holdout) or None,
    description)."""
    from . import datasets
    if directory is None:
        parts = datasets.load_digits_5k(holdout_size=holdout)
        held = parts[2] if holdout is not None else None
        return (parts[0], parts[1], held,
                "embedded 5,000 MNIST digits (validation split: 1,000"
                + (f", holdout: {holdout}" if holdout is not None else "") + ")")
    if holdout is not None:
        raise SystemExit("cnnative train: --holdout applies to the embedded digits only; "
                         "with --data the t10k files are the held-back test set")
    train, test = datasets.load_mnist(directory)
    return train, test, None, f"{directory} (evaluated on its t10k files)"


def _train(args):
    from . import models, optim
    from .datasets import augment as augmentation
    from .io import save
    from ._threads import get_num_threads, set_num_threads

    settings = dict(PRESETS[args.preset])
    for key in settings:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.threads is not None:
        set_num_threads(args.threads)
    train, validation, holdout, source = _load_data(args.data, args.holdout)
    if train is None:
        raise SystemExit(f"cnnative train: {args.data} has no training files "
                         "(train-images-idx3-ubyte, train-labels-idx1-ubyte)")
    print(f"data: {source}; {len(train[1])} training images")
    print(f"preset {args.preset}: {_describe(settings)}; dtype {args.dtype}, "
          f"{get_num_threads()} threads, seed {args.seed}")

    network = models.nielsen(dtype=args.dtype, seed=args.seed, dropout=settings["dropout"])
    optimizer = optim.SGD(settings["lr"], momentum=settings["momentum"],
                          weight_decay=settings["weight_decay"])
    start = time.perf_counter()
    history = network.fit(*train, epochs=settings["epochs"], batch_size=settings["batch_size"],
                          optimizer=optimizer, validation_data=validation, seed=args.seed,
                          progress=not args.no_progress,
                          augment=augmentation.ShiftRotate() if settings["augment"] else None,
                          lr_schedule=(optim.cosine_schedule(settings["lr"], settings["epochs"])
                                       if settings["schedule"] == "cosine" else None))
    elapsed = time.perf_counter() - start

    print()
    print("| epoch | loss | accuracy | val loss | val accuracy | seconds |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for epoch in range(len(history["loss"])):
        print(f"| {epoch + 1} | {history['loss'][epoch]:.4f} | {history['accuracy'][epoch]:.4f} "
              f"| {history['val_loss'][epoch]:.4f} | {history['val_accuracy'][epoch]:.4f} "
              f"| {history['seconds'][epoch]:.1f} |")
    save(network, args.out)
    print(f"\nvalidation accuracy {history['val_accuracy'][-1]:.2%} after "
          f"{len(history['loss'])} epochs, {elapsed:.0f} s of training; model saved to "
          f"{args.out}")
    if holdout is not None:
        loss, accuracy = network.evaluate(*holdout)
        print(f"holdout accuracy {accuracy:.2%} (loss {loss:.4f}) on {len(holdout[1])} images "
              "never used for training or tuning")
    _plot_history(history, args.plot or os.path.splitext(args.out)[0] + ".png")
    return 0


def _plot_history(history, path):
    from ._optional import import_pyplot
    pyplot, reason = import_pyplot()
    if pyplot is None:
        print(f"no learning-curve plot: matplotlib is not available ({reason}); "
              "`pip install matplotlib` to get one")
        return
    epochs = np.arange(1, len(history["loss"]) + 1)
    figure, (loss_axes, accuracy_axes) = pyplot.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, history["loss"], label="training")
    loss_axes.plot(epochs, history["val_loss"], label="validation")
    loss_axes.set(xlabel="epoch", ylabel="loss", yscale="log")
    accuracy_axes.plot(epochs, history["accuracy"], label="training")
    accuracy_axes.plot(epochs, history["val_accuracy"], label="validation")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    print(f"learning curve: {path}")


def _evaluate(args):
    from ._threads import set_num_threads
    from .io import load

    if args.threads is not None:
        set_num_threads(args.threads)
    network = load(args.model)
    _, (x, y), _, source = _load_data(args.data)
    loss, accuracy = network.evaluate(x, y)
    predicted = network.predict(x)
    classes = network.forward(network.prepare(x[:1])).shape[1]
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (y, predicted), 1)
    print(f"model {args.model} on {source}: {len(y)} images")
    print(f"accuracy {accuracy:.2%}, loss {loss:.4f}\n")
    print("confusion matrix (rows: true class, columns: predicted)\n")
    print("| true \\ predicted | " + " | ".join(map(str, range(classes))) + " |")
    print("| ---: |" + " ---: |" * classes)
    for label, row in enumerate(confusion):
        print(f"| {label} | " + " | ".join(map(str, row)) + " |")
    return 0


def _info(args):
    import platform

    import scipy

    from . import __version__
    from ._native import conv, correlate, pool
    from ._threads import get_num_threads

    detected, active = correlate.simd_info()
    print(f"cnnative {__version__} ({os.path.dirname(os.path.abspath(__file__))})")
    print(f"python {platform.python_version()} ({platform.python_implementation()}), "
          f"numpy {np.__version__}, scipy {scipy.__version__}")
    print(f"platform {platform.platform()}, machine {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"threads: {get_num_threads()} (cnnative.set_num_threads or $CNNATIVE_NUM_THREADS)")
    print(f"CPU code paths: this CPU supports {detected}; correlation kernels run {active}, "
          f"direct convolution kernels {conv.simd_info()[1]} (chosen at run time; the build "
          "has no -march=native code)")
    print(f"max pooling (2x2 stride 2 interiors): {pool.simd_info()[1]}; other windows: the "
          "compiler's baseline vectors (SSE2 on x86-64)")
    print("dense layers and im2col convolution: scipy's BLAS via scipy.linalg.cython_blas, one "
          "BLAS thread per product")
    return 0
