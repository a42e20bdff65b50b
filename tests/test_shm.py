"""Big buffers travel through anonymous shared memory with value semantics, and nothing leaks."""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path
from typing import Any

import pytest

from extradite import ExtraditeProcessError, ExtraditeRemoteError, extradite
from extradite._api import session_of
from extradite._shm import THRESHOLD
from extradite._wire import FLAG_SHM

from conftest import kill_parent_of_a_child, wait_gone

BIG = 512 * 1024


def shm_listing() -> set[str]:
    return set(os.listdir("/dev/shm"))


def memfd_mappings(pid: int | str = "self") -> int:
    return sum("memfd:extradite" in line for line in Path(f"/proc/{pid}/maps").read_text().splitlines())


def frames_with_shm(cls: Any) -> list[int]:
    """Body sizes of the frames the parent sends that use shared memory."""
    channel = session_of(cls).session.channel
    seen: list[int] = []
    original = channel._sendmsg

    def sendmsg(parts: list[Any], fds: list[int]) -> None:
        header = bytes(parts[0])
        if header[2] & FLAG_SHM:
            seen.append(sum(memoryview(p).nbytes for p in parts[1:]))
        original(parts, fds)

    channel._sendmsg = sendmsg  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("make", [
    lambda: os.urandom(BIG),
    lambda: bytearray(os.urandom(BIG)),
    lambda: memoryview(os.urandom(BIG)),
], ids=["bytes", "bytearray", "memoryview"])
def test_big_buffers_round_trip_through_shared_memory(Values: Any, make: Any) -> None:
    values = Values()
    payload = make()
    shm_frames = frames_with_shm(Values)
    result = values.echo(payload)
    assert bytes(result) == bytes(payload)
    assert type(result) is (bytes if isinstance(payload, memoryview) else type(payload))
    assert shm_frames and max(shm_frames) < 4096, "the payload went through the socket"


def test_small_buffers_stay_on_the_socket(Values: Any) -> None:
    shm_frames = frames_with_shm(Values)
    assert Values().echo(b"x" * (THRESHOLD - 1024)) == b"x" * (THRESHOLD - 1024)
    assert shm_frames == []


def test_value_semantics(Values: Any) -> None:
    values = Values()
    original = bytearray(BIG)
    returned = values.mutate(original)
    assert original[0] == 0 and returned[0] == 255
    returned[1] = 7
    again = values.echo(returned)
    assert again[1] == 7 and again is not returned


def test_many_buffers_in_one_message_and_reuse(Values: Any) -> None:
    values = Values()
    payload = [os.urandom(THRESHOLD + i) for i in range(5)]
    for _ in range(20):  # arenas are reused: no growth in mappings
        assert values.echo(payload) == payload
    assert memfd_mappings() <= 8


def test_pickle_frames_that_go_through_shared_memory(Values: Any) -> None:
    """A long list pickles into several 64 KiB pickle frames, each big enough for an arena:
    the unpickler reads them with `read`, not with the one-chunk `readinto` of a payload."""
    values = Values()
    payload = [list(range(i, i + 1000)) for i in range(0, 300_000, 1000)]
    payload.append(os.urandom(THRESHOLD * 2))  # and a payload chunk after them
    shm_frames = frames_with_shm(Values)
    assert values.echo(payload) == payload
    assert shm_frames, "the pickle frames went through the socket"


