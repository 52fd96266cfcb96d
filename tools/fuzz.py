#!/usr/bin/env python3
"""Long fuzz run of every target in tests/fuzz_targets.py, each in its own child process.

    python tools/fuzz.py --cases 100000            # split evenly over the targets
    python tools/fuzz.py --cases 20000 --targets conv2d,dense
    python tools/fuzz.py --replay conv2d 1234      # rebuild one case and show its failure

A child that dies of a signal (a segfault, an abort from a sanitizer) or hangs past --timeout
seconds on one case is reported with the seed of the case it was running, and the run goes on
with the next target.  Hypothesis supplies the seeds (one per case, no shrinking: a seed alone
rebuilds the call).  The exit status is 1 if anything failed.

Each child limits its address space to --memory GiB (not under AddressSanitizer, which maps
terabytes of shadow memory), so a call that asks for a huge output gets MemoryError rather than
taking the machine's memory.
"""
import argparse
import collections
import concurrent.futures
import faulthandler
import json
import os
import pathlib
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

RESULT_PREFIX = "FUZZ-RESULT "
FAILURE_PREFIX = "FUZZ-FAILURE "


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000,
                        help="total cases, split evenly over the targets (default 100000)")
    parser.add_argument("--targets", help="comma-separated target names (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed of the run")
    parser.add_argument("--batch", type=int, default=5000, help="cases per hypothesis run")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds one case may take before it counts as a hang")
    parser.add_argument("--memory", type=float, default=8, help="address space limit, GiB")
    parser.add_argument("--jobs", type=int, default=1, help="targets run at the same time")
    parser.add_argument("--replay", nargs=2, metavar=("TARGET", "SEED"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay:
        return replay(args.replay[0], int(args.replay[1]))
    if args.child:
        return child(args)
    return parent(args)


# ------------------------------------------------------------------------------------ parent


def parent(args):
    import fuzz_targets

    names = args.targets.split(",") if args.targets else list(fuzz_targets.TARGETS)
    unknown = sorted(set(names) - set(fuzz_targets.TARGETS))
    if unknown:
        sys.exit(f"unknown targets {unknown}; known: {sorted(fuzz_targets.TARGETS)}")
    per_target = -(-args.cases // len(names))
    print(f"fuzzing {len(names)} targets x {per_target} cases, hypothesis seed {args.seed}",
          flush=True)
    start = time.perf_counter()
    reports = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_target, name, per_target, args): name for name in names}
        for future in concurrent.futures.as_completed(futures):
            name = futures[future]
            reports[name] = future.result()
            print(format_report(name, reports[name]), flush=True)
    elapsed = time.perf_counter() - start
    totals = collections.Counter()
    for report in reports.values():
        totals.update(report["counts"])
    failed = sum(len(r["failures"]) + len(r["crashes"]) for r in reports.values())
    print(f"total: {sum(totals.values())} cases ({', '.join(f'{k} {v}' for k, v in sorted(totals.items()))}), "
          f"{failed} failures or crashes, {elapsed:.0f} s")
    for name in names:
        for failure in reports[name]["failures"][:5]:
            print(f"  {name} seed {failure['seed']}: {failure['error']}")
        for crash in reports[name]["crashes"]:
            print(f"  {name}: {crash}")
    return 1 if failed else 0


# A target whose child keeps dying is given up after this many restarts.
MAX_CRASHES = 5


def run_target(name, cases, args):
    """Runs ``cases`` cases of one target in child processes, restarting after each crash."""
    report = {"counts": collections.Counter(), "failures": [], "crashes": [], "seconds": 0.0}
    start = time.perf_counter()
    attempt = 0
    while cases > 0 and len(report["crashes"]) <= MAX_CRASHES:
        done, crash = run_child(name, cases, attempt, args, report)
        cases -= done
        attempt += 1
        if crash is None:
            break
        report["crashes"].append(crash)
        report["counts"]["CRASHED"] += 1
        cases -= 1
    report["seconds"] = time.perf_counter() - start
    return report


def run_child(name, cases, attempt, args, report):
    """One child process; returns (cases completed, crash description or None)."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    progress = workdir / "progress"
    command = [sys.executable, str(pathlib.Path(__file__).resolve()), "--child", name,
               "--cases", str(cases), "--seed", str(args.seed + 7919 * attempt),
               "--batch", str(args.batch), "--timeout", str(args.timeout),
               "--memory", str(args.memory)]
    with open(workdir / "stdout", "w") as out, open(workdir / "stderr", "w") as err:
        code = subprocess.run(command, stdout=out, stderr=err, cwd=ROOT,
                              env=dict(os.environ, FUZZ_PROGRESS=str(progress))).returncode
    stdout, stderr = (workdir / "stdout").read_text(), (workdir / "stderr").read_text()
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
        elif line.startswith(FAILURE_PREFIX):
            report["failures"].append(json.loads(line[len(FAILURE_PREFIX):]))
    if code == 0 and result is not None:
        report["counts"].update(result)
        if not result.get("FAILED"):
            shutil.rmtree(workdir)
        return sum(result.values()), None
    state = json.loads(progress.read_text()) if progress.exists() else {"seed": "?", "counts": {}}
    report["counts"].update(state["counts"])
    if code < 0:
        what = f"killed by {signal.Signals(-code).name}"
    elif "Timeout (" in stderr:
        what = "hung (one case ran past --timeout)"
    else:
        what = f"exited with status {code}"
    tail = "\n      ".join(stderr.strip().splitlines()[-15:])
    crash = (f"child {what} in seed {state['seed']} (replay: tools/fuzz.py --replay {name} "
             f"{state['seed']}); logs in {workdir}\n      {tail}")
    return sum(state["counts"].values()), crash


def format_report(name, report):
    counts = report["counts"]
    total = sum(counts.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    problems = len(report["failures"]) + len(report["crashes"])
    return (f"{name:22s} {total:7d} cases ({parts}) in {report['seconds']:.0f} s: "
            + ("ok" if not problems else f"{problems} PROBLEMS"))


# ------------------------------------------------------------------------------------- child


def child(args):
    from hypothesis import HealthCheck, Phase, given, seed, settings

    import fuzz_targets

    if "asan" not in os.environ.get("LD_PRELOAD", ""):
        limit = int(args.memory * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    faulthandler.enable()  # a Python traceback on a fatal signal, for the parent's report
    target = fuzz_targets.TARGETS[args.child]
    progress = os.open(os.environ["FUZZ_PROGRESS"], os.O_WRONLY | os.O_CREAT, 0o644)
    counts = collections.Counter()

    def run_case(case_seed):
        # Left behind for the parent if this case kills the process.
        state = json.dumps({"seed": case_seed, "counts": counts}).encode()
        os.pwrite(progress, state.ljust(max(len(state), 512)), 0)
        faulthandler.dump_traceback_later(args.timeout, exit=True)
        try:
            counts[target.check(case_seed)] += 1
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, the run goes on
            counts["FAILED"] += 1
            message = "".join(traceback.format_exception_only(exc)).strip()
            print(FAILURE_PREFIX + json.dumps({"seed": case_seed, "error": message[:2000]}),
                  flush=True)
        finally:
            faulthandler.cancel_dump_traceback_later()

    done = 0
    batch_index = 0
    while done < args.cases:
        size = min(args.batch, args.cases - done)

        @settings(max_examples=size, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @seed(zlib.crc32(args.child.encode()) + args.seed * 1_000_003 + batch_index)
        @given(case_seed=fuzz_targets.SEEDS)
        def batch(case_seed):
            run_case(case_seed)

        before = sum(counts.values())
        batch()
        done += size
        batch_index += 1
        if sum(counts.values()) == before:  # hypothesis ran out of new seeds: cannot happen
            break
    print(RESULT_PREFIX + json.dumps(dict(counts)), flush=True)
    return 0


def replay(name, case_seed):
    import fuzz_targets

    target = fuzz_targets.TARGETS[name]
    call = target.call(case_seed)
    print(repr(call))
    try:
        print("outcome:", target.check(case_seed))
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
