"""A package target for module proxies: functions, a class, constants, a lazily imported submodule.

`toolkit.lazy` is not imported here: a module proxy must import it on first access.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Callable

from . import shapes

VERSION = "1.2"
LIMITS = {"low": 1, "high": 9}
calls = 0


class Accumulator:
    """A class defined in the module itself."""

    def __init__(self, start: int = 0) -> None:
        self.total = start

    def add(self, amount: int) -> int:
        self.total += amount
        return self.total


default_accumulator = Accumulator(100)
ordered = OrderedDict(a=1)


def add(a: int, b: int = 1) -> int:
    global calls
    calls += 1
    return a + b


def echo(value: Any) -> Any:
    return value


def pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def apply(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def make_accumulator(start: int) -> Accumulator:
    return Accumulator(start)


def loaded(prefix: str) -> list[str]:
    """The modules of `prefix`'s tree that this (child) process has imported."""
    import sys

    return sorted(name for name in sys.modules if name == prefix or name.startswith(prefix + "."))


square = shapes.square
