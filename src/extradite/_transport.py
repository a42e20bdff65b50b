"""Frames over a stream socket and a shared ring, big buffers through shared memory.

    send:  BodyWriter (pickler's file) -> inline parts + big chunks
           -> big chunks copied into an arena (see _shm)
           -> small frame without descriptors: copied into the shared ring, no syscall
           -> otherwise: one sendmsg(header, table, inline, fds) on the socket
    recv:  the frame numbered `received` (see `seq` in _wire), from the ring or from the
           socket (recvmsg_into a reusable buffer) -> BodyReader (the unpickler's file;
           big chunks are read straight out of the arena)

A clean EOF between frames raises `ChannelEOF`; an EOF inside a frame, a bad
version byte, an impossible length or an out-of-order frame raise
`ExtraditeProtocolError`.

The shared page: a system call costs ~3 us here and waking a process that sleeps
on the other CPU 30-40 us per round trip, more than the rest of a call. So the
parent makes one memfd (sent as SCM_RIGHTS with its first frame) holding, for
each direction, a control block and a single-producer single-consumer ring:

    +0    u64  published  frames the writer has sent so far (socket or ring)
    +8    u64  tail       ring bytes written   (writer; same cache line as `published`)
    +128  u64  head       ring bytes consumed  (reader)
    +192  u64  sleeping   1 while the reader is, or is about to be, blocked on the socket
    +256  ring of _RING bytes: whole frames (header + body), a PAD header or less than a
          header's room at the end means "continue at the start"

A frame of at most _RING_MAX bytes with no descriptors goes through the ring when
it has room; any other frame (or any frame while the ring is full) goes through
the socket. Each stream is in order, and the reader takes the frame whose `seq`
is next from whichever stream holds it: a writer publishes frame n (ring tail,
then `published`) before it sends frame n+1, so once the reader sees a later frame
at the head of one stream, frame n is visible at the head of the other.

No lost wake-up: a reader with nothing to read stores `sleeping` = the number of
this sleep (1, 2, ...), fences, and reads `published` once more before it blocks in
recvmsg (and stores 0 once awake); a writer stores `published` after a ring frame,
fences, and sends a header-only WAKE frame on the socket when it reads a sleep it
has not woken yet. A second frame published during the same sleep needs no WAKE of
its own (a deferred request behind another, say): the reader takes every published
frame once awake, and a reader that went back to sleep shows a new number. The fences
are a lock release + acquire (an atomic read-modify-write, a full barrier on x86-64,
to which the ring is limited; elsewhere every frame takes the socket and the page only
serves polling). A frame sent on the socket wakes a sleeping reader by itself.

Low-latency wait: before it sleeps, a reader polls `published` for a short,
adaptive window, with a sched_yield() per round so that a runnable peer on the
same CPU goes first. The window adapts per channel: after a wait that ended within
the cap it is the whole cap; after a longer one it halves, so a peer that is busy
for long costs ever less polling (never more than the cap of CPU per wait).
Polling is also skipped while the machine is busy: every 50 ms a waiting side
reads /proc/loadavg and stops polling once two samples in a row show more runnable
tasks than CPUs (a poller competing with CPU-bound processes steals the time its
peer needs; a single busy sample is mostly a passing kernel worker).
Polling is on by default with a cap of 200 us: on the 2-CPU development VM a tiny
call took ~15 us with it against ~55 us without on otherwise idle CPUs, ~25 against
~40 us with both processes pinned to one CPU (the yield hands the CPU over), and
the same (~38 us; the load check turns polling off) beside one or two CPU-bound
processes. `EXTRADITE_SPIN_US=N` (read when this module is imported, inherited by
the child) sets the cap to N us; 0 turns polling off.
"""

from __future__ import annotations

import _thread
import io
import os
import struct
import time
TYPE_CHECKING = False  # typing costs milliseconds to import; annotations are strings here
if TYPE_CHECKING:
    import _socket
    import mmap
    from typing import Any

from ._errors import ExtraditeProtocolError
from ._shm import THRESHOLD, ArenaMaps, ArenaPool
from ._wire import FLAG_PAGE, FLAG_SHM, HEADER, HEADER_SIZE, MAX_BODY, PAD, VERSION, WAKE

