"""Concurrency in the child: `concurrency="serial" | "async" | "threads:N"`."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from concurrent_calls import cancel_midway, in_threads
from extradite import ExtraditeSessionConflictError, extradite, prewarm_extradite_session, close_extradite_session


@pytest.fixture
def AsyncMode(waiter_class: Any) -> Any:
    return waiter_class(concurrency="async")


@pytest.fixture
def ThreadMode(waiter_class: Any) -> Any:
    return waiter_class(concurrency="threads:8")


@pytest.mark.parametrize("bad", ["parallel", "threads", "threads:0", "threads:x", "threads:1000", 3])
def test_a_bad_concurrency_is_refused_before_a_child_starts(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="concurrency must be"):
        extradite("targets.waiting:Waiter", concurrency=bad)  # type: ignore[arg-type]


def test_concurrency_is_part_of_a_shared_session_identity() -> None:
    assert prewarm_extradite_session("conc-key", concurrency="threads:2")
    try:
        with pytest.raises(ExtraditeSessionConflictError, match="concurrency='threads:2'"):
            extradite("targets.waiting:Waiter", share_key="conc-key")
        Shared = extradite("targets.waiting:Waiter", share_key="conc-key", concurrency="threads:02")  # normalised
        Shared.close()
    finally:
        close_extradite_session("conc-key")


def test_concurrency_is_refused_on_ray() -> None:
    with pytest.raises(ValueError, match="local backend"):
        extradite("targets.waiting:Waiter", concurrency="async", backend="ray")


def test_async_mode_runs_coroutine_methods_concurrently(AsyncMode: Any) -> None:
    w = AsyncMode()

    async def main() -> tuple[list[Any], float]:
        start = time.monotonic()
        results = await asyncio.gather(*(w.nap.aio(0.2, str(i)) for i in range(20)))
        return results, time.monotonic() - start

    results, took = asyncio.run(main())
    assert results == [str(i) for i in range(20)]
    assert took < 20 * 0.2 / 2, f"20 naps of 0.2 s took {took:.2f} s: they did not overlap"


def test_async_mode_keeps_sync_methods_one_at_a_time(AsyncMode: Any) -> None:
    w = AsyncMode()
    start = time.monotonic()
    in_threads(4, lambda i: w.sleep(0.1))
    assert time.monotonic() - start >= 4 * 0.1  # a lower bound: they ran one after another


def test_serial_mode_runs_coroutine_methods_one_at_a_time(waiter_class: Any) -> None:
    w = waiter_class(concurrency="serial")()

    async def main() -> float:
        start = time.monotonic()
        await asyncio.gather(*(w.nap.aio(0.1) for _ in range(4)))
        return time.monotonic() - start

    assert asyncio.run(main()) >= 4 * 0.1


def test_threads_mode_runs_sync_calls_on_a_pool(ThreadMode: Any) -> None:
    w = ThreadMode()
    start = time.monotonic()
    in_threads(16, lambda i: w.sleep(0.1))
    took = time.monotonic() - start
    assert took < 8 * 0.1, f"16 sleeps of 0.1 s on 8 threads took {took:.2f} s"
    assert len(set(in_threads(16, lambda i: w.call_back(lambda _: None, 0, 0.05) or w.thread()))) > 1


def test_callbacks_go_back_to_the_calling_thread_under_threads_mode(ThreadMode: Any) -> None:
    w = ThreadMode()

    def work(index: int) -> bool:
        mine = threading.get_ident()
        value, thread = w.call_back(lambda x: (x * 2, threading.get_ident()), index, 0.05)
        return bool(value == index * 2 and thread == mine)

    assert all(in_threads(8, work))


def test_callbacks_go_back_to_the_calling_task_under_async_mode(AsyncMode: Any) -> None:
    w = AsyncMode()

    def whose(tag: str) -> tuple[str, str]:
        task = asyncio.current_task()
        return tag, task.get_name() if task is not None else "no task"

    async def one(index: int) -> bool:
        asyncio.current_task().set_name(f"task-{index}")  # type: ignore[union-attr]
        tag, name = await w.call_back_later.aio(whose, f"task-{index}", 0.1)
        return tag == name

    async def main() -> list[bool]:
        return await asyncio.gather(*(one(i) for i in range(10)))

    assert all(asyncio.run(main()))


def test_cancelling_an_awaited_coroutine_cancels_it_in_the_child(AsyncMode: Any) -> None:
    w = AsyncMode()

    async def main() -> int:
        other = asyncio.create_task(w.nap.aio(0.3, "other"))
        await cancel_midway(w.nap.aio(30.0, "long"), 0.2)
        assert await other == "other"
        return await asyncio.wait_for(w.add.aio(1), 10.0)  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 1
    assert sorted(w.history()) == ["long cancelled", "other done"]


def test_cancelling_an_awaited_call_interrupts_its_pool_thread(ThreadMode: Any) -> None:
    w = ThreadMode()

    async def main() -> str:
        other = asyncio.create_task(w.steps.aio(0.5, "other"))
        await cancel_midway(w.steps.aio(30.0, "long"), 0.2)
        return await other  # type: ignore[no-any-return]

    assert asyncio.run(main()) == "other"
    assert sorted(w.history()) == ["long interrupted", "other done"]
