"""Awaitable calls: replies go to asyncio futures, the event loop reads the channel itself.

    await aio_call(session, op, target, ...)
      -> register a waiter and send the request, as `Session.call` does
      -> the loop's `LoopReader` reads the channel when its socket is readable
         (loop.add_reader), never blocking: a reply resolves its future by request id,
         a callback of the call's chain wakes the awaiting task, which serves it
      -> no thread per call

The loop takes the session's reader role only while frames are there to read. A sync
caller that reads the channel meanwhile routes replies into the waiters here; the loop
learns of it through the session's condition, where a `_Wake` stands among the sleeping
threads (a `notify_all` schedules the loop's next step). With nothing to read, the loop
asks the peer for a WAKE frame on the socket (see `_ring`: no lost wake-up) before it
goes back to its selector. A session has one `LoopReader` per running loop while awaited
calls are in flight; the last reply detaches it (the sync path then costs what it did).

Cancelling the awaiting task forgets the waiter (a late reply is dropped by request id)
and interrupts the request in the child (`Guard.cancel`). A deadline (`__extradite_timeout__`,
`call_timeout`) is kept by the loop (`_Expiry`): the request is interrupted by its id, the task
waits for it to end, and the child is killed if it does not within the grace period.
"""

from __future__ import annotations

import _thread
import asyncio
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

    from ._session import Session

from ._codec import leaked_tree, raise_record
from ._routing import Waiter
from ._session import _envelope, _fresh, _plain_request
from ._wire import EXTRA_TARGET_HID, REPLY

_get_ident = _thread.get_ident


_SERVE = object()  # a future's result: callbacks wait in the waiter's inbox, the task serves them


class _Wake:
    """Stands among the threads asleep on the session's condition: `notify_all` wakes the loop."""

    __slots__ = ("reader",)

    def __init__(self, reader: LoopReader) -> None:
        self.reader = reader

    def release(self) -> None:  # called by `_routing.Condition.notify_all`, session lock held
        reader = self.reader
        if not reader.listening:
            return
        reader.listening = False
        reader.session._sleepers -= 1
        try:
            reader.loop.call_soon_threadsafe(reader.step)
        except RuntimeError:  # the loop is closed: its calls were abandoned with it
            pass


