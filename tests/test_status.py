"""`extradite_status()` answers without asking the child: pid, alive, calls, the call in flight."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

import extradite as extradite_package
from extradite import ExtraditeProcessError, ExtraditeStatus, extradite, extradite_status
from extradite._api import session_of

from conftest import wait_gone


def test_idle_session(Busy: Any) -> None:
    busy = Busy()
    before = extradite_status(busy)
    assert isinstance(before, ExtraditeStatus)
    assert before.pid == busy.pid() == session_of(Busy).process.pid
    assert before.alive and before.restarts == 0
    assert before.in_flight == 0 and before.oldest_call_seconds is None
    for _ in range(5):
        busy.pid()
    after = extradite_status(Busy)  # the class or any of its proxies
    assert after.calls == before.calls + 6  # the five calls and the one in the first assertion
    with pytest.raises(AttributeError, match="snapshot"):
        after.calls = 0  # type: ignore[misc]
    assert "in_flight=0" in repr(after)


def test_a_call_in_flight_and_its_age(Busy: Any) -> None:
    busy = Busy()
    busy.pid()
    worker = threading.Thread(target=busy.sleep, args=(3,))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        status = extradite_status(Busy)
        # the age is sampled by the watch thread: it grows past zero once a tick has seen the call
        while not (status.oldest_call_seconds or 0) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            status = extradite_status(Busy)
        assert status.in_flight == 1
        assert status.oldest_call_seconds is not None and status.oldest_call_seconds > 0
        later = extradite_status(Busy)
        assert later.oldest_call_seconds is not None and later.oldest_call_seconds >= status.oldest_call_seconds
    finally:
        worker.join()
    done = extradite_status(Busy)
    assert done.in_flight == 0 and done.oldest_call_seconds is None
    assert done.calls == status.calls + 1


def test_a_dead_child_is_not_alive(Busy: Any) -> None:
    busy = Busy()
    pid = busy.pid()
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    with pytest.raises(ExtraditeProcessError):
        busy.pid()
    status = extradite_status(Busy)
    assert status.pid == pid and not status.alive and status.in_flight == 0


def test_closed_and_foreign_objects() -> None:
    Busy = extradite("targets.lineage:Busy")
    Busy.close()
    assert not extradite_status(Busy).alive
    with pytest.raises(TypeError, match="not an extradite proxy"):
        extradite_status(object())
    assert "extradite_status" in extradite_package.__all__
