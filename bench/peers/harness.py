"""What `run_ray.py` and `run_dask.py` share: the command line, timing, checks, the JSON out.

A system supplies `run(name, fan_in) -> (tasks, check)`, which submits one workload to its
running 2-worker cluster, waits for the result and returns how many tasks it ran and the
check value; the harness warms up, times `--runs` runs, takes the median and verifies the
check against `workloads`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))

# Workers (Ray's raylet children, Dask's spawned processes) import the task functions by
# module name: put this folder on their path before any cluster starts.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in [HERE, os.environ.get("PYTHONPATH", "")] if p
)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import workloads  # noqa: E402

WORKERS = 2
NAMES = ["tiny", "chained", "factorise", "pi", "pi_numpy"]


def expected(name: str) -> int:
    return {
        "tiny": workloads.TINY_CHECK,
        "chained": workloads.CHAIN_CHECK,
        "factorise": workloads.FACTORISE_CHECK,
        "pi": workloads.PI_CHECK,
        "pi_numpy": workloads.PI_CHECK,
    }[name]


def expected_tasks(name: str, fan_in: int) -> int:
    return {
        "tiny": workloads.TINY_TASKS,
        "chained": workloads.chained_tasks(fan_in),
        "factorise": workloads.FACTORISE_COUNT,
        "pi": workloads.PI_TASKS,
        "pi_numpy": workloads.PI_TASKS,
    }[name]


def parse_args(system: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=f"The peer benchmarks on {system} with {WORKERS} local workers; "
        "prints one JSON object on stdout."
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per workload (median)")
    parser.add_argument(
        "--pi-runs",
        type=int,
        default=None,
        help="timed runs of the pure-Python pi workload (default: --runs; one run is minutes)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        help="run only this workload (repeatable); pi is pure Python, pi_numpy vectorised",
    )
    parser.add_argument(
        "--fan-in",
        type=int,
        default=workloads.CHAIN_FAN_IN,
        help="fan-in of the chained workload's reduce tree (Dipla's default: 2)",
    )
    args = parser.parse_args()
    if args.pi_runs is None:
        args.pi_runs = args.runs
    if args.runs < 1 or args.pi_runs < 1 or args.fan_in < 2:
        parser.error("--runs and --pi-runs must be at least 1, --fan-in at least 2")
    return args


def log(message: str) -> None:
    print(f"[peers] {message}", file=sys.stderr, flush=True)


def bench(
    system: str,
    version: str,
    args: argparse.Namespace,
    start: Callable[[], None],
    run: Callable[[str, int], tuple[int, int]],
    warm_up: Callable[[], None],
    stop: Callable[[], None],
) -> int:
    """Starts the cluster, warms up, times the workloads, prints the JSON; returns the exit code."""
    names = args.only or NAMES
    out = {
        "system": system,
        "version": version,
        "python": platform.python_version(),
        "workers": WORKERS,
        "cores": os.cpu_count(),
        "runs": args.runs,
        "loadavg_before": round(os.getloadavg()[0], 2),
        "workloads": {},
    }
    failed = False
    # Nothing but the JSON goes to stdout: anything a library prints goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        began = time.perf_counter()
        start()
        out["startup_secs"] = round(time.perf_counter() - began, 3)
        log(f"{system} {version}: cluster up in {out['startup_secs']} s")
        try:
            began = time.perf_counter()
            warm_up()
            out["warmup_secs"] = round(time.perf_counter() - began, 3)
            for name in names:
                runs = args.pi_runs if name == "pi" else args.runs
                times = []
                checks = set()
                tasks = None
                for i in range(runs):
                    began = time.perf_counter()
                    tasks, check = run(name, args.fan_in)
                    secs = time.perf_counter() - began
                    times.append(secs)
                    checks.add(check)
                    log(f"{name} run {i + 1}/{runs}: {tasks} tasks in {secs:.3f} s, check {check}")
                secs = statistics.median(times)
                check = checks.pop() if len(checks) == 1 else sorted(checks)
                ok = check == expected(name) and tasks == expected_tasks(name, args.fan_in)
                failed |= not ok
                entry = {
                    "tasks": tasks,
                    "secs": round(secs, 4),
                    "tasks_per_sec": round(tasks / secs, 1),
                    "check": check,
                    "expected": expected(name),
                    "ok": ok,
                    "runs": runs,
                    "all_secs": [round(t, 4) for t in times],
                    "loadavg_after": round(os.getloadavg()[0], 2),
                }
                if name == "chained":
                    entry["fan_in"] = args.fan_in
                if name == "pi_numpy":
                    entry["note"] = "numpy-vectorised hits, bit-identical to the pure-Python pi"
                out["workloads"][name] = entry
                if not ok:
                    log(f"{name}: CHECK FAILED: {check} (expected {expected(name)})")
        finally:
            stop()
    # Other work on the machine skews every figure: say how busy it was.
    out["loadavg_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out), flush=True)
    return 1 if failed else 0
