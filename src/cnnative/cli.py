"""The ``cnnative`` command line (also ``python -m cnnative``): train, evaluate, export, show,
bench, info."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Sequence

import numpy as np

from . import _validation

# Named recipes for `cnnative train`; options given on the command line override them.
# "default" is the main job: Nielsen's network on the embedded digits in well under a minute;
# augmentation (random shifts and small rotations) is what lifts it above 98% from 4,000
# images.  "best" trades time for accuracy on the same digits: an ensemble of members trained
# longer, with dropout.  "fashion" trains a small VGG-style network with batch norm on
# Fashion-MNIST's 60,000 images, with random crops and flips and a one-cycle schedule (for the
# same time it beat a ResNet-8, whose strided and narrow convolutions run slower; see the
# README for figures).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"model": "nielsen", "dataset": "digits", "members": 1, "epochs": 15,
                "batch_size": 64, "lr": 0.02, "momentum": 0.9, "dropout": 0.0, "augment": True,
                "weight_decay": 0.0, "schedule": "cosine"},
    "best": {"model": "nielsen", "dataset": "digits", "members": 5, "epochs": 40, "batch_size": 64,
             "lr": 0.03, "momentum": 0.9, "dropout": 0.3, "augment": True,
             "weight_decay": 5e-4, "schedule": "cosine"},
    "fashion": {"model": "vgg24", "dataset": "fashion", "members": 1, "epochs": 20,
                "batch_size": 128, "lr": 0.1, "momentum": 0.9, "dropout": 0.0, "augment": True,
                "weight_decay": 5e-4, "schedule": "onecycle"},
}
MODELS = ("nielsen", "lenet5", "resnet8", "resnet14", "resnet20", "vgg16", "vgg24", "vgg32",
          "vgg48")

# Training images held out for validation when the data are an MNIST-format directory (the
# embedded digits come split); the t10k files stay the test set, used for the final report only.
VALIDATION_SIZE = 5000


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; ``argv`` defaults to the process's arguments.  Returns the exit status."""
    command_line = argv is None
    argv = sys.argv[1:] if command_line else list(argv)  # type: ignore[arg-type]  # not None
    if argv[:1] == ["bench"]:
        # Every option belongs to the benchmark, which parses them itself.
        from .bench import main as bench_main
        return bench_main(argv[1:], reexec=command_line)
    args = _parser().parse_args(argv)
    args.argv = argv
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
    commands = parser.add_subparsers(dest="command", metavar="{train,evaluate,export,show,bench,info}")

    train = commands.add_parser(
        "train", help="train a network on MNIST-format data (default: embedded digits)",
        description="Train a network of cnnative.models with SGD and momentum on the embedded "
                    "digits, Fashion-MNIST or an MNIST-format directory; save the model and a "
                    "learning-curve plot.  Ctrl-C with --checkpoint stops after the current "
                    "batch and prints the command that resumes (exit status 130); a run whose "
                    "loss diverges stops with exit status 1 and writes no model.")
    train.add_argument("--data", metavar="DIR",
                       help="directory of MNIST-format files (train and t10k pairs; "
                            f"{VALIDATION_SIZE:,} training images become the validation split, "
                            "t10k is the test set); default: the preset's data (the 5,000 "
                            "embedded digits, split 4,000 train / 1,000 validation, or "
                            "Debian's Fashion-MNIST files for --preset fashion)")
    train.add_argument("--preset", choices=sorted(PRESETS), default="default",
                       help="recipe whose settings the options below override "
                            + "; ".join(f"{name}: {_describe(values)}"
                                        for name, values in PRESETS.items()))
    train.add_argument("--model", choices=MODELS,
                       help="network of cnnative.models: nielsen(), lenet5(), resnet(depth) or "
                            "vgg(width)")
    train.add_argument("--members", type=int,
                       help="train this many networks (seeds seed, seed+1, ...) and save their "
                            "ensemble")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--momentum", type=float)
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--dropout", type=float, help="dropout before each dense layer")
    train.add_argument("--schedule", choices=["cosine", "onecycle", "constant"],
                       help="learning rate: cosine decay to 0 over the epochs, one cycle "
                            "(warm-up to --lr, then down, per batch), or constant")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction,
                       help="digits: random shifts (up to 2 px) and rotations (up to 10 "
                            "degrees); other data: random crops (2 px padding) and "
                            "horizontal flips")
    train.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    train.add_argument("--threads", type=int, help="kernel threads (default: all CPUs)")
    train.add_argument("--holdout", type=int, metavar="N",
                       help="embedded digits only: keep N training images out of training and "
                            "model choice, and report the final model's accuracy on them (an "
                            "estimate not tuned on, unlike the validation split)")
    train.add_argument("--seed", type=int, default=0,
                       help="seeds the weights, shuffling, dropout and augmentation")
    train.add_argument("--checkpoint", metavar="PATH",
                       help="write a checkpoint there after every epoch (an ensemble's "
                            "members: PATH with -1, -2, ... before its suffix)")
    train.add_argument("--checkpoint-every", type=int, metavar="N",
                       help="also checkpoint every N batches")
    train.add_argument("--resume", action="store_true",
                       help="continue from --checkpoint (same options as the run that wrote "
                            "it; members without a checkpoint start afresh)")
    train.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                       help="stop when the validation loss has not improved for PATIENCE "
                            "epochs, keeping the best epoch's weights")
    train.add_argument("--log", metavar="CSV",
                       help="write the history there, a row per epoch (an ensemble's members: "
                            "CSV with -1, -2, ... before its suffix)")
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

    export = commands.add_parser(
        "export", help="write a model file as an ONNX model",
        description="Write a model file (a network or an ensemble) as an ONNX model "
                    "(cnnative.io.export_onnx): input 'input' of shape (N, C, H, W) floats "
                    "(images scaled to [0, 1]); output 'output': a network's logits, an "
                    "ensemble's averaged probabilities.  Needs the onnx package.")
    export.add_argument("model")
    export.add_argument("out", metavar="OUT.onnx")
    export.add_argument("--input-shape", type=int, nargs="+", metavar="N",
                        help="one sample's shape, C H W (or the feature count); needed for "
                             "networks that begin with a convolution, e.g. 1 28 28 for MNIST")
    export.add_argument("--opset", type=int, default=17, help="ONNX operator set")
    export.set_defaults(run=_export)

    show = commands.add_parser(
        "show", help="pictures of a saved model: filters, feature maps, confusion, mistakes",
        description="Write filters.png (the first convolutional layer's filters), "
                    "feature_maps.png (each top-level convolutional layer's outputs for one "
                    "test image; a residual block shows its output as a whole), confusion.png "
                    "(the confusion matrix) and mistakes.png (the most confident mistakes) "
                    "for a model file, on the embedded digits' validation split or the t10k "
                    "files of an MNIST-format directory.  An ensemble's first member gives "
                    "the filters and maps.  Needs matplotlib.")
    show.add_argument("model", help="model file (cnnative train's --out, cnnative.save)")
    show.add_argument("--data", metavar="DIR",
                      help="directory of MNIST-format files whose t10k pair to use (default: "
                           "the 1,000 validation digits of the embedded set)")
    show.add_argument("--out", metavar="DIR", default=".",
                      help="directory for the four PNGs (default: the current directory)")
    show.set_defaults(run=_show)

    commands.add_parser("bench", help="native-vs-scipy benchmark (markdown, JSON, PNG)",
                        add_help=False)

    info = commands.add_parser("info", help="versions, threads and active CPU code paths")
    info.set_defaults(run=_info)
    return parser


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items())


