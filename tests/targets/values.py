"""A target that returns values of every kind, including protected ones."""

from __future__ import annotations

import sys
import threading
from typing import Any


class Thing:
    def __init__(self, n: int = 0) -> None:
        self.n = n


class Values:
    def echo(self, value: Any) -> Any:
        return value

    def apply(self, func: Any, value: Any) -> Any:
        return func(value)

    def make_bytes(self, n: int) -> bytes:
        return bytes(range(256)) * (n // 256) + bytes(n % 256)

    def mutate(self, buf: bytearray) -> bytearray:
        buf[0] = 255
        return buf

    def python_version(self) -> tuple[int, int]:
        return (sys.version_info[0], sys.version_info[1])

    def length(self, buf: Any) -> int:
        return len(buf)

    def thing(self) -> Thing:
        return Thing(1)

    def nested_thing(self) -> Any:
        return {"a": [1, 2, (3, {"deep": [Thing(2)]})]}

    def thing_class(self) -> type:
        return Thing

    def lock(self) -> Any:
        return threading.Lock()

    def raise_(self, kind: str, *args: Any) -> None:
        raise {"KeyError": KeyError, "ValueError": ValueError, "AttributeError": AttributeError,
               "StopIteration": StopIteration, "OSError": OSError, "Custom": CustomError}[kind](*args)


class CustomError(LookupError):
    pass


def not_a_class() -> None:
    pass


CONSTANT = 42
