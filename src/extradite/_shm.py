"""Shared memory for big buffers: anonymous arenas reused across frames.

Data flow for one frame that carries a big buffer (>= THRESHOLD bytes):

    sender pickler --write(big)--> ArenaPool.place() --memcpy--> arena (memfd, mmap)
                   `--write(small)--> inline body --socket--> receiver
    receiver unpickler --readinto(dest)--> ArenaMaps.view --memcpy--> dest object

So each big buffer is copied once into the arena and once out of it; nothing is
named in /dev/shm (arenas are `memfd_create` files whose descriptors travel with
the frame as SCM_RIGHTS ancillary data), so a `kill -9` of either side leaks nothing.

Every arena starts with a 4-byte state word: the sender sets it to BUSY when it
places a frame's buffers there and the receiver sets it back to FREE once the
frame is decoded; only then does the sender reuse the arena. When every pooled
arena is busy, a one-shot arena is used and dropped after that frame.

Segment table (prefix of the frame body when FLAG_SHM is set):

    TABLE_HEAD  n_new, n_dropped, n_segments, 0          (u16 x 4)
    n_new      x NEW_ENTRY  arena_id u32, size u64, oneshot u32 (fds in the same order)
    n_dropped  x DROP_ENTRY arena_id u32
    n_segments x SEG_ENTRY  arena_id u32, offset u64, length u64, stream_pos u64
"""

from __future__ import annotations

import os
import struct
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    import mmap
    from collections.abc import Sequence

THRESHOLD = 64 * 1024
DATA_OFFSET = 64
MIN_ARENA = 1 << 20
MAX_POOLED = 4

FREE = 0
BUSY = 1

STATE = struct.Struct("<I")
TABLE_HEAD = struct.Struct("<HHHH")
NEW_ENTRY = struct.Struct("<IQI")
DROP_ENTRY = struct.Struct("<I")
SEG_ENTRY = struct.Struct("<IQQQ")
ONE_SEGMENT = struct.Struct("<HHHHIQQQ")  # TABLE_HEAD + SEG_ENTRY: the usual table


def _anonymous_fd(size: int) -> int:
    """A descriptor of `size` bytes of shared memory that has no name anywhere."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd: int = memfd_create("extradite", getattr(os, "MFD_CLOEXEC", 0) | getattr(os, "MFD_ALLOW_SEALING", 0))
    else:  # pragma: no cover - platforms without memfd: a file unlinked at once
        import tempfile

        directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix="extradite-", dir=directory)
        os.unlink(path)
    try:
        os.ftruncate(fd, size)
        if memfd_create is not None:
            import fcntl

            # the receiver maps it and requires this seal: a sender that cannot shrink the
            # file under the receiver's mapping cannot make the receiver's reads fault (SIGBUS)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_arena(fd: int, size: int) -> None:
    """Refuse an arena that could fault when read: smaller than announced, or shrinkable."""
    from ._errors import ExtraditeProtocolError

    actual = os.fstat(fd).st_size
    if actual < size or size < DATA_OFFSET:
        raise ExtraditeProtocolError(
            f"corrupt frame: a shared-memory arena announced as {size} bytes holds {actual} bytes")
    if getattr(os, "memfd_create", None) is not None:
        import fcntl

        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        except OSError:
            seals = 0
        if not seals & fcntl.F_SEAL_SHRINK:
            raise ExtraditeProtocolError(
                "corrupt frame: a shared-memory arena came without the shrink seal; the other side "
                "could shrink it while this side reads it")


class Arena:
    """One shared-memory region owned by the sending side."""

    __slots__ = ("arena_id", "size", "fd", "map", "view", "oneshot", "announced")

    def __init__(self, arena_id: int, size: int, *, oneshot: bool) -> None:
        self.arena_id = arena_id
        self.size = size
        import mmap

        self.fd = _anonymous_fd(size)
        self.map = mmap.mmap(self.fd, size)
        self.view = memoryview(self.map)
        self.oneshot = oneshot
        self.announced = False

    @property
    def free(self) -> bool:
        return bool(STATE.unpack_from(self.map, 0)[0] == FREE)

    def close(self) -> None:
        self.view.release()
        self.map.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ArenaPool:
    """The sender's arenas. Callers hold the channel's send lock."""

    def __init__(self) -> None:
        self._arenas: list[Arena] = []
        self._next_id = 1
        self._dropped: list[int] = []

    def _new(self, size: int, *, oneshot: bool) -> Arena:
        arena = Arena(self._next_id, size, oneshot=oneshot)
        self._next_id += 1
        return arena

    def acquire(self, nbytes: int) -> Arena:
        """A free arena with room for `nbytes`, marked BUSY."""
        need = nbytes + DATA_OFFSET
        for arena in self._arenas:
            if arena.size >= need and arena.free:
                break
        else:
            size = max(MIN_ARENA, 1 << (need - 1).bit_length())
            free_small = [a for a in self._arenas if a.free]
            if len(self._arenas) >= MAX_POOLED and free_small:
                victim = min(free_small, key=lambda a: a.size)
                self._arenas.remove(victim)
                self._dropped.append(victim.arena_id)
                victim.close()
            if len(self._arenas) < MAX_POOLED:
                arena = self._new(size, oneshot=False)
                self._arenas.append(arena)
            else:
                arena = self._new(need, oneshot=True)
        STATE.pack_into(arena.map, 0, BUSY)
        return arena

    def place(self, big: Sequence[tuple[int, memoryview]]) -> tuple[Arena, bytes, list[int]]:
        """Copy a frame's big buffers, given as (stream_pos, view), into one arena.

        Returns the arena, the frame's segment table and the descriptors that must
        ride with the frame (those of arenas the receiver has not mapped yet).
        """
        if len(big) == 1:  # the usual frame: one buffer in an arena the receiver has mapped
            pos, view = big[0]
            n = view.nbytes
            arena = self.acquire(n)
            arena.view[DATA_OFFSET:DATA_OFFSET + n] = view
            if arena.announced and not self._dropped:
                return arena, ONE_SEGMENT.pack(0, 0, 1, 0, arena.arena_id, DATA_OFFSET, n, pos), []
            segments = [(DATA_OFFSET, n, pos)]
        else:
            arena = self.acquire(sum(view.nbytes for _, view in big))
            offset = DATA_OFFSET
            segments = []
            for pos, view in big:
                n = view.nbytes
                arena.view[offset:offset + n] = view
                segments.append((offset, n, pos))
                offset += n
        new: list[Arena] = [] if arena.announced else [arena]
        arena.announced = True
        dropped, self._dropped = self._dropped, []
        parts = [TABLE_HEAD.pack(len(new), len(dropped), len(segments), 0)]
        parts += [NEW_ENTRY.pack(a.arena_id, a.size, a.oneshot) for a in new]
        parts += [DROP_ENTRY.pack(i) for i in dropped]
        parts += [SEG_ENTRY.pack(arena.arena_id, off, length, pos) for off, length, pos in segments]
        return arena, b"".join(parts), [a.fd for a in new]

    def after_send(self, arena: Arena) -> None:
        """A one-shot arena's mapping is no longer needed once its descriptor is sent."""
        if arena.oneshot:
            arena.close()

    def close(self) -> None:
        for arena in self._arenas:
            arena.close()
        self._arenas.clear()


