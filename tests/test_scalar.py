"""Replies of plain scalars travel in the `_scalar` format (FLAG_SCALAR), read without an unpickler."""

from __future__ import annotations

import math
import pickle
import socket
import struct
from typing import Any

import pytest

from extradite import _scalar
from extradite._errors import ExtraditeProtocolError
from extradite._proxy import ProxyFactory
from extradite._session import Session
from extradite._shm import THRESHOLD, ArenaMaps
from extradite._bodyfile import Frame
from extradite._wire import FLAG_SCALAR, REPLY, REQUEST

VALUES: list[Any] = [
    0, 1, -1, 127, 128, -128, -129, 255, 256, 2**63, -(2**63) - 1, 10**400, -(10**400),
    True, False, None,
    0.0, -0.0, 1.5, -2.25e-300, 1e308, math.inf, -math.inf,
    "", "a", "héllo wörld", "日本", "\ud800 lone surrogate", "x" * 5000,
    b"", b"\x00", bytes(range(256)), b"y" * (THRESHOLD - 1),
]


def _same(got: Any, want: Any) -> bool:
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        return math.copysign(1, got) == math.copysign(1, want) and got == want
    return bool(got == want)


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:20] for v in VALUES])
def test_every_plain_scalar_survives_the_format(value: Any) -> None:
    assert _same(_scalar.decode(_scalar.encode(value)), value)


@pytest.mark.parametrize("nan", [float("nan"), -float("nan"), struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]])
def test_nan_keeps_its_bits(nan: float) -> None:
    got = _scalar.decode(_scalar.encode(nan))
    assert struct.pack("<d", got) == struct.pack("<d", nan)


@pytest.mark.parametrize("value", [1 << 3, True, 2.5, "s", b"b"])
def test_a_bytearray_body_reads_the_same(value: Any) -> None:
    """Big socket frames arrive as bytearray."""
    assert _same(_scalar.decode(bytearray(_scalar.encode(value))), value)


@pytest.mark.parametrize("body", [b"", b"i", b"f\x00", b"f" + bytes(9), b"N\x00", b"TT", b"s\xff\xfe",
                                  b"?abc", b"\x80\x05K\x05."])
def test_a_body_the_format_never_makes_is_a_corrupt_frame(body: bytes) -> None:
    with pytest.raises(ExtraditeProtocolError, match="corrupt frame: a scalar reply"):
        _scalar.decode(body)


@pytest.mark.parametrize("value", [bytearray(b"x"), [1], (1,), 1j, pickle.PickleBuffer(b"x")])
def test_only_plain_scalars_are_encoded(value: Any) -> None:
    with pytest.raises(TypeError, match="not a plain scalar"):
        _scalar.encode(value)


def test_an_int_subclass_is_not_a_plain_scalar() -> None:
    class Flag(int):
        pass

    with pytest.raises(TypeError, match="not a plain scalar"):
        _scalar.encode(Flag(3))


def test_replies_from_a_child_keep_value_and_type(Values: Any) -> None:
    values = Values()
    for value in VALUES:
        assert _same(values.echo(value), value), value


def test_a_plain_reply_is_read_without_an_unpickler(Values: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the format: no restricted unpickler is created for the usual reply."""
    from extradite._api import session_of

    values = Values()
    values.echo(0)
    codec = session_of(Values).session.codec

    class NoUnpickler:
        def __init__(self, *args: Any) -> None:
            raise AssertionError("a plain scalar reply went through the unpickler")

    monkeypatch.setattr(codec, "unpickler", NoUnpickler)
    assert values.echo(41) == 41 and values.echo("x") == "x" and values.echo(None) is None


def test_callback_replies_from_the_parent_use_the_format(Values: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A callback's result goes back to the child in the format too, and the child reads it."""
    from extradite._api import session_of

    encoded: list[Any] = []
    real_encode = _scalar.encode

    def encode(value: Any) -> bytes:
        encoded.append(value)
        return real_encode(value)

    monkeypatch.setattr(_scalar, "encode", encode)  # the parent encodes its replies with it

    def callback(n: int) -> int:
        return n * 2

    values = Values()
    assert values.apply(callback, 21) == 42
    assert encoded == [42] and session_of(Values).session.broken is None


def _session_reading(frame: Frame) -> tuple[Session, socket.socket]:
    ours, theirs = socket.socketpair()
    session = Session(ours, is_child=False, factory=ProxyFactory)

    class OneFrame:
        def recv(self) -> Frame:
            return frame

    session.channel.close()
    session.channel = OneFrame()  # type: ignore[assignment]
    return session, theirs


def test_a_corrupt_scalar_reply_fails_that_call_only() -> None:
    session, theirs = _session_reading(Frame(REPLY, FLAG_SCALAR, 1, 1, b"q???", [], ArenaMaps()))
    try:
        message = session._read_one()
        assert message is not None and isinstance(message.problem, ExtraditeProtocolError)
        assert "corrupt frame: a scalar reply" in str(message.problem) and session.broken is None
    finally:
        theirs.close()


def test_the_scalar_flag_on_a_request_is_not_read_as_a_reply() -> None:
    """Only replies use the format: a request flagged so is garbage for its own call."""
    session, theirs = _session_reading(Frame(REQUEST, FLAG_SCALAR, 1, 1, _scalar.encode(5), [], ArenaMaps()))
    try:
        message = session._read_one()
        assert message is not None and message.payload is None and message.problem is not None
    finally:
        theirs.close()
