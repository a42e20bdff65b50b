"""Soak: 100,000 handle round trips leave both handle tables at their starting size."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest

from conftest import stress_scale
from extradite import extradite
from extradite._api import session_of

TARGET = "targets.handles:Service"
ROUND_TRIPS = 100_000


def _tables(cls: Any) -> tuple[int, int, int, int]:
    stats = session_of(cls).stats()
    return (stats["parent"]["exports"], stats["parent"]["imports"],
            stats["child"]["exports"], stats["child"]["imports"])


@pytest.mark.slow
def test_soak_handle_round_trips_leave_tables_at_starting_size() -> None:
    total = max(1_000, int(ROUND_TRIPS * stress_scale()))
    Service = extradite(TARGET)
    try:
        svc = Service()
        gc.collect()
        start = _tables(Service)
        batch = 100
        done = 0
        while done < total:
            # Four kinds of handle round trip, each a new object or proxy:
            # parent objects to the child and home again (one call for a whole batch),
            lock = threading.Lock()
            assert svc.echo.batch([([(lambda: None)], {}) for _ in range(batch // 2)] +
                                  [([lock], {}) for _ in range(batch // 2)])[-1] is lock
            # a child object to the parent and back to the child,
            child_lock = svc.make_lock()
            assert svc.same(child_lock, child_lock) is True
            # and a parent callback invoked from the child.
            assert svc.call(lambda x: x + 1, done) == done + 1
            done += batch + 2
            del lock, child_lock
        gc.collect()
        assert _tables(Service) == start
    finally:
        Service.close()


def test_short_soak_with_explicit_releases() -> None:
    """The same invariant, fast: many child handles released by close() and by collection."""
    Service = extradite(TARGET)
    try:
        svc = Service()
        gc.collect()
        start = _tables(Service)
        for i in range(300):
            local = svc.make_local_instance()
            if i % 2:
                local.close()
            assert svc.echo(svc.make_closure(i))(1) == i + 1
        del local
        gc.collect()
        assert _tables(Service) == start
    finally:
        Service.close()
