"""Random and mutated frames fed to the parent's side of a channel: whatever arrives, the
parent reads it as a message, a message's `ExtraditeError`, or an `ExtraditeError` that
ends the session; it never raises anything else, hangs or crashes."""

from __future__ import annotations

import pickle
import socket
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extradite import ExtraditeError
from extradite._codec import raise_record
from extradite._proxy import ProxyFactory
from extradite._session import Session
from extradite._wire import ERROR, FLAG_SCALAR, FLAG_SHM, HEADER, RELEASE, REPLY, REQUEST, VERSION

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


def _feed(frame: bytes) -> Any:
    """Feed one frame (then EOF) to a fresh parent session; what it makes of it must be an ExtraditeError."""
    parent_end, child_end = socket.socketpair()
    session = Session(parent_end, is_child=False, factory=ProxyFactory, name="fuzz")
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
