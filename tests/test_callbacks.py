"""Re-entrant callbacks: parent -> child -> parent -> child chains, exceptions at every level."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from extradite import ExtraditeRemoteError, extradite

TARGET = "targets.handles:Service"


@pytest.fixture
def svc() -> Iterator[Any]:
    cls = extradite(TARGET)
    try:
        yield cls()
    finally:
        cls.close()


def test_caller_to_isolated_method_to_caller_callback_to_isolated_method(svc: Any) -> None:
    def callback(x: int) -> int:
        return svc.accumulate(x) + 1000

    assert svc.call(callback, 5) == 1005
    assert svc.accumulate(0) == 5


def test_reentrant_callbacks_five_levels_deep(svc: Any) -> None:
    seen: list[int] = []

    def callback(level: int) -> Any:
        seen.append(level)
        if level == 1:
            return "bottom"
        return svc.bounce(callback, level - 1)

    result = svc.bounce(callback, 5)
    assert seen == [5, 4, 3, 2, 1]
    expected: Any = "bottom"
    for level in range(1, 6):
        expected = ["child", level, expected]
    assert result == expected


def test_reentrant_exceptions_propagate_through_every_level(svc: Any) -> None:
    """The innermost parent callback raises; each child and parent level wraps and re-raises."""

    def callback(level: int) -> Any:
        if level == 1:
            raise ValueError("bottom")
        try:
            return svc.bounce_raise(callback, level - 1)
        except RuntimeError as exc:  # the child's RuntimeError, also a builtin here
            raise KeyError(f"parent level {level} <- {exc.args[0]}") from exc

    with pytest.raises(RuntimeError) as info:
        svc.bounce_raise(callback, 5)
    exc = info.value
    assert isinstance(exc, ExtraditeRemoteError)
    assert exc.remote_type_name == "RuntimeError"
    message = exc.args[0]
    for level in range(2, 6):
        assert f"parent level {level}" in message
    for level in range(1, 6):
        assert f"child level {level}" in message
    assert "bottom" in message
    assert svc.echo("still usable") == "still usable"


def test_reentrant_exception_caught_at_each_level_keeps_the_session_usable(svc: Any) -> None:
    def callback(level: int) -> Any:
        if level == 0:
            raise ValueError("deep")
        try:
            svc.bounce_raise(callback, level - 1)
        except RuntimeError:
            pass
        return svc.bounce(lambda x: x * 2, level)

    for _ in range(3):
        assert svc.bounce_raise(callback, 5) == ["child", 5, 10]


def test_callback_exception_is_catchable_in_the_child(svc: Any) -> None:
    def fails(text: str) -> None:
        raise ValueError(text)

    assert svc.call_catching(fails, "bad input") == ("ValueError", "bad input")

    def missing() -> None:
        raise KeyError("k")

    assert svc.call_catching_key(missing) == "caught KeyError 'k'"


def test_callback_exception_not_caught_in_child_reaches_the_caller(svc: Any) -> None:
    def fails() -> None:
        raise LookupError("from parent")

    with pytest.raises(LookupError, match="from parent"):
        svc.call(fails)


def test_lambda_and_bound_method_callbacks(svc: Any) -> None:
    items: list[int] = []
    assert svc.call(lambda a, b: a * b, 6, 7) == 42
    svc.call(items.append, 3)
    assert items == [3]
    assert svc.call(dict, a=1) == {"a": 1}


def test_callback_runs_on_the_calling_thread(svc: Any) -> None:
    import threading

    names: list[str] = []
    svc.call(lambda: names.append(threading.current_thread().name))
    assert names == [threading.current_thread().name]


def test_child_side_callback_batch(svc: Any) -> None:
    calls: list[int] = []

    def record(x: int, scale: int = 1) -> int:
        calls.append(x)
        return x * scale

    out = svc.callback_batch(record, [([1], {}), ([2], {"scale": 10}), ([3], {})])
    assert out == [1, 20, 3]
    assert calls == [1, 2, 3]


def test_child_side_callback_batch_short_circuits_and_names_the_item(svc: Any) -> None:
    calls: list[int] = []

    def record(x: int) -> int:
        calls.append(x)
        if x < 0:
            raise ValueError(f"negative {x}")
        return x

    name, index, text = svc.callback_batch_failure(record, [([1], {}), ([-2], {}), ([3], {})])
    assert (name, index) == ("ValueError", 1) or index == 1, (name, index, text)
    assert "item 1" in text
    assert calls == [1, -2]
