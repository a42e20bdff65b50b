"""Work that takes as long as asked: try timeouts and interrupts on it."""

from __future__ import annotations

import time


def work(seconds: float) -> str:
    """Sleep `seconds`, then say so."""
    time.sleep(seconds)
    return f"worked {seconds} s"
