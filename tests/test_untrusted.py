"""`untrusted=True`: a hostile child (tests/targets/hostile.py) cannot run code in the parent,
and an honest one (tests/targets/honest.py) keeps working, its other values becoming proxies.

Each attack's payload writes the pid of the process that ran it to a marker file; the
`marker` fixture fails the test if that pid is the parent's.
"""

from __future__ import annotations

import datetime
import decimal
import ipaddress
import os
import pickle
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from extradite import (
    ExtraditeError,
    ExtraditeExecutor,
    ExtraditeProtocolError,
    ExtraditeSessionConflictError,
    ExtraditeStaleProxyWarning,
    UnsupportedInteractionError,
    close_extradite_session,
    extradite,
    prewarm_extradite_session,
)
from extradite._wire import OP_CALL
from value_types import Point


@pytest.fixture
def Hostile() -> Iterator[Any]:
    cls = extradite("targets.hostile:Hostile", untrusted=True)
    yield cls
    cls.close()


@pytest.fixture
def Honest() -> Iterator[Any]:
    cls = extradite("targets.honest:Honest", untrusted=True)
    yield cls
    cls.close()


def _refused(call: Callable[[], Any], error: type[ExtraditeError] = ExtraditeProtocolError) -> ExtraditeError:
    with pytest.raises(ExtraditeError) as caught:
        call()
    assert isinstance(caught.value, error), repr(caught.value)
    return caught.value


# -- the ways code would run in the parent ------------------------------------------------------
def test_a_reduce_naming_os_system_is_refused(Hostile: Any, marker: Path) -> None:
    error = _refused(lambda: Hostile().raw_value("system", str(marker)))
    assert "refused to load posix.system" in str(error)
    assert Hostile().raw_value is not None  # one refused frame; the session goes on


def test_the_same_value_through_the_childs_own_codec_arrives_as_a_proxy(Hostile: Any, marker: Path) -> None:
    """An untrusted child's codec lends what the parent would refuse: no payload runs anywhere."""
    found = Hostile().system(str(marker))
    assert type(found).__name__ == "SystemCall" and not marker.exists()
    assert Hostile().exec_nested(str(marker))["a"][0] == 1


def test_a_reduce_naming_builtins_exec_is_refused(Hostile: Any, marker: Path) -> None:
    error = _refused(lambda: Hostile().raw_value("exec", str(marker)))
    assert "refused to load builtins.exec" in str(error)


def test_an_import_and_getattr_chain_is_refused(Hostile: Any, marker: Path) -> None:
    error = _refused(lambda: Hostile().import_chain(str(marker)))
    assert "refused to load builtins.getattr" in str(error)


def test_a_payload_nested_in_containers_is_refused(Hostile: Any, marker: Path) -> None:
    error = _refused(lambda: Hostile().raw_value("nested", str(marker)))
    assert "refused to load" in str(error)


def test_a_payload_inside_an_error_frame_is_refused(Hostile: Any, marker: Path) -> None:
    error = _refused(lambda: Hostile().in_error_frame(str(marker)))
    assert "refused to load posix.system" in str(error)


def test_an_import_and_call_request_from_the_child_is_not_served(Hostile: Any, marker: Path) -> None:
    error = _refused(lambda: Hostile().import_and_call(lambda: None, str(marker)))
    assert "the parent does not serve OP_IMPORT requests" in str(error)


def test_the_walk_from_a_callback_to_os_system_stops_at_its_first_step(Hostile: Any, marker: Path) -> None:
    error = _refused(lambda: Hostile().walk_to_system(lambda: None, str(marker)), UnsupportedInteractionError)
    assert "does not lend '__globals__' of a function" in str(error)


@pytest.mark.parametrize("base, builtin", [("KeyError", KeyError), ("exec", None), ("KeyboardInterrupt", None),
                                           ("SystemExit", None), ("ExtraditeProtocolError", None)])
def test_an_error_is_rebuilt_only_from_builtin_exception_classes(Hostile: Any, base: str,
                                                                 builtin: type[Exception] | None) -> None:
    from extradite import ExtraditeRemoteError
    from extradite._wire import ERROR

    record = ("remote", ("evil", "Evil", "Evil"), "boom", "", base, ("boom",), None)
    error = _refused(lambda: Hostile().raw_reply(pickle.dumps(((), record), 5), ERROR), ExtraditeRemoteError)
    assert isinstance(error, ExtraditeRemoteError) and error.remote_type_name == "Evil"
    if builtin is not None:
        assert isinstance(error, builtin)
    else:
        assert type(error) is ExtraditeRemoteError


# -- what a frame may do to a lent object while it loads --------------------------------------
class Lent:
    def __init__(self) -> None:
        self._secret = "kept"
        self.calls: list[Any] = []
        self.value = 7
        self.os = os

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)

    def __len__(self) -> int:
        return 3

    def method(self) -> str:
        return "method ran"

    def numbers(self) -> Iterator[int]:
        yield 1


