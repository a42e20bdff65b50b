"""Code written against the original extradite runs unchanged: its names, its messages, its precedence.

Users match on these names and phrases, so each test pins one of them exactly
(contract: "Policy introspection", "Exceptions", "Constraints and caveats", "Policy precedence").
"""

from __future__ import annotations

import threading
import types
from typing import Any

import pytest

from conftest import child_pids
from extradite import (
    ExtraditeClosedError,
    ExtraditeProtocolError,
    ExtraditeRemoteError,
    ExtraditeSessionConflictError,
    extradite,
    release,
)
from extradite._api import session_of
from extradite._wire import EXTRA_TARGET_HID, OP_CALL_METHOD

TARGET = "targets.handles:Service"
RELEASED = "Unknown or released remote object id"


# -- get_effective_policy_trace ------------------------------------------------------------------
def test_trace_has_exactly_the_original_keys_for_every_source(make: Any) -> None:
    cls = make(transport_type_rules={list: "reference"})
    inst = cls()
    for owner in (cls, inst):
        assert owner.get_effective_policy_trace([1]) == {
            "effective_policy": "reference", "source": "type_rule", "matched_type": "builtins.list"}
        assert owner.get_effective_policy_trace({"a": 1}) == {
            "effective_policy": "value", "source": "session_default", "matched_type": None}
        assert owner.get_effective_policy_trace([1], call_policy="value") == {
            "effective_policy": "value", "source": "call_override", "matched_type": None}
        assert owner.get_effective_policy([1]) == "reference"


def test_trace_names_a_generated_method_default_method_default(make: Any) -> None:
    cls = make()
    type.__setattr__(cls, "__extradite_method_policies__", {"echo": "reference"})
    assert cls.get_effective_policy_trace({"a": 1}, method="echo") == {
        "effective_policy": "reference", "source": "method_default", "matched_type": None}
    assert cls.get_effective_policy_trace({"a": 1}, call_policy="value", method="echo")["source"] == "call_override"
    assert cls.get_effective_policy_trace({"a": 1}, method="other")["source"] == "session_default"


# -- ExtraditeRemoteError ------------------------------------------------------------------------
def test_remote_type_name_is_the_class_name_and_the_path_is_kept_apart(Service: Any) -> None:
    class Outer:
        class Oops(Exception):
            pass

    def fail() -> None:
        raise Outer.Oops("deep")

    # raised in this process by a callback, carried through the child and back
    with pytest.raises(ExtraditeRemoteError) as info:
        Service().call(fail)
    error = info.value
    assert error.remote_type_name == "Oops"
    assert error.remote_type_qualname == Outer.Oops.__qualname__  # "...<locals>.Outer.Oops"
    assert error.remote_type_module == __name__
    assert error.remote_message == "deep"
    assert str(error) == f"{__name__}.{Outer.Oops.__qualname__}: deep"  # the full path where it prints


def test_remote_type_fields_of_a_child_error(Values: Any) -> None:
    with pytest.raises(ExtraditeRemoteError) as info:
        Values().raise_("Custom", "lost")
    error = info.value
    assert (error.remote_type_name, error.remote_type_module, error.remote_type_qualname) == (
        "CustomError", "targets.values", "CustomError")
    with pytest.raises(KeyError) as key_info:
        Values().raise_("KeyError", "k")
    assert isinstance(key_info.value, ExtraditeRemoteError)
    assert (key_info.value.remote_type_name, key_info.value.remote_type_module) == ("KeyError", "builtins")


# -- error texts ---------------------------------------------------------------------------------
def test_share_key_with_other_options_says_share_key_already_exists(make: Any) -> None:
    make(share_key="fidelity-conflict")
    before = child_pids()
    with pytest.raises(ExtraditeSessionConflictError, match="share_key already exists") as info:
        make(share_key="fidelity-conflict", transport_policy="reference")
    assert isinstance(info.value, ValueError)
    assert "'fidelity-conflict'" in str(info.value) and "transport_policy='reference'" in str(info.value)
    assert child_pids() == before


@pytest.mark.parametrize("key", ["list", 5, None])
def test_non_type_rule_key_says_keys_must_be_type_objects(key: Any) -> None:
    before = child_pids()
    with pytest.raises(TypeError, match="transport_type_rules keys must be type objects"):
        extradite(TARGET, transport_type_rules={key: "reference"})
    assert child_pids() == before


# -- released handles ----------------------------------------------------------------------------
def test_close_releases_a_handle_without_close_and_every_later_use_raises(Service: Any) -> None:
    svc = Service()
    exports = session_of(Service).stats()["child"]["exports"]
    lock = svc.make_lock()
    assert repr(lock).startswith("<unlocked _thread.lock")
    assert session_of(Service).stats()["child"]["exports"] == exports + 1
    lock.close()
    lock.close()  # idempotent
    assert session_of(Service).stats()["child"]["exports"] == exports  # released in the child
    uses = [repr, str, lambda h: h.acquire(), lambda h: h.locked(), lambda h: h.anything, svc.echo]
    for _ in range(2):  # deterministic: the same error every time
        for use in uses:
            with pytest.raises(ExtraditeProtocolError, match=RELEASED) as info:
                use(lock)
            assert isinstance(info.value, ExtraditeClosedError)  # the older, narrower catch still works


