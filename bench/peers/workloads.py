"""The four workloads of `just bench-peers`, as plain Python functions, and their check values.

Each task function here is what a Ray or Dask user would write; `run_ray.py` and `run_dask.py`
wrap them as remote tasks. The integer and float arithmetic replicates Dipla's Rust guests bit
for bit, so every system must produce the same check values:

- tiny: `square` (integration-tests/guests/testbed) over 0..20000; check: the sum of outputs.
- chained: `square` then `add_one` over 0..20000, then a sum as a reduce tree of fixed shape
  (groups of `fan_in` consecutive values, level by level, a lone last node passing through:
  the shape of Dipla's `reduce = { stage, fan_in }`); check: the final sum.
- factorise: examples/factorise `factorise` over 10^12 .. 10^12 + 2000, one task per number;
  check: the sum over all numbers of the sum of their prime factors (with multiplicity).
- pi: examples/pi `hits` for seeds 1..=200 (its job.toml), 10^6 points each; check: total hits.
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1

# --- the workloads' sizes ------------------------------------------------------------------

TINY_TASKS = 20_000
CHAIN_INPUTS = 20_000
CHAIN_FAN_IN = 2  # Dipla's default `fan_in`
FACTORISE_START = 1_000_000_000_000
FACTORISE_COUNT = 2_000
PI_TASKS = 200
PI_SAMPLES = 1_000_000
PI_SEEDS = range(1, PI_TASKS + 1)  # examples/pi/job.toml: range 1..201

# --- task functions -------------------------------------------------------------------------


def square(x: int) -> int:
    """testbed `square`: `x.wrapping_mul(x)`."""
    return (x * x) & MASK64


def add_one(x: int) -> int:
    """The chained workload's second map: `x.wrapping_add(1)`."""
    return (x + 1) & MASK64


def add(*values: int) -> int:
    """testbed/pi `add`, folding a group as Dipla's SDK does: wrapping addition."""
    total = 0
    for v in values:
        total = (total + v) & MASK64
    return total


def factorise(n: int) -> list[int]:
    """examples/factorise `factorise`: trial division, odd divisors after 2, `d <= n / d`."""
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


def hits(seed: int) -> int:
    """examples/pi `hits` in plain Python: xorshift64* to f64, same float ops in the same order.

    `(s * M) >> 11` is below 2^53, so its conversion to float and the division by 2^53 are
    exact, as in Rust; `x * x + y * y` is two rounded products and a rounded sum in both.
    """
    state = ((seed * 0x9E3779B97F4A7C15) & MASK64) | 1
    scale = float(1 << 53)
    mult = 0x2545F4914F6CDD1D
    inside = 0
    for _ in range(PI_SAMPLES):
        state ^= state >> 12
        state ^= (state << 25) & MASK64
        state ^= state >> 27
        x = (((state * mult) & MASK64) >> 11) / scale
        state ^= state >> 12
        state ^= (state << 25) & MASK64
        state ^= state >> 27
        y = (((state * mult) & MASK64) >> 11) / scale
        if x * x + y * y <= 1.0:
            inside += 1
    return inside


# --- numpy variant of pi --------------------------------------------------------------------


def _xorshift(state: int) -> int:
    state ^= state >> 12
    state ^= (state << 25) & MASK64
    state ^= state >> 27
    return state


def _square_columns(columns: list[int]) -> list[int]:
    """Columns of M^2 from those of M (a 64x64 bit matrix over GF(2))."""
    return [_apply(columns, c) for c in columns]


def _apply(columns: list[int], v: int) -> int:
    out = 0
    i = 0
    while v:
        if v & 1:
            out ^= columns[i]
        v >>= 1
        i += 1
    return out


def _byte_tables(columns: list[int]):
    """Lookup tables: A^k s = XOR over the 8 bytes b of s of table[b][byte b of s]."""
    import numpy as np

    tables = np.zeros((8, 256), dtype=np.uint64)
    for b in range(8):
        row = [0] * 256
        for v in range(1, 256):
            low = (v & -v).bit_length() - 1
            row[v] = row[v & (v - 1)] ^ columns[8 * b + low]
        tables[b] = np.array(row, dtype=np.uint64)
    return tables


_POWERS: list[list[int]] = []  # columns of A^(2^k), k = 0, 1, ...
_TABLES: dict[int, object] = {}  # steps (a power of two) -> byte tables of A^steps


def _tables_for(steps: int):
    """Byte tables of A^steps for a power of two `steps` (cached per process)."""
    if steps not in _TABLES:
        k = steps.bit_length() - 1
        assert steps == 1 << k, steps
        if not _POWERS:
            _POWERS.append([_xorshift(1 << i) for i in range(64)])  # A
        while len(_POWERS) <= k:
            _POWERS.append(_square_columns(_POWERS[-1]))
        _TABLES[steps] = _byte_tables(_POWERS[k])
    return _TABLES[steps]


