"""The shared page: a ring per direction, so that small frames need no system call.

A system call, and above all waking a process that sleeps on another CPU, costs more
than the rest of a small call. So the parent makes one memfd (sent as SCM_RIGHTS with
its first frame) holding, for each direction, a control block and a single-producer
single-consumer ring:

    +0    u64  published  frames the writer has sent so far (socket or ring)
    +8    u64  tail       ring bytes written   (writer; same cache line as `published`)
    +128  u64  head       ring bytes consumed  (reader)
    +64   u64  lent       (the owner's direction only) the size of the arena the owner lends the
                          other side (see _shm), whose descriptor follows the page's; 0: none
    +192  u64  sleeping   the number of the reader's current sleep on the socket, 0 while awake
    +256  ring of RING bytes: whole frames (header + body), a PAD header or less than a
          header's room at the end means "continue at the start"

A frame of at most RING_MAX bytes with no descriptors goes through the ring when
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
serves polling, see _polling). A frame sent on the socket wakes a sleeping reader by itself.
"""

from __future__ import annotations

import _thread
import os
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    import _socket
    import mmap
    from typing import Any

    from ._shm import ArenaMaps

from ._bodyfile import Frame
from ._errors import ExtraditeProtocolError
from ._wire import FLAG_PAGE, HEADER, HEADER_SIZE, PAD, VERSION, WAKE

CTRL = 256
RING = 64 * 1024
RING_MAX = 8 * 1024 - HEADER_SIZE  # bodies up to this size may take the ring
DIR_OWNER = 0             # the page owner's (parent's) direction
DIR_OTHER = CTRL + RING   # the other side's direction
PAGE_SIZE = 2 * (CTRL + RING)
# The control words are read and written through a memoryview cast to native "Q": one aligned
# 8-byte load or store each. Never struct.pack_into: it zeroes its destination before packing
# (`s_pack_internal` memsets), so the other side could read a passing 0, and "<Q" also
# writes byte by byte. Offsets in words, from a direction's first word (see module docstring):
TAIL, LENT, HEAD, SLEEPING = 1, 8, 16, 24  # `published` is word 0; `tail` shares its cache line
# Request ids the writer asks the reader to interrupt (0: free slot), read by the reader's SIGINT
# handler (`_deadline`): a signal says "look", the slots say which request.
CANCEL_SLOTS = range(26, 30)
WAKE_FRAME = HEADER.pack(VERSION, WAKE, 0, 0, 0, 0, 0)
PAGE_POSSIBLE = hasattr(os, "memfd_create")
# Ring frames rely on x86-64's ordering of plain stores (see module docstring).
RING_POSSIBLE = PAGE_POSSIBLE and os.uname().machine in ("x86_64", "AMD64")