@pytest.mark.parametrize("seed", range(20))
def test_body_reader_gives_the_spliced_stream_to_any_read_pattern(seed: int) -> None:
    """Every mix of read, readinto and readline sees inline bytes and chunks in stream order."""
    import random

    from extradite._bodyfile import BodyReader

    rng = random.Random(seed)
    inline = bytes(rng.randrange(256) for _ in range(300))
    positions = sorted(rng.choice([0, 17, 17, 150, 299, 300]) for _ in range(rng.randrange(4)))
    chunks = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 90))) for _ in positions]
    expected = b""
    last = 0
    for pos, chunk in zip(positions, chunks):
        expected += inline[last:pos] + chunk
        last = pos
    expected += inline[last:]
    segments = [(1, memoryview(chunk), pos) for pos, chunk in zip(positions, chunks)]
    reader = BodyReader(inline, segments)
    got = b""
    while True:
        how = rng.randrange(4)
        if how == 0:
            piece = reader.read(rng.randrange(0, 70))
        elif how == 1:
            piece = reader.readline()
        else:  # readinto a buffer of any size, or of one chunk's length (the payload fast path)
            buffer = bytearray(len(rng.choice(chunks)) if how == 3 and chunks else rng.randrange(1, 70))
            piece = bytes(buffer[:reader.readinto(memoryview(buffer))])
        got += piece
        if len(got) == len(expected) and reader.read(10) == b"":
            break
        assert len(got) <= len(expected)
    assert got == expected
    assert reader.read() == b""


def test_body_reader_the_unpicklers_pattern() -> None:
    """Small reads up to a chunk, one readinto of exactly the chunk, small reads after it."""
    from extradite._bodyfile import BodyReader

    first, second = b"A" * 40, b"B" * 50
    reader = BodyReader(b"0123456789", [(1, memoryview(first), 4), (2, memoryview(second), 4)])
    assert reader.read(4) == b"0123"
    for chunk in (first, second):
        buffer = bytearray(len(chunk))
        assert reader.readinto(memoryview(buffer)) == len(chunk) and buffer == chunk
    assert reader.read(3) == b"456" and reader.read() == b"789" and reader.read(1) == b""


def test_big_result_from_child(Values: Any) -> None:
    data = Values().make_bytes(3 * 1024 * 1024 + 5)
    assert len(data) == 3 * 1024 * 1024 + 5 and data[:3] == b"\x00\x01\x02"


def test_numpy_array_round_trip(Values: Any) -> None:
    numpy = pytest.importorskip("numpy")
    array = numpy.arange(200_000, dtype=numpy.float64).reshape(400, 500)
    shm_frames = frames_with_shm(Values)
    result = Values().echo(array)
    assert isinstance(result, numpy.ndarray) and result.shape == (400, 500)
    assert numpy.array_equal(result, array)
    result[0, 0] = -1
    assert array[0, 0] == 0  # a copy, not a view of shared memory
    assert shm_frames and max(shm_frames) < 4096


def test_nothing_left_after_normal_use() -> None:
    before = shm_listing()
    cls = extradite("targets.values:Values")
    try:
        cls().echo(os.urandom(BIG))
        assert memfd_mappings() >= 1
    finally:
        cls.close()
    assert memfd_mappings() == 0
    assert shm_listing() == before


def test_nothing_left_after_an_exception() -> None:
    before = shm_listing()
    cls = extradite("targets.values:Values")
    try:
        with pytest.raises(ExtraditeRemoteError):
            cls().raise_("ValueError", os.urandom(BIG))  # the big argument crosses, then it raises
        with pytest.raises(TypeError):
            cls().length(os.urandom(BIG), "too many")
    finally:
        cls.close()
    assert memfd_mappings() == 0
    assert shm_listing() == before


def test_nothing_left_after_child_killed() -> None:
    before = shm_listing()
    cls = extradite("targets.values:Values")
    try:
        values = cls()
        values.echo(os.urandom(BIG))
        os.kill(session_of(cls).process.pid, signal.SIGKILL)
        with pytest.raises(ExtraditeProcessError):
            values.echo(os.urandom(BIG))
    finally:
        cls.close()
    assert memfd_mappings() == 0
    assert shm_listing() == before


def test_nothing_left_after_parent_killed(tmp_path: Path) -> None:
    before = shm_listing()
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        from extradite import extradite
        from extradite._api import session_of
        Values = extradite("targets.values:Values")
        Values().echo(os.urandom({BIG}))
        print(session_of(Values).process.pid, flush=True)
        time.sleep(60)
    """))
    child_pid = kill_parent_of_a_child(script)
    assert wait_gone(child_pid)
    assert shm_listing() == before
