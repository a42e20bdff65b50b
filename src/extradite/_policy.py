"""Value or reference: which way each value crosses, and why.

Precedence, first match wins:

    call_override    the `__extradite_policy__=` keyword of one call
    method_default   a generated proxy's per-method default
    type_rule        the first `transport_type_rules` entry the value is an instance of
    session_default  `transport_policy` of the session

Scalars (None, bool, numbers, str, bytes) always travel by value: a handle to an
immutable scalar would cost a round trip per use and preserve nothing useful.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

VALUE = "value"
REFERENCE = "reference"
POLICIES = (VALUE, REFERENCE)

SCALAR_TYPES: frozenset[type] = frozenset({
    type(None), bool, int, float, complex, str, bytes, type(Ellipsis), type(NotImplemented),
})

# Types the pickler saves without consulting `reducer_override`; a type rule that
# matches one of them needs the slower per-object `persistent_id` hook.
PICKLER_FAST_TYPES: tuple[type, ...] = (
    type(None), bool, int, float, str, bytes, dict, set, frozenset, list, tuple, bytearray,
)


def check_policy(policy: object, what: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"{what} must be 'value' or 'reference', not {policy!r}")
    return str(policy)


class PolicyConfig:
    """A session's default policy and its ordered type rules (immutable)."""

    __slots__ = ("default", "rules", "needs_persistent_id")

    def __init__(self, default: str = VALUE, rules: Mapping[type, str] | None = None) -> None:
        self.default = check_policy(default, "transport_policy")
        if rules is not None and not _is_mapping(rules):
            raise TypeError(
                f"transport_type_rules must be a dict of type -> 'value'|'reference', not {type(rules).__name__}")
        items: list[tuple[type, str]] = []
        for rule_type, rule_policy in (rules or {}).items():
            if not isinstance(rule_type, type):
                raise TypeError(
                    f"transport_type_rules keys must be type objects, not {rule_type!r}; "
                    "for example {types.FunctionType: 'reference'}")
            items.append((rule_type, check_policy(rule_policy, f"transport_type_rules[{rule_type.__qualname__}]")))
        self.rules: tuple[tuple[type, str], ...] = tuple(items)
        self.needs_persistent_id = self.default == REFERENCE or any(
            issubclass(fast, rule_type) for rule_type, _ in self.rules for fast in PICKLER_FAST_TYPES)

    def same_as(self, other: PolicyConfig) -> bool:
        return self.default == other.default and len(self.rules) == len(other.rules) and all(
            a[0] is b[0] and a[1] == b[1] for a, b in zip(self.rules, other.rules))

    def resolve(self, value: object, call_policy: str | None = None,
                method_policy: str | None = None) -> tuple[str, str, str | None]:
        """(policy, source, matched type name) for one value."""
        if call_policy is not None:
            return call_policy, "call_override", None
        if method_policy is not None:
            return method_policy, "method_default", None
        for rule_type, rule_policy in self.rules:
            if isinstance(value, rule_type):
                return rule_policy, "type_rule", f"{rule_type.__module__}.{rule_type.__qualname__}"
        return self.default, "session_default", None

    def trace(self, value: object, call_policy: str | None = None,
              method_policy: str | None = None) -> dict[str, Any]:
        if call_policy is not None:
            check_policy(call_policy, "call_policy")
        """The original's trace: `effective_policy`, its `source` and the rule's `matched_type`."""
        policy, source, matched = self.resolve(value, call_policy, method_policy)
        return {"effective_policy": policy, "source": source, "matched_type": matched}

    def describe(self) -> str:
        rules = ", ".join(f"{t.__qualname__}: {p!r}" for t, p in self.rules)
        return f"transport_policy={self.default!r}, transport_type_rules={{{rules}}}"


def _is_mapping(value: object) -> bool:
    if isinstance(value, dict):  # always, in a child: it never imports collections.abc (a slower start)
        return True
    from collections.abc import Mapping

    return isinstance(value, Mapping)
