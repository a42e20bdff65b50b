"""Parent classes in the child (`_parent_types`): the real class's face, and instances made there.

A parent class reaches the child as a class handle: a real type (isinstance, issubclass and
subclassing are in test_handles.py) that shows code the real class and none of the proxy
machinery. C extensions build instances of such a class in the child without calling the
parent (`cls.__new__(cls)`, then `__dict__`): those are plain objects there and come back
to the parent by value, as instances of the real class.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from extradite import ExtraditeRemoteError, extradite

# Names of the proxy machinery that a class handle must not show (the real classes below have none).
MACHINERY = [
    "__slots__", "__getattr__", "__class_getitem__", "__extradite_method_policies__",
    "_xd_class_session", "_xd_class_hid", "_xd_repr", "_xd_members", "_xd_session", "_xd_hid",
    "_xd_closed", "_xd_policy_session", "_xd_api", "close", "batch",
    "get_effective_policy", "get_effective_policy_trace",
]
# Entries the interpreter adds to a class's own namespace (3.13) that the member table leaves out.
INTERPRETER_OWN = {"__firstlineno__", "__static_attributes__"}


def _classes() -> tuple[type, type, type]:
    class Model:
        """A parent class the child cannot import (it is function-local)."""

        kind = "box"

        def __init__(self, value: int = 0) -> None:
            self.value = value

        def double(self) -> int:
            return self.value * 2

        @property
        def half(self) -> float:
            return self.value / 2

    class Sub(Model):
        pass

    class Slotted:
        __slots__ = ("a", "b")

        def close(self) -> str:
            return "the real class's close"

    return Model, Sub, Slotted


Model, Sub, Slotted = _classes()


@pytest.fixture(scope="module")
def Inspector() -> Iterator[Any]:
    cls = extradite("targets.parent_classes:Inspector")
    try:
        yield cls
    finally:
        cls.close()


@pytest.fixture
def inspector(Inspector: Any) -> Any:
    return Inspector()


# -- the class handle looks like the real class ---------------------------------------------
@pytest.mark.parametrize("cls", [Model, Sub])
def test_a_class_handle_has_none_of_the_machinerys_names(inspector: Any, cls: type) -> None:
    view = inspector.view(cls, MACHINERY)
    assert view["has"] == {name: False for name in MACHINERY}
    assert view["has"] == {name: hasattr(cls, name) for name in MACHINERY}


@pytest.mark.parametrize("cls", [Model, Sub])
def test_dir_vars_mro_and_bases_of_a_class_handle_are_the_real_classs(inspector: Any, cls: type) -> None:
    view = inspector.view(cls, [])
    assert view["dir"] == [name for name in dir(cls) if name not in INTERPRETER_OWN]
    assert view["vars"] == view["__dict__"]
    # The member table names what instances offer, inherited members and repr/str included.
    offered = set(vars(cls)) | {"__repr__", "__str__"} | ({"double", "half", "kind"} if cls is Sub else set())
    assert set(view["vars"]) <= offered and not any(name.startswith("_xd_") for name in view["vars"])
    assert set(vars(cls)) - set(view["vars"]) <= INTERPRETER_OWN | {"__init__"}  # __init__: not a member
    assert view["mro"] == view["mro()"] == [klass.__qualname__ for klass in cls.__mro__]
    assert view["bases"] == [klass.__qualname__ for klass in cls.__bases__]
    assert view["repr"] == repr(cls) and view["is_type"] is True


def test_a_machinery_name_the_real_class_has_is_the_real_classs(inspector: Any) -> None:
    """Hidden names are looked up on the real class: its `__slots__`, its own `close`."""
    assert inspector.view(Slotted, ["__slots__", "close", "batch"])["has"] == {
        "__slots__": True, "close": True, "batch": False}
    assert inspector.get(Slotted, "__slots__") == ("a", "b")
    assert inspector.get(Slotted, "close")(Slotted()) == "the real class's close"


def test_a_subclass_made_in_the_child_keeps_what_it_defines(inspector: Any) -> None:
    assert inspector.subclass_view(Model) == (True, True, ["Sub", Model.__qualname__, "object"])


def test_a_class_handle_still_reads_class_attributes_from_the_parent(inspector: Any) -> None:
    assert inspector.get(Model, "kind") == "box"
    assert inspector.has(Model, "double") is True and inspector.has(Model, "missing") is False


# -- instances made in the child --------------------------------------------------------------
@pytest.mark.parametrize("how", ["cls.__new__", "object.__new__"])
def test_an_instance_made_in_the_child_comes_back_as_a_real_instance(inspector: Any, how: str) -> None:
    made = inspector.make(Model, how, value=21, extra=[1, 2], label="m")
    assert type(made) is Model
    assert vars(made) == {"value": 21, "extra": [1, 2], "label": "m"}
    assert made.double() == 42 and made.half == 10.5  # the real class's code, here


def test_an_instance_made_in_the_child_is_a_plain_object_there(inspector: Any) -> None:
    seen = inspector.inspect_made(Model)
    assert seen["class_is_cls"] is True and seen["isinstance"] is True
    assert seen["value"] == 4 and seen["dict"] == {"value": 4}
    assert seen["kind"] == "box"
    assert seen["repr"].startswith(f"<{Model.__module__}.{Model.__qualname__} object at 0x")
    assert seen["copy"] == {"value": 4}


def test_an_instance_made_in_the_child_shadows_a_class_attribute_only_in_itself(inspector: Any) -> None:
    assert inspector.override_class_attribute(Model) == ("mine", "box", {"kind": "mine"})
    assert Model.kind == "box"


@pytest.mark.parametrize("name", ["double", "half"])
def test_the_parent_classs_code_does_not_run_on_an_instance_made_in_the_child(inspector: Any,
                                                                               name: str) -> None:
    with pytest.raises(AttributeError, match="runs only in the parent"):
        inspector.call_method(Model, name)


# -- C extensions in the child ----------------------------------------------------------------
@pytest.fixture(scope="module")
def Builder() -> Iterator[Any]:
    pytest.importorskip("pydantic_core")  # installed with the dev extra; imported here only to skip
    cls = extradite("targets.pydantic_build:Builder")
    try:
        yield cls
    finally:
        cls.close()


def test_pydantic_core_builds_an_instance_of_a_parent_class(Builder: Any) -> None:
    class Point:
        def norm(self) -> int:
            return abs(self.x)

    point = Builder().validate_model(Point, {"x": "-1"})
    assert point.__class__ is Point
    assert point.x == -1 and point.tag == "t" and point.norm() == 1
    assert point.__pydantic_fields_set__ == {"x"}


def test_pydantic_core_is_subclass_returns_the_parent_class_itself(Builder: Any) -> None:
    class Base:
        pass

    class Derived(Base):
        pass

    builder = Builder()
    assert builder.validate_subclass(Base, Derived) is Derived
    with pytest.raises(ExtraditeRemoteError, match="subclass") as caught:
        builder.validate_subclass(Derived, Base)
    assert isinstance(caught.value, ValueError)  # pydantic_core.ValidationError is a ValueError


def test_sqlite3_in_the_child_calls_a_parent_function_and_a_parent_aggregate_class(inspector: Any) -> None:
    seen: list[int] = []

    def twice(value: int) -> int:
        seen.append(value)
        return value * 2

    class Sum:
        made: list[Any] = []

        def __init__(self) -> None:
            self.total = 0
            Sum.made.append(self)

        def step(self, value: int) -> None:
            self.total += value

        def finalize(self) -> int:
            return self.total

    assert inspector.sqlite_function(twice, Sum, [3, 1, 2]) == ([2, 4, 6], 6)
    assert sorted(seen) == [1, 2, 3]
    assert [made.total for made in Sum.made] == [6]  # made and stepped here, in the parent
