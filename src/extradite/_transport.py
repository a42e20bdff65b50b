"""Frames over a stream socket, with big buffers detoured through shared memory.

    send:  BodyWriter (pickler's file) -> inline parts + big chunks
           -> big chunks copied into an arena -> one sendmsg(header, table, inline, fds)
    recv:  recvmsg_into a reusable buffer -> header -> body (+ fds) -> BodyReader
           (the unpickler's file; big chunks are read straight out of the arena)

A clean EOF between frames raises `ChannelEOF`; an EOF inside a frame, a bad
version byte or an impossible length raise `ExtraditeProtocolError`.

Low-latency wait: waking a process that sleeps on another CPU costs 30-40 us per
round trip on a small VM, more than the rest of a call. So before a blocking read
the reader polls, for a short window, a *sequence word* in a page of shared memory
(a memfd the parent creates and sends, as SCM_RIGHTS, with its first frame):

    page offset 0    u64  frames the page's owner (the parent) has sent
    page offset 64   u64  frames the other side has sent (own cache line)

A writer bumps its word after each sendmsg has returned, so a word above the
number of frames the reader has parsed means a whole frame is waiting in the
socket. Polling costs no syscall but a sched_yield() per round, so a runnable
process on this CPU (the peer, when both share one) goes first. Nothing can be
lost: whatever the word says, the reader ends in an ordinary blocking recvmsg,
which returns at once when data is there and sleeps when it is not.

The window adapts per channel: after a wait that ended within the cap it becomes
twice that wait; after a longer one it halves, so a peer that is busy for long
costs ever less polling (never more than the cap of CPU per wait). Polling is
also skipped while the machine is busy: every 50 ms a waiting side reads
/proc/loadavg and polls only while the runnable tasks do not outnumber the CPUs
(a poller competing with CPU-bound processes steals the time its peer needs).
It is off when this process may run on one CPU only.

Polling is off by default: `EXTRADITE_SPIN_US=N` (read when this module is
imported, inherited by the child) turns it on with a cap of N us (200 is a good
value). On the 2-CPU development VM a tiny call took 19 us with it against 54 us
without when the CPUs were otherwise idle, the same (noisy, 30-40 us) beside two
CPU-bound processes, but 35 us against 32 us beside one.
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
from ._wire import FLAG_PAGE, FLAG_SHM, HEADER, HEADER_SIZE, MAX_BODY, VERSION

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
_SPIN_DEFAULT_US = 0  # off: with one CPU-bound process beside the pair it measured 35 us against 32 us
_yield = getattr(os, "sched_yield", lambda: None)
_now = time.perf_counter_ns
_WORD = struct.Struct("<Q")
_PAGE_SIZE = 4096
_OWNER_WORD = 0   # offsets in the polling page (see module docstring)
_OTHER_WORD = 64


def _spin_cap_ns() -> int:
    """The polling window's upper bound for this process (0: never poll)."""
    text = os.environ.get("EXTRADITE_SPIN_US")
    cap = _SPIN_DEFAULT_US * 1000
    if text is not None:
        try:
            cap = max(0, int(float(text) * 1000))
        except ValueError:
            pass
    return cap if _POLL_POSSIBLE else 0


_getaffinity = getattr(os, "sched_getaffinity", None)
# A polling page is set up whenever polling could help (it lets either side turn polling on).
_POLL_POSSIBLE = hasattr(os, "memfd_create") and (
    len(_getaffinity(0)) if _getaffinity is not None else (os.cpu_count() or 1)) > 1
_SPIN_MAX_NS = _spin_cap_ns()
_CPUS = os.cpu_count() or 1
_LOAD_EVERY_NS = 50_000_000
_load = [0, 1]  # [time of the last /proc/loadavg sample, polling allowed]


