"""Benchmark target: the workload every regime of the benchmark suite calls.

Imported only by extradite children (and, for the "direct" column, loaded in the
benchmark process under another module name, so its tree is never in `sys.modules`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any


class Workload:
    """Small, deterministic operations, one per regime."""

    def __init__(self) -> None:
        self.value = 0
        self.items: dict[str, Any] = {}

    def ping(self) -> None:
        return None

    def inc(self, amount: int) -> int:
        self.value += amount
        return self.value

    def set_item(self, key: str, value: Any) -> None:
        self.items[key] = value

    def echo(self, payload: Any) -> Any:
        return payload

    def fan_out(self, callback: Callable[[int], object], count: int) -> int:
        """Call `callback(i)` `count` times (the re-entrant regime)."""
        for i in range(count):
            callback(i)
        return count

    def readline_digest(self, count: int) -> str:
        """Fill, read back and clear the native readline history."""
        import readline

        readline.clear_history()
        for i in range(count):
            readline.add_history(f"line {i}")
        digest = hashlib.sha256()
        for i in range(1, count + 1):
            digest.update((readline.get_history_item(i) or "").encode())
        readline.set_completer_delims(" \t\n")
        readline.clear_history()
        return digest.hexdigest()

    def pbkdf2(self, password: bytes, iterations: int) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password, b"extradite-salt", iterations)

    def pipeline_stage(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """A coarse step: aggregate a batch of records."""
        total = 0
        keys: set[str] = set()
        for record in records:
            total += int(record["amount"])
            keys.add(str(record["key"]))
        return {"total": total, "distinct": len(keys), "digest": hashlib.sha256(repr(sorted(keys)).encode()).hexdigest()}

    def make_handles(self, count: int) -> list[Any]:
        """`count` unpicklable objects: they come back as handle proxies."""
        return [threading.Lock() for _ in range(count)]

    def rows(self, count: int) -> list[tuple[int, str, float]]:
        """`count` small rows as one list (the floor of the iteration regime)."""
        return [(i, f"name {i}", i * 0.5) for i in range(count)]

    def table(self, count: int) -> Table:
        """An iterable over the same rows: its iterator is a builtin list iterator."""
        return Table(self.rows(count))

    def cursor(self, count: int) -> Any:
        """An sqlite3 cursor over the same rows (its own iterator: not a builtin one)."""
        import sqlite3

        db = sqlite3.connect(":memory:")
        db.execute("create table t (id integer, name text, score real)")
        db.executemany("insert into t values (?, ?, ?)", self.rows(count))
        return db.execute("select id, name, score from t order by id")

    def generate(self, count: int) -> Any:
        """A generator over the same rows (never read ahead unless wrapped in iterate())."""
        return (row for row in self.rows(count))


class Table:
    """A remote iterable whose `__iter__` returns the iterator of a list."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def __iter__(self) -> Any:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)
