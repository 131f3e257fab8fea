"""What a task returns or raises besides a plain value, and the exact integer types.

Every module of this package imports all it needs at its top: componentize-py snapshots the
interpreter once the task module is imported, and a component has no file system to import
from later.
"""

from __future__ import annotations

import dataclasses
from typing import Generic, NewType, TypeVar

T = TypeVar("T")
O = TypeVar("O")

# Exact integer types, for signatures that must say more than `int`. A bare `int` is
# recorded as `i128`: Python's int has no bound, and i128 overlaps every integer type the
# server knows, so it feeds and is fed by u64 and the rest.
u8 = NewType("u8", int)
u16 = NewType("u16", int)
u32 = NewType("u32", int)
u64 = NewType("u64", int)
i8 = NewType("i8", int)
i16 = NewType("i16", int)
i32 = NewType("i32", int)
i64 = NewType("i64", int)
f32 = NewType("f32", float)

#: The values each exact integer type holds.
RANGES = {
    "u8": (0, 2**8 - 1),
    "u16": (0, 2**16 - 1),
    "u32": (0, 2**32 - 1),
    "u64": (0, 2**64 - 1),
    "i8": (-(2**7), 2**7 - 1),
    "i16": (-(2**15), 2**15 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1),
}


class TaskError(Exception):
    """A deliberate failure: the task refuses its input (the Rust SDK's `Err`)."""


@dataclasses.dataclass
class Stop(Generic[T]):
    """A result that meets the stage's goal (`stop_after`): the server stops the stage."""

    value: T


class Flow(Generic[T]):
    """The annotation of a task that may return `Stop(value)` as well as a plain value:
    `def find(n: u64) -> dipla.Flow[Optional[u64]]`. Only such a task may stop a stage."""


@dataclasses.dataclass
class Explore(Generic[O, T]):
    """An explore task's result: its output and new inputs for the same stage
    (`def step(n: u64) -> dipla.Explore[u64, u64]`)."""

    output: O
    next: list[T]
