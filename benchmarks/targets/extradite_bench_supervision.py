"""The supervision benchmark's target: a call that sleeps (answers an interrupt), one that
never returns to the interpreter (ignores it), and state set by the constructor."""

from __future__ import annotations

import time


class Sleeper:
    def __init__(self, start: int = 0) -> None:
        self.value = start

    def add(self, n: int) -> int:
        self.value += n
        return self.value

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    def deaf(self) -> None:
        """Like C code holding the GIL: SIGINT is blocked, so only a kill ends the call."""
        import signal

        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
        time.sleep(3600)
