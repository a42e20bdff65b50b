"""The first big transfers of a session use memory made ready before them.

The parent makes its first arena and one it lends the child when the session starts, and
faults both in while the child starts; the child writes its replies into the lent one.
What the other side sends into memory the parent reads is still checked (size, shrink seal).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from extradite import ExtraditeProtocolError, extradite
from extradite._api import session_of
from extradite._shm import DATA_OFFSET, LENT_ID, MIN_ARENA, NEW_ENTRY, SEG_ENTRY, TABLE_HEAD, THRESHOLD, ArenaMaps


@pytest.fixture
def Arenas() -> Iterator[Any]:
    cls = extradite("targets.arenas:Arenas")
    yield cls
    cls.close()


def test_the_parent_readies_its_first_arena_and_one_for_the_child(Arenas: Any) -> None:
    arenas = Arenas()
    channel = session_of(Arenas).session.channel
    assert [(a.arena_id, a.size, a.faulted) for a in channel.pool._arenas] == [(1, MIN_ARENA, MIN_ARENA)]
    assert LENT_ID in channel.maps._maps  # the parent reads the child's replies there
    assert channel._lent_fd == -1 and not channel.idle  # sent with the first frame; faulted in
    assert arenas.pool() == [(LENT_ID, MIN_ARENA)]  # the child took it as its first arena
    # and maps it in a step per wait, while no request waits (so give it waits with nothing to do)
    for _ in range(100):
        if arenas.faulted() == [MIN_ARENA]:
            break
        time.sleep(0.01)
    assert arenas.faulted() == [MIN_ARENA]


@pytest.mark.parametrize("size", [THRESHOLD, 512 * 1024, MIN_ARENA - DATA_OFFSET])
def test_the_child_replies_in_the_lent_arena(Arenas: Any, size: int) -> None:
    arenas = Arenas()
    for _ in range(3):
        payload = os.urandom(size)
        assert arenas.echo(payload) == payload
    assert arenas.pool() == [(LENT_ID, MIN_ARENA)]  # no memory of the child's own was needed


def test_a_reply_bigger_than_the_lent_arena_takes_one_of_the_childs_own(Arenas: Any) -> None:
    arenas = Arenas()
    small, big = os.urandom(512 * 1024), os.urandom(3 * MIN_ARENA)
    assert arenas.echo(small) == small
    assert arenas.echo(big) == big
    assert arenas.echo([small, small]) == [small, small]  # two buffers, one arena: over 1 MiB
    pool = arenas.pool()
    assert pool[0] == (LENT_ID, MIN_ARENA) and len(pool) >= 2 and all(i < LENT_ID for i, _ in pool[1:])
    assert arenas.echo(small) == small


def test_a_lent_arena_cannot_be_shrunk_by_the_child() -> None:
    maps = ArenaMaps()
    arena = maps.lend()
    try:
        assert fcntl.fcntl(arena.fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_SHRINK
        with pytest.raises(PermissionError):
            os.ftruncate(arena.fd, 4096)  # what a child would do to make the parent's reads fault
        assert os.fstat(arena.fd).st_size == MIN_ARENA
    finally:
        os.close(arena.fd)
        maps.close()


def _announce(fd: int, size: int) -> bytes:
    return TABLE_HEAD.pack(1, 0, 1, 0) + NEW_ENTRY.pack(7, size, 0) + SEG_ENTRY.pack(7, DATA_OFFSET, 16, 0)


def test_only_a_side_that_trusts_its_sender_skips_the_seal_check() -> None:
    for trusting in (False, True):
        unsealed = os.memfd_create("unsealed", os.MFD_CLOEXEC)
        os.ftruncate(unsealed, MIN_ARENA)
        maps = ArenaMaps(check_seals=not trusting)
        try:
            if trusting:  # the child: its parent made the arena
                segments, _ = maps.parse(_announce(unsealed, MIN_ARENA), [unsealed])
                assert len(segments) == 1 and bytes(segments[0][1]) == bytes(16)
                maps.consumed(segments)
            else:  # the parent: a child could shrink it while the parent reads
                with pytest.raises(ExtraditeProtocolError, match="without the shrink seal"):
                    maps.parse(_announce(unsealed, MIN_ARENA), [unsealed])
            short = os.memfd_create("short", os.MFD_CLOEXEC)
            os.ftruncate(short, 4096)
            with pytest.raises(ExtraditeProtocolError, match="holds 4096 bytes"):  # the size: always
                maps.parse(_announce(short, MIN_ARENA), [short])
        finally:
            maps.close()


def test_the_parent_never_takes_an_arena_a_child_offers() -> None:
    cls = extradite("targets.hostile:Lender")
    try:
        lender = cls()
        channel = session_of(cls).session.channel
        assert lender.lend_to_parent() == "lent"  # its forged reply, announcing a page and an arena
        assert [arena.arena_id for arena in channel.pool._arenas] == [1]  # the parent's own, no other
        payload = os.urandom(512 * 1024)
        assert lender.echo(payload) == payload  # the parent still writes only into its own memory
        assert [arena.arena_id for arena in channel.pool._arenas] == [1]
    finally:
        cls.close()
