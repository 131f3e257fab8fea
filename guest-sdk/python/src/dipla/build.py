"""`dipla-py build tasks.py -o tasks.wasm`: a Python task module as a WebAssembly component.

1. Imports the module under this Python (which registers its tasks) and reads their
   signature records, so a broken module fails here, with its own traceback, in seconds.
2. Writes an app module that imports the user's module and `dipla._component.Task`, and runs
   componentize-py against the world `dipla:guest/python-tasks` (`wit/dipla.wit`): it
   compiles the modules the import pulls in, with a pre-initialised CPython, into one
   component.
3. Appends the records as the top-level custom section `dipla`, as a Rust guest has, so a
   server reads the tasks (`dipla-server inspect tasks.wasm`) without running anything.

Pure-Python dependencies are bundled from the script's folder, `-p DIR`s and the
site-packages of the Python running `dipla-py` (its virtual environment, activated or not);
only modules imported when the script is imported are included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .section import custom_section

#: The package's folder, and the folder it sits in (put on the component's path).
PACKAGE = Path(__file__).resolve().parent
WIT = PACKAGE / "wit"
WORLD = "python-tasks"
APP = "dipla_app"


class BuildError(Exception):
    """Why a build failed, in a sentence for the user."""


def signatures(source: Path, paths: list[Path]) -> str:
    """The signature records of the tasks `source` registers, read under this Python."""
    module = source.stem
    code = (
        f"import sys, {module}, dipla; "
        "sys.stdout.write(dipla.tasks_section())"
    )
    search = [str(PACKAGE.parent), str(source.parent), *map(str, paths)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(search))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BuildError(f"importing {source.name} failed:\n{done.stderr.rstrip()}")
    records = done.stdout
    if not records.strip():
        raise BuildError(
            f"{source.name} registers no task: mark its task functions with @dipla.task"
        )
    for line in records.splitlines():
        json.loads(line)
    return records


def environment() -> list[str]:
    """The site-packages folders of the Python running `dipla-py` (a virtual environment's,
    activated or not, and the user's): what imports natively is bundled."""
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    return [folder for folder in folders if Path(folder).is_dir()]


def componentize_py() -> str:
    """The componentize-py program: beside this Python (a virtual environment's), or on PATH."""
    beside = Path(sys.executable).parent / "componentize-py"
    if beside.exists():
        return str(beside)
    found = shutil.which("componentize-py")
    if found is None:
        raise BuildError(
            "componentize-py is not installed: `pip install ./guest-sdk/python` installs it"
        )
    return found


def build(source: Path, output: Path, paths: list[Path], quiet: bool = False) -> str:
    """Builds `source` into the component `output`; returns the signature records."""
    if not source.is_file():
        raise BuildError(f"{source}: no such file")
    if source.suffix != ".py":
        raise BuildError(f"{source}: a Python module (a .py file) is needed")
    if source.stem in ("dipla", APP, "wit_world", "componentize_py_types"):
        raise BuildError(f"{source.name}: that module name is taken; rename the file")
    records = signatures(source, paths)
    with tempfile.TemporaryDirectory() as app:
        Path(app, f"{APP}.py").write_text(
            f"import {source.stem}  # registers the tasks\nfrom dipla._component import Task\n"
        )
        search = [app, str(source.parent), str(PACKAGE.parent), *map(str, paths), *environment()]
        command = [componentize_py(), "-d", str(WIT), "-w", WORLD, "componentize", APP]
        for path in search:
            command += ["-p", path]
        command += ["-o", str(output)]
        if quiet:
            command.insert(1, "-q")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BuildError(f"componentize-py failed:\n{(done.stderr or done.stdout).rstrip()}")
    with open(output, "ab") as component:
        component.write(custom_section("dipla", records.encode()))
    return records


def main(argv: list[str] | None = None) -> int:
    """The `dipla-py` command."""
    parser = argparse.ArgumentParser(
        prog="dipla-py", description="Build Python task modules into Dipla components."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser(
        "build", help="build a task module into a WebAssembly component"
    )
    build_command.add_argument("source", type=Path, help="the task module (tasks.py)")
    build_command.add_argument(
        "-o", "--output", type=Path, required=True, help="the component to write (tasks.wasm)"
    )
    build_command.add_argument(
        "-p",
        "--path",
        type=Path,
        action="append",
        default=[],
        help="a folder of pure-Python dependencies to bundle (repeatable)",
    )
    build_command.add_argument("-q", "--quiet", action="store_true", help="say nothing on success")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        records = build(args.source, args.output, args.path, args.quiet)
    except BuildError as error:
        print(f"dipla-py: {error}", file=sys.stderr)
        return 1
    if not args.quiet:
        names = [json.loads(line)["task"] for line in records.splitlines()]
        size = args.output.stat().st_size
        print(
            f"built {args.output}: {size / 1e6:.1f} MB, tasks {', '.join(names)}"
            f" ({time.monotonic() - started:.1f} s)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
