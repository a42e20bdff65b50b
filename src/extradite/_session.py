"""One side of a channel: request ids, the re-entrant wait loop, serving requests.

Both the parent and the child run this same class (the child calls back into the parent
too); what a request does, and which side may serve it, is in `_dispatch`; what waiting
threads wait on (their waiters, the routed messages) in `_routing`; a deferred request's
handle, which only the parent uses, in `_pending`.

    caller thread                      reader (whichever waiting thread reads)
    call() -> encode -> send  ----->   ...
      wait(waiter) <----- route <----  recv -> decode (in arrival order)
        reply for me        -> return
        request of my chain -> serve it here (callbacks run on the calling thread)

Routing rules, applied by the thread that read the frame:

* a reply goes to the waiter of its request id (a reply nobody waits for, e.g.
  after KeyboardInterrupt, is dropped);
* a request goes to the innermost waiter of its chain, so a callback runs on the
  thread whose call caused it, to any depth;
* a request of an unknown chain goes to the top-level server (the child's main
  loop) if there is one, else it is served by the thread that read it.

What is serialised: with the default `concurrency="serial"` the child has one serving
thread, so calls from several parent threads run one after another in the child (in
arrival order), while their callbacks still run on their own parent threads; the other
modes let calls overlap (`_concurrency`). Awaited calls (`_aio`) wait in this same table
of waiters; their event loop reads the channel when no thread does. Sends are serialised by
the channel's send lock (encoding happens under it so that class descriptors
reach the other side before any frame that refers to them).
"""

from __future__ import annotations

import _thread
from io import BytesIO
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any, Callable

from . import _scalar
from ._codec import Codec, check_record, check_request, error_record, leaked_tree, raise_record
from ._dispatch import CHILD, PARENT, BatchFailure, not_lent, ops_served_by, refusal
from ._errors import (
    UnsupportedInteractionError,
    ExtraditeClosedError,
    ExtraditeError,
    ExtraditeModuleLeakError,
    ExtraditeProtocolError,
)
from ._policy import REFERENCE
from ._routing import KIND_NAMES, Condition, Message, Waiter, failed, new_message, undecodable
from ._shm import THRESHOLD
from ._transport import BodyWriter, ChannelEOF, Channel
from ._wire import (
    FLAG_PLAIN,
    FLAG_SCALAR,
    CHILD_CHAIN_BIT,
    ERROR,
    EXTRA_RESULT_BY_REF,
    EXTRA_TARGET_HID,
    OP_BATCH,
    RELEASE,
    REPLY,
    REQUEST,
)

NoneType = type(None)
_get_ident = _thread.get_ident


