"""Random and mutated frames fed to the parent's side of a channel: whatever arrives, the
parent reads it as a message, a message's `ExtraditeError`, or an `ExtraditeError` that
ends the session; it never raises anything else, hangs or crashes."""

from __future__ import annotations

import collections
import datetime
import decimal
import pickle
import socket
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extradite import ExtraditeError
from extradite._codec import _h, raise_record
from extradite._proxy import ProxyFactory
from extradite._session import Session
from extradite._untrusted import Trust, trust_parent
from extradite._wire import ERROR, FLAG_SCALAR, FLAG_SHM, HEADER, PID_HOME, RELEASE, REPLY, REQUEST, VERSION

_VALID_BODIES = [
    pickle.dumps(([], 42), 5),
    pickle.dumps(([(1, 1)], [1, "two", 3.0, {"k": (None, b"x")}]), 5),
    pickle.dumps(((), ("remote", ("m", "q", "n"), "boom", "tb", "ValueError", ("a",), None)), 5),
    pickle.dumps(((), ("remote", ("m", "q", "n"), "g", "", None, (), None,
                       (("remote", ("b", "q", "n"), "x", "", "KeyError", (), None),))), 5),
    pickle.dumps(([], 7, 1, "name", (1,), {"k": 2}, None, 8), 5),
    pickle.dumps(([],), 5),
]


def _mutated(data: st.DataObject) -> bytes:
    body = bytearray(data.draw(st.sampled_from(_VALID_BODIES)))
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        body = body[:data.draw(st.integers(0, len(body)))]
    return bytes(body)


class _Handle:
    """Pickles as the handle of the parent's object 1 (see `_feed`)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_h, (PID_HOME, 1))


# Values of the allow-list and handles (the marker global with a pid): what untrusted mode reads.
_UNTRUSTED_BODIES = [
    pickle.dumps(([], [datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc), decimal.Decimal("1.5"),
                      collections.OrderedDict(a=1), collections.defaultdict(list, {1: [2]})]), 5),
    pickle.dumps(([], {"a": _Handle(), "b": [_Handle(), (_Handle(),)], _Handle(): {_Handle()}}), 5),
    pickle.dumps(([], {"k": (1, [2, {3}])}), 5),
]


def _feed(frame: bytes, untrusted: bool = False) -> Any:
    """Feed one frame (then EOF) to a fresh parent session; what it makes of it must be an ExtraditeError."""
    parent_end, child_end = socket.socketpair()
    session = Session(parent_end, is_child=False, factory=ProxyFactory, name="fuzz")
    if untrusted:
        trust_parent(session.codec, Trust((), {}))
        session.codec.exports.export(object())  # handle id 1: something a frame can name
    outcome: list[Any] = []

    def read() -> None:
        try:
            message = session._read_one()
            if message is None:
                outcome.append(session.broken)
            elif message.problem is not None:
                outcome.append(message.problem)
            elif message.kind == ERROR:
                try:
                    raise_record(message.payload)
                except BaseException as exc:
                    outcome.append(exc)
            else:
                outcome.append(None)
        except BaseException as exc:  # anything raised here is a finding
            outcome.append(exc)

    try:
        child_end.sendall(frame)
        child_end.shutdown(socket.SHUT_WR)
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "the parent hung on this frame"
        [result] = outcome
        assert result is None or isinstance(result, ExtraditeError), repr(result)
        return result
    finally:
        session.close()
        child_end.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_valid_frames_are_extradite_errors_or_messages(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from([REQUEST, REPLY, ERROR, RELEASE, 0, 5, 9]))
    flags = data.draw(st.sampled_from([0, 0, FLAG_SCALAR, FLAG_SHM, 0xFFFF]))
    body = _mutated(data)
    length = data.draw(st.sampled_from([len(body), len(body), len(body) + 9, 0xFFFFFFFF]))
    _feed(HEADER.pack(VERSION, kind, flags, 1, 0, 0, length) + body)


@settings(max_examples=200, deadline=None)
@given(frame=st.binary(max_size=256))
def test_random_bytes_are_extradite_errors(frame: bytes) -> None:
    _feed(frame)


@pytest.mark.parametrize("body", _VALID_BODIES[:-1])
def test_the_valid_frames_the_fuzzer_starts_from_are_read(body: bytes) -> None:
    assert _feed(HEADER.pack(VERSION, REPLY, 0, 1, 0, 0, len(body)) + body) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_frames_in_untrusted_mode_are_extradite_errors_or_messages(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from([REQUEST, REPLY, ERROR, RELEASE]))
    global _VALID_BODIES
    saved, _VALID_BODIES = _VALID_BODIES, _VALID_BODIES + _UNTRUSTED_BODIES
    try:
        body = _mutated(data)
    finally:
        _VALID_BODIES = saved
    _feed(HEADER.pack(VERSION, kind, 0, 1, 0, 0, len(body)) + body, untrusted=True)


@pytest.mark.parametrize("body", _UNTRUSTED_BODIES)
def test_the_untrusted_frames_the_fuzzer_starts_from_are_read(body: bytes) -> None:
    assert _feed(HEADER.pack(VERSION, REPLY, 0, 1, 0, 0, len(body)) + body, untrusted=True) is None
