"""`Session.call(..., defer=True)`: requests sent at once, their replies taken later.

A prewarmed session sends its warm-up so; the tests drive it directly.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from extradite import ExtraditeRemoteError, ExtraditeStaleProxyWarning, close_extradite_session, extradite
from extradite._api import _shared, session_of
from extradite._wire import OP_CALL_METHOD


def _idle(session: Any) -> bool:
    """No waiter left (the next call takes the fast path again) and no thread marked as serving."""
    return not session._waiters and not session._chains and not session._reading and not session._serving


def test_deferred_requests_run_in_order_and_are_taken_in_any_order(Values: Any) -> None:
    values = Values()
    session = session_of(Values).session
    seen: list[int] = []
    first = session.call(OP_CALL_METHOD, values, name="apply", args=(seen.append, 1), defer=True)
    second = session.call(OP_CALL_METHOD, values, name="apply", args=(seen.append, 2), defer=True)
    assert second.result() is None and seen == [1, 2]  # the first callback ran while waiting for the second
    assert first.result() is None
    assert first.result() is None  # taken again: the same reply
    assert _idle(session)
    assert values.echo(3) == 3


def test_the_waits_after_a_bind_are_polled_fully(monkeypatch: pytest.MonkeyPatch) -> None:
    """extradite() leaves its channel polling the whole window for the construction that follows."""
    from extradite._transport import Channel

    polled: list[Channel] = []
    real = Channel.poll_next_wait_fully

    def record(channel: Channel) -> None:
        polled.append(channel)
        real(channel)

    monkeypatch.setattr(Channel, "poll_next_wait_fully", record)
    cls = extradite("targets.bare:Bare")
    try:
        assert polled == [session_of(cls).session.channel]
    finally:
        cls.close()


def test_a_deferred_error_is_raised_by_result(Values: Any) -> None:
    values = Values()
    session = session_of(Values).session
    pending = session.call(OP_CALL_METHOD, values, name="raise_", args=("KeyError", "k"), defer=True)
    with pytest.raises(KeyError, match="k"):
        pending.result()
    assert _idle(session)


def test_a_deferred_callback_runs_on_the_thread_that_takes_the_result(Values: Any) -> None:
    values = Values()
    session = session_of(Values).session
    threads: list[threading.Thread] = []

    def callback(n: int) -> int:
        threads.append(threading.current_thread())
        return n * 2

    pending = session.call(OP_CALL_METHOD, values, name="apply", args=(callback, 21), defer=True)
    assert pending.result() == 42 and threads == [threading.current_thread()]
    assert _idle(session)


def test_a_cancelled_request_leaves_no_waiter_and_its_reply_is_dropped(Values: Any) -> None:
    values = Values()
    session = session_of(Values).session
    pending = session.call(OP_CALL_METHOD, values, name="echo", args=("dropped",), defer=True)
    pending.cancel()
    pending.cancel()  # again: nothing happens
    assert _idle(session)
    with pytest.raises(RuntimeError, match="cancelled before its reply came"):
        pending.result()
    assert values.echo("kept") == "kept"  # reads past the dropped reply
    assert _idle(session) and session.broken is None


def test_a_generated_bind_that_cannot_import_leaves_the_shared_session_usable(
        placeholder_proxy: Callable[..., Any]) -> None:
    """The import (which carries the check) fails: nothing is left waiting."""
    Missing = placeholder_proxy("targets.no_such_module:Thing", "Missing")
    key = "test-deferred-missing"
    try:
        with pytest.raises(ExtraditeRemoteError, match="could not load the target in the child"):
            Missing.extradite(share_key=key, share_keepalive_seconds=30)
        session = _shared[key].session
        assert _idle(session)
        Values = extradite("targets.values:Values", share_key=key, share_keepalive_seconds=30)
        assert Values().echo(7) == 7 and _idle(session)
        Values.close()
    finally:
        close_extradite_session(key)


def test_binds_in_several_threads_share_one_session(placeholder_proxy: Callable[..., Any]) -> None:
    """Generated binds in several threads on one shared session: each gets its class and its
    verdict, whichever bind's reply carries the class's descriptor."""
    Values = placeholder_proxy("targets.values:Values", "Values")
    key = "test-deferred-threads"
    try:
        errors: list[BaseException] = []
        bound: list[Any] = []

        def bind() -> None:
            try:
                bound.append(Values.extradite(share_key=key, share_keepalive_seconds=30))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=bind) for _ in range(4)]
        with warnings.catch_warnings():  # the placeholder embeds no members: every bind is stale
            warnings.simplefilter("ignore", ExtraditeStaleProxyWarning)
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert not errors and len(bound) == 4
        assert _idle(_shared[key].session)
        assert all(cls().echo(3) == 3 for cls in bound)
        for cls in bound:
            cls.close_proxy_class()
    finally:
        close_extradite_session(key)
