"""Frames over a stream socket and the shared ring, big buffers through shared memory.

    send:  BodyWriter (pickler's file, see _bodyfile) -> inline parts + big chunks
           -> big chunks copied into an arena (see _shm)
           -> small frame without descriptors: copied into the shared ring, no syscall (see _ring)
           -> otherwise: one sendmsg(header, table, inline, fds) on the socket
    recv:  the frame numbered `received` (see `seq` in _wire), from the ring or from the
           socket (recvmsg_into a reusable buffer) -> Frame.open() -> BodyReader (the
           unpickler's file; big chunks are read straight out of the arena)
    wait:  nothing to take: poll the page for a while (see _polling), then sleep on the socket

A clean EOF between frames raises `ChannelEOF`; an EOF inside a frame, a bad
version byte, an impossible length or an out-of-order frame raise
`ExtraditeProtocolError`.
"""

from __future__ import annotations

import _thread
import os
import _struct as struct  # `struct` imports this and nothing more: one module less per child
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    import _socket
    from typing import Any

from ._bodyfile import BodyWriter, Frame
from ._errors import ExtraditeProtocolError
from . import _polling
from ._polling import SPIN_MIN_NS, machine_quiet, now, yield_cpu
from ._ring import (
    CTRL, DIR_OWNER, LENT, RING, RING_MAX, RING_POSSIBLE, TAIL, SharedRing, check_later, corrupt,
)
from ._shm import MIN_ARENA, ArenaMaps, ArenaPool, prefault_steps
from ._wire import FLAG_PAGE, FLAG_SHM, HEADER, HEADER_SIZE, MAX_BODY, VERSION, WAKE

__all__ = ["BodyWriter", "Channel", "ChannelEOF", "Frame"]

_RECV_BUFFER_SIZE = 256 * 1024
_MAX_FDS = 16
# A peer can announce any length and pass any descriptors: both are capped so a broken or
# hostile peer cannot make this side allocate without bound or run out of descriptors.
MAX_FRAME = 1 << 30  # default cap on a frame's body (shared-memory buffers are not counted)
MAX_HELD_FDS = 64    # received descriptors not yet taken by their frames
# _socket loads with the first channel, so that `import extradite` stays cheap.
_ANCILLARY_SIZE = 0
_SOL_SOCKET = -1
_SCM_RIGHTS = -1
_RECV_FLAGS = 0  # received descriptors are close-on-exec at once: a program the target runs gets none


def _socket_constants() -> None:
    global _ANCILLARY_SIZE, _SOL_SOCKET, _SCM_RIGHTS, _RECV_FLAGS
    import _socket

    _SOL_SOCKET, _SCM_RIGHTS = _socket.SOL_SOCKET, _socket.SCM_RIGHTS
    _RECV_FLAGS = getattr(_socket, "MSG_CMSG_CLOEXEC", 0)
    _ANCILLARY_SIZE = _socket.CMSG_SPACE(_MAX_FDS * 4)


_NO_FDS: list[int] = []
_LATER = object()  # `_socket_take`: a later frame heads the socket


def _truncated() -> ExtraditeProtocolError:
    return ExtraditeProtocolError(
        "the channel ended in the middle of a frame (truncated frame); the other side died or wrote garbage")


class ChannelEOF(Exception):
    """The other side closed the channel between two frames."""


