"""Every parameter shape the generator has to reproduce."""

from __future__ import annotations

from typing import Generic, TypeVar, overload

T = TypeVar("T")
_SENTINEL = object()


class Shapes(Generic[T]):
    """A class with every kind of member."""

    kind = "shapes"

    def __init__(self, seed: T) -> None:
        self._seed = seed

    def mixed(self, a: int, /, b: str, *rest: float, flag: bool = False, **extra: int) -> str:
        return f"{a}{b}{rest}{flag}{sorted(extra.items())}"

    def opaque_default(self, value: int = 0, token: object = _SENTINEL) -> bool:
        return token is _SENTINEL

    def seed(self) -> T:
        return self._seed

    def twin(self) -> "Shapes[T]":
        return Shapes(self._seed)

    @overload
    def pick(self, key: int) -> int: ...
    @overload
    def pick(self, key: str) -> str: ...
    def pick(self, key: int | str) -> int | str:
        return key

    async def later(self, value: int) -> int:
        return value

    @property
    def ro(self) -> int:
        return 1


def not_a_class() -> None:
    """A function, which cannot be a target."""