class SharedRing:
    """A channel's side of the shared page: its ring, the peer's ring and the wake-up words.

    `Channel` derives from this class, so that the hot paths reach the page state as
    plain attributes of the channel; the channel provides the socket, the frame count
    and the socket reads declared below.
    """

    if TYPE_CHECKING:
        sock: _socket.socket
        maps: ArenaMaps
        closed: bool
        _sent: int
        _received: int

        def _recv_more(self, mid_frame: bool, need: int = HEADER_SIZE) -> None: ...

    def _init_page(self, page_owner: bool) -> None:
        """No page yet; the owner makes it (the other side maps it from the first frame)."""
        self._sleeps = 0     # sleeps on the socket so far (the number the peer reads, see _sleep)
        self._woken = 0      # the peer's last sleep that a WAKE frame was sent for
        self._page: mmap.mmap | None = None
        self._words: memoryview | None = None  # the page as native u64 words (see TAIL)
        self._ring_tx: memoryview | None = None  # our ring, once the peer maps the page
        self._ring_rx: memoryview | None = None  # the peer's ring
        self._page_fd = -1   # the owner's page descriptor, until it rides on the first frame
        self._tx = DIR_OWNER >> 3  # first words of the control blocks: our direction, the peer's
        self._rx = DIR_OTHER >> 3
        self._rx_head = 0    # bytes consumed from the peer's ring (we alone write its head)
        self._tx_tail = 0    # bytes written to our ring (we alone write its tail)
        self._tx_head_seen = 0  # the peer's head of our ring when we last read it (it only grows)
        self._tx_fence = _thread.allocate_lock()  # see `fence`; one per role: never contended
        self._rx_fence = _thread.allocate_lock()
        if page_owner and PAGE_POSSIBLE:
            import mmap

            fd = os.memfd_create("extradite-ring", os.MFD_CLOEXEC)
            try:
                os.ftruncate(fd, PAGE_SIZE)
                self._page = mmap.mmap(fd, PAGE_SIZE)
                self._words = memoryview(self._page).cast("Q")
            except BaseException:
                os.close(fd)
                raise
            self._page_fd = fd
            if RING_POSSIBLE:
                self._ring_rx = memoryview(self._page)[DIR_OTHER + CTRL:DIR_OTHER + CTRL + RING]

    # -- writing our ring ------------------------------------------------------------
    def _ring_has_room(self, need: int) -> bool:
        """Whether `need` more bytes fit in our ring; the reader's head is read only when the
        last one seen (`_tx_head_seen`, which lags behind it) leaves too little room."""
        if self._tx_tail + need - self._tx_head_seen <= RING:
            return True
        self._tx_head_seen = self._words[self._tx + HEAD]  # type: ignore[index]
        return self._tx_tail + need - self._tx_head_seen <= RING

    def _publish(self) -> None:
        """Make the frame just written to the ring visible (tail, then `published`), and wake
        the reader if it sleeps on the socket (see the module docstring: no lost wake-up)."""
        words, base = self._words, self._tx
        words[base + TAIL] = self._tx_tail  # type: ignore[index]
        self._sent += 1
        words[base] = self._sent  # type: ignore[index]
        fence(self._tx_fence)
        sleep = words[base + SLEEPING]  # type: ignore[index]
        if sleep and sleep != self._woken:  # asleep, and no WAKE sent for this sleep yet
            self.sock.sendall(WAKE_FRAME)
            self._woken = sleep

    def _ring_put(self, ring: memoryview, kind: int, flags: int, request_id: int, chain: int,
                  seq: int, parts: list[Any], size: int) -> bool:
        """Copy one frame into our ring, wrapping around if it must; False when it has no room
        (the frame takes the socket). `_publish` makes it visible."""
        tail = self._tx_tail  # we alone write our tail
        need = HEADER_SIZE + size
        pos = tail % RING
        skip = RING - pos if RING - pos < need else 0
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

    # -- reading the peer's ring -----------------------------------------------------
    def _ring_filled(self) -> bool:
        return bool(self._words[self._rx + TAIL] != self._rx_head)  # type: ignore[index]

    def _ring_take(self, ring: memoryview, seq: int) -> Frame | None:
        """Our frame from the head of the peer's ring (not empty); None if a later frame is there."""
        head = self._rx_head
        pos = head % RING
        if RING - pos < HEADER_SIZE:  # too little room for a header: the writer wrapped around
            head += RING - pos
            pos = 0
        version, kind, flags, request_id, chain, frame_seq, body_len = HEADER.unpack_from(ring, pos)
        if kind == PAD and version == VERSION:  # the writer wrapped around
            head += RING - pos
            pos = 0
            version, kind, flags, request_id, chain, frame_seq, body_len = HEADER.unpack_from(ring, 0)
        end = head + HEADER_SIZE + body_len
        if version != VERSION or kind == PAD or body_len > RING_MAX \
                or end > self._words[self._rx + TAIL]:  # type: ignore[index]
            raise corrupt(f"in the shared ring: version byte {version}, kind {kind}, body of {body_len} bytes")
        if frame_seq != seq:
            check_later(frame_seq, seq)
            if head != self._rx_head:
                self._consume(head)
            return None
        if flags & FLAG_PAGE:
            raise corrupt("a shared page was announced in the ring")
        start = pos + HEADER_SIZE
        body = ring[start:start + body_len].tobytes()
        self._rx_head = end
        self._words[self._rx + HEAD] = end  # type: ignore[index]
        return Frame(kind, flags, request_id, chain, body, [], self.maps)

    def _consume(self, head: int) -> None:
        self._rx_head = head
        self._words[self._rx + HEAD] = head  # type: ignore[index]

    # -- sleeping and waking ---------------------------------------------------------
    def _sleep(self, words: memoryview, word: int, received: int) -> None:
        """Block on the socket until the peer sends or publishes a frame (no lost wake-up)."""
        if self._ring_rx is None:  # the peer only uses the socket
            self._recv_more(False)
            return
        self._sleeps += 1
        words[self._rx + SLEEPING] = self._sleeps
        try:
            fence(self._rx_fence)
            if words[word] <= received:
                self._recv_more(False)
        finally:
            if not self.closed:
                words[self._rx + SLEEPING] = 0

    def sleep_in_selector(self) -> bool:
        """Before an event loop waits for the socket instead of `recv` (see `_aio`): ask the peer
        to send a WAKE with its next ring frame, as `_sleep` does; True when a frame came meanwhile."""
        words = self._words
        if words is None or self._ring_rx is None:  # the peer only uses the socket
            return False
        self._sleeps += 1
        words[self._rx + SLEEPING] = self._sleeps
        fence(self._rx_fence)
        return bool(words[self._rx] > self._received)

    def awake(self) -> None:
        """The event loop's reader woke up: the peer needs to send no WAKE for a while."""
        words = self._words
        if words is not None and not self.closed:
            words[self._rx + SLEEPING] = 0

    def ask_cancel(self, request_id: int) -> bool:
        """Name `request_id` in a free cancel slot for the peer (False: no page or no free slot)."""
        words = self._words
        if words is None:
            return False
        for slot in CANCEL_SLOTS:
            if words[self._tx + slot] == 0:
                words[self._tx + slot] = request_id
                return True
        return False

    def take_cancels(self) -> list[int]:
        """The request ids the peer asked to interrupt, their slots freed (a signal handler calls it)."""
        words = self._words
        if words is None:
            return []
        taken = []
        for slot in CANCEL_SLOTS:
            rid = words[self._rx + slot]
            if rid:
                words[self._rx + slot] = 0
                taken.append(rid)
        return taken

    def peer_asleep(self) -> bool:
        """Whether the peer sleeps on its socket now: it has taken every frame sent to it
        (diagnostics and tests; False until the peer has mapped the page)."""
        words = self._words
        return words is not None and words[self._tx + SLEEPING] != 0

    # -- mapping and unmapping -------------------------------------------------------
    def _adopt_page(self, fd: int) -> None:
        """Map the page the other side sent (see module docstring)."""
        try:
            if self._page is None:  # adopted even when this side never polls: the peer reads our word
                import mmap

                self._page = page = mmap.mmap(fd, PAGE_SIZE)
                self._words = words = memoryview(page).cast("Q")
                self._tx, self._rx = DIR_OTHER >> 3, DIR_OWNER >> 3
                words[self._tx] = self._sent
                if RING_POSSIBLE:
                    view = memoryview(page)
                    self._ring_tx = view[DIR_OTHER + CTRL:DIR_OTHER + CTRL + RING]
                    self._ring_rx = view[DIR_OWNER + CTRL:DIR_OWNER + CTRL + RING]
        finally:
            os.close(fd)

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


def fence(lock: _thread.LockType) -> None:
    """A full memory barrier: acquiring and releasing a free lock are atomic read-modify-writes."""
    lock.acquire()
    lock.release()


def check_later(frame_seq: int, seq: int) -> None:
    """A frame other than the one due must come after it (sequence numbers wrap at 2**32)."""
    if (frame_seq - seq) & 0xFFFFFFFF >= 0x80000000:
        raise corrupt(f"frame {frame_seq} arrived after frame {seq} was due (replayed or stale)")


def corrupt(what: str) -> ExtraditeProtocolError:
    return ExtraditeProtocolError(
        f"corrupt frame: {what}; both sides must run the same extradite and nothing else may "
        "write to the channel")
