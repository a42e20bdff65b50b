"""Shared memory for big buffers: anonymous arenas reused across frames.

Data flow for one frame that carries a big buffer (>= THRESHOLD bytes):

    sender pickler --write(big)--> ArenaPool.place() --memcpy--> arena (memfd, mmap)
                   `--write(small)--> inline body --socket--> receiver
    receiver unpickler --readinto(dest)--> ArenaMaps.view --memcpy--> dest object

So each big buffer is copied once into the arena and once out of it; nothing is
named in /dev/shm (arenas are `memfd_create` files whose descriptors travel with
the frame as SCM_RIGHTS ancillary data), so a `kill -9` of either side leaks nothing.

The first arena of each direction is ready before the first big frame, so that the first
transfers of a session do not pay for faulting fresh shared memory in: the page owner
(the parent) makes its own first arena and one it lends to the other side (`LENT_ID`,
announced through the shared page, see _ring), and faults both in while it waits for the
child to start (`Channel.idle`). Only the owner creates memory the other side writes
into; a receiver that trusts its sender (the child) skips the seal check, the parent
always checks what it did not make. Arenas are never reused across sessions: another
child could still hold a mapping of them.

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
import _struct as struct  # `struct` imports this and nothing more: one module less per child
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    import mmap
    from collections.abc import Iterator, Sequence

THRESHOLD = 64 * 1024
DATA_OFFSET = 64
MIN_ARENA = 1 << 20
MAX_POOLED = 4
LENT_ID = 0x80000000  # the arena the page owner lends the other side (its own arena ids stay below)
_MADV_POPULATE_WRITE = 23  # Linux 5.14: fault a range in with one system call

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


def _check_arena(fd: int, size: int, check_seals: bool = True) -> None:
    """Refuse an arena that could fault when read: smaller than announced, or shrinkable.

    Without `check_seals` (a side that trusts its sender: the child) the size is still
    checked, but not the seal, which needs the fcntl module loaded (a few hundred us).
    """
    from ._errors import ExtraditeProtocolError

    actual = os.fstat(fd).st_size
    if actual < size or size < DATA_OFFSET:
        raise ExtraditeProtocolError(
            f"corrupt frame: a shared-memory arena announced as {size} bytes holds {actual} bytes")
    if check_seals and getattr(os, "memfd_create", None) is not None:
        import fcntl

        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        except OSError:
            seals = 0
        if not seals & fcntl.F_SEAL_SHRINK:
            raise ExtraditeProtocolError(
                "corrupt frame: a shared-memory arena came without the shrink seal; the other side "
                "could shrink it while this side reads it")


def prefault(arena: Arena, end: int) -> None:
    """Fault `arena` in (writable) up to `end` with one system call instead of a fault per page.

    Fresh shared memory costs a page fault per 4 KiB when first written, and so does a
    mapping of pages the other side made (a lent arena); a batch is several times cheaper.
    """
    start = arena.faulted & ~0xFFF
    end = min(arena.size, end)
    if end <= start:
        return
    arena.faulted = end
    try:
        arena.map.madvise(_MADV_POPULATE_WRITE, start, end - start)
    except (OSError, ValueError):  # an older kernel: the copy faults the pages in as it goes
        pass


PREFAULT_STEP = 256 * 1024


def prefault_steps(arena: Arena) -> Iterator[None]:
    """`prefault` of the whole arena in steps, for idle time (see `Channel.idle`)."""
    while arena.faulted < arena.size:
        prefault(arena, arena.faulted + PREFAULT_STEP)
        yield


class Arena:
    """One shared-memory region the sending side writes frames into (its own, or lent to it)."""

    __slots__ = ("arena_id", "size", "fd", "map", "view", "oneshot", "announced", "faulted")

    def __init__(self, arena_id: int, size: int, *, oneshot: bool, fd: int = -1) -> None:
        """A new arena, or with `fd` one the other side lent (mapped here; `fd` is closed)."""
        self.arena_id = arena_id
        self.size = size
        import mmap

        lent = fd >= 0
        self.fd = fd if lent else _anonymous_fd(size)
        try:
            self.map = mmap.mmap(self.fd, size)
        finally:
            if lent:
                os.close(fd)
                self.fd = -1
        self.view = memoryview(self.map)
        self.oneshot = oneshot
        self.announced = lent  # the lender knows it
        self.faulted = 0  # bytes from the start faulted in by this side (see `prefault`)

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

    def reserve(self) -> Arena:
        """Make the first arena now (the page owner, at start), to be faulted in while idle."""
        arena = self._new(MIN_ARENA, oneshot=False)
        self._arenas.append(arena)
        return arena

    def adopt_lent(self, fd: int, size: int) -> Arena:
        """Take the arena the page owner lent (`LENT_ID`) as this side's first one."""
        if size < MIN_ARENA or size > 1 << 30:
            os.close(fd)
            from ._errors import ExtraditeProtocolError

            raise ExtraditeProtocolError(f"corrupt frame: a lent shared-memory arena of {size} bytes")
        _check_arena(fd, size, check_seals=False)
        arena = Arena(LENT_ID, size, oneshot=False, fd=fd)
        self._arenas.insert(0, arena)
        return arena

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
            if arena.faulted < DATA_OFFSET + n:
                prefault(arena, DATA_OFFSET + n)
            arena.view[DATA_OFFSET:DATA_OFFSET + n] = view
            if arena.announced and not self._dropped:
                return arena, ONE_SEGMENT.pack(0, 0, 1, 0, arena.arena_id, DATA_OFFSET, n, pos), []
            segments = [(DATA_OFFSET, n, pos)]
        else:
            total = sum(view.nbytes for _, view in big)
            arena = self.acquire(total)
            if arena.faulted < DATA_OFFSET + total:
                prefault(arena, DATA_OFFSET + total)
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
    """The receiver's mappings of the other side's arenas (and of the one this side lent it).

    `check_seals`: refuse arenas without the shrink seal (see `_check_arena`).
    """

    def __init__(self, check_seals: bool = True) -> None:
        self._maps: dict[int, tuple[mmap.mmap, memoryview, bool]] = {}
        self.check_seals = check_seals

    def lend(self) -> Arena:
        """A new arena for the other side's frames (`LENT_ID`), mapped here as received memory.

        The caller sends its descriptor and closes it; the mapping belongs to this table.
        """
        arena = Arena(LENT_ID, MIN_ARENA, oneshot=False)
        self._maps[LENT_ID] = (arena.map, arena.view, False)
        return arena

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
                _check_arena(fd, size, self.check_seals)
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
