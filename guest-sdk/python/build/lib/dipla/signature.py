"""Type hints as the type names the server reads (the Rust SDK's, so that Python and Rust
stages are checked alike): `int` is `i128`, `list[u64]` is `Vec<u64>`, a dataclass its name."""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from typing import Any, NewType

from .markers import Explore, Flow


def is_typeddict(hint) -> bool:
    """Whether `hint` is a TypedDict class."""
    return isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__total__")


def type_name(hint, returns: bool = False) -> str:
    """The type name of `hint`; `Value` (any JSON) where it says nothing more precise.
    `returns`: the hint is a task's result (where `Flow[T]` may stand)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return "Value"
    if hint is None or hint is type(None):
        return "()"
    if isinstance(hint, NewType):
        return hint.__name__
    if hint is bool:
        return "bool"
    if hint is int:
        return "i128"
    if hint is float:
        return "f64"
    if hint is str:
        return "String"
    if origin in (typing.Union, types.UnionType):
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            return f"Option<{type_name(rest[0])}>"
        return "Value"
    if returns and (hint is Flow or origin is Flow):
        return f"Flow<{type_name(args[0]) if args else 'Value'}>"
    if hint is Explore or origin is Explore:
        output, step = args if len(args) == 2 else (Any, Any)
        return f"Explore<{type_name(output)}, {type_name(step)}>"
    if hint is list or origin in (list, collections.abc.Sequence):
        return f"Vec<{type_name(args[0]) if args else 'Value'}>"
    if hint in (set, frozenset) or origin in (set, frozenset):
        return f"BTreeSet<{type_name(args[0]) if args else 'Value'}>"
    if hint is tuple or origin is tuple:
        if not args:
            return "Vec<Value>"
        if len(args) == 2 and args[1] is Ellipsis:
            return f"Vec<{type_name(args[0])}>"
        return "(" + ", ".join(type_name(arg) for arg in args) + ")"
    if hint is dict or origin is dict:
        inner = type_name(args[1]) if len(args) == 2 else "Value"
        return f"BTreeMap<String, {inner}>"
    if dataclasses.is_dataclass(hint) or is_typeddict(hint):
        return hint.__name__
    return "Value"
