"""Tasks for ExtraditeExecutor tests and benchmarks: imported only in worker children."""

from __future__ import annotations

import os
import time

done: list[str] = []


class TaskError(Exception):
    """A custom error type the parent cannot import."""


def add(a: int, b: int = 0) -> int:
    return a + b


def pid(*_: object) -> int:
    return os.getpid()


def nap(seconds: float, value: object = None) -> object:
    """Sleep, then return `value` (and remember it ran)."""
    time.sleep(seconds)
    done.append(repr(value))
    return value


def ran() -> list[str]:
    """What `nap` ran in this worker, in order."""
    return list(done)


def fail(message: str) -> None:
    raise ValueError(message)


def fail_custom(message: str) -> None:
    raise TaskError(message)


def crash(code: int = 3) -> None:
    os._exit(code)


def burn(rounds: int) -> int:
    """CPU-bound pure Python work."""
    total = 0
    for i in range(rounds):
        total = (total * 31 + i) % 1_000_003
    return total


def tiny() -> int:
    return 1


class Model:
    """A stateful per-worker instance."""

    def __init__(self, scale: int, *, offset: int = 0) -> None:
        self.scale = scale
        self.offset = offset
        self.calls = 0

    def predict(self, x: int) -> int:
        self.calls += 1
        return x * self.scale + self.offset

    def where(self) -> tuple[int, int]:
        return os.getpid(), self.calls
