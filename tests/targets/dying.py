"""A target that dies in the ways a native dependency can."""

from __future__ import annotations

import os
import signal
import sys
import time


class Fragile:
    def ping(self) -> str:
        return "pong"

    def pid(self) -> int:
        return os.getpid()

    def _last_words(self, text: str) -> None:
        sys.stderr.write(f"{text}\n")
        sys.stderr.flush()

    def exit_hard(self, code: int) -> None:
        self._last_words(f"fragile: exiting with {code}")
        os._exit(code)

    def segfault(self) -> None:
        self._last_words("fragile: about to crash")
        import ctypes

        ctypes.string_at(0)

    def kill_self(self, signum: int = signal.SIGKILL) -> None:
        self._last_words(f"fragile: sending myself signal {signum}")
        os.kill(os.getpid(), signum)
        time.sleep(10)

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    def system_exit(self) -> None:
        sys.exit(7)