def _load_data(directory, kind="digits", holdout=None):
    """(train, validation, test or None, holdout or None, description) for `cnnative train`."""
    from . import datasets
    if directory is None and kind == "digits":
        parts = datasets.load_digits_5k(holdout_size=holdout)
        held = parts[2] if holdout is not None else None
        return (parts[0], parts[1], None, held,
                "embedded 5,000 MNIST digits (validation split: 1,000"
                + (f", holdout: {holdout}" if holdout is not None else "") + ")")
    if holdout is not None:
        raise SystemExit("cnnative train: --holdout applies to the embedded digits only; "
                         "with other data the t10k files are the held-back test set")
    try:
        if directory is None:
            train, test = datasets.load_fashion_mnist()
            directory = datasets.FASHION_MNIST_DIR
        else:
            train, test = datasets.load_mnist(directory)
    except FileNotFoundError as error:
        raise SystemExit(f"cnnative train: {error}") from None
    if train is None:
        raise SystemExit(f"cnnative train: {directory} has no training files "
                         "(train-images-idx3-ubyte, train-labels-idx1-ubyte)")
    size = min(VALIDATION_SIZE, len(train[1]) // 10)
    train, validation = datasets.stratified_split(*train, size, seed=0)
    return (train, validation, test, None,
            f"{directory} (validation: {size:,} of its training images"
            + ("; test: its t10k files" if test is not None else "") + ")")


def _member_path(path, member, members):
    """``path`` for a lone network; "name-<member>.ext" for an ensemble's members."""
    if path is None or members == 1:
        return path
    stem, suffix = os.path.splitext(path)
    return f"{stem}-{member + 1}{suffix}"


def _build(settings, dtype, seed):
    from . import models
    name = settings["model"]
    if name != "nielsen" and settings["dropout"]:
        raise SystemExit(f"cnnative train: --dropout applies to --model nielsen only, not {name}")
    if name == "nielsen":
        return models.nielsen(dtype=dtype, seed=seed, dropout=settings["dropout"])
    if name == "lenet5":
        return models.lenet5(dtype=dtype, seed=seed)
    if name.startswith("vgg"):
        return models.vgg(int(name.removeprefix("vgg")), dtype=dtype, seed=seed)
    return models.resnet(int(name.removeprefix("resnet")), dtype=dtype, seed=seed)


def _schedule(settings, samples):
    from . import optim
    if settings["schedule"] == "cosine":
        return optim.CosineAnnealing(settings["epochs"])
    if settings["schedule"] == "onecycle":
        steps = settings["epochs"] * -(-samples // settings["batch_size"])
        return optim.OneCycle(settings["lr"], steps)
    return None


def _augmentation(settings):
    from .datasets import augment
    if not settings["augment"]:
        return None
    # Rotations suit digits, not clothes; flips suit clothes, not digits.
    if settings["dataset"] == "digits":
        return augment.ShiftRotate()
    return augment.Compose(augment.RandomCrop(28, padding=2), augment.RandomFlip())


def _train(args):
    import shlex

    from . import optim
    from ._threads import get_num_threads, set_num_threads
    from .io import save
    from .training import CSVLogger, EarlyStopping, TrainingDiverged, TrainingInterrupted

    comm = _mpi_world()
    settings = dict(PRESETS[args.preset])
    for key in settings:
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    members = settings["members"]
    if members < 1:
        raise SystemExit(f"cnnative train: --members must be >= 1, got {members}")
    if (args.resume or args.checkpoint_every is not None) and args.checkpoint is None:
        raise SystemExit("cnnative train: --resume and --checkpoint-every need --checkpoint PATH")
    checkpoints = [_member_path(args.checkpoint, member, members) for member in range(members)]
    if args.resume and not any(os.path.exists(path) for path in checkpoints):
        raise SystemExit(f"cnnative train: --resume: no checkpoint at {checkpoints[0]}")
    if args.threads is not None:
        set_num_threads(args.threads)
    elif comm is not None:
        # The ranks on one host share its cores.
        local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", "1"))
        set_num_threads(max(1, (os.cpu_count() or 1) // local))
    if comm is not None:
        print(f"data-parallel on {comm.Get_size()} ranks (MPI), global batch "
              f"{settings['batch_size']}; rank 0 prints and writes", flush=True)
    train, validation, test, holdout, source = _load_data(args.data, settings["dataset"],
                                                          args.holdout)
    print(f"data: {source}; {len(train[1])} training images")
    print(f"preset {args.preset}: {_describe(settings)}; dtype {args.dtype}, "
          f"{get_num_threads()} threads, seed {args.seed}")

    networks, histories = [], []
    start = time.perf_counter()
    for member, checkpoint in enumerate(checkpoints):
        seed = args.seed + member
        if members > 1:
            print(f"\nmember {member + 1} of {members} (seed {seed})")
        network = _build(settings, args.dtype, seed)
        callbacks = [_epoch_table()]
        if args.early_stopping is not None:
            callbacks.append(EarlyStopping("val_loss", patience=args.early_stopping))
        if args.log is not None:
            callbacks.append(CSVLogger(_member_path(args.log, member, members)))
        try:
            history = network.fit(
                *train, epochs=settings["epochs"], batch_size=settings["batch_size"],
                optimizer=optim.SGD(settings["lr"], momentum=settings["momentum"],
                                    weight_decay=settings["weight_decay"]),
                scheduler=_schedule(settings, len(train[1])), validation_data=validation,
                seed=seed, progress=not args.no_progress, augment=_augmentation(settings),
                callbacks=callbacks, checkpoint=checkpoint,
                checkpoint_every=args.checkpoint_every,
                resume=checkpoint if args.resume and os.path.exists(checkpoint) else None,
                comm=comm)
        except TrainingDiverged as error:
            if comm is None or comm.Get_rank() == 0:
                print(f"cnnative train: {error}\nNo model written.", file=sys.stderr)
            return 1
        except TrainingInterrupted as error:
            command = [arg for arg in args.argv if arg != "--resume"] + ["--resume"]
            if comm is None or comm.Get_rank() == 0:
                print(f"\ncnnative train: {error}.\nResume with: "
                      f"{shlex.join(['cnnative', *command])}", file=sys.stderr)
            return 130
        networks.append(network)
        histories.append(history)
    elapsed = time.perf_counter() - start
    if comm is not None and comm.Get_rank() != 0:
        return 0  # rank 0 saves, evaluates and plots

    if members == 1:
        model = networks[0]
    else:
        from .ensemble import Ensemble
        model = Ensemble(networks)
    save(model, args.out)
    accuracy = model.evaluate(*validation)[1]
    what = "" if members == 1 else f"the ensemble of {members}: "
    print(f"\n{what}validation accuracy {accuracy:.2%} after {len(histories[-1]['loss'])} "
          f"epochs{' each' if members > 1 else ''}, {elapsed:.0f} s of training; model saved "
          f"to {args.out}")
    for name, part in (("holdout", holdout), ("test", test)):
        if part is not None:
            loss, accuracy = model.evaluate(*part)
            print(f"{name} accuracy {accuracy:.2%} (loss {loss:.4f}) on {len(part[1])} images "
                  "never used for training or tuning")
    _plot_history(histories[-1], args.plot or os.path.splitext(args.out)[0] + ".png")
    return 0


def _mpi_world():
    """MPI.COMM_WORLD when mpiexec started several processes, else None.  Ranks other than 0
    print nothing but errors."""
    from .distributed import launched_ranks, world
    if launched_ranks() < 2:
        return None
    try:
        comm = world()
    except ImportError as error:
        raise SystemExit(f"cnnative train: {error}") from None
    if comm.Get_rank() != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    return comm


def _epoch_table():
    """A callback printing the history as a markdown table, a row as each epoch ends (the
    rows of a resumed run's earlier epochs first)."""
    from .training import Callback

    class EpochTable(Callback):
        def on_train_begin(self, trainer):
            history = trainer.history
            self.validation = "val_loss" in history
            print("\n| epoch | loss | accuracy | lr |"
                  + (" val loss | val accuracy |" if self.validation else "") + " seconds |")
            print("| ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if self.validation else "")
                  + " ---: |")
            for epoch in range(len(history["loss"])):
                self.row(history, epoch)

        def on_epoch_end(self, trainer, logs):
            self.row(trainer.history, trainer.epoch)

        def row(self, history, epoch):
            columns = [f"{history['loss'][epoch]:.4f}", f"{history['accuracy'][epoch]:.4f}",
                       f"{history['lr'][epoch]:.4g}"]
            if self.validation:
                columns += [f"{history['val_loss'][epoch]:.4f}",
                            f"{history['val_accuracy'][epoch]:.4f}"]
            print(f"| {epoch + 1} | " + " | ".join(columns)
                  + f" | {history['seconds'][epoch]:.1f} |", flush=True)

    return EpochTable()


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
    if args.data is None:
        _, (x, y), _, _, source = _load_data(None)
    else:
        from . import datasets
        _, test = datasets.load_mnist(args.data)
        if test is None:
            raise SystemExit(f"cnnative evaluate: {args.data} has no t10k files")
        (x, y), source = test, f"{args.data} (its t10k files)"
    loss, accuracy = network.evaluate(x, y)
    predicted = network.predict(x)
    classes = network.predict_proba(x[:1]).shape[1]
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


def _export(args):
    from .io import export_onnx, load

    try:
        onnx_model = export_onnx(load(args.model), args.out, args.opset,
                                 input_shape=args.input_shape)
    except (ImportError, OSError, TypeError, ValueError) as error:
        hint = (" (pass --input-shape C H W)" if args.input_shape is None
                and "input_shape is needed" in str(error) else "")
        raise SystemExit(f"cnnative export: {error}{hint}") from None
    graph = onnx_model.graph
    shapes = {value.name: [dim.dim_param or dim.dim_value
                           for dim in value.type.tensor_type.shape.dim]
              for value in (*graph.input, *graph.output)}
    print(f"{args.model} -> {args.out}: ONNX opset {args.opset}, {len(graph.node)} nodes; input "
          f"{shapes['input']}, output {shapes['output']}")
    return 0


def _show(args):
    from .show import show
    return show(args.model, args.out, args.data)


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
    # How scipy's own build rounds decides what "bit-identical to scipy" means here.
    from .signal import _rounding_info
    described = {"separate": "each product rounded, then added (as scipy's x86-64 wheels)",
                 "fused": "fused multiply-adds (as scipy's aarch64 wheels, whose compiler "
                          "contracts its loops)",
                 "scipy": "float calls handed to scipy itself"}
    for name, (pattern, reason) in _rounding_info().items():
        print(f"{name} rounding: {pattern}, {described[pattern]}; {reason}")
    return 0
