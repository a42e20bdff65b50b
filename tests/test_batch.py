"""Batched calls: one round trip, order kept, first failure stops the batch and is named."""

from __future__ import annotations

from typing import Any

import pytest

from extradite import extradite
from extradite._api import session_of

TARGET = "targets.handles:Service"


def test_batch_preserves_order(Service: Any) -> None:
    svc = Service()
    assert svc.accumulate.batch([([1], {}), ([2], {}), ([3], {})]) == [1, 3, 6]
    assert svc.maybe_fail.batch([((i,), {}) for i in range(100)]) == [i * 10 for i in range(100)]


def test_batch_runs_in_one_round_trip(Service: Any) -> None:
    svc = Service()
    session = session_of(Service).session
    sent: list[int] = []
    original = session.channel.send

    def counting_send(kind: int, *rest: Any) -> None:
        sent.append(kind)
        original(kind, *rest)

    session.channel.send = counting_send  # type: ignore[method-assign]
    try:
        svc.accumulate.batch([([1], {})] * 50)
    finally:
        del session.channel.send
    assert len(sent) == 1


def test_batch_short_circuits_on_first_remote_exception(Service: Any) -> None:
    svc = Service()
    calls = [([1], {}), ([2], {}), ([-3], {}), ([4], {})]
    with pytest.raises(ValueError) as info:
        svc.maybe_fail.batch(calls)
    assert info.value.batch_index == 2  # type: ignore[attr-defined]
    assert "batch item 2" in str(info.value)
    with pytest.raises(TypeError) as failure:
        svc.accumulate.batch([([1], {}), ([1], {}), (["x"], {}), ([100], {})])
    assert failure.value.batch_index == 2  # type: ignore[attr-defined]
    assert svc.accumulate(0) == 2  # items after the failure never ran


def test_batch_kwargs_and_empty_batch(Service: Any) -> None:
    svc = Service()
    assert svc.call.batch([([lambda a, b=0: a - b, 5], {"b": 2})]) == [3]
    assert svc.echo.batch([]) == []


def test_batch_rejects_malformed_items(Service: Any) -> None:
    svc = Service()
    with pytest.raises(TypeError, match="batch item 1"):
        svc.echo.batch([([1], {}), 5])


def test_batch_call_policy(Service: Any) -> None:
    svc = Service()
    items = [1]
    same = svc.echo.batch([([items], {}), ([items], {})], call_policy="reference")
    assert same[0] is items and same[1] is items
    copies = svc.echo.batch([([items], {})], call_policy="value")
    assert copies == [items] and copies[0] is not items
    with pytest.raises(ValueError, match="call_policy"):
        svc.echo.batch([([items], {})], call_policy="wrong")


def test_batch_on_class_and_static_members() -> None:
    Counter = extradite("targets.counter:Counter")
    try:
        assert Counter.add.batch([([1, 2], {}), ([3, 4], {})]) == [3, 7]
    finally:
        Counter.close()


def test_batch_with_parent_callbacks(Service: Any) -> None:
    svc = Service()
    seen: list[int] = []
    out = svc.call.batch([([seen.append, i], {}) for i in range(5)])
    assert out == [None] * 5 and seen == [0, 1, 2, 3, 4]


def test_child_side_parent_callback_batch(Service: Any) -> None:
    svc = Service()
    assert svc.callback_batch(lambda x: x * 2, [([i], {}) for i in range(10)]) == [i * 2 for i in range(10)]


def test_parent_side_batch_of_child_callable_handle(Service: Any) -> None:
    svc = Service()
    add = svc.make_closure(10)
    assert add.batch([([1], {}), ([2], {})]) == [11, 12]
