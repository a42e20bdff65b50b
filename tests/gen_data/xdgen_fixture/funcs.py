"""Module-level functions and a class: the target of the generated module proxy tests."""

from __future__ import annotations

import sys

__all__ = ["scale", "greet", "loaded_here", "Tally"]


def scale(values: list[float], factor: float = 2.0, *, offset: float = 0.0) -> list[float]:
    """Each value times `factor`, plus `offset`."""
    return [v * factor + offset for v in values]


def greet(name: str, *, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


def loaded_here() -> bool:
    """Whether this module is imported in the interpreter that runs it."""
    return __name__ in sys.modules


class Tally:
    def __init__(self, start: int = 0) -> None:
        self.total = start

    def add(self, amount: int) -> int:
        self.total += amount
        return self.total
