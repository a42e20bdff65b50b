"""A class with async methods and overloads."""

from __future__ import annotations

import asyncio
from typing import overload


class AsyncService:
    """Answers requests after a delay; some methods are coroutines, one is overloaded."""

    def __init__(self, name: str = "service") -> None:
        self.name = name
        self.calls = 0

    async def fetch(self, key: str) -> str:
        """Return the value for `key` after a short pause."""
        await asyncio.sleep(0)
        self.calls += 1
        return f"{self.name}:{key}"

    async def delayed(self, value: int, delay: float = 0.0) -> int:
        await asyncio.sleep(delay)
        self.calls += 1
        return value

    @overload
    def convert(self, value: int) -> str: ...
    @overload
    def convert(self, value: str) -> int: ...
    def convert(self, value: int | str) -> int | str:
        """int -> str, str -> int."""
        self.calls += 1
        return str(value) if isinstance(value, int) else int(value)

    def count(self) -> int:
        return self.calls