class Session:
    """A channel plus its handle tables, used by proxies on one side."""

    reads_ahead = True  # the peer serves OP_NEXT_CHUNK: builtin iterators' proxies prefetch (`_iteration`)

    def __init__(self, sock: Any, *, is_child: bool, factory: Any, name: str = "") -> None:
        import _pickle  # here, not at module level: `import extradite` stays cheap

        self._dumps = _pickle.dumps
        self._loads = _pickle.loads
        self.channel = Channel(sock, page_owner=not is_child, trusts_peer=is_child)
        self.codec = Codec(self, factory, is_child=is_child)
        self.is_child = is_child
        self.role = CHILD if is_child else PARENT
        self.name = name
        self.broken: BaseException | None = None
        self.closed = False
        self.protected: tuple[str, ...] = ()
        self.on_broken: Callable[[BaseException], BaseException] | None = None
        self.adopts_generated = False  # set when a generated proxy binds to this session
        self._lock = _thread.allocate_lock()  # guards the routing state below; hot paths take it directly
        self._cond = Condition(self._lock)
        self._reading = False
        self._sleepers = 0  # threads inside cond.wait(): with none, notifying is skipped (hot path)
        self._waiters: dict[int, Waiter] = {}
        self._chains: dict[int, list[Waiter]] = {}
        self._server: Waiter | None = None
        self._server_ident = -1  # the thread in serve_forever: its `_serving` entry stays (hot path)
        self._next_id = 0  # requests started here, never wrapped (ids are it masked): `counts`
        self._done = 0     # requests whose reply was taken or given up
        self._chain_bit = CHILD_CHAIN_BIT if is_child else 0
        self._pending_releases = self.codec.imports.pending  # a deque: tested on every call
        self._take_releases = self.codec.imports.take_releases
        # chain ids of the requests each thread is serving, innermost last (only while it serves)
        self._serving: dict[int, list[int]] = {}
        self._ops = ops_served_by(self.role)
        # The parent serves requests only on objects it lent: targets named by its own handle ids.
        self._lent_targets_only = not is_child
        self._loop: Any = None
        self.cancelled: set[int] = set()  # requests interrupted before they started (child: `_deadline`)
        self.concurrency: Any = None  # the child's `_concurrency` server, when not serial
        self._loop_readers: dict[Any, Any] = {}  # event loop -> `_aio.LoopReader`, while awaited calls run
        # deadlines and interrupts (`_deadline.Guard`, parent only): stops the child of an abandoned call
        self.guard: Any = None
        # supervision (`_restart`, parent only): once broken, `revive(self)` returns the session of a
        # new child (or raises); `rebuild` records how to get this session's proxies back there
        self.revive: Callable[[Session], Session] | None = None
        self.rebuild: Any = None
        self.call_timeout: float | None = None  # the `call_timeout` option: awaited calls (`_aio`) honour it too

    # -- calling ---------------------------------------------------------------------
    def check_usable(self) -> None:
        if self.broken is not None:
            raise _fresh(self.broken)
        if self.closed:
            raise ExtraditeClosedError(f"the extradite session {self.name} was closed; create a new proxy class")
        if self.protected and not self.is_child:
            tree = leaked_tree(self.protected)
            if tree is not None:
                raise ExtraditeModuleLeakError(
                    f"the protected module tree {tree!r} was imported in this interpreter after the "
                    f"extradite session started; remove the import of {tree!r} (isolation is broken, "
                    "so no more calls are made)")

    def live(self) -> Session:
        """This session, or after its child died the session of the new child (`revive`)."""
        if self.broken is not None and self.revive is not None and not self.closed:
            return self.revive(self)
        return self

    def call(self, op: int, target: Any, deadline: Any = None, *, name: str | None = None,
             args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, policy: str | None = None,
             extra: int = 0, method_policy: str | None = None, defer: bool = False) -> Any:
        """Send one request and wait for its result, serving callbacks meanwhile.

        The request is `op` on `target` (see `_wire` for what each op does with `name`,
        `args` and `kwargs`); `policy` is the call's transport policy, `method_policy`
        the method's default, `extra` the `EXTRA_*` flags.

        `deadline`: the `_deadline.Deadline` that bounds the call, told its request id (so that
        only this request is interrupted when it expires). Positional, not keyword-only: an
        unbounded call fills it from the defaults tuple, not by a lookup in a dict.

        With `defer`, send it and return a `Pending` at once: its `result()` waits. So a
        caller can have the other side work on several requests (served in order with
        `concurrency="serial"`; they may overlap in the other modes) while it does its own
        work; every `Pending` must get `result()` or `cancel()`.
        Until `result()` is called, callbacks of a deferred request run on whichever
        thread reads them (usually the caller, waiting for another of its requests).

        Fast path: when no other call is in flight and nobody reads the channel, this
        thread claims the reader role without registering a waiter, reads the next
        frame itself and returns if it is its reply. Any other frame (a callback, a
        reply for a thread that started meanwhile, a broken channel) makes it register
        as an ordinary waiter, route that frame and continue in the general `_wait`.
        """
        if self.broken is not None or self.closed or (self.protected and leaked_tree(self.protected)):
            if self.revive is not None and self.broken is not None and not self.closed:
                return self._call_revived(op, target, name, args, kwargs, policy, extra, method_policy, defer)
            self.check_usable()  # raises the reason
        home = self.codec.home_hid(target)
        if home is not None:
            wire_target = home
            wire_extra = extra | EXTRA_TARGET_HID
        else:
            wire_target, wire_extra = target, extra
        if kwargs is None:
            kwargs = {}
        releases = self._take_releases() if self._pending_releases else []
        body = (releases, op, wire_target, name, args, kwargs, policy or method_policy, wire_extra)
        # Only plain scalars: `_pickle.dumps` in C, no pickler hooks, no lock needed to encode.
        data = self._dumps(body, 5) if _plain_request(wire_target, args, kwargs) else None
        chains = self._serving.get(_get_ident())
        lock = self._lock
        lock.acquire()
        started = self._next_id = self._next_id + 1
        rid = started % 0x7FFFFFFF or 0x7FFFFFFF  # 1 .. 2**31-1, round and round
        # a new chain takes the id of its first request (ids are unique, chains have their own field)
        chain = chains[-1] if chains else rid | self._chain_bit
        if deadline is not None:
            deadline.rid = rid
        if self._reading or self._waiters or defer:  # another call is in flight: the general path
            waiter = Waiter(chain)
            if defer:  # waits for nothing yet: not on its chain's stack (see `Pending.result`)
                self._waiters[rid] = waiter
            else:
                self._register(rid, waiter)
            lock.release()
            try:
                self._send_request(rid, chain, body, data, releases, policy, method_policy)
            except BaseException as exc:
                self._unregister(rid, waiter)
                if self.revive is not None and getattr(exc, "_xd_unsent", False):  # the child died before it
                    return self._call_revived(op, target, name, args, kwargs, policy, extra, method_policy, defer)
                raise
            if defer:
                from ._pending import Pending

                return Pending(self, rid, waiter)
            return self._collect(rid, waiter)
        else:
            self._reading = True  # the reader role, claimed without a waiter
            lock.release()
            try:
                self._send_request(rid, chain, body, data, releases, policy, method_policy)
            except BaseException as exc:  # not sent (a KeyboardInterrupt too, as on the general path)
                self._stop_reading()
                if self.revive is not None and getattr(exc, "_xd_unsent", False):  # the child died before it
                    return self._call_revived(op, target, name, args, kwargs, policy, extra, method_policy, defer)
                raise
            try:
                message = self._read_one()
            except BaseException as exc:
                try:  # a waiter for the late reply first, while no other thread reads
                    if type(exc) is KeyboardInterrupt and self.guard is not None:
                        self.guard.abandoned(exc, rid, None)
                finally:
                    self._stop_reading()
                raise
            if message is not None and message.rid == rid and message.problem is None:
                kind = message.kind
                if kind == REPLY:
                    self._stop_reading()
                    return message.payload
                if kind == ERROR:
                    self._stop_reading()
                    raise_record(message.payload)
            # not (only) our reply: become an ordinary waiter and hand the frame on
            lock.acquire()
            try:
                waiter = self._register(rid, Waiter(chain))
                self._reading = False
                if message is not None:
                    self._route(message, waiter)
                elif self._sleepers:
                    self._cond.notify_all()
            finally:
                lock.release()
            return self._collect(rid, waiter)

    def _call_revived(self, op: int, target: Any, name: str | None, args: tuple[Any, ...],
                      kwargs: dict[str, Any] | None, policy: str | None, extra: int,
                      method_policy: str | None, defer: bool) -> Any:
        """`call` through the session that replaced this broken one (`restart=`)."""
        assert self.revive is not None
        return self.revive(self).call(op, target, name=name, args=args, kwargs=kwargs, policy=policy,
                                      extra=extra, method_policy=method_policy, defer=defer)

    def _collect(self, rid: int, waiter: Waiter) -> Any:
        """Wait for the reply of `waiter` (registered), unregister it: the result or its error raised."""
        try:
            message = self._wait(waiter)
        except BaseException as exc:
            # abandoned by KeyboardInterrupt: the child is interrupted; the guard may keep the waiter
            if not (isinstance(exc, KeyboardInterrupt) and self.guard is not None
                    and self.guard.abandoned(exc, rid, waiter)):
                self._unregister(rid, waiter)
            raise
        self._unregister(rid, waiter)
        if message.problem is not None:  # a local failure (decode error, broken channel)
            raise message.problem
        if message.kind == REPLY:
            return message.payload
        raise_record(message.payload)

    def _register(self, rid: int, waiter: Waiter) -> Waiter:
        """Make `waiter` the one for reply `rid`, innermost of its chain. Caller holds `_lock`."""
        self._waiters[rid] = waiter
        stack = self._chains.get(waiter.chain)
        if stack is None:
            self._chains[waiter.chain] = [waiter]
        else:
            stack.append(waiter)
        return waiter

    def _unregister(self, rid: int, waiter: Waiter) -> None:
        """Forget a waiter (again: a no-op); a reply that comes for it later is dropped."""
        with self._lock:
            self._forget(rid, waiter)

    def _forget(self, rid: int, waiter: Waiter) -> None:
        """`waiter` off its chain and no longer the one for `rid` (counted as done). Caller holds `_lock`."""
        if self._waiters.pop(rid, None) is not None:
            self._done += 1
        stack = self._chains.get(waiter.chain)
        if stack and waiter in stack:
            stack.remove(waiter)
            if not stack:
                del self._chains[waiter.chain]

    def outlive(self, rid: int, waiter: Waiter | None) -> Waiter | None:
        """The caller of request `rid` left it (KeyboardInterrupt, `_deadline`): a waiter that takes
        its late reply alone, or None when the reply is here already. The request counts as finished.

        `waiter`: the caller's own, taken off its chain (callbacks it had not served yet are
        answered with the interrupt); None: a new one (the fast path registered none).
        """
        with self._lock:
            if waiter is None:
                waiter = self._waiters[rid] = Waiter(0)
                return waiter
            self._forget(rid, waiter)
            if waiter.reply is not None:
                return None
            self._waiters[rid] = waiter
            callbacks = list(waiter.inbox)
            waiter.inbox.clear()
        for request in callbacks:
            if self.broken is None:
                self._send_error(request.rid, request.chain,
                                 error_record(KeyboardInterrupt("the calling thread was interrupted")))
        return waiter

    def await_late(self, rid: int, waiter: Waiter) -> None:
        """Wait for the late reply `outlive` keeps `waiter` for (or the session's end), then forget it."""
        try:
            self._wait(waiter)
        finally:
            with self._lock:
                if self._waiters.get(rid) is waiter:
                    del self._waiters[rid]

    def _stop_reading(self) -> None:
        """Give up the reader role after a fast-path call; threads waiting for it wake up."""
        with self._lock:
            self._done += 1
            self._reading = False
            if self._sleepers:
                self._cond.notify_all()

    def _send_request(self, rid: int, chain: int, body: tuple[Any, ...], data: bytes | None,
                      releases: list[Any], policy: str | None, method_policy: str | None) -> None:
        with self.channel.send_lock:
            frame: bytes | BodyWriter
            if data is None:
                _, op, _, _, args, kwargs, _, _ = body
                frame = self._encode(body, _envelope(op, args, kwargs, releases), releases,
                                     call_policy=policy, method_policy=method_policy)
            else:
                frame = data
            if not self._send(REQUEST, rid, chain, frame, 0 if data is None else FLAG_PLAIN):
                unsent = _fresh(self.broken or ExtraditeProtocolError("the channel failed"))
                unsent._xd_unsent = True  # type: ignore[attr-defined]  # never reached the child: `revive` may resend it
                raise unsent from None

    def _encode(self, body: tuple[Any, ...], envelope: tuple[Any, ...], releases: list[Any],
                **policies: str | None) -> BodyWriter:
        """Encode a frame body; if that fails, its releases go back to the queue (nothing is lost)."""
        try:
            return self.codec.encode(body, envelope, **policies)
        except BaseException:
            self.codec.imports.pending.extendleft(reversed(releases))
            raise

    def _send(self, kind: int, rid: int, chain: int, data: bytes | BodyWriter, flags: int = 0) -> bool:
        """Send one frame (caller holds the send lock); a failing socket breaks the session.

        Returns False when the send failed (the session is broken from then on).
        """
        try:
            if type(data) is bytes:
                self.channel.send_bytes(kind, rid, chain, data, flags)
            else:
                self.channel.send(kind, rid, chain, data)  # type: ignore[arg-type]
        except OSError as exc:
            self._fail(exc)
            return False
        return True

    def flush_releases(self) -> None:
        """Send queued handle releases now (normally they ride on the next frame)."""
        if self.broken is not None or self.closed:
            return
        releases = self.codec.imports.take_releases()
        if not releases:
            return
        with self.channel.send_lock:
            self._send(RELEASE, 0, 0, self._dumps((releases,), 5))

    # -- the wait loop ---------------------------------------------------------------
    def _wait(self, waiter: Waiter | None) -> Message:
        """Wait for `waiter`'s reply (or, with None, serve until the channel ends)."""
        me: Waiter | None = waiter if waiter is not None else self._server
        assert me is not None
        cond = self._cond
        cond.acquire()
        try:
            while True:
                if me.reply is not None:
                    return me.reply
                if me.inbox:
                    request = me.inbox.popleft()
                    cond.release()
                    try:
                        self._serve(request)
                    finally:
                        cond.acquire()
                    continue
                if self.broken is not None:
                    return failed(self.broken if waiter is None else _fresh(self.broken))
                if self._reading:
                    self._sleepers += 1
                    try:
                        cond.wait()
                    finally:
                        self._sleepers -= 1
                    continue
                self._reading = True
                # The last frame goes before the next is read: a big argument it holds is
                # freed now, so the allocator can reuse its memory for the next one.
                message = request = None  # type: ignore[assignment]
                cond.release()
                try:
                    message = self._read_one()
                finally:
                    cond.acquire()
                    self._reading = False
                    if self._sleepers:
                        cond.notify_all()
                if message is not None:
                    if message.kind == REQUEST and not me.inbox:
                        stack = self._chains.get(message.chain)
                        if (stack[-1] if stack else (self._server or me)) is me:
                            # a request for this very thread with nothing queued: serve it
                            # now instead of through the inbox
                            cond.release()
                            try:
                                self._serve(message)
                            finally:
                                cond.acquire()
                            continue
                    self._route(message, me)
        finally:
            cond.release()

    def _read_one(self) -> Message | None:
        """Read and decode one frame; on channel failure break the session and return None."""
        try:
            frame = self.channel.recv()
        except (ChannelEOF, OSError, ExtraditeProtocolError) as exc:
            self._fail(exc)
            return None
        message = new_message(Message)
        message.kind = kind = frame.kind
        message.rid = frame.request_id
        message.chain = frame.chain
        message.problem = None
        try:
            if frame.flags == FLAG_SCALAR and kind == REPLY:  # nothing to trust: no pickle
                message.payload = _scalar.decode(frame.body)
                return message
            if frame.flags == FLAG_PLAIN and self.is_child:  # trusted: the parent's plain request
                body = self._loads(frame.body)
            elif frame.flags:
                body = self.codec.decode(frame)
            else:  # no shared memory: unpickle the bytes in place (inlined: every call passes here)
                body = self.codec.unpickler(BytesIO(frame.body)).load()
        except ExtraditeError as exc:
            return undecodable(message, exc)
        except Exception as exc:
            # garbage from the other side fails this one message; the stream itself is intact
            problem = UnsupportedInteractionError(
                f"a message from the other side could not be unpickled here: {exc!r}; if it needs a "
                "module this interpreter cannot import, ask for a proxy instead "
                "(__extradite_policy__='reference')")
            problem.__cause__ = exc
            return undecodable(message, problem)
        try:
            if type(body) is not tuple:
                raise TypeError(f"the body is a {type(body).__name__}, not a tuple")
            if body[0]:
                exports = self.codec.exports
                for hid, count in body[0]:
                    if type(hid) is not int or type(count) is not int:
                        raise TypeError("a handle release is not a pair of ints")
                    exports.release(hid, count)
            # a request is served from its whole body; a reply or an error carries one value
            if kind == REPLY:
                message.payload = body[1]
            elif kind == REQUEST or kind == RELEASE:
                message.payload = body
                if kind == REQUEST:
                    check_request(body)
            else:
                message.payload = body[1]
                if kind == ERROR:
                    check_record(body[1])
            return message
        except Exception as exc:
            # a body of the wrong shape: the other side does not speak this protocol
            broken = ExtraditeProtocolError(f"corrupt frame: malformed {KIND_NAMES.get(kind, kind)} body ({exc})")
            self._fail(broken)
            return None

    def _route(self, message: Message, me: Waiter) -> None:
        """Deliver a decoded frame (called with the condition held)."""
        kind = message.kind
        if kind == REQUEST:
            stack = self._chains.get(message.chain)
            target = stack[-1] if stack else (self._server or me)
            target.inbox.append(message)
        elif kind == REPLY or kind == ERROR:
            waiter = self._waiters.get(message.rid)
            if waiter is not None:
                waiter.reply = message
        elif kind != RELEASE:
            self._fail(ExtraditeProtocolError(f"corrupt frame: unknown frame kind {kind}"))
        if self._sleepers:
            self._cond.notify_all()

    def _fail(self, exc: BaseException) -> None:
        """The channel is unusable: every waiting and later call gets the same error."""
        if self.broken is not None:
            return
        if self.on_broken is not None:
            exc = self.on_broken(exc)
        elif not isinstance(exc, ExtraditeError):
            wrapped = ExtraditeProtocolError(f"the extradite channel failed: {exc!r}")
            wrapped.__cause__ = exc
            exc = wrapped
        with self._cond:
            self.broken = exc
            self._cond.notify_all()

    # -- serving ---------------------------------------------------------------------
    def serve_forever(self) -> BaseException | None:
        """Serve requests on this thread until the channel ends (the child's main loop)."""
        self._server = Waiter(0)
        self._server_ident = _get_ident()
        return self._wait(None).problem

    def _serve(self, message: Message) -> None:
        """Run a request through its op's handler (`_dispatch`) and send the reply or the error."""
        rid, chain = message.rid, message.chain
        ident = _get_ident()
        chains = self._serving.get(ident)
        if chains is None:
            chains = self._serving[ident] = []
        chains.append(chain)
        try:
            if message.problem is not None:
                raise message.problem
            if self.cancelled and rid in self.cancelled:  # interrupted before it started (`_deadline`)
                self.cancelled.discard(rid)
                raise KeyboardInterrupt("cancelled by the parent before it started")
            _releases, op, target, name, args, kwargs, policy, extra = message.payload
            served = self._ops.get(op)
            if served is None:
                raise refusal(op, self.role)
            if extra & EXTRA_TARGET_HID:
                target = self.codec.exports.get(target)
            elif self._lent_targets_only:
                raise not_lent(op, self.role)
            result = served.handler(self, target, name, args, kwargs, extra)
            if extra & EXTRA_RESULT_BY_REF or served.by_reference:
                policy = REFERENCE
            releases = self._take_releases() if self._pending_releases else []
            plain = _plain(result)  # a small scalar: no pickler hooks
            send_lock = self.channel.send_lock
            send_lock.acquire()  # encoding under it too: see the module docstring
            try:
                if plain and not releases:  # the usual reply: read without an unpickler
                    self._send(REPLY, rid, chain, _scalar.encode(result), FLAG_SCALAR)
                elif plain:
                    self._send(REPLY, rid, chain, self._dumps((releases, result), 5))
                else:
                    envelope = served.envelope(result) if served.envelope is not None else ()
                    self._send(REPLY, rid, chain, self._encode(
                        (releases, result), (releases, *envelope), releases, call_policy=policy))
            finally:
                send_lock.release()
        except BatchFailure as failure:
            self._send_error(rid, chain, error_record(failure.error, failure.index))
        except Exception as exc:
            if self.broken is not None:
                return
            if isinstance(exc, MemoryError):
                _free_frames(exc, self.is_child)
            self._send_error(rid, chain, error_record(exc))
        except BaseException as exc:  # the parent's Ctrl-C..., the child's interrupt (`_deadline`)
            if self.is_child and not isinstance(exc, KeyboardInterrupt):
                raise  # SystemExit in the target: the child ends, the parent reports how
            if self.broken is None:  # the other side must not wait forever
                self._send_error(rid, chain, error_record(exc))
            if not self.is_child:  # the parent's own interrupt goes on; the child keeps serving
                raise
        finally:
            chains.pop()
            if not chains and ident != self._server_ident:  # other threads' entries go (threads end)
                del self._serving[ident]

    def send_result(self, rid: int, chain: int, result: Any, policy: str | None) -> None:
        """Reply to a request whose result came after `_serve` returned (`_concurrency`), as `_serve` does."""
        try:
            releases = self._take_releases() if self._pending_releases else []
            with self.channel.send_lock:
                if _plain(result) and not releases:
                    self._send(REPLY, rid, chain, _scalar.encode(result), FLAG_SCALAR)
                else:
                    self._send(REPLY, rid, chain, self._encode(
                        (releases, result), (releases,), releases, call_policy=policy))
        except Exception as exc:
            if self.broken is None:
                self._send_error(rid, chain, error_record(exc))

    def _send_error(self, rid: int, chain: int, record: tuple[Any, ...]) -> None:
        body = self._dumps(((), record), 5)
        with self.channel.send_lock:
            self._send(ERROR, rid, chain, body)

    def run_awaitable(self, value: Any) -> Any:
        """`value` run to completion on this side's own loop, if it is awaitable (EXTRA_AWAIT)."""
        if not hasattr(value, "__await__"):
            return value
        import asyncio

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(value)

    # -- lifecycle -------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """(requests started, requests finished) by this side so far; the difference is in flight."""
        with self._lock:
            return self._next_id, self._done

    def break_if_idle(self, exc: BaseException) -> None:
        """Break the session with `exc` now, unless a request is in flight (its reader will)."""
        with self._cond:
            if self.broken is None and not self.closed and self._next_id == self._done and not self._reading:
                self.broken = exc

    def stats(self) -> dict[str, int]:
        return {"exports": len(self.codec.exports), "imports": len(self.codec.imports),
                "classes": len(self.codec.exports.classes)}

    def close(self) -> None:
        """Close the channel; waiting and later calls raise `ExtraditeClosedError`."""
        if self.closed:
            return
        self.closed = True
        with self._cond:
            if self.broken is None:
                self.broken = ExtraditeClosedError(
                    f"the extradite session {self.name} was closed; create a new proxy class")
            self._cond.notify_all()
        self.channel.close()
        self.codec.exports.clear()
        if self._loop is not None:
            self._loop.close()
            self._loop = None