class LoopReader:
    """The awaited calls of one session on one event loop, and the loop's reading of the channel."""

    def __init__(self, session: Session, loop: asyncio.AbstractEventLoop) -> None:
        self.session = session
        self.loop = loop
        self.calls: dict[int, tuple[Waiter, asyncio.Future[Any]]] = {}
        self.listening = False   # the `_Wake` is in the condition's waiter list
        self.selecting = False   # the socket is registered with the loop
        self.scheduled = False
        self.fd = session.channel.sock.fileno()
        self.orphans = Waiter(0)  # requests of chains nobody waits for, read here
        self._wake = _Wake(self)

    def start(self, rid: int, waiter: Waiter, future: asyncio.Future[Any]) -> None:
        self.calls[rid] = (waiter, future)
        self.schedule()

    def rearm(self, rid: int, future: asyncio.Future[Any]) -> None:
        """The task served its callbacks: wait again, with a new future."""
        waiter, _old = self.calls[rid]
        self.calls[rid] = (waiter, future)
        self.schedule()

    def forget(self, rid: int) -> None:
        """Stop waiting for `rid` (its task was cancelled): a late reply is dropped."""
        entry = self.calls.pop(rid, None)
        if entry is not None:
            self.session._unregister(rid, entry[0])
        if not self.calls:
            self.schedule()  # detaches

    def schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.step)

    def step(self, drain: bool = False) -> None:
        """Read what has arrived, deliver replies and callbacks, then wait for more.

        `drain`: the socket is readable (WAKE frames, a frame too big for the ring, its end).
        """
        self.scheduled = False
        session = self.session
        lock = session._lock
        with lock:
            self._unlisten()
            read = bool(self.calls) and not session._reading and session.broken is None
            if read:
                session._reading = True
        if read:
            try:
                self._read_all(drain)
            finally:
                with lock:
                    session._reading = False
                    if session._sleepers:
                        session._cond.notify_all()
        served = self._deliver()
        with lock:
            if not self.calls:
                self._detach()
                return
            if served or session.broken is not None or self._ready():
                self.schedule()  # more may have come while callbacks ran
                return
            self._listen()
            elsewhere = session._reading  # a thread reads: it wakes us through the condition
        if elsewhere:
            self._unselect()
        elif not self.selecting:
            self.selecting = True
            self.loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        if not self.scheduled:
            self.step(True)

    def _read_all(self, drain: bool) -> None:
        """Route every frame that has arrived (the reader role is ours); then ask for a WAKE."""
        session = self.session
        channel = session.channel
        channel.awake()
        while True:
            try:
                open_ = channel.fill_nowait() if drain else True
                arrived = channel.arrived()
            except Exception as exc:  # a hostile or broken peer: the session ends, as in `_read_one`
                session._fail(exc)
                return
            if not arrived:
                if open_ and not channel.sleep_in_selector():
                    return
                if open_:
                    continue
            message = session._read_one()  # returns at once (or ends the session at the channel's end)
            if message is None:
                return
            with session._lock:
                session._route(message, self.orphans)

    def _ready(self) -> bool:
        """Whether a waiter here has something to deliver (caller holds the session lock)."""
        if self.orphans.inbox:
            return True
        for waiter, future in self.calls.values():
            if waiter.reply is not None or (waiter.inbox and not future.done()):
                return True
        return False

    def _deliver(self) -> bool:
        """Replies to their futures, orphan callbacks served here; True when one ran."""
        session = self.session
        served = False
        while self.orphans.inbox:
            session._serve(self.orphans.inbox.popleft())
            served = True
        for rid, (waiter, future) in list(self.calls.items()):
            if waiter.inbox:  # callbacks of its chain: the awaiting task serves them (`_call`)
                if not future.done():
                    future.set_result(_SERVE)
                continue
            message = waiter.reply
            if message is None:
                if session.broken is None:
                    continue
                error: BaseException | None = _fresh(session.broken)
                value = None
            elif message.problem is not None:
                error, value = message.problem, None
            elif message.kind == REPLY:
                error, value = None, message.payload
            else:
                error, value = _record_error(message.payload), None
            del self.calls[rid]
            session._unregister(rid, waiter)
            if not future.done():
                if error is None:
                    future.set_result(value)
                else:
                    future.set_exception(error)
        return served

    def _listen(self) -> None:
        """Caller holds the session lock."""
        if not self.listening:
            self.listening = True
            self.session._sleepers += 1
            self.session._cond._waiters.append(self._wake)  # type: ignore[arg-type]

    def _unlisten(self) -> None:
        """Caller holds the session lock."""
        if self.listening:
            self.listening = False
            self.session._sleepers -= 1
            try:
                self.session._cond._waiters.remove(self._wake)  # type: ignore[arg-type]
            except ValueError:
                pass

    def _unselect(self) -> None:
        if self.selecting:
            self.selecting = False
            try:
                self.loop.remove_reader(self.fd)
            except (ValueError, OSError):  # the socket was closed meanwhile
                pass

    def _detach(self) -> None:
        """No awaited call left (caller holds the session lock): the loop lets the channel go."""
        self._unlisten()
        self._unselect()
        readers = self.session._loop_readers
        if readers.get(self.loop) is self:
            del readers[self.loop]
        # no WAKE frames to a socket nobody selects any more; another loop that selects
        # relies on the request it left in the page, a reading thread on its own
        if not readers and not self.session._reading:
            self.session.channel.awake()


def _record_error(record: Any) -> BaseException:
    try:
        raise_record(record)
    except BaseException as exc:
        return exc
    raise AssertionError("raise_record returned")  # pragma: no cover


def _reader(session: Session, loop: asyncio.AbstractEventLoop) -> LoopReader:
    readers = session._loop_readers
    reader = readers.get(loop)
    if reader is None:
        reader = readers[loop] = LoopReader(session, loop)
    return reader


