"""A target for the Ray backend: where it runs, what it imported, how it dies, what it keeps."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any


class Part:
    """An object that stays in the actor (it holds the node, so it never pickles by value)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def value(self) -> int:
        return self.node.value


class Node:
    def __init__(self, start: int = 0) -> None:
        self.value = start
        self._part = Part(self)

    def add(self, amount: int) -> int:
        self.value += amount
        return self.value

    def pid(self) -> int:
        return os.getpid()

    def loaded(self, module: str) -> bool:
        return module in sys.modules

    def crash(self) -> None:
        os._exit(3)

    def part(self) -> Part:
        return self._part

    def echo(self, value: Any) -> Any:
        return value

    def meet(self, mine: str, theirs: str, timeout: float) -> bool:
        """Say "here" and wait for the other one: True only when both ran at the same time."""
        Path(mine).touch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if Path(theirs).exists():
                return True
            time.sleep(0.01)
        return False