def _machine_quiet() -> bool:
    """True while runnable tasks do not outnumber the CPUs (sampled every 50 ms, for all channels)."""
    now = _now()
    if now - _load[0] < _LOAD_EVERY_NS:
        return bool(_load[1])
    _load[0] = now
    try:
        fd = os.open("/proc/loadavg", os.O_RDONLY)
        try:
            text = os.read(fd, 128)
        finally:
            os.close(fd)
        running = int(text.split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        running = 0  # no loadavg: rely on the adaptive window alone
    _load[1] = running <= _CPUS
    return bool(_load[1])


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


class BodyReader(io.RawIOBase):
    """File object for an unpickler over inline bytes with shared-memory chunks spliced in."""

    def __init__(self, inline: memoryview, segments: list[tuple[int, memoryview, int]]) -> None:
        super().__init__()
        pieces: list[memoryview] = []
        last = 0
        for _, view, pos in segments:
            if pos > last:
                pieces.append(inline[last:pos])
            pieces.append(view)
            last = pos
        if last < len(inline):
            pieces.append(inline[last:])
        self._pieces = pieces
        self._index = 0
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        dest = memoryview(buffer).cast("B")
        filled = 0
        want = len(dest)
        while filled < want and self._index < len(self._pieces):
            piece = self._pieces[self._index]
            take = min(want - filled, len(piece) - self._offset)
            dest[filled:filled + take] = piece[self._offset:self._offset + take]
            filled += take
            self._offset += take
            if self._offset == len(piece):
                self._index += 1
                self._offset = 0
        return filled

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = sum(len(p) for p in self._pieces[self._index:]) - self._offset
        if self._index < len(self._pieces):
            piece = self._pieces[self._index]
            start = self._offset
            end = start + size
            if end <= len(piece):  # the common case (a pickle frame inside one piece): one copy
                if end == len(piece):
                    self._index += 1
                    self._offset = 0
                else:
                    self._offset = end
                return piece[start:end].tobytes()
        out = bytearray(size)
        got = self.readinto(out)
        if got < size:
            del out[got:]
        return bytes(out)

    def readline(self, size: int | None = -1) -> bytes:
        out = bytearray()
        while self._index < len(self._pieces):
            chunk = self.read(1)
            out += chunk
            if chunk == b"\n" or (size is not None and 0 <= size <= len(out)):
                break
        return bytes(out)


class Frame:
    """One received frame; `open()` gives the unpickler's file, `done()` frees its arenas."""

    __slots__ = ("kind", "flags", "request_id", "chain", "body", "fds", "_segments", "_maps")

    def __init__(self, kind: int, flags: int, request_id: int, chain: int,
                 body: memoryview, fds: list[int], maps: ArenaMaps) -> None:
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
            whole = self.body.obj
            if type(whole) is bytes and len(whole) == self.body.nbytes:
                return io.BytesIO(whole)  # BytesIO shares a bytes object until written to: no copy
            return io.BytesIO(self.body)
        segments, table_len = self._maps.parse(self.body, self.fds)
        self._segments = segments
        return BodyReader(self.body[table_len:], segments)

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
        self._sent = 0       # frames sent, published in this side's sequence word
        self._received = 0   # frames parsed
        self._page: mmap.mmap | None = None
        self._page_fd = -1   # the owner's page descriptor, until it rides on the first frame
        self._my_word = _OWNER_WORD
        self._peer_word = _OTHER_WORD
        if page_owner and _POLL_POSSIBLE:
            import mmap

            fd = os.memfd_create("extradite-seq", os.MFD_CLOEXEC)
            try:
                os.ftruncate(fd, _PAGE_SIZE)
                self._page = mmap.mmap(fd, _PAGE_SIZE)
            except BaseException:
                os.close(fd)
                raise
            self._page_fd = fd

    # -- sending ---------------------------------------------------------------------
    def send(self, kind: int, request_id: int, chain: int, writer: BodyWriter) -> None:
        """Send one frame built by `writer`, then empty it. Caller holds `send_lock`.

        Emptying matters: a reused writer must not keep the caller's buffers (or
        exports of them, which would stop a bytearray from resizing) alive.
        """
        parts, big, size = writer.parts, writer.big, writer.size
        writer.parts, writer.big, writer.size = [], [], 0
        fds: list[int] = []
        flags = 0
        arena = None
        if big:
            arena = self.pool.acquire(sum(v.nbytes for _, v in big))
            offset = 64
            segments = []
            for pos, view in big:
                n = view.nbytes
                arena.view[offset:offset + n] = view
                segments.append((offset, n, pos))
                offset += n
            table, fds = self.pool.build_table(arena, segments)
            parts = [table, *parts]
            size += len(table)
            flags = FLAG_SHM
        if size > MAX_BODY:
            raise ExtraditeProtocolError(
                f"a message of {size} bytes exceeds the frame limit of {MAX_BODY} bytes; "
                "send large data as bytes, bytearray or buffers (they travel through shared memory)")
        if self._page_fd >= 0:
            flags |= FLAG_PAGE
            fds = [*fds, self._page_fd]
        header = HEADER.pack(VERSION, kind, flags, request_id, chain, size)
        self._sendmsg([header, *parts], fds)
        self._sent_one()
        if arena is not None:
            self.pool.after_send(arena)

    def _sent_one(self) -> None:
        """A whole frame is in the socket: publish it in the sequence word."""
        self._sent += 1
        if self._page is not None:
            _WORD.pack_into(self._page, self._my_word, self._sent)
        if self._page_fd >= 0:  # the other side holds the page now
            os.close(self._page_fd)
            self._page_fd = -1

    def send_bytes(self, kind: int, request_id: int, chain: int, body: bytes) -> None:
        """Send a frame whose body is already encoded. Caller holds `send_lock`."""
        if self._page_fd >= 0:
            self._sendmsg([HEADER.pack(VERSION, kind, FLAG_PAGE, request_id, chain, len(body)), body],
                          [self._page_fd])
        else:
            self.sock.sendall(HEADER.pack(VERSION, kind, 0, request_id, chain, len(body)) + body)
        self._sent_one()

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
    def _recv_into(self, view: memoryview) -> int:
        window = self._spin_ns
        page = self._page
        if window and page is not None and _WORD.unpack_from(page, self._peer_word)[0] <= self._received \
                and _machine_quiet():
            # Nothing complete in the socket yet: poll the peer's sequence word for up to `window`.
            word, received, unpack = self._peer_word, self._received, _WORD.unpack_from
            start = _now()
            while True:
                _yield()  # a runnable process on this CPU (the peer, say) goes first
                if unpack(page, word)[0] > received:
                    break
                if _now() - start >= window:
                    break
            n, anc, _flags, _addr = self.sock.recvmsg_into([view], _ANC_SIZE)
            # The next window is the whole cap when the peer answered within it, else half
            # the last window: a slow peer is polled for ever shorter times.
            if _now() - start <= self.spin_cap_ns:
                self._spin_ns = self.spin_cap_ns
            else:
                self._spin_ns = max(_SPIN_MIN_NS, window >> 1)
        else:
            n, anc, _flags, _addr = self.sock.recvmsg_into([view], _ANC_SIZE)
        if anc:
            self._take_fds(anc)
        return int(n)

    def _take_fds(self, anc: list[tuple[int, int, bytes]]) -> None:
        for level, kind, data in anc:
            if level == _SOL_SOCKET and kind == _SCM_RIGHTS:
                count = len(data) // 4
                self._fds.extend(struct.unpack(f"{count}i", data[: count * 4]))

    def _fill(self, need: int, mid_frame: bool) -> None:
        """Make at least `need` bytes available from `_start` (need <= buffer size)."""
        if self._start + need > len(self._rbuf):
            pending = self._end - self._start
            self._rview[0:pending] = self._rview[self._start:self._end]
            self._start, self._end = 0, pending
        while self._end - self._start < need:
            n = self._recv_into(self._rview[self._end:])
            if n == 0:
                if mid_frame or self._end > self._start:
                    raise _truncated()
                raise ChannelEOF()
            self._end += n

    def recv(self) -> Frame:
        """Block until one whole frame has arrived."""
        if self._end - self._start < HEADER_SIZE:
            if self._end == 0 and not self._spin_ns:  # empty buffer, no polling: one blocking read (inlined)
                n, anc, _flags, _addr = self.sock.recvmsg_into([self._rview], _ANC_SIZE)
                if anc:
                    self._take_fds(anc)
                self._end = n
            if self._end - self._start < HEADER_SIZE:
                self._fill(HEADER_SIZE, False)
        version, kind, flags, request_id, chain, body_len = HEADER.unpack_from(self._rbuf, self._start)
        if version != VERSION:
            raise ExtraditeProtocolError(
                f"corrupt frame: version byte {version}, expected {VERSION}; "
                "both sides must run the same extradite and nothing else may write to the channel")
        self._start += HEADER_SIZE
        if body_len <= len(self._rbuf):
            if self._end - self._start < body_len:
                self._fill(body_len, True)
            start = self._start
            body = memoryview(bytes(self._rview[start:start + body_len]))
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
            body = memoryview(big)
        self._received += 1
        fds: list[int] = []
        if flags:
            if flags & FLAG_PAGE:
                self._adopt_page(self._fds.pop() if self._fds else -1)
                flags &= ~FLAG_PAGE
            if flags & FLAG_SHM:
                fds, self._fds = self._fds, []
        return Frame(kind, flags, request_id, chain, body, fds, self.maps)

    def _adopt_page(self, fd: int) -> None:
        """Map the polling page the other side sent (see module docstring)."""
        if fd < 0:
            raise ExtraditeProtocolError("corrupt frame: a polling page was announced without its descriptor")
        try:
            if self._page is None:  # adopted even when this side never polls: the peer reads our word
                import mmap

                self._page = mmap.mmap(fd, _PAGE_SIZE)
                self._my_word, self._peer_word = _OTHER_WORD, _OWNER_WORD
                _WORD.pack_into(self._page, self._my_word, self._sent)
        finally:
            os.close(fd)

    def forget_in_fork(self) -> None:
        """In a forked copy of this process: drop the descriptor without shutting the socket down."""
        self.closed = True
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
        if self._page is not None:
            self._page.close()
            self._page = None
