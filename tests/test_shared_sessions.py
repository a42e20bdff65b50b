"""share_key: one child for several classes, option conflicts, keepalive, prewarm and close."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import child_pids
from extradite import (
    ExtraditeClosedError,
    ExtraditeSessionConflictError,
    UnsupportedInteractionError,
    close_extradite_session,
    extradite,
    prewarm_extradite_session,
)
from extradite._api import session_of

SERVICE = "targets.handles:Service"
COUNTER = "targets.counter:Counter"
BARE = "targets.bare:Bare"


@pytest.fixture
def opened() -> Iterator[list[Any]]:
    classes: list[Any] = []
    try:
        yield classes
    finally:
        for cls in classes:
            cls.close()


def test_share_key_uses_one_child_for_all_classes(opened: list[Any]) -> None:
    before = child_pids()
    opened.append(extradite(SERVICE, share_key="one"))
    opened.append(extradite(COUNTER, share_key="one"))
    opened.append(extradite(SERVICE, share_key="one"))
    assert len(child_pids() - before) == 1
    assert session_of(opened[0]) is session_of(opened[1]) is session_of(opened[2])
    svc, counter = opened[0](), opened[1](2)
    assert svc.echo(counter) is counter  # same session: objects pass freely
    assert svc.call(counter.increment, 3) == 5


def test_without_share_key_each_call_gets_its_own_child(opened: list[Any]) -> None:
    before = child_pids()
    opened.append(extradite(SERVICE))
    opened.append(extradite(SERVICE))
    assert len(child_pids() - before) == 2


def test_shared_child_exits_when_last_class_handle_closes() -> None:
    before = child_pids()
    first = extradite(SERVICE, share_key="last")
    second = extradite(COUNTER, share_key="last")
    first.close()
    assert second(1).increment() == 2  # still served
    assert len(child_pids() - before) == 1
    second.close()
    deadline = time.monotonic() + 5
    while child_pids() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not child_pids() - before


def test_conflicting_transport_policy_raises(opened: list[Any]) -> None:
    opened.append(extradite(SERVICE, share_key="policy"))
    with pytest.raises(ExtraditeSessionConflictError, match="transport_policy"):
        extradite(SERVICE, share_key="policy", transport_policy="reference")


def test_conflicting_transport_type_rules_raise(opened: list[Any]) -> None:
    opened.append(extradite(SERVICE, share_key="rules", transport_type_rules={list: "reference"}))
    with pytest.raises(ExtraditeSessionConflictError, match="transport_type_rules"):
        extradite(SERVICE, share_key="rules", transport_type_rules={list: "value"})
    with pytest.raises(ExtraditeSessionConflictError):
        extradite(SERVICE, share_key="rules")
    opened.append(extradite(COUNTER, share_key="rules", transport_type_rules={list: "reference"}))


def test_conflicting_transport_type_rules_ordering_raises(opened: list[Any]) -> None:
    opened.append(extradite(SERVICE, share_key="order", transport_type_rules={list: "reference", dict: "value"}))
    with pytest.raises(ExtraditeSessionConflictError):
        extradite(SERVICE, share_key="order", transport_type_rules={dict: "value", list: "reference"})


def test_conflicting_share_keepalive_seconds_raises(opened: list[Any]) -> None:
    opened.append(extradite(SERVICE, share_key="keep", share_keepalive_seconds=5))
    with pytest.raises(ExtraditeSessionConflictError, match="share_keepalive_seconds"):
        extradite(SERVICE, share_key="keep", share_keepalive_seconds=1)
    with pytest.raises(ExtraditeSessionConflictError):
        extradite(SERVICE, share_key="keep")
    assert close_extradite_session("keep") is True


def test_conflict_is_an_error_before_any_child_starts(opened: list[Any]) -> None:
    opened.append(extradite(SERVICE, share_key="quiet"))
    before = child_pids()
    with pytest.raises(ExtraditeSessionConflictError):
        extradite(SERVICE, share_key="quiet", transport_policy="reference")
    assert child_pids() == before


def test_share_keepalive_seconds_requires_share_key() -> None:
    before = child_pids()
    with pytest.raises(ValueError, match="share_key"):
        extradite(SERVICE, share_keepalive_seconds=1)
    with pytest.raises(ValueError, match="share_keepalive_seconds"):
        extradite(SERVICE, share_key="neg", share_keepalive_seconds=-1)
    assert child_pids() == before


def test_share_keepalive_keeps_an_idle_child_warm() -> None:
    before = child_pids()
    cls = extradite(SERVICE, share_key="warm", share_keepalive_seconds=0.5)
    pid = session_of(cls).process.pid
    cls.close()
    assert child_pids() - before == {pid}  # idle, but kept
    again = extradite(SERVICE, share_key="warm", share_keepalive_seconds=0.5)
    assert session_of(again).process.pid == pid  # reused: no new start-up
    assert again().echo(1) == 1
    again.close()
    deadline = time.monotonic() + 5
    while child_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not child_pids() - before  # stopped once the keepalive ran out


def test_prewarm_returns_true_when_it_started_a_child_and_false_when_running() -> None:
    before = child_pids()
    try:
        assert prewarm_extradite_session("pre") is True
        assert len(child_pids() - before) == 1
        assert prewarm_extradite_session("pre") is False
        cls = extradite(SERVICE, share_key="pre")
        assert len(child_pids() - before) == 1  # the prewarmed child serves it
        assert cls().echo("x") == "x"
        cls.close()
    finally:
        close_extradite_session("pre")


def _wait_until_the_child_sleeps(share_key: str) -> None:
    """Until the shared child sleeps on its socket: it has served everything sent so far."""
    from extradite._api import _shared

    channel = _shared[share_key].session.channel
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if channel.peer_asleep():
            return
        time.sleep(0.005)
    raise AssertionError("the prewarmed child never went idle")


def test_a_prewarmed_child_warms_up_while_idle_and_the_bind_finds_the_session_idle() -> None:
    """prewarm sends OP_WARM_UP and drops its reply; a child started by a bind does not warm up."""
    try:
        assert prewarm_extradite_session("pre-warm") is True
        _wait_until_the_child_sleeps("pre-warm")
        cls = extradite(BARE, share_key="pre-warm")
        assert cls().warmed_up() is True
        session = session_of(cls).session
        assert not session._waiters and not session._chains  # the dropped reply left nothing waiting
        cls.close()
    finally:
        close_extradite_session("pre-warm")
    cold = extradite(BARE)
    try:
        assert cold().warmed_up() is False
    finally:
        cold.close()


def test_a_bind_right_after_prewarm_does_not_wait_for_the_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """The import is already there when the child starts: it skips the warm-up. (A spawned child:
    one forked by the fork server may be serving before the bind is sent.)"""
    monkeypatch.setenv("EXTRADITE_FORK_SERVER", "0")
    try:
        assert prewarm_extradite_session("pre-skip") is True
        cls = extradite(BARE, share_key="pre-skip")  # sent while the child still starts up
        assert cls().warmed_up() is False
        cls.close()
    finally:
        close_extradite_session("pre-skip")


def test_prewarm_with_conflicting_options_raises() -> None:
    try:
        assert prewarm_extradite_session("pre-conflict", transport_policy="reference") is True
        with pytest.raises(ExtraditeSessionConflictError):
            prewarm_extradite_session("pre-conflict")
        with pytest.raises(ExtraditeSessionConflictError):
            extradite(SERVICE, share_key="pre-conflict")
        cls = extradite(SERVICE, share_key="pre-conflict", transport_policy="reference")
        items = [1]
        assert cls().echo(items) is items
        cls.close()
    finally:
        close_extradite_session("pre-conflict")


def test_prewarm_with_keepalive_expires_when_unused() -> None:
    before = child_pids()
    assert prewarm_extradite_session("pre-keep", share_keepalive_seconds=0.2) is True
    deadline = time.monotonic() + 5
    while child_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not child_pids() - before
    assert close_extradite_session("pre-keep") is False


def test_close_extradite_session_returns_true_if_running_else_false() -> None:
    assert close_extradite_session("never-started") is False
    cls = extradite(SERVICE, share_key="closing")
    svc = cls()
    assert close_extradite_session("closing") is True
    assert close_extradite_session("closing") is False
    with pytest.raises(ExtraditeClosedError):
        svc.echo(1)
    cls.close()


def test_objects_from_two_sessions_cannot_be_mixed(opened: list[Any]) -> None:
    opened.append(extradite(SERVICE, share_key="left"))
    opened.append(extradite(SERVICE, share_key="right"))
    left, right = opened[0](), opened[1]()
    with pytest.raises(UnsupportedInteractionError, match="another extradite session"):
        right.echo(left)
    with pytest.raises(UnsupportedInteractionError):
        right.echo([left])
    lock = left.make_lock()
    with pytest.raises(UnsupportedInteractionError):
        right.keep(lock)
    assert right.echo(1) == 1  # the refused call left the session usable


def test_a_generated_class_without_slots_sharing_a_session_leaves_dynamic_construction_working(
        placeholder_proxy: Callable[..., Any]) -> None:
    """Proxies generated before GeneratedProxy had `__slots__` have an instance dict, so a dynamic
    class on their session cannot take over the instances it constructs: it gets them as they
    come (the generated type), still working, instead of an error."""
    from extradite import ExtraditeStaleProxyWarning

    OldValues = placeholder_proxy("targets.values:Values", "OldValues")  # as generated then: no __slots__
    key = "test-old-generated-layout"
    try:
        dynamic = extradite("targets.values:Values", share_key=key, share_keepalive_seconds=30)
        with pytest.warns(ExtraditeStaleProxyWarning):  # its (empty) members differ from the live ones
            typed = OldValues.extradite(share_key=key, share_keepalive_seconds=30)
        assert typed.__dictoffset__ != 0
        made = dynamic()  # comes back as the typed class, which the dynamic one cannot take over
        assert isinstance(made, typed) and made.echo(5) == 5
        dynamic.close()
        typed.close_proxy_class()
    finally:
        close_extradite_session(key)
