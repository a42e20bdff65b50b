"""Deadlines and Ctrl-C under `concurrency="threads:N"` and `"async"`: only the bounded (or
abandoned) request is interrupted, where it runs in the child; the other calls in flight go on
and succeed, the child is the same process and the session stays usable."""

from __future__ import annotations

import asyncio
import textwrap
import time
from typing import Any, Callable

import pytest

from concurrent_calls import Beside
from conftest import ctrl_c_while_ready
from extradite import ExtraditeProcessError, ExtraditeTimeoutError, extradite, extradite_status

SHORT = 0.3  # the deadline of the call that must be interrupted
LONG = 1.5   # how long the other call runs: past that deadline


def _deadline_beside(cls: Any, bounded: Callable[[Any], Any], other: Callable[[Any], Any], other_result: Any,
                     history: list[str]) -> None:
    """`other()` in flight on a thread, then `bounded()` here: it raises ExtraditeTimeoutError
    (interrupted, not killed), `other()` returns `other_result`, the child is the same process."""
    w = cls()
    pid = extradite_status(cls).pid
    with Beside(lambda: other(w)) as beside:
        time.sleep(0.1)  # the other call runs in the child before the bounded one starts
        with pytest.raises(ExtraditeTimeoutError) as info:
            bounded(w)
        assert "killed" not in str(info.value)
        assert beside.result() == other_result
    assert extradite_status(cls).pid == pid
    assert w.add(1) == 1
    assert sorted(w.history()) == history


@pytest.mark.parametrize("bound", ["per call", "call_timeout"])
def test_threads_mode_a_deadline_interrupts_its_own_call_only(waiter_class: Any, bound: str) -> None:
    if bound == "per call":
        cls = waiter_class(concurrency="threads:4")
        short, long_ = {"__extradite_timeout__": SHORT}, {}
    else:
        cls = waiter_class(concurrency="threads:4", call_timeout=SHORT)
        short, long_ = {}, {"__extradite_timeout__": 30}
    _deadline_beside(cls, lambda w: w.steps(30.0, "bounded", **short), lambda w: w.steps(LONG, "other", **long_),
                     "other", ["bounded interrupted", "other done"])


def test_async_mode_a_deadline_cancels_its_coroutine_only(waiter_class: Any) -> None:
    # the other call a coroutine too (a sync method on the child's main thread would keep this
    # one from starting: the main thread reads the requests)
    _deadline_beside(waiter_class(concurrency="async"),
                     lambda w: asyncio.run(w.nap.aio(30.0, "bounded", __extradite_timeout__=SHORT)),
                     lambda w: asyncio.run(w.nap.aio(LONG, "other")), "other", ["bounded cancelled", "other done"])


def test_async_mode_a_deadline_interrupts_its_sync_method_only(waiter_class: Any) -> None:
    # the other call is a coroutine: a task on the child's loop while the main thread runs this one
    _deadline_beside(waiter_class(concurrency="async"), lambda w: w.steps(30.0, "bounded", __extradite_timeout__=SHORT),
                     lambda w: asyncio.run(w.nap.aio(LONG, "other")), "other", ["bounded interrupted", "other done"])


@pytest.mark.parametrize("mode", ["serial", "async", "threads:4"])
def test_an_awaited_call_with_a_deadline_in_each_mode(waiter_class: Any, mode: str) -> None:
    """The other call, a coroutine sent after it, runs beside it ("threads:4") or after it (queued
    behind it in "serial" mode; in "async" mode the sync method holds the child's main thread)."""
    cls = waiter_class(concurrency=mode)
    w = cls()
    pid = extradite_status(cls).pid

    async def main() -> str:
        bounded = asyncio.ensure_future(w.steps.aio(30.0, "bounded", __extradite_timeout__=SHORT))
        await asyncio.sleep(0.1)
        other = asyncio.ensure_future(w.nap.aio(LONG, "other"))
        with pytest.raises(ExtraditeTimeoutError):
            await bounded
        return await other  # type: ignore[no-any-return]

    assert asyncio.run(main()) == "other"
    assert extradite_status(cls).pid == pid
    assert w.add(1) == 1
    assert sorted(w.history()) == ["bounded interrupted", "other done"]


def test_threads_mode_a_call_deaf_to_the_interrupt_is_killed_after_the_grace_period() -> None:
    Slowpoke = extradite("tests.targets.slowpoke:Slowpoke", concurrency="threads:4", timeout_grace=0.3)
    try:
        poke = Slowpoke()
        with pytest.raises(ExtraditeTimeoutError, match="killed.*grace period.*C code"):
            poke.deaf(__extradite_timeout__=SHORT)
        with pytest.raises(ExtraditeProcessError):
            poke.add(1)
    finally:
        Slowpoke.close()


@pytest.mark.parametrize("mode", ["serial", "threads:4"])
def test_an_awaited_call_deaf_to_the_interrupt_is_killed_after_the_grace_period(mode: str) -> None:
    Slowpoke = extradite("tests.targets.slowpoke:Slowpoke", concurrency=mode, timeout_grace=0.3)
    try:
        poke = Slowpoke()

        async def main() -> None:
            with pytest.raises(ExtraditeTimeoutError, match="killed.*grace period.*C code"):
                await poke.deaf.aio(__extradite_timeout__=SHORT)

        asyncio.run(main())
        with pytest.raises(ExtraditeProcessError):
            poke.add(1)
    finally:
        Slowpoke.close()


_CTRL_C = textwrap.dedent("""
    import sys, threading, time
    from extradite import extradite, extradite_status
    Waiter = extradite("targets.waiting:Waiter", concurrency=sys.argv[1])
    w = Waiter()
    pid = extradite_status(Waiter).pid
    other = []
    beside = threading.Thread(target=lambda: other.append(w.steps({long}, "other")))
    if sys.argv[2] == "beside":
        beside.start()
        time.sleep(0.1)
    print("ready", flush=True)
    try:
        w.steps(30.0, "abandoned")
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    if sys.argv[2] == "beside":
        beside.join()
    time.sleep({grace})  # past the grace period: a child that was to be killed is dead by now
    print(other, extradite_status(Waiter).pid == pid, w.add(1), sorted(w.history()), flush=True)
    Waiter.close()
""")


# in async mode nothing runs beside a sync method: it holds the child's main thread
@pytest.mark.parametrize(("mode", "other"), [("threads:4", "beside"), ("threads:4", "alone"), ("async", "alone")])
def test_ctrl_c_interrupts_the_abandoned_call_only(mode: str, other: str) -> None:
    """Alone, the call waited on the fast path (no waiter registered); beside another, it did not.
    The child is not killed: the abandoned request's late reply shows that it ended."""
    out = ctrl_c_while_ready(_CTRL_C.format(long=LONG, grace=1.2), mode, other, after=SHORT)
    if other == "beside":
        expected = "['other'] True 1 ['abandoned interrupted', 'other done']"
    else:
        expected = "[] True 1 ['abandoned interrupted']"
    assert out.split("\n")[:2] == ["interrupted", expected], out
