"""Python tasks that try what a sandboxed task must not get away with: each must end as a
failed task naming its cause, while the worker goes on serving."""

import os
import random
import socket
import subprocess
import sys
import time

import dipla


@dipla.task
def square(x: int) -> int:
    return x * x


@dipla.task
def probe(kind: str) -> str:
    if kind == "raise":
        raise ValueError("no such thing")
    if kind == "open":
        with open("/etc/passwd") as f:
            return f.read()
    if kind == "socket":
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", 80))
        return "connected"
    if kind == "subprocess":
        return subprocess.run(["ls", "/"], capture_output=True, text=True).stdout
    if kind == "loop":
        while True:
            pass
    if kind == "bomb":
        hoard = []
        while True:
            hoard.append(bytearray(16 << 20))
    if kind in ("recursion", "deep"):
        if kind == "recursion":
            sys.setrecursionlimit(10**9)

        def deeper(n):
            return deeper(n + 1) + 1

        return str(deeper(0))
    raise dipla.TaskError(f"no probe {kind!r}")


@dipla.task
def entropy(seed: int) -> list:
    """What two honest workers must agree on: random numbers, clocks, hashes, set and dict
    order, float formatting."""
    words = {"pear", "apple", "fig", "quince", "plum", "kiwi", "lime"}
    return [
        seed,
        random.random(),
        os.urandom(8).hex(),
        time.time(),
        time.monotonic(),
        hash("abc"),
        list(words),
        list({str(i): i for i in range(5)}),
        repr(0.1 + 0.2),
        repr(2.0**0.5),
    ]
