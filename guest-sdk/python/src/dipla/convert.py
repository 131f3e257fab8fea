"""JSON values to Python, guided by type hints, and Python values back to JSON.

Decoding checks what it converts and says where it is wrong (`-5 is not a u64 at [0]`);
encoding writes one canonical text for one value (sets sorted, no spaces, NaN and the
infinities as `null` as serde_json writes them), so two honest workers agree byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, NewType

from .markers import RANGES
from .signature import is_typeddict


class BadInput(Exception):
    """A JSON value that does not fit the type it is read as."""


def _at(path: str) -> str:
    return f" at {path}" if path else ""


def brief(value) -> str:
    """A JSON value, cut short for a message."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def decode(value, hint, path: str = ""):
    """`value` (as `json.loads` gives it) as an instance of `hint`; raises `BadInput`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return value
    if isinstance(hint, NewType):
        inner = decode(value, hint.__supertype__, path)
        bounds = RANGES.get(hint.__name__)
        if bounds and not bounds[0] <= inner <= bounds[1]:
            raise BadInput(f"{inner} is not a {hint.__name__}{_at(path)}")
        return inner
    if hint is None or hint is type(None):
        if value is not None:
            raise BadInput(f"expected null{_at(path)}, got {brief(value)}")
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise BadInput(f"expected a bool{_at(path)}, got {brief(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInput(f"expected an integer{_at(path)}, got {brief(value)}")
        return value
    if hint is float:
        if value is None:  # NaN or an infinity, as serde_json writes them
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInput(f"expected a number{_at(path)}, got {brief(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise BadInput(f"expected a string{_at(path)}, got {brief(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return decode(value, arg, path)
            except BadInput as error:
                errors.append(str(error))
        raise BadInput("; ".join(errors))
    if hint in (list, set, frozenset, tuple) or origin in (list, set, frozenset, tuple):
        return _sequence(value, hint, origin, args, path)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise BadInput(f"expected an object{_at(path)}, got {brief(value)}")
        inner = args[1] if len(args) == 2 else Any
        return {key: decode(item, inner, f"{path}.{key}") for key, item in value.items()}
    if dataclasses.is_dataclass(hint) or is_typeddict(hint):
        return _record(value, hint, path)
    return value


def _sequence(value, hint, origin, args, path: str):
    if not isinstance(value, list):
        raise BadInput(f"expected an array{_at(path)}, got {brief(value)}")
    kind = origin or hint
    if kind is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise BadInput(f"expected {len(args)} elements{_at(path)}, got {len(value)}")
        return tuple(
            decode(item, arg, f"{path}[{i}]") for i, (item, arg) in enumerate(zip(value, args))
        )
    inner = args[0] if args else Any
    items = [decode(item, inner, f"{path}[{i}]") for i, item in enumerate(value)]
    return items if kind is list else kind(items)


def _record(value, hint, path: str):
    if not isinstance(value, dict):
        raise BadInput(f"expected an object for {hint.__name__}{_at(path)}, got {brief(value)}")
    hints = typing.get_type_hints(hint)
    fields = (
        {field.name for field in dataclasses.fields(hint)}
        if dataclasses.is_dataclass(hint)
        else set(hints)
    )
    unknown = set(value) - fields
    if unknown:
        raise BadInput(f"{hint.__name__} has no field {sorted(unknown)[0]!r}{_at(path)}")
    fields = {
        key: decode(item, hints.get(key, Any), f"{path}.{key}") for key, item in value.items()
    }
    if not dataclasses.is_dataclass(hint):
        return fields
    try:
        return hint(**fields)
    except TypeError as error:
        raise BadInput(f"{hint.__name__}{_at(path)}: {error}") from None


def encode(value, path: str = "the result"):
    """`value` as a JSON-ready value: dataclasses as objects (in field order), tuples as
    arrays, sets as sorted arrays (their iteration order is not part of the value), floats
    JSON cannot write as null. Raises `TypeError` for what has no JSON form."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [encode(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [encode(item, f"{path}[]") for item in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, dict):
        fields = {}
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(
                    f"{path}: a JSON object's keys are strings, not {type(key).__name__}"
                )
            fields[str(key)] = encode(item, f"{path}.{key}")
        return fields
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: encode(getattr(value, field.name), f"{path}.{field.name}")
            for field in dataclasses.fields(value)
        }
    raise TypeError(f"{path}: a {type(value).__name__} has no JSON form")


def dumps(value) -> str:
    """`value` as canonical JSON text."""
    return json.dumps(encode(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
