"""Helpers for tests that run calls side by side: several threads each making calls, a task
cancelled in the middle of its call, two calls in flight at once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

import pytest


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(i)` for i in range(count), each on a thread of its own; their results, in order.
    Fails the test if one of them raised."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = work(index)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


async def cancel_midway(call: Any, after: float) -> None:
    """Await `call` in a task of its own and cancel the task after `after` seconds: the await
    raises CancelledError (the remote call was still running)."""
    task = asyncio.ensure_future(call)
    await asyncio.sleep(after)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class Beside:
    """`with Beside(work) as other: ...`: `work()` runs on a thread while the block runs;
    `other.result()` waits for it and returns its result (or raises what it raised)."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self._work = work
        self._outcome: list[Any] = []
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            self._outcome.append((True, self._work()))
        except BaseException as exc:
            self._outcome.append((False, exc))

    def __enter__(self) -> Beside:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        ok, value = self._outcome[0]
        if not ok:
            raise value
        return value
