"""Which side serves which request (`_dispatch`): the parent serves callbacks on what it lent, nothing else.

A child that asks the parent to import, configure or warm up gets an `ExtraditeProtocolError`
naming the op and the role, and the parent runs nothing.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from extradite import _wire, extradite
from extradite._api import session_of
from extradite._dispatch import TABLE


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