def test_a_frame_cannot_set_the_state_of_a_lent_object(Hostile: Any) -> None:
    lent = Lent()
    _refused(lambda: Hostile().set_state(lent, {"_secret": "changed", "value": 0}))
    assert (lent._secret, lent.value) == ("kept", 7)


def test_a_frame_cannot_call_a_lent_object_while_it_loads(Hostile: Any, marker: Path) -> None:
    lent = Lent()
    _refused(lambda: Hostile().call_through_reduce(lent, str(marker)))
    assert lent.calls == []


# -- the surface of lent objects ---------------------------------------------------------------
@pytest.mark.parametrize("what, path", [
    ("function", "__globals__"), ("function", "__code__"), ("function", "__closure__"),
    ("function", "__dict__"), ("function", "__class__"), ("function", "__builtins__"),
    ("object", "_secret"), ("object", "__dict__"), ("object", "__class__"), ("object", "__init__"),
    ("object", "__reduce_ex__"), ("class", "__subclasses__"), ("class", "__dict__"),
    ("bound method", "__self__"), ("bound method", "__func__"),
    ("generator", "gi_frame"), ("generator", "gi_code"), ("object", "os"),
])
def test_a_lent_object_refuses_private_names_and_interpreter_insides(Hostile: Any, what: str, path: str) -> None:
    class Local(Lent):  # a class of no importable name: lent, not sent by name
        pass

    lent = Lent()
    obj = {"function": lambda: None, "object": lent, "class": Local, "bound method": lent.method,
           "generator": lent.numbers()}[what]
    error = _refused(lambda: Hostile().reach(obj, path), UnsupportedInteractionError)
    assert "untrusted mode does not lend" in str(error)


def test_a_lent_object_shows_its_public_names_and_data_dunders(Honest: Any) -> None:
    lent = Lent()
    honest = Honest()
    assert honest.call_method(lent, "method") == "method ran"
    assert honest.apply(len, lent) == 3
    assert honest.apply(lambda x: x * 2, 21) == 42
    honest.apply(lent, "called")
    assert lent.calls == [("called",)]


def test_lend_attributes_allows_named_private_attributes_per_type() -> None:
    cls = extradite("targets.hostile:Hostile", untrusted=True, lend_attributes={Lent: ("_secret", "_shared")})
    try:
        assert cls().reach(Lent(), "_secret") == "kept"

        class Local(Lent):
            _shared = "on the class"

        assert cls().reach(Local, "_shared") == "on the class"
        _refused(lambda: cls().reach(Lent(), "__dict__"), UnsupportedInteractionError)
    finally:
        cls.close()


# -- an honest target keeps working --------------------------------------------------------------
def test_a_value_the_parent_does_not_load_arrives_as_a_proxy(Honest: Any) -> None:
    address = Honest().address()
    assert not isinstance(address, ipaddress.IPv4Address)
    assert str(address) == "192.0.2.1"
    assert address.version == 4  # an attribute read in the child
    found = Honest().with_address()
    assert found["plain"] == [1, 2] and str(found["address"]) == "192.0.2.1"


def test_standard_value_types_still_travel_by_value(Honest: Any) -> None:
    values = Honest().standard_values()
    assert values == {"when": datetime.datetime(2020, 1, 2, 3, 4, tzinfo=datetime.timezone.utc),
                      "amount": decimal.Decimal("1.25"), "ordered": OrderedDict(a=1),
                      "grouped": defaultdict(list, {"k": [1]})}
    assert type(values["grouped"]) is defaultdict and values["grouped"].default_factory is list


def test_a_value_holding_a_type_the_parent_does_not_load_goes_whole_as_a_proxy(Honest: Any) -> None:
    zoned = Honest().zoned()
    assert not isinstance(zoned, datetime.datetime)
    assert zoned.year == 2020


def test_numpy_arrays_travel_by_value(Honest: Any) -> None:
    numpy = pytest.importorskip("numpy")
    array = Honest().array()
    assert type(array) is numpy.ndarray
    assert array.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_a_type_comes_back_by_value_when_trusted_or_sent_by_this_parent(Honest: Any) -> None:
    assert not isinstance(Honest().point(), Point)  # unknown to the parent: a proxy
    assert Honest().echo(Point(3, 4)) == Point(3, 4)  # the parent sent one by value itself
    assert Honest().point() == Point(1, 2)
    trusting = extradite("targets.honest:Honest", untrusted=True, trusted_types=[Point])
    try:
        assert trusting().point() == Point(1, 2)
    finally:
        trusting.close()


def test_a_handle_of_the_parent_comes_home_as_itself(Honest: Any) -> None:
    lent = Lent()
    assert Honest().echo(lent) is lent
    assert Honest().echo([lent, {"k": (lent,)}]) == [lent, {"k": (lent,)}]


