"""Prime factorisation in Python, checked by a verifier: the original Dipla's first example.

    dipla-py build examples/python/factorise/tasks.py -o target/python/factorise.wasm
    dipla-server run examples/python/factorise/job.toml --local-workers 2
"""

import dipla
from dipla import u64


@dipla.task
def factorise(n: u64) -> list[u64]:
    """The prime factors of `n`, smallest first, by trial division."""
    factors = []
    while n % 2 == 0 and n > 1:
        factors.append(2)
        n //= 2
    d = 3
    while d * d <= n:
        while n % d == 0:
            factors.append(d)
            n //= d
        d += 2
    if n > 1:
        factors.append(n)
    return factors


@dipla.verifier
def check(n: u64, factors: list[u64]) -> bool:
    """Whether `factors` multiply to `n`, in order, none below 2 (it does not test
    primality, which would cost as much as the task)."""
    product = 1
    for factor in factors:
        if factor < 2:
            return False
        product *= factor
    return product == n and factors == sorted(factors)
