"""A generic container class: the proxy keeps its type parameter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=str)


class Box(Generic[T]):
    """Holds items of one type."""

    def __init__(self, items: list[T] | None = None) -> None:
        self._items: list[T] = list(items or [])

    def put(self, item: T) -> int:
        """Append `item`; returns the new size."""
        self._items.append(item)
        return len(self._items)

    def get(self, index: int = -1) -> T:
        return self._items[index]

    def items(self) -> list[T]:
        return list(self._items)

    def pop_or(self, default: T) -> T:
        return self._items.pop() if self._items else default

    def label(self, key: K) -> K:
        return key

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> T:
        return self._items[index]

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items))