def test_released_instance_attributes_raise_the_released_phrase(Service: Any) -> None:
    local = Service().make_local_instance()
    assert local.value == 7
    release(local)
    with pytest.raises(ExtraditeProtocolError, match=RELEASED):
        local.value
    with pytest.raises(ExtraditeProtocolError, match=RELEASED):
        local.value = 3
    with pytest.raises(ExtraditeProtocolError, match=RELEASED):
        local.double()


def test_close_of_a_handle_whose_object_has_close_calls_it(Service: Any) -> None:
    svc = Service()
    gen = svc.make_generator(3)
    assert next(gen) == 0
    gen.close()  # the generator's own close(), in the child: it stops
    with pytest.raises(StopIteration):
        next(gen)
    assert "generator" in repr(gen)  # the handle itself stays usable


def test_a_stale_id_in_the_child_raises_the_released_phrase(Service: Any) -> None:
    svc = Service()
    lock = svc.make_lock()
    hid = lock._xd_hid
    lock.close()
    with pytest.raises(ExtraditeProtocolError, match=f"{RELEASED} {hid}"):
        session_of(Service).session.call(OP_CALL_METHOD, hid, name="locked", extra=EXTRA_TARGET_HID)
    assert svc.echo(1) == 1  # the session goes on


def test_a_handle_released_in_the_child_raises_the_released_phrase_there(Service: Any) -> None:
    calls: list[int] = []
    with pytest.raises(ExtraditeProtocolError, match=RELEASED):
        Service().release_then_call(lambda: calls.append(1))
    assert calls == []


# -- a per-call value override wins --------------------------------------------------------------
def test_value_override_beats_a_reference_type_rule(make: Any) -> None:
    svc = make(transport_type_rules={types.SimpleNamespace: "reference"})()
    ns = types.SimpleNamespace(a=1, items=[1, 2])
    assert svc.echo(ns) is ns  # the type rule: a handle, home again
    back = svc.echo(ns, __extradite_policy__="value")
    assert back is not ns and type(back) is types.SimpleNamespace and back == ns
    back.items.append(3)
    assert ns.items == [1, 2]  # a copy: its own state
    [batched] = svc.echo.batch([([ns], {})], call_policy="value")
    assert batched is not ns and batched == ns


def test_value_override_beats_a_class_that_crossed_as_a_handle(make: Any) -> None:
    svc = make()()
    svc.keep(types.SimpleNamespace(v=0), __extradite_policy__="reference")  # the class crosses as a handle
    ns = types.SimpleNamespace(v=1)
    assert svc.echo(ns) is ns  # without an override, instances of that class stay handles
    back = svc.echo(ns, __extradite_policy__="value")
    assert back is not ns and back == ns
    assert svc.echo.batch([([ns], {}), ([ns], {})], call_policy="value") == [ns, ns]
    assert svc.type_name(ns, __extradite_policy__="value") == "SimpleNamespace"


def test_value_override_copies_a_child_result_that_crossed_as_a_handle(make: Any) -> None:
    svc = make()()
    remote = svc.make_namespace(v=1, __extradite_policy__="reference")
    assert type(remote) is not types.SimpleNamespace  # a handle to the child's object
    assert svc.echo(remote) is remote  # it stays one
    later = svc.make_namespace(v=2)  # its class crossed as a handle: so does this one
    assert type(later) is not types.SimpleNamespace and later.v == 2
    copy = svc.echo(remote, __extradite_policy__="value")  # the child's object itself, copied home
    assert type(copy) is types.SimpleNamespace and copy == types.SimpleNamespace(v=1)
    fresh = svc.make_namespace(v=3, __extradite_policy__="value")
    assert type(fresh) is types.SimpleNamespace and fresh == types.SimpleNamespace(v=3)
    [batched] = svc.make_namespace.batch([([], {"v": 4})], call_policy="value")
    assert type(batched) is types.SimpleNamespace and batched == types.SimpleNamespace(v=4)


def test_value_override_copies_a_child_result_of_a_reference_type_rule(make: Any) -> None:
    svc = make(transport_type_rules={types.SimpleNamespace: "reference"})()
    assert type(svc.make_namespace(v=1)) is not types.SimpleNamespace
    fresh = svc.make_namespace(v=1, __extradite_policy__="value")
    assert type(fresh) is types.SimpleNamespace and fresh == types.SimpleNamespace(v=1)


def test_a_method_default_of_value_copies_what_crossed_as_a_handle(make: Any) -> None:
    """A generated method's `value` default is explicit too: it copies as the keyword does."""
    cls = make(transport_policy="reference")
    svc = cls()
    ns = types.SimpleNamespace(v=1)
    svc.keep(ns)  # lent: the child holds it
    assert svc.echo(ns) is ns
    type.__setattr__(cls, "__extradite_method_policies__", {"echo": "value"})
    back = svc.echo(ns)
    assert back is not ns and back == ns
    assert svc.echo(ns, __extradite_policy__="reference") is ns  # the keyword still wins


def test_value_override_still_lends_what_cannot_be_copied(make: Any) -> None:
    svc = make()()
    lock = threading.Lock()
    assert svc.echo(lock, __extradite_policy__="value") is lock  # unpicklable: a handle all the same
