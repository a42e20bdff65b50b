"""The signature data a child sends when a generated proxy binds is read strictly, never with marshal.

The parent reads it only when the fingerprint differs (to name what changed); a broken or
hostile child must then get a clear protocol error, never an interpreter crash or a
silently wrong warning.
"""

from __future__ import annotations

import collections
import decimal
import fractions
import json
import marshal
import random
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from extradite import ExtraditeProtocolError, ExtraditeStaleProxyWarning
from extradite._members import (
    check_members,
    describe_type,
    fingerprint,
    kinds_checksum,
    load_signature_data,
    signature_data,
    warm_up,
)
from conftest import private_copy

counter = private_copy("extradite.demo.counter")
callbacks = private_copy("extradite.demo.callbacks")

REAL_CLASSES: list[type] = [counter.Counter, callbacks.EventBus, collections.OrderedDict, json.JSONDecoder,
                            decimal.Decimal, fractions.Fraction, random.Random]


@pytest.mark.parametrize("cls", REAL_CLASSES, ids=[c.__qualname__ for c in REAL_CLASSES])
def test_reads_what_signature_data_writes(cls: type) -> None:
    data = signature_data(cls)
    assert load_signature_data(data) == marshal.loads(data)


def test_the_child_sends_nothing_when_fingerprint_and_kinds_are_the_same() -> None:
    """The verdict a generated proxy's import replies: None for an up-to-date proxy, else what to read."""
    cls = counter.Counter
    table = describe_type(cls)
    live = (tuple(table.items()), signature_data(cls))
    assert check_members(cls, fingerprint(cls), kinds_checksum(table)) is None
    assert check_members(cls, "0" * 16, kinds_checksum(table)) == live
    assert check_members(cls, fingerprint(cls), kinds_checksum({**table, "increment": "property"})) == live
    assert check_members(counter.Counter.increment, fingerprint(cls), "") == ((), b"")  # not a class
    assert kinds_checksum(dict(reversed(table.items()))) == kinds_checksum(table)  # order does not count


def test_warm_up_imports_nothing() -> None:
    """It runs in a prewarmed child, whose modules are pinned (tests/test_bootcode.py)."""
    from extradite import _members

    before = set(sys.modules)
    warm_up()
    assert set(sys.modules) == before and _members.warmed_up


def test_names_that_are_not_valid_utf8_read_as_marshal_wrote_them() -> None:
    """marshal writes a lone surrogate (a name set with setattr) as it is: still the target's data."""
    odd = type("Odd", (), {"\ud800name": lambda self: 1, "méthode": lambda self, é=1: é})
    data = signature_data(odd)
    assert load_signature_data(data) == marshal.loads(data)


def test_every_truncation_is_a_clear_error() -> None:
    data = signature_data(counter.Counter)
    for end in range(len(data)):
        with pytest.raises(ValueError, match="signature data"):
            load_signature_data(data[:end])


def test_random_corruption_raises_value_error_or_reads_the_shape() -> None:
    """Any byte changed: a ValueError, or data of the right shape (a changed text, say)."""
    data = bytearray(signature_data(counter.Counter))
    rng = random.Random(5)
    errors = 0
    for _ in range(2000):
        corrupt = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
        try:
            out = load_signature_data(bytes(corrupt))
        except ValueError:
            errors += 1
        else:
            assert isinstance(out, list) and all(isinstance(name, str) for name, _ in out)
    assert errors > 1000  # most corruptions are caught, not read as something else


@pytest.mark.parametrize("data, message", [
    (b"", "ends early"),
    ("[", "not bytes"),
    (b"[\xff\xff\xff\x7f", "bad length"),
    (b"[\xff\xff\xff\xff", "bad length"),
    (b"[\x01\x00\x00\x00c", "unexpected code"),
    (marshal.dumps([], 2) + b"N", "after its end"),
    (marshal.dumps({"a": 1}, 2), "unexpected code"),
    (marshal.dumps([("a", 1.5)], 2), "unexpected code"),
    (marshal.dumps(((("a", "b"),),), 2), "shape"),
    (marshal.dumps([("a", (1, 2, 3))], 2), "shape"),
    (marshal.dumps([("a", (True, 1))], 2), "shape"),
    (marshal.dumps([("a", (("self",), 0, 1, 0, 0, (1,), ()))], 2), "shape"),
    (marshal.dumps([("a", (("self",), 0, 1, 0, 0, (), (("k",),)))], 2), "shape"),
    (marshal.dumps([[[[[[[]]]]]]], 2), "unexpected code"),  # deeper than signatures nest
])
def test_forged_data_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_signature_data(data)


@pytest.mark.parametrize("target", ["Truncated", "HugeLength", "UnknownCode", "WrongShape", "NotBytes"])
def test_a_child_forging_its_signatures_is_stopped_with_a_clear_error(
        target: str, placeholder_proxy: Callable[..., Any]) -> None:
    Forged = placeholder_proxy(f"targets.forged:{target}")  # its fingerprint differs: the parent reads the data
    with pytest.raises(ExtraditeProtocolError, match="malformed signatures of targets.forged") as caught:
        Forged.extradite()
    assert "was stopped" in str(caught.value)
    # Nothing half-bound is left: the next bind starts a new child and fails the same way.
    with pytest.raises(ExtraditeProtocolError, match="malformed signatures"):
        Forged.extradite()


def test_a_stale_warning_raised_as_an_error_leaves_nothing_bound(placeholder_proxy: Callable[..., Any]) -> None:
    """`-W error::ExtraditeStaleProxyWarning` makes a stale bind fail; its child must not outlive it."""
    Stale = placeholder_proxy("targets.values:Values")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtraditeStaleProxyWarning)
        with pytest.raises(ExtraditeStaleProxyWarning, match="no longer matches"):
            Stale.extradite()
    with pytest.warns(ExtraditeStaleProxyWarning):
        bound = Stale.extradite()
    assert bound().echo(3) == 3
    bound.close_proxy_class()
