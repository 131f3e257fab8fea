"""Dipla task functions in Python.

    import dipla

    @dipla.task
    def square(x: int) -> int:
        return x * x

`dipla-py build tasks.py -o tasks.wasm` builds the module into a WebAssembly component that
Dipla's workers run in their sandbox; a job names its tasks as it names a Rust guest's
(`[modules] t = "tasks.wasm"`, `task = "t.square"`).

A task takes and returns JSON-shaped values: `int`, `float`, `str`, `bool`, `None`, lists,
tuples, sets, dicts with string keys, dataclasses, TypedDicts, `Optional`. Its signature
comes from its type hints and is recorded as a Rust guest's is, so the server checks Python
and Rust stages alike. Several parameters take a JSON array, as in Rust.

- `raise dipla.TaskError("why")` fails the task deliberately; any other exception fails it
  with its type, message and the traceback's last frames.
- `return dipla.Stop(value)` (annotated `-> dipla.Flow[T]`) meets the stage's goal.
- `return dipla.Explore(output, next)` (annotated `-> dipla.Explore[O, T]`) adds inputs to an
  explore stage.
- Two parameters of the result's own type make a reducer: it also folds a JSON array of more
  than two values, left to right.
- `@dipla.verifier def check(input: In, output: Out) -> bool` checks another task's outputs.

Functions stay ordinary functions: test them with plain calls, or with `dipla.run(name,
input_json)` to see what a worker would send back. Import every module a task uses at the
top of its file: the component holds only what importing the file imports.
"""

from .markers import (
    Explore,
    Flow,
    Stop,
    TaskError,
    f32,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
)
from .registry import ABI_VERSION, task, tasks_section, verifier
from .dispatch import Failure, run

__all__ = [
    "ABI_VERSION",
    "Explore",
    "Failure",
    "Flow",
    "Stop",
    "TaskError",
    "f32",
    "i8",
    "i16",
    "i32",
    "i64",
    "run",
    "task",
    "tasks_section",
    "u8",
    "u16",
    "u32",
    "u64",
    "verifier",
]