class Channel(SharedRing):
    """One end of the socket pair. `send` is thread-safe; `recv` has one caller at a time.

    The shared page's part of the channel (its rings, publishing, sleeping) is `SharedRing`.
    `trusts_peer`: the peer is the parent (see `ArenaMaps.check_seals`).
    """

    spin_cap_ns: int  # polling window bound for this channel (0: never poll), set by `attach`
    _spin_ns: int  # current polling window (see _polling)

    def __init__(self, sock: _socket.socket, *, page_owner: bool = False, trusts_peer: bool = False) -> None:
        if not _ANCILLARY_SIZE:
            _socket_constants()
        self.send_lock = _thread.allocate_lock()
        self.pool = ArenaPool()
        self.maps = ArenaMaps(check_seals=not trusts_peer)
        self.idle: list[Any] = []  # iterators of work for this side's waits, a step at a time (`_do_idle`)
        self._lent_fd = -1   # the arena lent to the peer, until it rides on the first frame
        self._recv_buffer = bytearray(_RECV_BUFFER_SIZE)
        self._recv_view = memoryview(self._recv_buffer)
        self._start = 0
        self._end = 0
        self._fds: list[int] = []
        self.attach(sock)
        self.closed = False
        self.max_frame = MAX_FRAME  # a longer announced body is refused before anything is allocated
        self._sent = 0       # frames sent: the next frame's seq
        self._received = 0   # frames taken: the seq of the frame `recv` returns next
        self._init_page(page_owner)
        self._page_owner = page_owner
        if self._page_fd >= 0 and RING_POSSIBLE:
            self._prepare_arenas()

    def _prepare_arenas(self) -> None:
        """The page owner's first arena and the one it lends the peer (see _shm), faulted in
        during this side's first wait: the child is starting then, and this side is idle."""
        own = self.pool.reserve()
        lent = self.maps.lend()
        self._lent_fd = lent.fd
        lent.fd = -1  # this channel closes it once sent
        self._words[(DIR_OWNER >> 3) + LENT] = MIN_ARENA  # type: ignore[index]
        self.idle += [prefault_steps(own), prefault_steps(lent)]

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
            try:
                arena, table, fds = self.pool.place(big)
            except OSError as exc:
                import errno

                if exc.errno != errno.ENOMEM:
                    raise
                # nothing is sent yet: the caller gets MemoryError (under a memory limit, the
                # child answers it as the call's error) and the channel stays usable
                raise MemoryError(f"no memory to map the shared memory for this message ({exc.strerror})") from exc
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
        if ring is not None and need <= RING_MAX + HEADER_SIZE:
            tail = self._tx_tail
            pos = tail % RING
            if pos + need <= RING and self._ring_has_room(need):
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

    def _emit(self, kind: int, flags: int, request_id: int, chain: int, parts: list[Any],
              size: int, fds: list[int]) -> None:
        try:
            seq = self._sent & 0xFFFFFFFF
            ring = self._ring_tx
            if ring is not None and not fds and size <= RING_MAX and self._ring_put(
                    ring, kind, flags, request_id, chain, seq, parts, size):
                self._publish()
                return
            if self._page_fd >= 0:
                flags |= FLAG_PAGE
                fds = [self._page_fd, *fds] if self._lent_fd < 0 else [self._page_fd, self._lent_fd, *fds]
            header = HEADER.pack(VERSION, kind, flags, request_id, chain, seq, size)
            self._sendmsg([header, *parts], fds)
            self._sent += 1
            if self._page is not None:
                self._words[self._tx] = self._sent  # type: ignore[index]
                if self._page_fd >= 0:  # the other side holds the page now
                    os.close(self._page_fd)
                    self._page_fd = -1
                    if self._lent_fd >= 0:
                        os.close(self._lent_fd)
                        self._lent_fd = -1
                    if RING_POSSIBLE:
                        self._ring_tx = memoryview(self._page)[DIR_OWNER + CTRL:DIR_OWNER + CTRL + RING]
        except (ValueError, TypeError):
            if self.closed:  # closed by another thread meanwhile: the page is gone
                raise OSError("the extradite channel is closed") from None
            raise

    def _sendmsg(self, parts: list[Any], fds: list[int]) -> None:
        sock = self.sock
        if fds:
            ancillary = [(_SOL_SOCKET, _SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
            sent = sock.sendmsg(parts, ancillary)
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
                    elif ring is not None and words[self._rx + TAIL] != self._rx_head:
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
                raise corrupt(f"frame {seq} is missing from both the socket and the ring")
        return taken  # type: ignore[no-any-return]

    def _socket_take(self, seq: int, in_socket: bool) -> Any:
        """Our frame from the socket buffer, reading more if it is incomplete (or, when the frame
        is known to be `in_socket`, until it arrives); None when the buffer holds no frame
        header and it may be in the ring, _LATER when the buffer holds a later frame."""
        while True:
            if self._end - self._start < HEADER_SIZE:
                if not in_socket:
                    return None
                self._recv_more(False)
                continue
            version, kind, flags, request_id, chain, frame_seq, body_len = HEADER.unpack_from(
                self._recv_buffer, self._start)
            if version != VERSION:
                raise corrupt(f"version byte {version}, expected {VERSION}")
            if kind == WAKE:
                self._start += HEADER_SIZE
                if self._start == self._end:
                    self._start = self._end = 0
                continue
            if frame_seq != seq:
                check_later(frame_seq, seq)
                if in_socket:
                    raise corrupt(f"frame {frame_seq} arrived where frame {seq} was due")
                return _LATER
            break
        if body_len > self.max_frame:
            raise corrupt(f"a frame announced {body_len} bytes, over the limit of {self.max_frame} bytes")
        self._start += HEADER_SIZE
        if body_len <= len(self._recv_buffer):
            while self._end - self._start < body_len:
                self._recv_more(True, body_len)
            start = self._start
            body: bytes | bytearray = bytes(self._recv_view[start:start + body_len])
            start += body_len
            if start == self._end:  # all consumed (the usual case): the next frame starts at 0
                self._start = self._end = 0
            else:
                self._start = start
        else:
            big = bytearray(body_len)
            have = self._end - self._start
            big[:have] = self._recv_view[self._start:self._end]
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
                raise corrupt("a shared page was announced without its descriptor")
            self._adopt_page(fds.pop(0))  # a frame's first descriptor; its arenas' follow (see send)
            flags &= ~FLAG_PAGE
            lent = self._words[(DIR_OWNER >> 3) + LENT] if self._words is not None else 0
            if lent and not self._page_owner:  # the owner's lent arena follows the page
                if not fds:
                    raise corrupt("a lent shared-memory arena was announced without its descriptor")
                arena = self.pool.adopt_lent(fds.pop(0), lent)
                # its pages exist; mapping them here costs a fault each, unless done in one go
                self.idle.append(prefault_steps(arena))
        # An arena's descriptor is taken from the front of `fds` when the frame is decoded
        # (ArenaMaps.parse), before the next frame is received.
        return Frame(kind, flags, request_id, chain, body, fds, self.maps)

    def _recv_more(self, mid_frame: bool, need: int = HEADER_SIZE) -> None:
        """One blocking read from the socket into the buffer (room for `need` bytes from `_start`)."""
        if self._start + need > len(self._recv_buffer) or self._end == len(self._recv_buffer):
            pending = self._end - self._start
            self._recv_view[0:pending] = self._recv_view[self._start:self._end]
            self._start, self._end = 0, pending
        n = self._recv_into(self._recv_view[self._end:])
        if n == 0:
            if mid_frame or self._end > self._start:
                raise _truncated()
            raise ChannelEOF()
        self._end += n

    def _recv_into(self, view: memoryview, nowait: int = 0) -> int:
        n, ancillary, _flags, _addr = self.sock.recvmsg_into([view], _ANCILLARY_SIZE, _RECV_FLAGS | nowait)
        if ancillary:
            for level, kind, data in ancillary:
                if level == _SOL_SOCKET and kind == _SCM_RIGHTS:
                    count = len(data) // 4
                    self._fds.extend(struct.unpack(f"{count}i", data[: count * 4]))
            if len(self._fds) > MAX_HELD_FDS:
                for fd in self._fds:  # closed at once: a flood must not exhaust this process
                    os.close(fd)
                self._fds.clear()
                raise corrupt(f"the other side passed more than {MAX_HELD_FDS} descriptors not yet used by frames")
        return int(n)

    def _wait(self) -> None:
        """Nothing to take: poll the peer's `published` word for a while, then sleep on the socket."""
        if self.idle:
            self._do_idle()
        words = self._words
        if words is None:
            self._recv_more(False)
            return
        word, received = self._rx, self._received
        window = self._spin_ns
        if not window or not machine_quiet():
            self._sleep(words, word, received)
            return
        start = now()
        while True:
            yield_cpu()  # a runnable process on this CPU (the peer, say) goes first
            if words[word] > received:
                self._spin_ns = self.spin_cap_ns  # answered within the window: poll as long next time
                return
            if now() - start >= window:
                break
        self._sleep(words, word, received)
        # The next window is the whole cap when the peer answered within it, else half the
        # last window: a slow peer is polled for ever shorter times.
        if now() - start <= self.spin_cap_ns:
            self._spin_ns = self.spin_cap_ns
        else:
            self._spin_ns = max(SPIN_MIN_NS, window >> 1)

    def _do_idle(self) -> None:
        """Steps of the idle work until it is done or the peer has sent a frame (which is
        taken first: the rest waits for the next wait), so no frame waits for more than a step."""
        idle = self.idle
        while idle:
            try:
                next(idle[0])
            except StopIteration:
                idle.pop(0)
            except Exception:  # an optimisation that failed: the call itself goes on
                idle.pop(0)
            if self.frame_ready():
                return

    # -- reading from an event loop (see _aio) -------------------------------------------
    def fill_nowait(self) -> bool:
        """Move what the socket holds now into the buffer, never blocking; False at its end.

        A sender blocked on a full socket goes on; a frame bigger than the buffer is read to
        its end by `recv` once it is published (its sender finished writing it).
        """
        import _socket

        while True:
            if self._end == len(self._recv_buffer):
                if self._start == 0:
                    return True
                pending = self._end - self._start
                self._recv_view[0:pending] = self._recv_view[self._start:self._end]
                self._start, self._end = 0, pending
            try:
                n = self._recv_into(self._recv_view[self._end:], _socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return True
            if n == 0:
                return False
            self._end += n

    def arrived(self) -> bool:
        """Whether `recv` returns at once: the next frame is whole here (WAKE frames are skipped)."""
        buffer = self._recv_buffer
        while self._end - self._start >= HEADER_SIZE and buffer[self._start] == VERSION \
                and buffer[self._start + 1] == WAKE:
            self._start += HEADER_SIZE
        if self._start == self._end:
            self._start = self._end = 0
        words = self._words
        if words is not None:  # a published frame is whole: in the ring, or sent to the socket
            return bool(words[self._rx] > self._received)
        if self._end - self._start < HEADER_SIZE:
            return False
        body_len = HEADER.unpack_from(buffer, self._start)[6]
        return bool(self._end - self._start >= HEADER_SIZE + body_len)

    def frame_ready(self) -> bool:
        """Whether the peer has sent a frame that `recv` has not returned yet (no waiting)."""
        if self._end != self._start:
            return True
        words = self._words
        return words is not None and words[self._rx] > self._received

    def poll_next_wait_fully(self) -> None:
        """The next wait is for a frame the peer is finishing: poll the whole window (the cap,
        still off while the machine is busy) before sleeping, not the shrunk one."""
        self._spin_ns = self.spin_cap_ns

    def forget_in_fork(self) -> None:
        """In a forked copy of this process: drop the descriptor without shutting the socket down."""
        self.closed = True
        self._ring_tx = self._ring_rx = self._words = None  # shared with the real peer: untouched here
        self._page = None
        try:
            self.sock.close()
        except OSError:
            pass

    def attach(self, sock: _socket.socket) -> None:
        """Take the channel's socket, and the polling cap of now (0: never poll): a channel built
        ahead of its session (a fork server's spare, `_child.new_session`) gets both only then,
        once the session's environment (EXTRADITE_SPIN_US) is this process's."""
        self.sock = sock
        self.spin_cap_ns = _polling.SPIN_MAX_NS
        self._spin_ns = self.spin_cap_ns // 4

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
        if self._lent_fd >= 0:
            os.close(self._lent_fd)
            self._lent_fd = -1
        self.idle = []
        for fd in self._fds:  # received for frames that were never decoded
            os.close(fd)
        self._fds.clear()
        self._drop_page()
