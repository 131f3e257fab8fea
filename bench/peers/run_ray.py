"""The peer benchmarks on Ray: a local 2-CPU Ray instance, tasks as `@ray.remote` functions.

    python run_ray.py [--runs N] [--pi-runs N] [--only NAME] [--fan-in K]
"""

from __future__ import annotations

import logging
import os
import sys

# Quiet: no deduplication banners, no usage-stats prompt, no driver-side worker logs.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import harness  # noqa: E402  (sets PYTHONPATH for the workers)
import workloads  # noqa: E402

import ray  # noqa: E402


def main() -> int:
    args = harness.parse_args("Ray")
    tasks = {}

    def start() -> None:
        ray.init(
            num_cpus=harness.WORKERS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            object_store_memory=512 * 1024 * 1024,
        )
        for name in ("square", "add_one", "add", "factorise", "hits", "hits_numpy"):
            tasks[name] = ray.remote(getattr(workloads, name))

    def tiny(n: int) -> int:
        return sum(ray.get([tasks["square"].remote(i) for i in range(n)]))

    def chained(n: int, fan_in: int) -> tuple[int, int]:
        squares = [tasks["square"].remote(i) for i in range(n)]
        level = [tasks["add_one"].remote(r) for r in squares]
        root, adds = workloads.reduce_tree(level, fan_in, tasks["add"].remote)
        return 2 * n + adds, ray.get(root)

    def factorise(numbers) -> int:
        refs = [tasks["factorise"].remote(n) for n in numbers]
        return workloads.factor_sum(ray.get(refs))

    def pi(fn: str, seeds) -> int:
        return sum(ray.get([tasks[fn].remote(s) for s in seeds]))

    def run(name: str, fan_in: int) -> tuple[int, int]:
        if name == "tiny":
            return workloads.TINY_TASKS, tiny(workloads.TINY_TASKS)
        if name == "chained":
            return chained(workloads.CHAIN_INPUTS, fan_in)
        if name == "factorise":
            start = workloads.FACTORISE_START
            numbers = range(start, start + workloads.FACTORISE_COUNT)
            return workloads.FACTORISE_COUNT, factorise(numbers)
        fn = "hits" if name == "pi" else "hits_numpy"
        return workloads.PI_TASKS, pi(fn, workloads.PI_SEEDS)

    def warm_up() -> None:
        # Both workers up, every function exported and imported, numpy's tables built.
        tiny(2000)
        chained(200, 2)
        factorise(range(workloads.FACTORISE_START, workloads.FACTORISE_START + 20))
        pi("hits_numpy", range(1000, 1004))

    return harness.bench("ray", ray.__version__, args, start, run, warm_up, ray.shutdown)


if __name__ == "__main__":
    sys.exit(main())
