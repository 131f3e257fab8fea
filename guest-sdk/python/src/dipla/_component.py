"""The componentize-py entry point: the `task` interface of the world
`dipla:guest/python-tasks` (`wit/dipla.wit`).

`dipla-py build` writes an app module that imports the user's module (registering its
tasks) and then `Task` from here. Only importable inside componentize-py, which generates
`wit_world` and `componentize_py_types` from the world.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import task as wit

from . import registry
from .dispatch import Failure, run

_KINDS = {
    "guest": wit.FailureKind.GUEST,
    "exception": wit.FailureKind.EXCEPTION,
    "bad-input": wit.FailureKind.BAD_INPUT,
    "bad-output": wit.FailureKind.BAD_OUTPUT,
    "no-such-task": wit.FailureKind.NO_SUCH_TASK,
}


class Task(exports.Task):
    """The exports: the task list and running one task."""

    def tasks(self) -> str:
        return registry.tasks_section()

    def run(self, name: str, input: str) -> wit.Output:
        try:
            json, stop = run(name, input)
        except Failure as failure:
            raise Err(wit.Failure(_KINDS[failure.kind], failure.message, failure.frames))
        return wit.Output(json, stop)
