"""The peer benchmarks on Dask distributed: a LocalCluster of 2 single-threaded worker processes.

    python run_dask.py [--runs N] [--pi-runs N] [--only NAME] [--fan-in K]

Tasks are submitted with `pure=False`: with Dask's default (`pure=True`) a second run of the
same workload would reuse results still held, and measure nothing.
"""

from __future__ import annotations

import logging
import sys

import harness  # (sets PYTHONPATH for the workers)
import workloads

import dask
import distributed
from dask.distributed import Client, LocalCluster


def main() -> int:
    args = harness.parse_args("Dask")
    state = {}

    def start() -> None:
        dask.config.set({"distributed.admin.system-monitor.gil.enabled": False})
        cluster = LocalCluster(
            n_workers=harness.WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        state["cluster"] = cluster
        state["client"] = Client(cluster)

    def tiny(n: int) -> int:
        client = state["client"]
        futures = client.map(workloads.square, range(n), pure=False)
        return sum(client.gather(futures))

    def chained(n: int, fan_in: int) -> tuple[int, int]:
        client = state["client"]
        squares = client.map(workloads.square, range(n), pure=False)
        level = client.map(workloads.add_one, squares, pure=False)

        def add(*children):
            return client.submit(workloads.add, *children, pure=False)

        root, adds = workloads.reduce_tree(level, fan_in, add)
        return 2 * n + adds, root.result()

    def factorise(numbers) -> int:
        client = state["client"]
        futures = client.map(workloads.factorise, numbers, pure=False)
        return workloads.factor_sum(client.gather(futures))

    def pi(fn, seeds) -> int:
        client = state["client"]
        return sum(client.gather(client.map(fn, seeds, pure=False)))

    def run(name: str, fan_in: int) -> tuple[int, int]:
        if name == "tiny":
            return workloads.TINY_TASKS, tiny(workloads.TINY_TASKS)
        if name == "chained":
            return chained(workloads.CHAIN_INPUTS, fan_in)
        if name == "factorise":
            start = workloads.FACTORISE_START
            numbers = list(range(start, start + workloads.FACTORISE_COUNT))
            return workloads.FACTORISE_COUNT, factorise(numbers)
        fn = workloads.hits if name == "pi" else workloads.hits_numpy
        return workloads.PI_TASKS, pi(fn, list(workloads.PI_SEEDS))

    def warm_up() -> None:
        state["client"].wait_for_workers(harness.WORKERS)
        tiny(2000)
        chained(200, 2)
        factorise(list(range(workloads.FACTORISE_START, workloads.FACTORISE_START + 20)))
        pi(workloads.hits_numpy, list(range(1000, 1004)))

    def stop() -> None:
        state["client"].close()
        state["cluster"].close()

    return harness.bench("dask", distributed.__version__, args, start, run, warm_up, stop)


if __name__ == "__main__":
    sys.exit(main())
