"""Running a registered task on a JSON input: what the component's `run` export does, and
what a test can call under native CPython to see exactly what a worker would."""

from __future__ import annotations

import hashlib
import json
import random
import sys
import traceback

from .convert import BadInput, brief, decode, dumps
from .markers import Stop, TaskError
from .registry import TASKS

#: How many of the traceback's last frames a failure carries.
FRAMES = 5
#: The longest failure message, in characters.
MAX_MESSAGE = 4096


class Failure(Exception):
    """Why a task failed. `kind` is one of the WIT world's `failure-kind` names: `guest`
    (`TaskError`), `exception` (any other), `bad-input`, `bad-output`, `no-such-task`."""

    def __init__(self, kind: str, message: str, frames: list[str] | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message[:MAX_MESSAGE]
        self.frames = frames or []


# This package's frames are not the user's: left out of tracebacks.
_PACKAGE = __file__.rsplit("/", 1)[0]


def _frames(error: BaseException) -> list[str]:
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(_PACKAGE)
    ][-FRAMES:]
    return [
        f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"
        + (f": {frame.line}" if frame.line else "")
        for frame in frames
    ]


def _seed(name: str, input: str) -> None:
    """Seeds `random` from the task and its input: every run of one task on one input draws
    the same numbers (native or in a component), different inputs different ones."""
    digest = hashlib.sha256(name.encode() + b"\0" + input.encode()).digest()
    random.seed(int.from_bytes(digest, "big"))


def _arguments(task, name: str, value) -> list:
    if task.fold:
        if not isinstance(value, list) or len(value) < 2:
            raise BadInput("a reducer takes an array of at least 2 values")
        return [decode(item, task.returns, f"[{i}]") for i, item in enumerate(value)]
    if not task.params:
        return []
    if len(task.params) == 1:
        return [decode(value, task.params[0][1])]
    if not isinstance(value, list) or len(value) != len(task.params):
        raise BadInput(
            f"`{name}` takes {len(task.params)} arguments, as a JSON array; got {brief(value)}"
        )
    return [decode(item, hint, param) for item, (param, hint) in zip(value, task.params)]


def run(name: str, input: str) -> tuple[str, bool]:
    """Runs task `name` on the JSON text `input` (its one argument, or an array of its
    arguments): `(output JSON, stop)`. Raises `Failure`."""
    task = TASKS.get(name)
    if task is None:
        known = ", ".join(TASKS) or "none"
        raise Failure("no-such-task", f"`{name}` is not a task of this module (its tasks: {known})")
    try:
        value = json.loads(input)
    except ValueError as error:
        raise Failure("bad-input", f"the input is not JSON: {error}") from None
    try:
        arguments = _arguments(task, name, value)
    except BadInput as error:
        raise Failure("bad-input", str(error)) from None
    _seed(name, input)
    try:
        if task.fold:
            result = arguments[0]
            for item in arguments[1:]:
                result = task.function(result, item)
        else:
            result = task.function(*arguments)
    except TaskError as error:
        raise Failure("guest", str(error), _frames(error)) from None
    except BaseException as error:  # SystemExit and KeyboardInterrupt too: the task failed
        message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        if isinstance(error, ModuleNotFoundError):
            message += (
                " (import every module at the top of the task's file: a module is bundled"
                " only if importing the file imports it)"
            )
        raise Failure("exception", message, _frames(error)) from None
    finally:
        # Python buffers what it prints when not on a terminal: flush it into the log.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    stop = isinstance(result, Stop)
    if stop:
        result = result.value
    try:
        return dumps(result), stop
    except (TypeError, ValueError, RecursionError) as error:
        raise Failure("bad-output", str(error)) from None
