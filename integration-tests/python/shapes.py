"""Stage shapes in Python, as the Rust testbed has them: an exploration, a search that stops
its stage early, and a map and a reduce over what they found."""

import dipla
from dipla import u64


@dipla.task
def reach(n: u64) -> dipla.Explore[u64, u64]:
    """Explores the numbers reachable from `n` by +1 and *2, up to 100."""
    return dipla.Explore(n, [m for m in (n + 1, n * 2) if m <= 100])


@dipla.task
def seek(x: u64) -> dipla.Flow[u64]:
    """Meets the goal on numbers ending in 777."""
    return dipla.Stop(x) if x % 1000 == 777 else x


@dipla.task
def square(x: u64) -> u64:
    return x * x


@dipla.task
def add(a: u64, b: u64) -> u64:
    return a + b
