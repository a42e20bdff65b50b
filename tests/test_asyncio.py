"""Awaitable proxies: the event loop reads the channel itself, never blocks, uses no thread per call."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from concurrent_calls import cancel_midway, in_threads
from extradite import (
    ExtraditeRemoteError,
    ExtraditeTimeoutError,
    aio,
    aio_setattr,
    extradite,
    extradite_async,
)


@pytest.fixture
def Waiter(waiter_class: Any) -> Any:
    return waiter_class()


async def _worst_gap_while(call: Any) -> tuple[Any, float]:
    """`await call`, with a ticker task beside it; the ticker's longest wait between two ticks."""
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    try:
        result = await call
    finally:
        task.cancel()
    return result, max(gaps)


def test_every_member_has_an_awaitable_form(Waiter: Any) -> None:
    async def main() -> list[Any]:
        w = await aio(Waiter)(3)
        assert isinstance(w, Waiter)
        out = [await w.add.aio(2), await aio(w).double, await aio(w).value]
        await aio_setattr(w, "value", 10)
        out += [await aio(w).add(1), await w.add.aio_batch([((1,), {}), ((2,), {})])]
        out += [await w.nap.aio(0.01), await aio(w).nap(0.01, "view"), await aio(w)["__repr__"]()]
        return out

    out = asyncio.run(main())
    assert out[:6] == [5, 10, 5, 11, [12, 14], "nap"]
    assert out[6] == "view" and "Waiter" in out[7]


def test_extradite_async_class_has_coroutine_members() -> None:
    AsyncWaiter = extradite_async("targets.waiting:Waiter")
    try:
        async def main() -> list[Any]:
            w = await AsyncWaiter.create(5)
            return [await w.add(1), await w.double, await w.nap(0.01, "n"), w.sync_proxy.value]

        assert asyncio.run(main()) == [6, 12, "n", 6]
        assert AsyncWaiter.__name__ == "AsyncWaiter"
    finally:
        AsyncWaiter.close()


def test_extradite_async_refuses_a_function() -> None:
    with pytest.raises(TypeError, match="takes a class"):
        extradite_async("targets.tasks:nap")


def test_aio_refuses_what_is_not_a_proxy() -> None:
    with pytest.raises(TypeError, match="takes an extradite proxy"):
        aio(42)


def test_the_loop_stays_responsive_during_a_long_call(Waiter: Any) -> None:
    w = Waiter()
    result, worst = asyncio.run(_worst_gap_while(w.sleep.aio(1.0)))
    assert result == 1.0
    assert worst < 0.25, f"the event loop was blocked for {worst:.3f} s during the remote call"


def test_awaited_calls_cost_no_thread(Waiter: Any) -> None:
    w = Waiter()

    async def main() -> tuple[list[Any], int]:
        calls = [asyncio.ensure_future(w.nap.aio(0.2, str(i))) for i in range(30)]
        await asyncio.sleep(0.05)
        during = threading.active_count()
        return await asyncio.gather(*calls), during

    before = threading.active_count()
    results, during = asyncio.run(main())
    assert results == [str(i) for i in range(30)]
    assert during == before


def test_callbacks_of_an_awaited_call_run_in_the_loop_thread_and_may_call_back(Waiter: Any) -> None:
    w = Waiter(1)
    seen: list[int] = []

    def callback(value: int) -> int:
        seen.append(threading.get_ident())
        return value + w.add(100)  # a re-entrant sync call from inside the callback

    async def main() -> tuple[Any, int]:
        return await w.call_back.aio(callback, 5), threading.get_ident()

    result, loop_thread = asyncio.run(main())
    assert result == 106
    assert seen == [loop_thread]


def test_tasks_and_threads_share_a_session(Waiter: Any) -> None:
    """Awaited calls, sync calls from threads and callbacks of both, all at once."""
    w = Waiter()
    errors: list[BaseException] = []
    stop = threading.Event()

    def sync_worker(index: int) -> None:
        try:
            while not stop.is_set():
                mine = threading.get_ident()
                assert w.call_back(lambda x: (x, threading.get_ident()), index) == (index, mine)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sync_worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()

    async def task(index: int) -> None:
        for _ in range(20):
            loop_thread = threading.get_ident()
            got = await w.call_back.aio(lambda x: (x, threading.get_ident()), index)
            assert got == (index, loop_thread)

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(8)))

    try:
        asyncio.run(main())
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors


def test_a_remote_error_is_raised_by_the_await(Waiter: Any) -> None:
    w = Waiter()

    async def main() -> None:
        await w.add.aio("not a number")

    with pytest.raises(ExtraditeRemoteError) as info:
        asyncio.run(main())
    assert isinstance(info.value, TypeError)


def test_cancelling_the_task_interrupts_the_remote_call(Waiter: Any) -> None:
    w = Waiter(1)

    async def main() -> int:
        await cancel_midway(w.steps.aio(30.0, "long"), 0.3)
        # the session is usable and the next call does not wait behind the cancelled one
        return await asyncio.wait_for(w.add.aio(1), 10.0)  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 2
    assert w.history() == ["long interrupted"]


