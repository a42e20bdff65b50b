"""Remote iterables and iterators: builtin containers, generators, a flaky iterator."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any


class Box:
    """An iterable over a builtin container; it holds a lock, so it travels as a handle."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)


class Plain:
    """A picklable object of the protected tree: by value it must never reach the parent."""

    def __init__(self, n: int) -> None:
        self.n = n


class Flaky:
    """An iterator that raises at item `fail_at` once, then goes on (the protocol allows it)."""

    def __init__(self, count: int, fail_at: int) -> None:
        self.count = count
        self.fail_at = fail_at
        self.position = 0
        self.failed = False
        self._lock = threading.Lock()

    def __iter__(self) -> Flaky:
        return self

    def __next__(self) -> int:
        if self.position == self.fail_at and not self.failed:
            self.failed = True
            raise KeyError(f"flaky at {self.position}")
        if self.position >= self.count:
            raise StopIteration
        self.position += 1
        return self.position - 1


class Source:
    """Makes the iterables; `produced` counts the items its generators have yielded so far."""

    def __init__(self) -> None:
        self.produced = 0

    def box(self, kind: str, count: int) -> Box:
        data: Any = {
            "list": lambda: [{"n": i} for i in range(count)],
            "tuple": lambda: tuple(range(count)),
            "dict": lambda: {f"k{i}": i for i in range(count)},
            "set": lambda: set(range(count)),
            "frozenset": lambda: frozenset(range(count)),
            "range": lambda: range(count),
            "str": lambda: "abcdefghij" * (count // 10),
            "bytes": lambda: bytes(range(256)) * (count // 256),
            "locks": lambda: [threading.Lock() for _ in range(count)],
            "protected": lambda: [Plain(i) for i in range(count)],
        }[kind]()
        return Box(data)

    def view(self, kind: str, count: int) -> Any:
        """A dict's keys, values or items view, or a reversed iterator."""
        data = {f"k{i}": i for i in range(count)}
        if kind == "reversed_list":
            return reversed(list(range(count)))
        if kind == "reversed_items":
            return reversed(data.items())
        return getattr(data, kind)()

    def counting(self, count: int) -> Iterator[int]:
        for i in range(count):
            self.produced += 1
            yield i

    def failing(self, count: int, fail_at: int) -> Iterator[int]:
        for i in range(count):
            if i == fail_at:
                raise ValueError(f"boom at {i}")
            yield i

    def flaky(self, count: int, fail_at: int) -> Flaky:
        return Flaky(count, fail_at)