def aio_call(session: Session, op: int, target: Any, *, name: str | None = None,
             args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
             policy: str | None = None, extra: int = 0, method_policy: str | None = None,
             timeout: object = None) -> Any:
    """`session.call(...)` as a coroutine: the loop is never blocked, no thread is used.

    Each awaited call starts a chain of its own: its callbacks run in the awaiting task (the
    loop's thread; a callback that blocks blocks the loop), in the order the child makes them.
    `timeout` (the `__extradite_timeout__` it was given), else the session's `call_timeout`,
    bounds it as a sync call is bounded (`_Expiry`).
    """
    if timeout is None:
        seconds = session.call_timeout
    else:
        from ._deadline import TIMEOUT_KEYWORD
        from ._options import check_seconds

        seconds = check_seconds(timeout, TIMEOUT_KEYWORD)
    return _call(session, op, target, name, args, kwargs, policy, extra, method_policy, seconds)


class _Expiry:
    """The deadline of one awaited call, kept by its loop: when it expires the request is
    interrupted where it runs in the child (`Guard.stop`, by its id); the child is killed if the
    call has not ended a grace period later. The awaiting task waits for either, then raises
    ExtraditeTimeoutError, as a sync call does."""

    __slots__ = ("guard", "rid", "loop", "seconds", "expired", "killed", "handle")

    def __init__(self, guard: Any, rid: int, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self.guard, self.rid, self.loop, self.seconds = guard, rid, loop, seconds
        self.expired = self.killed = False
        self.handle = loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        self.guard.stop(self.rid)
        self.handle = self.loop.call_later(self.guard.grace, self._kill)

    def _kill(self) -> None:
        import threading

        self.killed = True
        # on a thread: the kill waits for the child to end; its end fails the call (the session breaks)
        threading.Thread(target=self.guard.kill, name=f"extradite-kill-{self.guard.pid}", daemon=True).start()

    def cancel(self) -> None:
        self.handle.cancel()


async def _call(session: Session, op: int, target: Any, name: str | None, args: tuple[Any, ...],
                kwargs: dict[str, Any] | None, policy: str | None, extra: int, method_policy: str | None,
                seconds: float | None) -> Any:
    if session.broken is not None or session.closed or (session.protected and leaked_tree(session.protected)):
        session.check_usable()  # raises the reason
    loop = asyncio.get_running_loop()
    home = session.codec.home_hid(target)
    if home is not None:
        target = home
        extra |= EXTRA_TARGET_HID
    if kwargs is None:
        kwargs = {}
    releases = session._take_releases() if session._pending_releases else []
    body = (releases, op, target, name, args, kwargs, policy or method_policy, extra)
    data = session._dumps(body, 5) if _plain_request(target, args, kwargs) else None
    with session._lock:
        started = session._next_id = session._next_id + 1
        rid = started % 0x7FFFFFFF or 0x7FFFFFFF
        chains = session._serving.get(_get_ident())
        chain = chains[-1] if chains else rid | session._chain_bit
        waiter = session._register(rid, Waiter(chain))
    expiry = None if seconds is None or session.guard is None else _Expiry(session.guard, rid, loop, seconds)
    try:
        session._send_request(rid, chain, body, data, releases, policy, method_policy)
    except BaseException:
        session._unregister(rid, waiter)
        if expiry is not None:
            expiry.cancel()
        raise
    future: asyncio.Future[Any] = loop.create_future()
    reader = _reader(session, loop)
    reader.start(rid, waiter, future)
    try:
        while True:
            value = await future
            if value is not _SERVE:
                return value
            # callbacks of this call: served here, in the awaiting task (its context, its thread)
            while waiter.inbox:
                session._serve(waiter.inbox.popleft())
            future = loop.create_future()
            reader.rearm(rid, future)
    except asyncio.CancelledError:
        if future.cancelled():  # this task was cancelled, not the remote call's error
            reader.forget(rid)
            if session.guard is not None and session.broken is None:
                session.guard.cancel(rid, session.channel)
            raise
        if expiry is not None and expiry.expired:  # the remote coroutine, cancelled by the deadline
            raise timeout_error(expiry) from None
        raise
    except BaseException as exc:
        if expiry is not None and expiry.expired:
            raise timeout_error(expiry) from exc
        raise
    finally:
        if expiry is not None:
            expiry.cancel()


def timeout_error(expiry: _Expiry) -> BaseException:
    from ._deadline import timeout_error as error

    return error(expiry.seconds, expiry.guard.grace, expiry.killed, "awaited call")