class ArenaMaps:
    """The receiver's mappings of the other side's arenas."""

    def __init__(self) -> None:
        self._maps: dict[int, tuple[mmap.mmap, memoryview, bool]] = {}

    def parse(self, body: bytes | bytearray, fds: list[int]) -> tuple[list[tuple[int, memoryview, int]], int]:
        """Apply a segment table; return its segments as (arena_id, view, stream_pos) and its length.

        Consumes descriptors from `fds` for newly announced arenas.
        """
        n_new, n_dropped, n_segments, _ = TABLE_HEAD.unpack_from(body, 0)
        if n_new == n_dropped == 0 and n_segments == 1:  # the usual table (see ArenaPool.place)
            _, _, _, _, arena_id, offset, length, stream_pos = ONE_SEGMENT.unpack_from(body, 0)
            entry = self._maps.get(arena_id)
            if entry is not None:
                return [(arena_id, entry[1][offset:offset + length], stream_pos)], ONE_SEGMENT.size
        pos = TABLE_HEAD.size
        for _ in range(n_new):
            arena_id, size, oneshot = NEW_ENTRY.unpack_from(body, pos)
            pos += NEW_ENTRY.size
            if not fds:
                from ._errors import ExtraditeProtocolError

                raise ExtraditeProtocolError(
                    "corrupt frame: a shared-memory arena was announced without its descriptor")
            fd = fds.pop(0)
            try:
                _check_arena(fd, size)
                import mmap

                mapping = mmap.mmap(fd, size)
            finally:
                os.close(fd)
            self._maps[arena_id] = (mapping, memoryview(mapping), bool(oneshot))
        for _ in range(n_dropped):
            (arena_id,) = DROP_ENTRY.unpack_from(body, pos)
            pos += DROP_ENTRY.size
            self._unmap(arena_id)
        segments: list[tuple[int, memoryview, int]] = []
        for _ in range(n_segments):
            arena_id, offset, length, stream_pos = SEG_ENTRY.unpack_from(body, pos)
            pos += SEG_ENTRY.size
            entry = self._maps.get(arena_id)
            if entry is None:
                from ._errors import ExtraditeProtocolError

                raise ExtraditeProtocolError(
                    f"corrupt frame: shared-memory arena {arena_id} was never announced")
            view = entry[1]
            if offset < DATA_OFFSET or offset + length > len(view):
                from ._errors import ExtraditeProtocolError

                raise ExtraditeProtocolError(
                    f"corrupt frame: a segment of {length} bytes at {offset} lies outside shared-memory "
                    f"arena {arena_id} of {len(view)} bytes")
            segments.append((arena_id, view[offset:offset + length], stream_pos))
        return segments, pos

    def consumed(self, segments: list[tuple[int, memoryview, int]]) -> None:
        """The frame is decoded: hand its arenas back to the sender."""
        for _, view, _ in segments:
            view.release()
        for arena_id in {arena_id for arena_id, _, _ in segments}:
            entry = self._maps.get(arena_id)
            if entry is None:
                continue
            STATE.pack_into(entry[0], 0, FREE)
            if entry[2]:
                self._unmap(arena_id)

    def _unmap(self, arena_id: int) -> None:
        entry = self._maps.pop(arena_id, None)
        if entry is not None:
            entry[1].release()
            entry[0].close()

    def close(self) -> None:
        for arena_id in list(self._maps):
            self._unmap(arena_id)