_PLAIN_SCALARS = frozenset({int, str, float, bool, NoneType})


def _plain(value: Any) -> bool:
    """A value `_pickle.dumps` encodes exactly as the codec would, with no hook: a small scalar."""
    cls = type(value)
    return cls in _PLAIN_SCALARS or (cls is bytes and len(value) < THRESHOLD)


def _plain_request(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    if type(target) not in _PLAIN_SCALARS:
        return False
    for value in args:
        if not _plain(value):
            return False
    if kwargs:
        for value in kwargs.values():
            if not _plain(value):
                return False
    return True


def _envelope(op: int, args: tuple[Any, ...], kwargs: dict[str, Any], releases: list[Any]) -> tuple[Any, ...]:
    """The containers that make up a request (never lent as handles, whatever the policy)."""
    if op != OP_BATCH:
        return (releases, args, kwargs)
    parts: list[Any] = [releases, args, kwargs]
    for pair in args:
        parts += [pair, pair[0], pair[1]]
    return tuple(parts)


def _free_frames(exc: MemoryError, in_child: bool) -> None:
    """Make a call's MemoryError answerable: free what its frames hold, then (in the child) name the limit.

    The failed call's frames still hold what it allocated; without freeing it first, the
    error reply itself finds no memory and the child dies instead of answering.
    """
    tb = exc.__traceback__
    while tb is not None:
        try:
            tb.tb_frame.clear()
        except RuntimeError:  # a frame still running (this one): nothing of the call's in it
            pass
        tb = tb.tb_next
    if in_child:
        from ._sandbox import explain_memory_error

        explain_memory_error(exc)


def _fresh(exc: BaseException) -> BaseException:
    """A new exception like `exc`, so repeated raises do not pile up tracebacks."""
    try:
        clone = type(exc).__new__(type(exc))
        clone.__dict__.update(exc.__dict__)
        clone.args = exc.args
        clone.__cause__ = exc.__cause__
        return clone
    except Exception:
        return exc