def test_a_trusted_value_holding_a_parent_object_comes_back_as_a_proxy(Honest: Any) -> None:
    """The parent does not look inside a Point for handles: the child lends such a Point whole."""
    back = Honest().echo(Point(lambda: 0, 1))  # type: ignore[arg-type]  # the Point by value, the lambda lent
    assert not isinstance(back, Point) and back.y == 1


def test_a_defaultdict_with_another_factory_is_refused() -> None:
    from extradite._untrusted import _checked_defaultdict

    assert _checked_defaultdict(list) == {}
    with pytest.raises(ExtraditeProtocolError, match="default_factory"):
        _checked_defaultdict(os.getcwd)


# -- options ------------------------------------------------------------------------------------
def test_untrusted_is_part_of_a_shared_sessions_identity() -> None:
    assert prewarm_extradite_session("xd-untrusted", untrusted=True)
    try:
        with pytest.raises(ExtraditeSessionConflictError, match="untrusted"):
            extradite("targets.honest:Honest", share_key="xd-untrusted")
        cls = extradite("targets.honest:Honest", share_key="xd-untrusted", untrusted=True)
        assert not isinstance(cls().address(), ipaddress.IPv4Address)
        cls.close()
    finally:
        close_extradite_session("xd-untrusted")


@pytest.mark.parametrize("options, says", [
    ({"trusted_types": [Point]}, "untrusted=True sessions only"),
    ({"untrusted": 1}, "untrusted must be True or False"),
    ({"untrusted": True, "trusted_types": [len]}, "classes only"),
    ({"untrusted": True, "trusted_types": Point}, "an iterable of classes"),
    ({"untrusted": True, "lend_attributes": {Lent: "_secret"}}, "a tuple of names"),
    ({"untrusted": True, "lend_attributes": {"Lent": ("_x",)}}, "keys must be classes"),
    ({"max_frame_bytes": 10}, "at least 4096"),
    ({"untrusted": True, "backend": "ray"}, "need the local backend"),
])
def test_bad_trust_options_are_refused_before_a_child_starts(options: dict[str, Any], says: str) -> None:
    with pytest.raises((TypeError, ValueError), match=says):
        extradite("targets.honest:Honest", **options)


def test_a_frame_over_max_frame_bytes_ends_the_session() -> None:
    cls = extradite("targets.honest:Honest", max_frame_bytes=4096)
    try:
        assert cls().echo("x" * 1000) == "x" * 1000
        error = _refused(lambda: cls().echo("x" * 20000))
        assert "over the limit of 4096 bytes" in str(error)
    finally:
        cls.close()


@pytest.mark.parametrize("untrusted", [False, True], ids=["default", "untrusted"])
def test_a_request_of_the_wrong_shape_ends_the_session(untrusted: bool) -> None:
    cls = extradite("targets.hostile:Hostile", untrusted=untrusted)
    try:
        error = _refused(lambda: cls().raw_request(pickle.dumps(([], OP_CALL, 1), 5)))
        assert "malformed request body" in str(error)
        _refused(lambda: cls().raw_request(b""))  # ended: every later call fails at once
    finally:
        cls.close()


def test_a_generated_proxy_binds_in_untrusted_mode(placeholder_proxy: Callable[..., Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtraditeStaleProxyWarning)
        cls = placeholder_proxy("targets.honest:Honest").extradite(untrusted=True)
        try:
            assert not isinstance(cls().address(), ipaddress.IPv4Address)
        finally:
            cls.close()


def test_an_executor_runs_untrusted() -> None:
    with ExtraditeExecutor(1, instance="targets.honest:Honest", untrusted=True) as pool:
        assert pool.submit("standard_values").result()["amount"] == decimal.Decimal("1.25")
        assert not isinstance(pool.submit("address").result(), ipaddress.IPv4Address)


def test_a_chunk_read_of_a_lent_iterator_is_guarded_like_next(make_class: Any) -> None:
    """OP_NEXT_CHUNK on a parent's lent iterator (sent raw, as a hostile child could): its items
    are checked like a `next()` result, so a module in the list is never lent."""
    rules = {type(iter([])): "reference"}
    untrusted = make_class("targets.raw_requests:Asker", untrusted=True, transport_type_rules=rules)()
    assert untrusted.ask(iter([1, 2, 3]), "OP_NEXT_CHUNK", "lent", args=(10,)) == "served: ([1, 2, 3], True)"
    refused = untrusted.ask(iter([1, os]), "OP_NEXT_CHUNK", "lent", args=(10,))
    assert refused.startswith("UnsupportedInteractionError: untrusted mode does not lend 'an item': it is a module")
    trusted = make_class("targets.raw_requests:Asker", transport_type_rules=rules)()  # the control
    assert "module 'os'" in trusted.ask(iter([1, os]), "OP_NEXT_CHUNK", "lent", args=(10,))
