"""Tasks for benchmarks/executor.py: the same module-level functions for both executors' workers."""

from __future__ import annotations


def tiny(*_: object) -> int:
    """As little work as a task can be: what remains is the executor's own cost."""
    return 1


def burn(rounds: int) -> int:
    """CPU-bound pure Python work (no GIL release, no I/O)."""
    total = 0
    for i in range(rounds):
        total = (total * 31 + i) % 1_000_003
    return total
