"""Handles both ways: what travels by handle, identity, transparency, class handles, release.

Each test is named after the contract statement it checks (README, "Transport contract",
"Type and Handle Semantics", "Identity Semantics").
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from extradite import (
    ExtraditeClosedError,
    ExtraditeProtocolError,
    UnsupportedInteractionError,
    extradite,
    release,
)
from extradite._api import session_of

TARGET = "targets.handles:Service"


@pytest.fixture
def svc(Service: Any) -> Any:
    return Service()


@pytest.fixture
def RefService() -> Iterator[Any]:
    cls = extradite(TARGET, transport_policy="reference")
    try:
        yield cls
    finally:
        cls.close()


def _make_box() -> type:
    class Box:
        """A parent-side class the child cannot import (it is function-local)."""

        def __init__(self, value: int) -> None:
            self.value = value

        def double(self) -> int:
            return self.value * 2

    return Box


Box: Any = _make_box()


# -- parent -> child ---------------------------------------------------------------------
def test_local_closure_passes_by_handle(svc: Any) -> None:
    base = 10

    def add(x: int) -> int:
        return base + x

    assert svc.type_name(add) == "function"
    assert svc.call(add, 5) == 15


def test_function_local_class_and_instance_pass_by_handle(svc: Any) -> None:
    class Local:
        def __init__(self, n: int) -> None:
            self.n = n

        def triple(self) -> int:
            return self.n * 3

    obj = Local(4)
    assert svc.get(obj, "n") == 4
    assert svc.call(obj.triple) == 12
    made = svc.instantiate(Local, 5)
    assert type(made) is Local and made.n == 5


def test_bound_method_passes_by_handle(svc: Any) -> None:
    box = Box(21)
    assert svc.call(box.double) == 42


def test_lock_passes_by_handle(svc: Any) -> None:
    lock = threading.Lock()
    assert svc.call(lock.acquire) is True
    assert lock.locked()
    svc.call(lock.release)
    assert not lock.locked()
    assert svc.echo(lock) is lock


def test_generator_passes_by_handle(svc: Any) -> None:
    gen = (i for i in range(3))
    assert svc.iterate(gen) == [0, 1, 2]


# -- child -> parent ---------------------------------------------------------------------
def test_unpicklable_child_values_return_by_handle(svc: Any) -> None:
    lock = svc.make_lock()
    assert lock.acquire() is True
    assert lock.locked() is True
    lock.release()
    add = svc.make_closure(3)
    assert add(4) == 7
    local = svc.make_local_instance()
    assert local.value == 7 and local.double() == 14
    gen = svc.make_generator(4)
    assert list(gen) == [0, 1, 4, 9]


def test_child_handle_passed_back_arrives_as_original(svc: Any) -> None:
    lock = svc.make_lock()
    assert svc.same(lock, lock) is True
    svc.keep(lock)
    assert svc.kept_item(0) is lock
    assert svc.type_name(lock) == "lock"


# -- identity ------------------------------------------------------------------------------
def test_same_object_passed_twice_yields_same_handle(svc: Any) -> None:
    box = Box(1)
    svc.keep(box)
    svc.keep(box)
    assert svc.same(svc.kept_item(0), svc.kept_item(1)) is True
    assert svc.same(box, box) is True
    lock = svc.make_lock()
    svc.keep(lock)
    assert svc.kept_item(2) is lock is svc.echo(lock)


def test_handle_passed_back_to_owner_arrives_as_original(svc: Any) -> None:
    box = Box(3)
    assert svc.echo(box) is box
    assert svc.kept_item(svc.keep(box) - 1) is box


def test_parent_handle_roundtrips_are_stable(svc: Any) -> None:
    """Returning a parent object many times never raises a released-handle error."""
    box = Box(9)
    for i in range(200):
        assert svc.echo(box) is box
        if i % 20 == 0:
            gc.collect()
    svc.keep(box)
    gc.collect()
    assert svc.kept_item(0) is box


def test_value_mode_echo_copies(svc: Any) -> None:
    data = {"a": [1, 2]}
    back = svc.echo(data)
    assert back == data and back is not data


def test_reference_mode_echo_preserves_identity(RefService: Any) -> None:
    svc = RefService()
    data = {"a": [1, 2]}
    items = [1, 2, 3]
    assert svc.echo(data) is data
    assert svc.echo(items) is items
    assert svc.same(items, items) is True
    svc.keep(items)
    assert svc.kept_item(0) is items


def test_reference_mode_scalars_still_travel_by_value(RefService: Any) -> None:
    svc = RefService()
    assert svc.echo(5) == 5
    assert svc.type_name("x") == "str"


# -- transparency ----------------------------------------------------------------------------
def test_handle_proxy_attribute_read_write_delete_reach_the_parent_object(svc: Any) -> None:
    box = Box(1)
    assert svc.get(box, "value") == 1
    svc.set(box, "value", 5)
    assert box.value == 5
    svc.set(box, "extra", "x")
    assert box.extra == "x"  # type: ignore[attr-defined]
    svc.delete(box, "extra")
    assert not hasattr(box, "extra")
    assert svc.has(box, "value") is True
    assert svc.has(box, "missing") is False


def test_handle_proxy_dunder_attributes_and_dict_reach_the_parent_object(svc: Any) -> None:
    box = Box(2)
    assert svc.dict_keys(box) == ["value"]
    svc.dict_set(box, "added", 1)
    assert box.added == 1  # type: ignore[attr-defined]
    assert svc.get(box, "__class__") is Box
    assert svc.get(box, "__dict__") is box.__dict__
    assert svc.get(Box, "__name__") == "Box"


def test_handle_proxy_dunder_methods_reach_the_parent_object(svc: Any) -> None:
    class Bag:
        def __init__(self) -> None:
            self.items: dict[str, int] = {"a": 1}
            self.entered = False

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, key: str) -> int:
            return self.items[key]

        def __setitem__(self, key: str, value: int) -> None:
            self.items[key] = value

        def __contains__(self, key: str) -> bool:
            return key in self.items

        def __iter__(self) -> Iterator[str]:
            return iter(sorted(self.items))

        def __repr__(self) -> str:
            return "Bag!"

        def __add__(self, other: int) -> int:
            return len(self.items) + other

        def __eq__(self, other: object) -> bool:
            return other == "bag"

        __hash__ = object.__hash__

        def __enter__(self) -> str:
            self.entered = True
            return "inside"

        def __exit__(self, *exc: Any) -> None:
            self.entered = False

    bag = Bag()
    assert svc.length(bag) == 1
    assert svc.item(bag, "a") == 1
    svc.set_item(bag, "b", 2)
    assert bag.items == {"a": 1, "b": 2}
    assert svc.contains(bag, "b") is True
    assert svc.iterate(bag) == ["a", "b"]
    assert svc.text(bag) == ("Bag!", "Bag!")
    assert svc.add(bag, 1) == 3
    assert svc.equal(bag, "bag") is True
    assert svc.with_block(bag) == "inside"
    assert bag.entered is False


def test_child_handle_proxy_attribute_access_and_dict(svc: Any) -> None:
    local = svc.make_local_instance()
    local.value = 11
    assert local.double() == 22
    local.extra = 1
    assert local.__dict__["extra"] == 1
    del local.extra
    assert not hasattr(local, "extra")
    assert hasattr(local, "missing") is False


def test_handles_nested_in_containers_come_home_as_original(svc: Any) -> None:
    box = Box(4)
    nested = svc.nest(box)
    assert nested[0] is box
    assert nested[1]["key"] is box
    assert nested[1]["pair"][0] is box
    assert nested[2] == {box}
    lock = svc.make_lock()
    back = svc.nest(lock)
    assert back[0] is lock and back[1]["key"] is lock


def test_parent_containers_holding_handles_reach_child_intact(svc: Any) -> None:
    box = Box(1)
    svc.keep({"box": box, "list": [box]})
    assert svc.kept_item(0)["box"] is box
    assert svc.kept_item(0)["list"][0] is box


# -- parent-origin class handles -------------------------------------------------------------
def test_class_handle_repr_in_child(svc: Any) -> None:
    assert svc.class_repr(Box) == repr(Box)


def test_class_handle_isinstance_in_child(svc: Any) -> None:
    box = Box(1)
    assert svc.is_instance(box, Box) is True
    assert svc.is_instance(5, Box) is False
    assert svc.is_type(Box) is True


def test_class_handle_issubclass_in_child(svc: Any) -> None:
    class Sub(Box):
        pass

    assert svc.is_subclass(Sub, Box) is True
    assert svc.is_subclass(Box, Sub) is False
    assert svc.is_instance(Sub(1), Box) is True


def test_class_handle_is_a_real_type_for_subclassing(svc: Any) -> None:
    assert svc.subclass_name(Box) == "X:True"


def test_class_handle_hasattr_of_missing_attribute_is_false(svc: Any) -> None:
    assert svc.has(Box, "no_such_attribute") is False
    assert svc.has(Box, "double") is True


def test_class_handle_passed_back_is_the_class(svc: Any) -> None:
    assert svc.echo(Box) is Box
    assert svc.class_of(Box(1)) is Box


# -- release ---------------------------------------------------------------------------------
def test_handles_released_when_proxies_are_collected(Service: Any) -> None:
    svc = Service()
    stats = session_of(Service).stats
    before = stats()
    locks = [svc.make_lock() for _ in range(20)]
    assert stats()["child"]["exports"] == before["child"]["exports"] + 20
    del locks
    gc.collect()
    assert stats()["child"]["exports"] == before["child"]["exports"]
    assert stats()["parent"]["imports"] == before["parent"]["imports"]


def test_releases_ride_on_the_next_frame(Service: Any) -> None:
    svc = Service()
    handle = session_of(Service)
    lock = svc.make_lock()
    del lock
    gc.collect()
    assert len(handle.session.codec.imports.pending) == 1  # queued, not sent by itself
    svc.echo(1)  # the release rides on this request
    assert len(handle.session.codec.imports.pending) == 0
    assert handle.session.call(9, None)["exports"] == 1  # OP_STATS: only the Service instance


def test_parent_exports_released_after_child_drops_them(Service: Any) -> None:
    svc = Service()
    handle = session_of(Service)
    start = handle.stats()["parent"]["exports"]
    boxes = [Box(i) for i in range(10)]
    for box in boxes:
        svc.keep(box)
    assert handle.stats()["parent"]["exports"] == start + 10
    svc.drop_kept()
    svc.echo(None)  # the child's releases ride on its next frame to the parent
    assert handle.stats()["parent"]["exports"] == start


def test_explicit_close_on_handle_proxy(svc: Any) -> None:
    lock = svc.make_lock()
    lock.close()
    with pytest.raises(ExtraditeProtocolError):
        lock.acquire()
    with pytest.raises(ExtraditeClosedError):
        svc.echo(lock)


def test_use_after_release_raises_deterministic_protocol_error(svc: Any) -> None:
    local = svc.make_local_instance()
    release(local)
    release(local)  # idempotent
    for _ in range(3):
        with pytest.raises(ExtraditeProtocolError, match="closed"):
            local.double()
    with pytest.raises(ExtraditeProtocolError):
        local.value


def test_instance_close_releases_and_blocks_use(Service: Any) -> None:
    svc = Service()
    svc.close()
    with pytest.raises(ExtraditeProtocolError):
        svc.echo(1)


def test_proxies_cannot_be_pickled(svc: Any) -> None:
    import pickle

    with pytest.raises(UnsupportedInteractionError):
        pickle.dumps(svc)