_RBUF_SIZE = 256 * 1024
_MAX_FDS = 16
# _socket and mmap load with the first channel, so that `import extradite` stays cheap.
_ANC_SIZE = 0
_SOL_SOCKET = -1
_SCM_RIGHTS = -1


def _socket_constants() -> None:
    global _ANC_SIZE, _SOL_SOCKET, _SCM_RIGHTS
    import _socket

    _SOL_SOCKET, _SCM_RIGHTS = _socket.SOL_SOCKET, _socket.SCM_RIGHTS
    _ANC_SIZE = _socket.CMSG_SPACE(_MAX_FDS * 4)

_SPIN_MIN_NS = 4_000
_SPIN_DEFAULT_US = 200
_yield = getattr(os, "sched_yield", lambda: None)
_now = time.perf_counter_ns
# The shared page (see module docstring): one control block + ring per direction.
_CTRL = 256
_RING = 64 * 1024
_RING_MAX = 8 * 1024 - HEADER_SIZE  # bodies up to this size may take the ring
_DIR_OWNER = 0               # the page owner's (parent's) direction
_DIR_OTHER = _CTRL + _RING   # the other side's direction
_PAGE_SIZE = 2 * (_CTRL + _RING)
# The control words are read and written through a memoryview cast to native "Q": one aligned
# 8-byte load or store each. Never struct.pack_into: it zeroes its destination before packing
# (`s_pack_internal` memsets), so the other side could read a passing 0, and "<Q" also
# writes byte by byte. Offsets in words, from a direction's first word (see module docstring):
_TAIL, _HEAD, _SLEEPING = 1, 16, 24  # `published` is word 0; `tail` shares its cache line
_WAKE_FRAME = HEADER.pack(VERSION, WAKE, 0, 0, 0, 0, 0)
_NO_FDS: list[int] = []
_LATER = object()  # `_socket_take`: a later frame heads the socket
_PAGE_POSSIBLE = hasattr(os, "memfd_create")
# Ring frames rely on x86-64's ordering of plain stores (see module docstring).
_RING_POSSIBLE = _PAGE_POSSIBLE and os.uname().machine in ("x86_64", "AMD64")


def _spin_cap_ns() -> int:
    """The polling window's upper bound for this process (0: never poll)."""
    text = os.environ.get("EXTRADITE_SPIN_US")
    cap = _SPIN_DEFAULT_US * 1000
    if text is not None:
        try:
            cap = max(0, int(float(text) * 1000))
        except ValueError:
            pass
    return cap if _PAGE_POSSIBLE else 0


_SPIN_MAX_NS = _spin_cap_ns()
_CPUS = os.cpu_count() or 1
_LOAD_EVERY_NS = 50_000_000
# [time of the last /proc/loadavg sample, polling allowed, busy samples in a row]
_load = [0, 1, 0]


def _machine_quiet() -> bool:
    """False while other runnable tasks compete for the CPUs (sampled every 50 ms, for all channels).

    A waiting side and its peer are runnable themselves, so `running` counts them; the
    machine is busy when the count exceeds the CPUs in two samples in a row. One busy
    sample is most often a kernel worker or a short process that is gone by the next
    sample, and turning polling off for it costs a sleep and a cross-CPU wake-up (30-40
    us) per call for 50 ms; a CPU-bound competitor shows up in every sample.
    """
    now = _now()
    if now - _load[0] < _LOAD_EVERY_NS:
        return bool(_load[1])
    _load[0] = now
    _load[2] = _load[2] + 1 if _runnable_tasks() > _CPUS else 0
    _load[1] = _load[2] < 2
    return bool(_load[1])


