"""A target whose calls take time: sync sleeps, coroutines, callbacks, records of interruptions."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable


class Waiter:
    def __init__(self, value: int = 0) -> None:
        self.value = value
        self.events: list[str] = []

    def add(self, amount: int) -> int:
        self.value += amount
        return self.value

    @property
    def double(self) -> int:
        return 2 * self.value

    def sleep(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    def steps(self, seconds: float, tag: str = "steps") -> str:
        """Sleeps in short steps (interruptible in any thread); records how it ended."""
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                time.sleep(0.01)
        except KeyboardInterrupt:
            self.events.append(f"{tag} interrupted")
            raise
        self.events.append(f"{tag} done")
        return tag

    async def nap(self, seconds: float, tag: str = "nap") -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.events.append(f"{tag} cancelled")
            raise
        self.events.append(f"{tag} done")
        return tag

    def thread(self) -> int:
        return threading.get_ident()

    def call_back(self, fn: Callable[[Any], Any], arg: Any, pause: float = 0.0) -> Any:
        time.sleep(pause)
        return fn(arg)

    async def call_back_later(self, fn: Callable[[Any], Any], arg: Any, pause: float) -> Any:
        await asyncio.sleep(pause)
        return fn(arg)

    def history(self) -> list[str]:
        return list(self.events)
