"""A hostile child (tests/targets/hostile.py) against the parent: every attack ends as an
`ExtraditeError` in the parent, and no payload ever runs in the parent's process.

The child runs the target, so it can do anything there, including writing raw frames to
the channel. The channel's defences hold in every mode; what would run code in the parent
is refused in `untrusted=True` mode.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from extradite import (
    ExtraditeError,
    ExtraditeProtocolError,
    ExtraditeRemoteError,
    extradite,
)
from extradite import _wire


@pytest.fixture
def Hostile() -> Iterator[Any]:
    cls = extradite("targets.hostile:Hostile")
    yield cls
    cls.close()


def _refused(call: Any, error: type[ExtraditeError] = ExtraditeProtocolError) -> ExtraditeError:
    with pytest.raises(ExtraditeError) as caught:
        call()
    assert isinstance(caught.value, error), caught.value
    return caught.value


# -- the channel: every mode ---------------------------------------------------------------------
def test_a_frame_announcing_4_gib_is_refused_before_anything_is_allocated(Hostile: Any) -> None:
    error = _refused(Hostile().huge_frame)
    assert "announced 4294967295 bytes, over the limit" in str(error)


@pytest.mark.parametrize("sealed", [False, True], ids=["shrunk-unsealed", "sealed-but-short"])
def test_a_shrunk_shared_memory_buffer_is_refused_before_it_is_read(Hostile: Any, sealed: bool) -> None:
    error = _refused(lambda: Hostile().shrunk_buffer(sealed))
    assert "shared-memory arena" in str(error)


def test_a_descriptor_flood_is_closed_at_once_and_ends_the_session(Hostile: Any) -> None:
    before = len(os.listdir("/proc/self/fd"))
    error = _refused(lambda: Hostile().descriptor_flood(8))
    assert "more than 64 descriptors" in str(error)
    assert len(os.listdir("/proc/self/fd")) <= before + 1


@pytest.mark.parametrize("kind, body, says", [
    (_wire.REPLY, pickle.dumps("not a tuple", 5), "malformed reply body (the body is a str"),
    (_wire.REPLY, pickle.dumps(([],), 5), "malformed reply body"),
    (_wire.REPLY, pickle.dumps(([("x", 1)], 1), 5), "a handle release is not a pair of ints"),
    (_wire.REPLY, pickle.dumps(([1], 1), 5), "malformed reply body"),
    (_wire.ERROR, pickle.dumps(((), ("remote", 1, 2)), 5), "an error record is a 7- or 8-tuple"),
    (_wire.ERROR, pickle.dumps(((), ("remote", ("m", "q", "n"), "x", "", "ExceptionGroup", ("a", [1]), None)), 5),
     "an error's args must be a tuple of scalars"),
    (_wire.ERROR, pickle.dumps(((), ("evil", ("m", "q", "n"), "x", "", None, (), None)), 5),
     "unknown error kind 'evil'"),
    (_wire.ERROR, pickle.dumps(((), ("remote", ("m", "q", "n"), "x", "", None, (), None, ("no",))), 5),
     "an error record is a 7- or 8-tuple"),
], ids=["not-a-tuple", "short", "release-of-str", "release-not-pair", "short-record", "group-args",
        "unknown-kind", "bad-members"])
def test_a_wrong_shaped_body_is_a_protocol_error_that_ends_the_session(
        Hostile: Any, kind: int, body: bytes, says: str) -> None:
    error = _refused(lambda: Hostile().raw_reply(body, kind))
    assert says in str(error)
    _refused(lambda: Hostile().raw_reply(pickle.dumps(((), 1), 5)))  # the session has ended


def test_an_exception_group_arrives_as_a_remote_error_with_its_members(Hostile: Any) -> None:
    error = _refused(Hostile().exception_group, ExtraditeRemoteError)
    assert isinstance(error, ExtraditeRemoteError)
    assert error.remote_type_name == "ExceptionGroup"
    members = error.exceptions  # type: ignore[attr-defined]
    assert [m.remote_type_name for m in members] == ["ValueError", "KeyError", "ExceptionGroup"]
    assert isinstance(members[0], ValueError) and isinstance(members[1], KeyError)
    assert [m.remote_type_name for m in members[2].exceptions] == ["FileNotFoundError"]
    assert "first" in str(members[0])
    assert Hostile().exception_group is not None  # the session goes on


def test_a_base_exception_group_arrives_as_a_remote_error(Hostile: Any) -> None:
    error = _refused(Hostile().base_exception_group, ExtraditeRemoteError)
    assert [m.remote_type_name for m in error.exceptions] == ["ValueError"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("planted", ["__getattribute__", "__class__", "_xd_session", "__init_subclass__"])
def test_a_forged_member_table_is_a_protocol_error(planted: str) -> None:
    Maker = extradite("targets.hostile:Maker")
    try:
        error = _refused(lambda: Maker().forged(planted))
        assert "descriptor of class handle" in str(error)
    finally:
        Maker.close()
