"""Monte Carlo pi in Python: each task throws points with its own seeded generator and
counts those inside the quarter circle; a reduce adds the counts.

`random.Random(seed)` is Python's Mersenne Twister, the same on every worker, and floats are
IEEE doubles everywhere: replicas agree bit for bit.

    dipla-server run examples/python/pi/job.toml --stage pi --local-workers 2
"""

import random

import dipla
from dipla import u64

#: Points thrown by one task.
SAMPLES = 20_000


@dipla.task
def hits(seed: u64) -> u64:
    """How many of SAMPLES points drawn from `seed` fall inside the quarter circle."""
    draw = random.Random(seed).random
    inside = 0
    for _ in range(SAMPLES):
        x, y = draw(), draw()
        if x * x + y * y <= 1.0:
            inside += 1
    return inside


@dipla.task
def add(a: u64, b: u64) -> u64:
    """Addition, to reduce the counts."""
    return a + b


@dipla.task
def estimate(total: u64, tasks: u64) -> float:
    """Pi from a total count of hits over `tasks` tasks."""
    return 4.0 * total / (tasks * SAMPLES)
