"""Value or reference: transport_policy, transport_type_rules, the per-call keyword, precedence, traces."""

from __future__ import annotations

import types
from typing import Any

import pytest

from conftest import child_pids
from extradite import ExtraditeSessionConflictError, extradite

TARGET = "targets.handles:Service"


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["copy", "", None, 1])
def test_transport_policy_is_validated(bad: Any) -> None:
    before = child_pids()
    with pytest.raises(ValueError, match="transport_policy"):
        extradite(TARGET, transport_policy=bad)
    assert child_pids() == before  # refused before any child started


@pytest.mark.parametrize("rules, error", [
    ({"list": "reference"}, TypeError),
    ({list: "copy"}, ValueError),
    ({list: None}, ValueError),
    ([(list, "reference")], TypeError),
    ({5: "value"}, TypeError),
])
def test_bad_transport_type_rules_fail_fast(rules: Any, error: type[Exception]) -> None:
    before = child_pids()
    with pytest.raises(error, match="transport_type_rules"):
        extradite(TARGET, transport_type_rules=rules)
    assert child_pids() == before


def test_per_call_policy_keyword_is_validated(make: Any) -> None:
    svc = make()()
    with pytest.raises(ValueError, match="__extradite_policy__"):
        svc.echo([1], __extradite_policy__="by-value")


# -- the three sources -------------------------------------------------------------------------
def test_session_default_value_copies(make: Any) -> None:
    svc = make()()
    items = [1]
    assert svc.echo(items) == items and svc.echo(items) is not items


def test_session_default_reference_keeps_identity(make: Any) -> None:
    svc = make(transport_policy="reference")()
    items = [1]
    assert svc.echo(items) is items
    assert svc.type_name(items) == "list"  # the child sees a handle that behaves as the list
    assert svc.length(items) == 1


def test_per_call_override_reference(make: Any) -> None:
    svc = make()()
    items = [1, 2]
    assert svc.echo(items, __extradite_policy__="reference") is items
    svc.keep(items, __extradite_policy__="reference")
    items.append(3)
    assert svc.length(svc.kept_item(0, __extradite_policy__="reference")) == 3


def test_per_call_override_value(make: Any) -> None:
    svc = make(transport_policy="reference")()
    items = [1, 2]
    back = svc.echo(items, __extradite_policy__="value")
    assert back == items and back is not items


def test_type_rule_applies(make: Any) -> None:
    svc = make(transport_type_rules={list: "reference"})()
    items, mapping = [1], {"a": 1}
    assert svc.echo(items) is items
    assert svc.echo(mapping) is not mapping and svc.echo(mapping) == mapping


def test_type_rule_for_function_type(make: Any) -> None:
    svc = make(transport_type_rules={types.FunctionType: "reference"})()

    def fn() -> int:
        return 1

    assert svc.echo(fn) is fn


def test_type_rule_matches_subclasses_in_order(make: Any) -> None:
    class Special(dict):  # type: ignore[type-arg]
        pass

    cls = make(transport_type_rules={Special: "value", dict: "reference"})
    svc = cls()
    plain = {"a": 1}
    assert svc.echo(plain) is plain
    trace = cls.get_effective_policy_trace(Special())
    assert trace["effective_policy"] == "value" and trace["matched_type"].endswith("Special")


def test_precedence_call_override_beats_type_rule_beats_session_default(make: Any) -> None:
    svc = make(transport_policy="reference", transport_type_rules={dict: "value"})()
    mapping, items = {"a": 1}, [1]
    assert svc.echo(items) is items                                        # session default
    assert svc.echo(mapping) is not mapping                                # type rule
    assert svc.echo(mapping, __extradite_policy__="reference") is mapping  # call override
    assert svc.echo(items, __extradite_policy__="value") is not items      # call override


def test_policy_applies_to_nested_values(make: Any) -> None:
    svc = make(transport_type_rules={list: "reference"})()
    items = [1]
    back = svc.echo({"outer": {"inner": items}, "tuple": (items,)})
    assert back["outer"]["inner"] is items
    assert back["tuple"][0] is items


def test_call_override_applies_to_nested_values(make: Any) -> None:
    svc = make()()
    items = [1]
    back = svc.echo({"k": items}, __extradite_policy__="reference")
    assert back["k"] is items


def test_policy_applies_to_child_results(make: Any) -> None:
    cls = make(transport_type_rules={list: "reference"})
    svc = cls()
    svc.keep([1, 2])
    first = svc.kept_item(0)
    assert svc.kept_item(0) is first  # the child's list comes as a handle: same proxy each time
    first.append(3)
    assert svc.length(first) == 3


# -- introspection -----------------------------------------------------------------------------
def test_get_effective_policy_on_class_and_instance(make: Any) -> None:
    cls = make(transport_policy="reference", transport_type_rules={dict: "value"})
    inst = cls()
    for owner in (cls, inst):
        assert owner.get_effective_policy([1]) == "reference"
        assert owner.get_effective_policy({}) == "value"
        assert owner.get_effective_policy({}, call_policy="reference") == "reference"


def test_get_effective_policy_trace_names_the_source(make: Any) -> None:
    cls = make(transport_type_rules={list: "reference"})
    inst = cls()
    for owner in (cls, inst):
        trace = owner.get_effective_policy_trace([1])
        assert trace["effective_policy"] == "reference"
        assert trace["source"] == "type_rule"
        assert trace["matched_type"] == "builtins.list"
        trace = owner.get_effective_policy_trace({"a": 1})
        assert (trace["effective_policy"], trace["source"], trace["matched_type"]) == ("value", "session_default", None)
        trace = owner.get_effective_policy_trace([1], call_policy="value")
        assert (trace["effective_policy"], trace["source"], trace["matched_type"]) == ("value", "call_override", None)


def test_get_effective_policy_validates_call_policy(make: Any) -> None:
    cls = make()
    with pytest.raises(ValueError):
        cls.get_effective_policy([1], call_policy="nope")


def test_trace_agrees_with_what_travels(make: Any) -> None:
    cls = make(transport_type_rules={list: "reference"})
    svc = cls()
    for value in ([1], {"a": 1}, (1, 2)):
        policy = cls.get_effective_policy(value)
        assert (svc.echo(value) is value) == (policy == "reference")


def test_type_rules_ordering_matters_for_share_key(make: Any) -> None:
    make(share_key="rules-order", transport_type_rules={list: "reference", dict: "value"})
    make(share_key="rules-order", transport_type_rules={list: "reference", dict: "value"})
    with pytest.raises(ExtraditeSessionConflictError):
        make(share_key="rules-order", transport_type_rules={dict: "value", list: "reference"})


def test_a_method_policy_of_the_proxy_class_applies_to_its_instances_methods(Values: Any) -> None:
    """Generated classes carry per-method policies; a dynamic method of their instances uses them."""
    values = Values()
    payload = [1, 2]
    assert values.echo(payload) == payload and values.echo(payload) is not payload  # by value: a copy
    type.__setattr__(type(values), "__extradite_method_policies__", {"echo": "reference"})
    try:
        assert values.echo(payload) is payload  # lent to the child, and home again
        assert values.apply(len, payload) == 2   # other methods: unchanged
    finally:
        type.__delattr__(type(values), "__extradite_method_policies__")
    assert values.echo(payload) is not payload
