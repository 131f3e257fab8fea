"""The module's tasks: what `@task` and `@verifier` register, and the signature records the
server reads (the lines of a Rust guest's `dipla` custom section)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from typing import Any, Callable

from .signature import type_name

#: The version of the guest ABI the records describe.
ABI_VERSION = 1

# Names the component's exports or the core ABI use.
_RESERVED = {"tasks", "run", "memory", "cabi_realloc", "dipla_panic_message", "dipla_log"}


@dataclasses.dataclass
class Task:
    """A registered task or verifier."""

    name: str
    function: Callable
    params: list[tuple[str, Any]]
    returns: Any
    #: Two parameters of the result's own type: a reducer, which also folds longer arrays.
    fold: bool
    verifier: bool

    def record(self) -> dict:
        """Its signature record."""
        record: dict[str, Any] = {
            "abi": ABI_VERSION,
            "task": self.name,
            "params": [{"name": name, "type": type_name(hint)} for name, hint in self.params],
            "returns": type_name(self.returns, returns=True),
            "fold": self.fold,
        }
        if self.verifier:
            record["verifier"] = True
        return record


#: The tasks registered so far, by name, in the order they were.
TASKS: dict[str, Task] = {}


def _register(function: Callable, verifier: bool, name: str | None) -> Callable:
    name = name or function.__name__
    if name in _RESERVED:
        raise ValueError(f"`{name}` is reserved by the Dipla guest ABI; rename the task")
    if name in TASKS:
        raise ValueError(f"two tasks are named `{name}`")
    hints = typing.get_type_hints(function)
    params = []
    for param in inspect.signature(function).parameters.values():
        if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            raise TypeError(f"task `{name}`: parameter `{param.name}` must be positional")
        params.append((param.name, hints.get(param.name, Any)))
    returns = hints.get("return", Any)
    if verifier and (len(params) != 2 or returns is not bool):
        raise TypeError(f"verifier `{name}` must be `def {name}(input: In, output: Out) -> bool`")
    fold = (
        not verifier
        and len(params) == 2
        and type_name(params[0][1]) == type_name(returns)
        and type_name(params[1][1]) == type_name(returns)
    )
    TASKS[name] = Task(name, function, params, returns, fold, verifier)
    return function


def task(function: Callable | None = None, *, name: str | None = None):
    """Registers `function` as a task (it stays an ordinary function, callable and testable
    as before). `@task(name="other")` exports it under another name."""
    if function is None:
        return lambda function: _register(function, False, name)
    return _register(function, False, name)


def verifier(function: Callable | None = None, *, name: str | None = None):
    """Registers a verifier: `def check(input: In, output: Out) -> bool`, which a stage's
    `verify` names to check another task's outputs."""
    if function is None:
        return lambda function: _register(function, True, name)
    return _register(function, True, name)


def tasks_section() -> str:
    """The registered tasks as signature records, one JSON object per line."""
    return "".join(
        json.dumps(task.record(), separators=(",", ":"), ensure_ascii=False) + "\n"
        for task in TASKS.values()
    )
