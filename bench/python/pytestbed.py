"""The Python side of `cargo xtask bench`: the same functions as the Rust testbed and
factorise guests, and as `bench/peers/workloads.py` runs on Ray and Dask."""

import dipla
from dipla import u64


@dipla.task
def square(x: u64) -> u64:
    """A tiny task: what a task costs beyond its work."""
    return x * x


@dipla.task
def factorise(n: u64) -> list[u64]:
    """The prime factors of `n`, smallest first: `bench/peers/workloads.py`'s trial division."""
    factors = []
    if n < 2:
        return factors
    while n % 2 == 0:
        factors.append(2)
        n //= 2
    d = 3
    while d <= n // d:
        while n % d == 0:
            factors.append(d)
            n //= d
        d += 2
    if n > 1:
        factors.append(n)
    return factors