def hits_numpy(seed: int) -> int:
    """examples/pi `hits` vectorised with numpy, bit-identical to `hits`.

    The 2 * 10^6 xorshift states come from the first one by doubling: states[m:2m] =
    A^m states[0:m], with A^m applied through byte lookup tables (xorshift is linear over
    GF(2)). Then the same scramble, exact conversion and the same IEEE float operations.
    """
    import numpy as np

    count = 2 * PI_SAMPLES
    states = np.empty(count, dtype=np.uint64)
    states[0] = _xorshift(((seed * 0x9E3779B97F4A7C15) & MASK64) | 1)
    have = 1
    mask8 = np.uint64(0xFF)
    while have < count:
        take = min(have, count - have)
        src = states[:take]
        tables = _tables_for(have)
        out = tables[0][src & mask8]
        for b in range(1, 8):
            out ^= tables[b][(src >> np.uint64(8 * b)) & mask8]
        states[have : have + take] = out
        have += take
    scrambled = states * np.uint64(0x2545F4914F6CDD1D)  # wraps mod 2^64
    values = (scrambled >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    x = values[0::2]
    y = values[1::2]
    return int(np.count_nonzero(x * x + y * y <= 1.0))


# --- shapes and check values ----------------------------------------------------------------


def tree_groups(count: int, fan_in: int) -> list[list[tuple[int, int]]]:
    """The reduce tree's levels as Dipla shapes them: for each level above the items, the
    (start, end) of the child positions of each node; a group of one passes through (no task)."""
    levels = []
    size = count
    while size > 1:
        groups = [(s, min(s + fan_in, size)) for s in range(0, size, fan_in)]
        levels.append(groups)
        size = len(groups)
    return levels


def reduce_tree(level: list, fan_in: int, add) -> tuple[object, int]:
    """Submits the reduce tree over `level` (a system's futures), level by level as Dipla
    shapes it, with `add(*children)` submitting one node: the root and how many adds ran."""
    adds = 0
    for groups in tree_groups(len(level), fan_in):
        above = []
        for s, e in groups:
            if e - s == 1:
                above.append(level[s])  # a lone last node passes through
            else:
                above.append(add(*level[s:e]))
                adds += 1
        level = above
    return level[0], adds


def tree_tasks(count: int, fan_in: int) -> int:
    """Reduce tasks actually run (groups of two or more)."""
    return sum(1 for level in tree_groups(count, fan_in) for s, e in level if e - s > 1)


def chained_tasks(fan_in: int = CHAIN_FAN_IN) -> int:
    return 2 * CHAIN_INPUTS + tree_tasks(CHAIN_INPUTS, fan_in)


def factor_sum(factor_lists) -> int:
    return sum(sum(fs) for fs in factor_lists)


# Check values, derived independently of the task functions where a closed form exists.
TINY_CHECK = sum(i * i for i in range(TINY_TASKS))  # = (n-1) n (2n-1) / 6
CHAIN_CHECK = sum(i * i + 1 for i in range(CHAIN_INPUTS))
# Computed once with `factorise` and `hits` (pure Python) and pinned here; `selfcheck` below
# recomputes them.
FACTORISE_CHECK = 120_420_195_191_265
PI_CHECK = 157_081_786


def selfcheck(full: bool = False) -> None:
    """Asserts the closed forms, a few known factorisations, and numpy pi == plain pi.

    With `full`, recomputes FACTORISE_CHECK and PI_CHECK serially (minutes)."""
    n = TINY_TASKS
    assert TINY_CHECK == (n - 1) * n * (2 * n - 1) // 6
    assert CHAIN_CHECK == TINY_CHECK + CHAIN_INPUTS
    assert factorise(12) == [2, 2, 3]
    assert factorise(1001) == [7, 11, 13]
    assert factorise(MASK64) == [3, 5, 17, 257, 641, 65537, 6700417]
    assert factorise(1_000_000_000_039) == [1_000_000_000_039]
    for seed in (1, 2, 200):
        assert hits(seed) == hits_numpy(seed), seed
    if full:
        fs = factor_sum(factorise(FACTORISE_START + i) for i in range(FACTORISE_COUNT))
        assert fs == FACTORISE_CHECK, fs
        total = sum(hits(s) for s in PI_SEEDS)
        assert total == PI_CHECK, total
        assert sum(hits_numpy(s) for s in PI_SEEDS) == PI_CHECK


if __name__ == "__main__":
    import sys

    selfcheck(full="--full" in sys.argv)
    print("workloads self-check passed")
