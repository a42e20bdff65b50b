"""Which side serves which request (`_dispatch`): the parent serves callbacks on what it lent, nothing else.

A child that asks the parent to import, configure or warm up gets an `ExtraditeProtocolError`
naming the op and the role, and the parent runs nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from extradite import ExtraditeStaleProxyWarning, _wire, extradite
from extradite._api import session_of
from extradite._dispatch import TABLE
from extradite._session import Session

TESTS = Path(__file__).resolve().parent


def Lent() -> Any:
    """A parent object the child gets as a proxy (its class is local to a function: lent, not copied)."""
    class Doubler:
        def double(self, n: int) -> int:
            return 2 * n

    return Doubler()


@pytest.fixture
def Asker() -> Any:
    cls = extradite("targets.raw_requests:Asker")
    yield cls
    cls.close()


def test_every_op_is_served_by_the_handler_of_its_name() -> None:
    ops = {name: code for name, code in vars(_wire).items() if name.startswith("OP_")}
    assert {code: TABLE[code].handler.__name__ for code in ops.values()} == {
        code: name.lower() for name, code in ops.items()}


def test_the_parent_serves_calls_on_objects_it_lent(Asker: Any) -> None:
    assert Asker().ask(Lent(), "OP_CALL_METHOD", "lent", "double", (21,)) == "served: 42"


def test_the_parent_refuses_to_import_and_imports_nothing(Asker: Any) -> None:
    answer = Asker().ask(Lent(), "OP_IMPORT", "targets.bare", "Bare", ("targets",))
    assert answer.startswith("ExtraditeProtocolError: the parent does not serve OP_IMPORT requests")
    assert "refused and not run" in answer
    assert "targets.bare" not in sys.modules and "targets" not in sys.modules


@pytest.mark.parametrize("op, target, args", [
    ("OP_CONFIGURE", None, ("reference", [], ("json",))),
    ("OP_WARM_UP", None, ()),
    ("OP_STATS", None, ()),
    ("OP_IMPORT", "lent", ()),  # refused whatever its target
])
def test_the_parent_refuses_every_op_a_callback_does_not_need(Asker: Any, op: str, target: Any,
                                                              args: tuple[Any, ...]) -> None:
    session = session_of(Asker).session
    answer = Asker().ask(Lent(), op, target, None, args)
    assert answer.startswith(f"ExtraditeProtocolError: the parent does not serve {op} requests")
    assert session.codec.config.default == "value" and "json" not in session.protected  # not configured
    assert Asker().ask(Lent(), "OP_CALL_METHOD", "lent", "double", (2,)) == "served: 4"  # still serving


@pytest.mark.parametrize("op, target, name, args", [
    ("OP_CALL_METHOD", "abc", "upper", ()),   # a value the child sent: not something the parent lent
    ("OP_GETATTR", "abc", "upper", ()),
    ("OP_CALL", 7, None, ()),
])
def test_the_parent_serves_only_objects_it_lent(Asker: Any, op: str, target: Any, name: str | None,
                                                args: tuple[Any, ...]) -> None:
    answer = Asker().ask(Lent(), op, target, name, args)
    assert answer.startswith(f"ExtraditeProtocolError: the parent serves {op} only on objects it lent")


def test_an_unknown_op_is_a_corrupt_frame(Asker: Any) -> None:
    from extradite._dispatch import refusal

    assert "unknown operation 99" in str(refusal(99, "child"))
    assert "unknown operation 'x'" in str(refusal("x", "parent"))


@pytest.fixture
def requests_sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The op of every request this process sends from now on."""
    ops: list[int] = []
    real = Session.call

    def record(self: Session, op: int, target: Any, **options: Any) -> Any:
        ops.append(op)
        return real(self, op, target, **options)

    monkeypatch.setattr(Session, "call", record)
    return ops


@pytest.fixture
def GeneratedValues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An up-to-date generated proxy of targets.values:Values, written by extradite-gen now."""
    from extradite import _proxy

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    made = subprocess.run([sys.executable, "-m", "extradite.gen", "targets.values:Values", "-o", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    from targets_values_xdproxy import Values  # type: ignore[import-not-found]

    yield Values
    _proxy.GENERATED.pop(Values.__extradite_target__, None)
    sys.modules.pop("targets_values_xdproxy", None)


def test_an_up_to_date_generated_bind_is_one_request(GeneratedValues: Any, requests_sent: list[int],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Its reply carries the class and the verdict None: the child found the live class as embedded."""
    from extradite._session_handle import SessionHandle

    verdicts: list[Any] = []
    real = SessionHandle.import_class

    def record(self: SessionHandle, *args: Any, **options: Any) -> Any:
        cls, verdict = real(self, *args, **options)
        verdicts.append(verdict)
        return cls, verdict

    monkeypatch.setattr(SessionHandle, "import_class", record)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtraditeStaleProxyWarning)
        bound = GeneratedValues.extradite()
    try:
        assert requests_sent == [_wire.OP_IMPORT] and verdicts == [None]
        assert bound().echo(7) == 7
    finally:
        bound.close_proxy_class()


def test_a_stale_generated_bind_is_one_request_too(placeholder_proxy: Callable[..., Any],
                                                   requests_sent: list[int]) -> None:
    """The verdict in the import's reply names what changed; the members the proxy lacks work dynamically."""
    Stale = placeholder_proxy("targets.values:Values")
    with pytest.warns(ExtraditeStaleProxyWarning, match="added: .*echo"):
        bound = Stale.extradite()
    try:
        assert requests_sent == [_wire.OP_IMPORT]
        assert bound().echo(3) == 3
    finally:
        bound.close_proxy_class()
