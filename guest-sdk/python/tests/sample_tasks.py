"""Tasks the SDK's tests register (a module, as a user's would be)."""

from __future__ import annotations

import dataclasses
import random
from typing import Optional, TypedDict

import dipla
from dipla import Explore, Flow, Stop, u64


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Stats(TypedDict):
    count: int
    mean: float


@dipla.task
def factorise(n: u64) -> list[u64]:
    factors, d = [], 2
    while d * d <= n:
        while n % d == 0:
            factors.append(d)
            n //= d
        d += 1
    if n > 1:
        factors.append(n)
    return factors


@dipla.verifier
def check_factors(n: u64, factors: list[u64]) -> bool:
    product = 1
    for factor in factors:
        product *= factor
    return product == n


@dipla.task
def add(a: int, b: int) -> int:
    return a + b


@dipla.task
def centroid(points: list[Point], tags: set[str]) -> tuple[Point, Stats, list[str]]:
    count = len(points)
    x = sum(p.x for p in points) / count
    y = sum(p.y for p in points) / count
    return Point(x, y), {"count": count, "mean": (x + y) / 2}, sorted(tags)


@dipla.task
def find(candidate: u64) -> Flow[Optional[u64]]:
    return Stop(candidate) if candidate * candidate == 1369 else None


@dipla.task
def collatz(n: u64) -> Explore[u64, u64]:
    return Explore(n, [] if n <= 1 else [n // 2] if n % 2 == 0 else [3 * n + 1])


@dipla.task
def refuse(n: int) -> int:
    if n < 0:
        raise dipla.TaskError(f"{n} is negative")
    return 1 // n


@dipla.task
def draw(n: int) -> list[float]:
    return [random.random() for _ in range(n)]


@dipla.task
def tags(words: list[str]) -> set[str]:
    return set(words)


@dipla.task(name="opaque")
def returns_an_object(n: int) -> object:
    return object()