def _runnable_tasks() -> int:
    """Runnable tasks on the machine now (the 4th field of /proc/loadavg); 0 if unknown."""
    try:
        fd = os.open("/proc/loadavg", os.O_RDONLY)
        try:
            text = os.read(fd, 128)
        finally:
            os.close(fd)
        return int(text.split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return 0  # no loadavg: rely on the adaptive window alone


def _truncated() -> ExtraditeProtocolError:
    return ExtraditeProtocolError(
        "the channel ended in the middle of a frame (truncated frame); the other side died or wrote garbage")


class ChannelEOF(Exception):
    """The other side closed the channel between two frames."""


class BodyWriter:
    """File object for a pickler: small writes are kept inline, big buffers set aside."""

    __slots__ = ("parts", "size", "big")

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.size = 0
        self.big: list[tuple[int, memoryview]] = []

    def write(self, data: Any) -> int:
        if type(data) is bytes:
            n = len(data)
            if n < THRESHOLD:
                self.parts.append(data)
                self.size += n
                return n
        view = memoryview(data).cast("B")
        n = view.nbytes
        if n >= THRESHOLD:
            self.big.append((self.size, view))
        else:
            self.parts.append(view)
            self.size += n
        return n


class BodyReader:
    """File object for an unpickler: the inline bytes with shared-memory chunks spliced in.

    A chunk written at inline offset `pos` (see `BodyWriter.write`) is read between
    `inline[:pos]` and `inline[pos:]`. The unpickler reads a frame's opcodes with a few
    small `read`s and a big bytes payload with one `readinto` of exactly its length, so
    both have a fast path; anything else (a pickle frame that went to shared memory,
    a read that spans a chunk boundary) takes the general `_take`.
    """

    __slots__ = ("_inline", "_segments", "_index", "_off", "_limit", "_chunk", "_chunk_off")

    def __init__(self, inline: bytes, segments: list[tuple[int, memoryview, int]]) -> None:
        self._inline = inline
        self._segments = segments
        self._index = -1
        self._off = 0          # read position in `inline`
        self._limit = 0        # where the pending chunk splices in (len(inline): none left)
        self._chunk: memoryview | None = None
        self._chunk_off = 0    # bytes of the pending chunk already read
        self._next_chunk()

    def _next_chunk(self) -> None:
        self._index += 1
        self._chunk_off = 0
        if self._index < len(self._segments):
            _, self._chunk, self._limit = self._segments[self._index]
        else:
            self._chunk, self._limit = None, len(self._inline)

    def read(self, size: int | None = -1) -> bytes:
        off = self._off
        if size is not None and size >= 0 and off + size <= self._limit:  # inside the inline run
            self._off = off + size
            return self._inline[off:off + size]
        out = bytearray()
        want = -1 if size is None or size < 0 else size
        while want:
            chunk = self._take(want)
            if not chunk:
                break
            out += chunk
            if want > 0:
                want -= len(chunk)
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        chunk = self._chunk
        if chunk is not None and self._off == self._limit and not self._chunk_off \
                and len(buffer) == len(chunk):  # exactly one whole chunk (a bytes payload)
            buffer[:] = chunk
            self._next_chunk()
            return len(chunk)
        dest = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(dest):
            part = self._take(len(dest) - filled)
            if not part:
                break
            dest[filled:filled + len(part)] = part
            filled += len(part)
        return filled

    def _take(self, want: int) -> bytes | memoryview:
        """Up to `want` bytes (all of the current run if -1) from the read position, consumed."""
        off = self._off
        if off < self._limit:
            end = self._limit if want < 0 else min(self._limit, off + want)
            self._off = end
            return self._inline[off:end]
        chunk = self._chunk
        if chunk is None:
            return b""
        start = self._chunk_off
        end = len(chunk) if want < 0 else min(len(chunk), start + want)
        self._chunk_off = end
        if end == len(chunk):
            self._next_chunk()
        return chunk[start:end]

    def readline(self, size: int | None = -1) -> bytes:
        out = bytearray()
        while True:
            chunk = self.read(1)
            out += chunk
            if not chunk or chunk == b"\n" or (size is not None and 0 <= size <= len(out)):
                return bytes(out)


class Frame:
    """One received frame; `open()` gives the unpickler's file, `done()` frees its arenas."""

    __slots__ = ("kind", "flags", "request_id", "chain", "body", "fds", "_segments", "_maps")

    def __init__(self, kind: int, flags: int, request_id: int, chain: int,
                 body: bytes | bytearray, fds: list[int], maps: ArenaMaps) -> None:
        self.kind = kind
        self.flags = flags
        self.request_id = request_id
        self.chain = chain
        self.body = body
        self.fds = fds
        self._segments: list[tuple[int, memoryview, int]] = []
        self._maps = maps

    def open(self) -> Any:
        if not self.flags & FLAG_SHM:
            return io.BytesIO(self.body)  # a bytes body is shared until written to: no copy
        segments, table_len = self._maps.parse(self.body, self.fds)
        self._segments = segments
        return BodyReader(bytes(memoryview(self.body)[table_len:]), segments)

    def done(self) -> None:
        if self._segments:
            self._maps.consumed(self._segments)
            self._segments = []


class Channel:
    """One end of the socket pair. `send` is thread-safe; `recv` has one caller at a time."""

    def __init__(self, sock: _socket.socket, *, page_owner: bool = False) -> None:
        if not _ANC_SIZE:
            _socket_constants()
        self.sock = sock
        self.send_lock = _thread.allocate_lock()
        self.pool = ArenaPool()
        self.maps = ArenaMaps()
        self._rbuf = bytearray(_RBUF_SIZE)
        self._rview = memoryview(self._rbuf)
        self._start = 0
        self._end = 0
        self._fds: list[int] = []
        self.spin_cap_ns = _SPIN_MAX_NS  # polling window bound for this channel (0: never poll)
        self._spin_ns = _SPIN_MAX_NS // 4  # current polling window (see module docstring)
        self.closed = False
        self._sent = 0       # frames sent: the next frame's seq
        self._received = 0   # frames taken: the seq of the frame `recv` returns next
        self._sleeps = 0     # sleeps on the socket so far (the number the peer reads, see _sleep)
        self._woken = 0      # the peer's last sleep that a WAKE frame was sent for
        self._page: mmap.mmap | None = None
        self._words: memoryview | None = None  # the page as native u64 words (see _TAIL)
        self._ring_tx: memoryview | None = None  # our ring, once the peer maps the page
        self._ring_rx: memoryview | None = None  # the peer's ring
        self._page_fd = -1   # the owner's page descriptor, until it rides on the first frame
        self._tx = _DIR_OWNER >> 3  # first words of the control blocks: our direction, the peer's
        self._rx = _DIR_OTHER >> 3
        self._rx_head = 0    # bytes consumed from the peer's ring (we alone write its head)
        self._tx_tail = 0    # bytes written to our ring (we alone write its tail)
        self._tx_head_seen = 0  # the peer's head of our ring when we last read it (it only grows)
        self._tx_fence = _thread.allocate_lock()  # see `_fence`; one per role: never contended
        self._rx_fence = _thread.allocate_lock()
        if page_owner and _PAGE_POSSIBLE:
            import mmap

            fd = os.memfd_create("extradite-ring", os.MFD_CLOEXEC)
            try:
                os.ftruncate(fd, _PAGE_SIZE)
                self._page = mmap.mmap(fd, _PAGE_SIZE)
                self._words = memoryview(self._page).cast("Q")
            except BaseException:
                os.close(fd)
                raise
            self._page_fd = fd
            if _RING_POSSIBLE:
                self._ring_rx = memoryview(self._page)[_DIR_OTHER + _CTRL:_DIR_OTHER + _CTRL + _RING]

    # -- sending ---------------------------------------------------------------------
    def send(self, kind: int, request_id: int, chain: int, writer: BodyWriter) -> None:
        """Send one frame built by `writer`, then empty it. Caller holds `send_lock`.

        Emptying matters: a reused writer must not keep the caller's buffers (or
        exports of them, which would stop a bytearray from resizing) alive.
        """
        parts, big, size = writer.parts, writer.big, writer.size
        writer.parts, writer.big, writer.size = [], [], 0
        if not big:
            fds = _NO_FDS
            flags = 0
        else:
            arena, table, fds = self.pool.place(big)
            parts = [table, *parts]
            size += len(table)
            flags = FLAG_SHM
        if size > MAX_BODY:
            raise ExtraditeProtocolError(
                f"a message of {size} bytes exceeds the frame limit of {MAX_BODY} bytes; "
                "send large data as bytes, bytearray or buffers (they travel through shared memory)")
        self._emit(kind, flags, request_id, chain, parts, size, fds)
        if big:
            self.pool.after_send(arena)

    def send_bytes(self, kind: int, request_id: int, chain: int, body: bytes, flags: int = 0) -> None:
        """Send a frame whose body is already encoded. Caller holds `send_lock`.

        The usual frame (small, room in the ring before its end) is written here inline,
        as `_emit` and `_ring_put` would: every call passes here twice.
        """
        ring = self._ring_tx
        need = HEADER_SIZE + len(body)
        if ring is not None and need <= _RING_MAX + HEADER_SIZE:
            tail = self._tx_tail
            pos = tail % _RING
            if pos + need <= _RING and self._ring_has_room(need):
                try:
                    HEADER.pack_into(ring, pos, VERSION, kind, flags, request_id, chain,
                                     self._sent & 0xFFFFFFFF, need - HEADER_SIZE)
                    ring[pos + HEADER_SIZE:pos + need] = body
                    self._tx_tail = tail + need
                    self._publish()
                except (ValueError, TypeError):
                    if self.closed:  # closed by another thread meanwhile: the page is gone
                        raise OSError("the extradite channel is closed") from None
                    raise
                return
        self._emit(kind, flags, request_id, chain, [body], len(body), _NO_FDS)

    def _ring_has_room(self, need: int) -> bool:
        """Whether `need` more bytes fit in our ring; the reader's head is read only when the
        last one seen (`_tx_head_seen`, which lags behind it) leaves too little room."""
        if self._tx_tail + need - self._tx_head_seen <= _RING:
            return True
        self._tx_head_seen = self._words[self._tx + _HEAD]  # type: ignore[index]
        return self._tx_tail + need - self._tx_head_seen <= _RING

    def _publish(self) -> None:
        """Make the frame just written to the ring visible (tail, then `published`), and wake
        the reader if it sleeps on the socket (see the module docstring: no lost wake-up)."""
        words, base = self._words, self._tx
        words[base + _TAIL] = self._tx_tail  # type: ignore[index]
        self._sent += 1
        words[base] = self._sent  # type: ignore[index]
        _fence(self._tx_fence)
        sleep = words[base + _SLEEPING]  # type: ignore[index]
        if sleep and sleep != self._woken:  # asleep, and no WAKE sent for this sleep yet
            self.sock.sendall(_WAKE_FRAME)
            self._woken = sleep

    def _emit(self, kind: int, flags: int, request_id: int, chain: int, parts: list[Any],
              size: int, fds: list[int]) -> None:
        try:
            seq = self._sent & 0xFFFFFFFF
            ring = self._ring_tx
            if ring is not None and not fds and size <= _RING_MAX and self._ring_put(
                    ring, kind, flags, request_id, chain, seq, parts, size):
                self._publish()
                return
            if self._page_fd >= 0:
                flags |= FLAG_PAGE
                fds = [self._page_fd, *fds]
            header = HEADER.pack(VERSION, kind, flags, request_id, chain, seq, size)
            self._sendmsg([header, *parts], fds)
            self._sent += 1
            if self._page is not None:
                self._words[self._tx] = self._sent  # type: ignore[index]
                if self._page_fd >= 0:  # the other side holds the page now
                    os.close(self._page_fd)
                    self._page_fd = -1
                    if _RING_POSSIBLE:
                        self._ring_tx = memoryview(self._page)[_DIR_OWNER + _CTRL:_DIR_OWNER + _CTRL + _RING]
        except (ValueError, TypeError):
            if self.closed:  # closed by another thread meanwhile: the page is gone
                raise OSError("the extradite channel is closed") from None
            raise

    def _ring_put(self, ring: memoryview, kind: int, flags: int, request_id: int, chain: int,
                  seq: int, parts: list[Any], size: int) -> bool:
        """Copy one frame into our ring, wrapping around if it must; False when it has no room
        (the frame takes the socket). `_publish` makes it visible."""
        tail = self._tx_tail  # we alone write our tail
        need = HEADER_SIZE + size
        pos = tail % _RING
        skip = _RING - pos if _RING - pos < need else 0
        if not self._ring_has_room(skip + need):
            return False
        if skip:
            if skip >= HEADER_SIZE:
                HEADER.pack_into(ring, pos, VERSION, PAD, 0, 0, 0, 0, 0)
            pos = 0
        HEADER.pack_into(ring, pos, VERSION, kind, flags, request_id, chain, seq, size)
        pos += HEADER_SIZE
        for part in parts:
            n = len(part)
            ring[pos:pos + n] = part
            pos += n
        self._tx_tail = tail + skip + need
        return True

    def _sendmsg(self, parts: list[Any], fds: list[int]) -> None:
        sock = self.sock
        if fds:
            anc = [(_SOL_SOCKET, _SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
            sent = sock.sendmsg(parts, anc)
        elif len(parts) == 2 and len(parts[1]) < 4096:
            sock.sendall(parts[0] + bytes(parts[1]))
            return
        else:
            sent = sock.sendmsg(parts)
        total = sum(len(p) if type(p) is bytes else memoryview(p).nbytes for p in parts)
        if sent < total:
            rest = b"".join(bytes(p) if type(p) is not bytes else p for p in parts)[sent:]
            sock.sendall(rest)

    # -- receiving -------------------------------------------------------------------
    def recv(self) -> Frame:
        """Block until the next frame has arrived (from the ring or the socket)."""
        try:
            words = self._words
            while True:
                # `published` is read before the streams are looked at: a frame it counts is
                # then either in the ring already or, if not there, on its way in the socket.
                if words is not None:
                    published = words[self._rx]
                    ring = self._ring_rx
                    if self._end != self._start:  # bytes in the socket buffer: either stream
                        frame = self._take()
                    elif ring is not None and words[self._rx + _TAIL] != self._rx_head:
                        frame = self._ring_take(ring, self._received & 0xFFFFFFFF)  # the usual case
                        if frame is None:  # a later frame heads the ring: ours is in the socket
                            frame = self._socket_take(self._received & 0xFFFFFFFF, True)
                    elif published > self._received:  # not in the ring: its bytes are in the socket
                        frame = self._socket_take(self._received & 0xFFFFFFFF, True)
                    else:  # nothing sent yet (the usual case of a call's first look)
                        self._wait()
                        continue
                else:
                    published = 0
                    frame = self._take()
                if frame is not None:
                    self._received += 1
                    return frame
                if published > self._received:
                    self._recv_more(False)  # published and not in the ring: its bytes are in the socket
                else:
                    self._wait()
        except (ValueError, TypeError):
            if self.closed:  # closed by another thread meanwhile: the page is gone (a closed
                # mmap raises ValueError or TypeError, a released view ValueError)
                raise ChannelEOF() from None
            raise

    def _take(self) -> Frame | None:
        """The frame numbered `_received`, if one stream has it at its head."""
        seq = self._received & 0xFFFFFFFF
        ring = self._ring_rx
        if ring is not None and self._ring_filled():
            frame = self._ring_take(ring, seq)
            if frame is not None:
                return frame
            return self._socket_take(seq, True)  # type: ignore[no-any-return]  # a later frame heads the ring: ours is in the socket
        taken = self._socket_take(seq, False)
        if taken is _LATER:  # a later frame heads the socket: ours is in the ring by now
            taken = self._ring_take(ring, seq) if ring is not None and self._ring_filled() else None
            if taken is None:
                raise _corrupt(f"frame {seq} is missing from both the socket and the ring")
        return taken  # type: ignore[no-any-return]

    def _ring_filled(self) -> bool:
        return bool(self._words[self._rx + _TAIL] != self._rx_head)  # type: ignore[index]

    def _ring_take(self, ring: memoryview, seq: int) -> Frame | None:
        """Our frame from the head of the peer's ring (not empty); None if a later frame is there."""
        head = self._rx_head
        pos = head % _RING
        if _RING - pos < HEADER_SIZE:  # too little room for a header: the writer wrapped around
            head += _RING - pos
            pos = 0
        version, kind, flags, request_id, chain, frame_seq, body_len = HEADER.unpack_from(ring, pos)
        if kind == PAD and version == VERSION:  # the writer wrapped around
            head += _RING - pos
            pos = 0
            version, kind, flags, request_id, chain, frame_seq, body_len = HEADER.unpack_from(ring, 0)
        end = head + HEADER_SIZE + body_len
        if version != VERSION or kind == PAD or body_len > _RING_MAX \
                or end > self._words[self._rx + _TAIL]:  # type: ignore[index]
            raise _corrupt(f"in the shared ring: version byte {version}, kind {kind}, body of {body_len} bytes")
        if frame_seq != seq:
            _check_later(frame_seq, seq)
            if head != self._rx_head:
                self._consume(head)
            return None
        if flags & FLAG_PAGE:
            raise _corrupt("a shared page was announced in the ring")
        start = pos + HEADER_SIZE
        body = ring[start:start + body_len].tobytes()
        self._rx_head = end
        self._words[self._rx + _HEAD] = end  # type: ignore[index]
        return Frame(kind, flags, request_id, chain, body, [], self.maps)

    def _consume(self, head: int) -> None:
        self._rx_head = head
        self._words[self._rx + _HEAD] = head  # type: ignore[index]

    def _socket_take(self, seq: int, must: bool) -> Any:
        """Our frame from the socket buffer (reading more if it is incomplete, or if `must`);
        None when the buffer holds no frame header, _LATER when it holds a later frame."""
        while True:
            if self._end - self._start < HEADER_SIZE:
                if not must:
                    return None
                self._recv_more(False)
                continue
            version, kind, flags, request_id, chain, frame_seq, body_len = HEADER.unpack_from(
                self._rbuf, self._start)
            if version != VERSION:
                raise _corrupt(f"version byte {version}, expected {VERSION}")
            if kind == WAKE:
                self._start += HEADER_SIZE
                if self._start == self._end:
                    self._start = self._end = 0
                continue
            if frame_seq != seq:
                _check_later(frame_seq, seq)
                if must:
                    raise _corrupt(f"frame {frame_seq} arrived where frame {seq} was due")
                return _LATER
            break
        self._start += HEADER_SIZE
        if body_len <= len(self._rbuf):
            while self._end - self._start < body_len:
                self._recv_more(True, body_len)
            start = self._start
            body: bytes | bytearray = bytes(self._rview[start:start + body_len])
            start += body_len
            if start == self._end:  # all consumed (the usual case): the next frame starts at 0
                self._start = self._end = 0
            else:
                self._start = start
        else:
            big = bytearray(body_len)
            have = self._end - self._start
            big[:have] = self._rview[self._start:self._end]
            self._start = self._end = 0
            view = memoryview(big)
            while have < body_len:
                n = self._recv_into(view[have:])
                if n == 0:
                    raise _truncated()
                have += n
            body = big
        return self._frame(kind, flags, request_id, chain, body)

    def _frame(self, kind: int, flags: int, request_id: int, chain: int, body: bytes | bytearray) -> Frame:
        """A frame from the socket: it owns the descriptors that came with it (ring frames have none)."""
        fds = self._fds
        if flags & FLAG_PAGE:
            if not fds:
                raise _corrupt("a shared page was announced without its descriptor")
            self._adopt_page(fds.pop(0))  # a frame's first descriptor; its arenas' follow (see send)
            flags &= ~FLAG_PAGE
        # An arena's descriptor is taken from the front of `fds` when the frame is decoded
        # (ArenaMaps.parse), before the next frame is received.
        return Frame(kind, flags, request_id, chain, body, fds, self.maps)

    def _recv_more(self, mid_frame: bool, need: int = HEADER_SIZE) -> None:
        """One blocking read from the socket into the buffer (room for `need` bytes from `_start`)."""
        if self._start + need > len(self._rbuf) or self._end == len(self._rbuf):
            pending = self._end - self._start
            self._rview[0:pending] = self._rview[self._start:self._end]
            self._start, self._end = 0, pending
        n = self._recv_into(self._rview[self._end:])
        if n == 0:
            if mid_frame or self._end > self._start:
                raise _truncated()
            raise ChannelEOF()
        self._end += n

    def _recv_into(self, view: memoryview) -> int:
        n, anc, _flags, _addr = self.sock.recvmsg_into([view], _ANC_SIZE)
        if anc:
            for level, kind, data in anc:
                if level == _SOL_SOCKET and kind == _SCM_RIGHTS:
                    count = len(data) // 4
                    self._fds.extend(struct.unpack(f"{count}i", data[: count * 4]))
        return int(n)

    def _wait(self) -> None:
        """Nothing to take: poll the peer's `published` word for a while, then sleep on the socket."""
        words = self._words
        if words is None:
            self._recv_more(False)
            return
        word, received = self._rx, self._received
        window = self._spin_ns
        if not window or not _machine_quiet():
            self._sleep(words, word, received)
            return
        start = _now()
        while True:
            _yield()  # a runnable process on this CPU (the peer, say) goes first
            if words[word] > received:
                self._spin_ns = self.spin_cap_ns  # answered within the window: poll as long next time
                return
            if _now() - start >= window:
                break
        self._sleep(words, word, received)
        # The next window is the whole cap when the peer answered within it, else half the
        # last window: a slow peer is polled for ever shorter times.
        if _now() - start <= self.spin_cap_ns:
            self._spin_ns = self.spin_cap_ns
        else:
            self._spin_ns = max(_SPIN_MIN_NS, window >> 1)

    def frame_ready(self) -> bool:
        """Whether the peer has sent a frame that `recv` has not returned yet (no waiting)."""
        if self._end != self._start:
            return True
        words = self._words
        return words is not None and words[self._rx] > self._received

    def peer_asleep(self) -> bool:
        """Whether the peer sleeps on its socket now: it has taken every frame sent to it
        (diagnostics and tests; False until the peer has mapped the page)."""
        words = self._words
        return words is not None and words[self._tx + _SLEEPING] != 0

    def poll_next_wait_fully(self) -> None:
        """The next wait is for a frame the peer is finishing: poll the whole window (the cap,
        still off while the machine is busy) before sleeping, not the shrunk one."""
        self._spin_ns = self.spin_cap_ns

    def _sleep(self, words: memoryview, word: int, received: int) -> None:
        """Block on the socket until the peer sends or publishes a frame (no lost wake-up)."""
        if self._ring_rx is None:  # the peer only uses the socket
            self._recv_more(False)
            return
        self._sleeps += 1
        words[self._rx + _SLEEPING] = self._sleeps
        try:
            _fence(self._rx_fence)
            if words[word] <= received:
                self._recv_more(False)
        finally:
            if not self.closed:
                words[self._rx + _SLEEPING] = 0

    def _adopt_page(self, fd: int) -> None:
        """Map the page the other side sent (see module docstring)."""
        try:
            if self._page is None:  # adopted even when this side never polls: the peer reads our word
                import mmap

                self._page = page = mmap.mmap(fd, _PAGE_SIZE)
                self._words = words = memoryview(page).cast("Q")
                self._tx, self._rx = _DIR_OTHER >> 3, _DIR_OWNER >> 3
                words[self._tx] = self._sent
                if _RING_POSSIBLE:
                    view = memoryview(page)
                    self._ring_tx = view[_DIR_OTHER + _CTRL:_DIR_OTHER + _CTRL + _RING]
                    self._ring_rx = view[_DIR_OWNER + _CTRL:_DIR_OWNER + _CTRL + _RING]
        finally:
            os.close(fd)

    def forget_in_fork(self) -> None:
        """In a forked copy of this process: drop the descriptor without shutting the socket down."""
        self.closed = True
        self._ring_tx = self._ring_rx = self._words = None  # shared with the real peer: untouched here
        self._page = None
        try:
            self.sock.close()
        except OSError:
            pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            # shutdown first: it wakes a thread blocked in recv on this socket, close does not.
            self.sock.shutdown(2)  # SHUT_RDWR
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.pool.close()
        self.maps.close()
        if self._page_fd >= 0:
            os.close(self._page_fd)
            self._page_fd = -1
        for fd in self._fds:  # received for frames that were never decoded
            os.close(fd)
        self._fds.clear()
        self._drop_page()

    def _drop_page(self) -> None:
        """Unmap the shared page (a thread still inside `recv` or `send` then fails with
        ValueError, which those turn into the error of a closed channel)."""
        page, tx, rx, words = self._page, self._ring_tx, self._ring_rx, self._words
        self._ring_tx = self._ring_rx = self._words = None
        self._page = None
        for view in (tx, rx, words):
            if view is not None:
                view.release()
        if page is not None:
            try:
                page.close()
            except BufferError:  # pragma: no cover - a view is in use right now: unmapped when it goes
                pass


def _fence(lock: _thread.LockType) -> None:
    """A full memory barrier: acquiring and releasing a free lock are atomic read-modify-writes."""
    lock.acquire()
    lock.release()


def _check_later(frame_seq: int, seq: int) -> None:
    """A frame other than the one due must come after it (sequence numbers wrap at 2**32)."""
    if (frame_seq - seq) & 0xFFFFFFFF >= 0x80000000:
        raise _corrupt(f"frame {frame_seq} arrived after frame {seq} was due (replayed or stale)")


def _corrupt(what: str) -> ExtraditeProtocolError:
    return ExtraditeProtocolError(
        f"corrupt frame: {what}; both sides must run the same extradite and nothing else may "
        "write to the channel")
