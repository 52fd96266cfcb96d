"""Data-parallel training speed: samples per second at R = 1 and 2 ranks (one thread each) for
nielsen() and resnet(20), the time and bytes of the gradient reduction per step, and the
deterministic reduction (the single-process order, cnnative's default) against plain
MPI_Allreduce (``deterministic=False``).

Each measurement is one ``mpiexec`` launch of this script as a worker (R = 1 runs without
MPI); the configurations are interleaved, ``--repeats`` rounds, and medians reported (the
speed-up: the median over rounds of each round's ratio to its R = 1 launch).  A
worker trains WARMUP_EPOCHS epochs and then TIMED_EPOCHS timed ones on the embedded digits
(no augmentation) and reports the timed epochs' seconds, and from its DataParallel object the
seconds spent in, and the bytes this rank sent for, the gradient reduction (which includes
waiting for the slower rank).  Two warm-up epochs, because one process takes about that long
to reach its steady speed: nielsen's four epochs on one rank took 0.48-0.64, 0.35-0.46, 0.34-0.38
and 0.34-0.37 s in three runs on the Zen 4 host.

    python benchmarks/bench_distributed.py [--repeats 3] [--models nielsen resnet20]
                                           [--json PATH]
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys

# Samples per timed epoch and global batch, by model: a few seconds of work each.
MODELS = {"nielsen": (2048, 64), "resnet20": (512, 64)}
WARMUP_EPOCHS, TIMED_EPOCHS = 2, 2


def worker(spec):
    import cnnative
    from cnnative import datasets, models, optim
    from cnnative.training import Callback

    cnnative.set_num_threads(1)
    comm = None
    if spec["ranks"] > 1:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    samples, batch = MODELS[spec["model"]]
    (x, y), _ = datasets.load_digits_5k()
    x, y = x[:samples], y[:samples]
    network = models.nielsen() if spec["model"] == "nielsen" else models.resnet(20)

    class Probe(Callback):
        """The reduction's totals at the start and end of the timed epochs."""

        def on_epoch_begin(self, trainer):
            if trainer.epoch == WARMUP_EPOCHS:
                parallel = trainer.parallel
                self.start = (0.0, 0) if parallel is None else (parallel.seconds, parallel.bytes)

        def on_train_end(self, trainer):
            parallel = trainer.parallel
            end = (0.0, 0) if parallel is None else (parallel.seconds, parallel.bytes)
            self.reduction = (end[0] - self.start[0], end[1] - self.start[1])

    probe = Probe()
    history = network.fit(x, y, epochs=WARMUP_EPOCHS + TIMED_EPOCHS, batch_size=batch,
                          optimizer=optim.SGD(0.02, 0.9),
                          seed=0, progress=False, callbacks=[probe], comm=comm,
                          deterministic=spec["deterministic"], divergence_factor=None)
    if comm is None or comm.Get_rank() == 0:
        steps = -(-samples // batch) * TIMED_EPOCHS
        print(json.dumps({"seconds": sum(history["seconds"][WARMUP_EPOCHS:]),
                          "reduce_seconds": probe.reduction[0] / steps,
                          "reduce_bytes": probe.reduction[1] / steps,
                          "parameters": int(sum(p.size for p, _ in network.parameters())),
                          "steps": steps, "samples": samples * TIMED_EPOCHS}))


def launch(model, ranks, deterministic):
    spec = json.dumps({"model": model, "ranks": ranks, "deterministic": deterministic})
    command = [sys.executable, os.path.abspath(__file__), "--worker", spec]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=os.pathsep.join(
            [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
        command = [mpiexec, "-n", str(ranks), "--bind-to", "none", *command]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               CNNATIVE_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--json", help="also write the medians there")
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        print("bench_distributed: needs mpi4py and mpiexec: pip install 'cnnative[mpi]'")
        return 1
    import cnnative
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor()) \
        if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"host: {cpu}, {os.cpu_count()} CPUs; cnnative {cnnative.__version__}; one thread "
          f"per rank; medians of {args.repeats} interleaved launches\n")
    configs = [(model, ranks, deterministic) for model in args.models
               for ranks, deterministic in ((1, True), (2, True), (2, False))]
    results = {config: [] for config in configs}
    for _ in range(args.repeats):
        for config in configs:
            results[config].append(launch(*config))
    print("| model | parameters | R | reduction | samples/s | speed-up | reduction ms/step "
          "| bytes sent/step |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    table = []
    for model in args.models:
        single = [run["samples"] / run["seconds"] for run in results[(model, 1, True)]]
        for ranks, deterministic in ((1, True), (2, True), (2, False)):
            runs = results[(model, ranks, deterministic)]
            rates = [run["samples"] / run["seconds"] for run in runs]
            rate = statistics.median(rates)
            # Each round's launches ran one after the other: the ratio within a round, whose
            # median a host whose speed drifts between rounds moves less than the medians'.
            speedup = statistics.median(r / one for r, one in zip(rates, single))
            reduce_ms = statistics.median(run["reduce_seconds"] for run in runs) * 1e3
            sent = statistics.median(run["reduce_bytes"] for run in runs)
            kind = "-" if ranks == 1 else ("ordered tree" if deterministic else "MPI_Allreduce")
            row = {"model": model, "parameters": runs[0]["parameters"], "ranks": ranks,
                   "reduction": kind, "samples_per_second": rate, "speedup": speedup,
                   "reduce_ms_per_step": reduce_ms, "bytes_per_step": sent}
            table.append(row)
            print(f"| {model} | {row['parameters']:,} | {ranks} | {kind} | {rate:.0f} | "
                  f"{speedup:.2f}x | {reduce_ms:.2f} | {sent:,.0f} |")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(table, stream, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