def test_a_cancelled_call_that_waits_its_turn_never_runs(Waiter: Any) -> None:
    w = Waiter()

    async def main() -> str:
        first = asyncio.create_task(w.steps.aio(0.5, "first"))
        second = asyncio.create_task(w.steps.aio(0.5, "second"))
        await asyncio.sleep(0.1)
        second.cancel()
        return await first

    assert asyncio.run(main()) == "first"
    assert w.add(0) == 0  # served after the refused request
    assert w.history() == ["first done"]


def test_timeout_keyword_bounds_an_awaited_call(Waiter: Any) -> None:
    w = Waiter()

    async def main() -> int:
        with pytest.raises(ExtraditeTimeoutError):
            await w.steps.aio(30.0, "slow", __extradite_timeout__=0.3)
        return await w.add.aio(7)

    assert asyncio.run(main()) == 7
    assert w.history() == ["slow interrupted"]


def test_awaited_call_fails_when_the_child_dies(Waiter: Any) -> None:
    w = Waiter()
    from extradite._api import session_of

    handle = session_of(Waiter)

    async def main() -> None:
        task = asyncio.ensure_future(w.sleep.aio(30.0))
        await asyncio.sleep(0.2)
        handle.process.kill()
        await task

    with pytest.raises(Exception, match="child"):
        asyncio.run(main())


def test_call_timeout_option_bounds_awaited_calls() -> None:
    Bounded = extradite("targets.waiting:Waiter", call_timeout=0.3)
    try:
        w = Bounded()

        async def main() -> int:
            with pytest.raises(ExtraditeTimeoutError):
                await w.steps.aio(30.0, "bounded")
            return await w.add.aio(3)

        assert asyncio.run(main()) == 3
        assert w.history() == ["bounded interrupted"]
    finally:
        Bounded.close()


# -- generated async variants (extradite-gen writes `AsyncCounter` beside `Counter`) ----------
_FORGOT_AWAIT = {
    "neg_forgot_await_result.py": (
        "async def f() -> None:\n    c = await AsyncCounter.create(1)\n    n: int = c.increment()\n",
        'Incompatible types in assignment (expression has type "Coroutine'),
    "neg_forgot_await_create.py": (
        "async def f() -> None:\n    c = AsyncCounter.create(1)\n    c.increment()\n",
        '"Coroutine[Any, Any, AsyncCounter]" has no attribute "increment"'),
    "neg_forgot_await_property.py": (
        "async def f() -> None:\n    c = await AsyncCounter.create(1)\n    n: int = c.value + 1\n",
        'Unsupported operand types for + ("Coroutine'),
}


def test_generated_async_variants_pass_mypy_strict_and_forgetting_await_is_reported(tmp_path: Any) -> None:
    from test_gen_cli import DATA, GENERATED, run_mypy

    work = tmp_path / "work"
    work.mkdir()
    usage = work / "usage_async.py"
    usage.write_text((DATA / "usage_async.py").read_text())
    negatives = []
    for name, (body, _expected) in _FORGOT_AWAIT.items():
        path = work / name
        path.write_text("from extradite_demo_counter_xdproxy import AsyncCounter\n\n\n" + body)
        negatives.append(path)
    stubs = sorted(GENERATED.glob("*.pyi"))
    errors = run_mypy([*stubs, usage, *negatives], tmp_path, [GENERATED, work])
    assert not {k: v for k, v in errors.items() if k in {p.name for p in stubs} | {usage.name}}, errors
    for name, (_body, expected) in _FORGOT_AWAIT.items():
        got = [e for e in errors.get(name, []) if ": error:" in e]
        assert len(got) == 1 and expected in got[0], (name, errors.get(name))


def test_generated_async_variants_run() -> None:
    import os
    import subprocess
    import sys

    from test_gen_cli import DATA, GENERATED, SRC

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(GENERATED), str(SRC)]))
    done = subprocess.run([sys.executable, str(DATA / "usage_async.py")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_event_loops_in_several_threads_share_a_session(Waiter: Any) -> None:
    w = Waiter()

    def run(index: int) -> list[Any]:
        async def main() -> list[Any]:
            return list(await asyncio.gather(*(w.call_back.aio(lambda x: x + index, i) for i in range(20))))
        return asyncio.run(main())

    assert in_threads(4, run) == [[i + index for i in range(20)] for index in range(4)]


def test_closing_the_class_fails_an_awaited_call() -> None:
    from extradite import ExtraditeError

    Closing = extradite("targets.waiting:Waiter")
    w = Closing()

    async def main() -> None:
        task = asyncio.ensure_future(w.sleep.aio(30.0))
        await asyncio.sleep(0.2)
        Closing.close()
        await asyncio.wait_for(task, 10.0)

    with pytest.raises(ExtraditeError, match="closed"):
        asyncio.run(main())
