"""`Session.call(..., defer=True)`: requests sent at once, their replies taken later.

A generated proxy's bind sends the import and the signature request together, so
that the child works out the signatures while the parent builds its classes.
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
    first = session.call(OP_CALL_METHOD, values, "apply", (seen.append, 1), defer=True)
    second = session.call(OP_CALL_METHOD, values, "apply", (seen.append, 2), defer=True)
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


def test_a_generated_bind_takes_its_check_with_the_whole_window(
        placeholder_proxy: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The import's wait shrinks the window; the check's reply comes about when this side has
    built its classes, so it is taken polling the whole window, not after a sleep."""
    from extradite._session import Pending

    windows: list[int] = []  # each Pending's channel window when its result is taken
    real = Pending.result

    def record(pending: Pending) -> Any:
        channel = pending._session.channel
        windows.append(channel._spin_ns)
        return real(pending)

    monkeypatch.setattr(Pending, "result", record)
    Bare = placeholder_proxy("targets.bare:Bare", "Bare")
    with pytest.warns(ExtraditeStaleProxyWarning):
        cls = Bare.extradite()
    try:
        cap = session_of(cls).session.channel.spin_cap_ns
        assert len(windows) == 2 and windows[1] == cap  # the import, then the check
    finally:
        cls.close_proxy_class()


def test_a_deferred_error_is_raised_by_result(Values: Any) -> None:
    values = Values()
    session = session_of(Values).session
    pending = session.call(OP_CALL_METHOD, values, "raise_", ("KeyError", "k"), defer=True)
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

    pending = session.call(OP_CALL_METHOD, values, "apply", (callback, 21), defer=True)
    assert pending.result() == 42 and threads == [threading.current_thread()]
    assert _idle(session)


def test_a_cancelled_request_leaves_no_waiter_and_its_reply_is_dropped(Values: Any) -> None:
    values = Values()
    session = session_of(Values).session
    pending = session.call(OP_CALL_METHOD, values, "echo", ("dropped",), defer=True)
    pending.cancel()
    pending.cancel()  # again: nothing happens
    assert _idle(session)
    with pytest.raises(RuntimeError, match="cancelled before its reply came"):
        pending.result()
    assert values.echo("kept") == "kept"  # reads past the dropped reply
    assert _idle(session) and session.broken is None


def test_a_generated_bind_that_cannot_import_leaves_the_shared_session_usable(
        placeholder_proxy: Callable[..., Any]) -> None:
    """The import fails; the signature request sent with it is cancelled, not left waiting."""
    Missing = placeholder_proxy("targets.no_such_module:Thing", "Missing")
    key = "test-deferred-missing"
    try:
        with pytest.raises(ExtraditeRemoteError, match="could not load the target in the child"):
            Missing.extradite(share_key=key, share_keepalive_seconds=30)
        session = _shared[key].session
        assert _idle(session) and not session.codec.known_tables  # the expected table is forgotten
        Values = extradite("targets.values:Values", share_key=key, share_keepalive_seconds=30)
        assert Values().echo(7) == 7 and _idle(session)
        Values.close()
    finally:
        close_extradite_session(key)


def test_the_child_leaves_the_table_out_of_a_generated_import(
        placeholder_proxy: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The dynamic class is built from the table the proxy embeds (here: none), and takes the
    live one only when the check says it differs; with the table in the reply it never would."""
    from extradite import _generated

    refreshed: list[tuple[tuple[str, str], ...]] = []
    real = _generated.refresh_members

    def record(cls: type, table: tuple[tuple[str, str], ...]) -> None:
        refreshed.append(table)
        real(cls, table)

    monkeypatch.setattr(_generated, "refresh_members", record)
    Bare = placeholder_proxy("targets.bare:Bare", "Bare")
    with pytest.warns(ExtraditeStaleProxyWarning):
        cls = Bare.extradite()
    try:
        assert [dict(t) for t in refreshed] == [{"modules": "method", "warmed_up": "method",
                                                 "__repr__": "method", "__str__": "method"}]
        assert cls().modules()  # through the refreshed dynamic member
    finally:
        cls.close_proxy_class()


def test_binds_in_several_threads_share_one_expected_table(placeholder_proxy: Callable[..., Any]) -> None:
    """Each generated bind counts the table it expects; the last one out forgets it, so a
    descriptor that names it always finds it, whichever bind's reply carries it."""
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
        assert not _shared[key].session.codec.known_tables
        assert bound[0]().echo(3) == 3
        for cls in bound:
            cls.close_proxy_class()
    finally:
        close_extradite_session(key)
