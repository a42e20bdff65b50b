"""Targets that run too long: a Python sleep, a C loop holding the GIL, a callback."""

from __future__ import annotations

import time
from typing import Any, Callable


class Slowpoke:
    def __init__(self, start: int = 0, nap: float = 0.0) -> None:
        time.sleep(nap)
        self.value = start

    def add(self, n: int) -> int:
        self.value += n
        return self.value

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    def deaf(self) -> None:
        """Like C code that never returns to the interpreter: the interrupt never arrives."""
        import signal

        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
        time.sleep(3600)

    def call_back(self, function: Callable[[], Any]) -> Any:
        return function()

    def pid(self) -> int:
        import os

        return os.getpid()
