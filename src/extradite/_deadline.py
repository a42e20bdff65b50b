"""Deadlines and interrupts: a call that runs too long, or that Ctrl-C abandons, is stopped in the child.

    deadline expires  -> the call's request named in the page's cancel slots, SIGINT to the
                         child (the request raises KeyboardInterrupt where it runs: the main
                         thread, a pool thread or a task; `install_child_handler`) and is
                         answered with an error -> the call raises ExtraditeTimeoutError
    no answer within the grace period (C code holding the GIL or ignoring the interrupt)
                      -> SIGKILL to the child's group -> the call raises ExtraditeTimeoutError,
                         the session is dead (or, with restart=, restarts on the next call: `_restart`)

Naming the request is what lets the other calls in flight (`concurrency=` "async" or
"threads:N") run on: only the bounded one is interrupted. The parent knows its request id
because the bounded call goes through `bounded_call`, which hands its `Deadline` to
`Session.call`; an unbounded call pays nothing for it. Without a page (or a request id yet)
the SIGINT is untargeted: the child interrupts whatever its main thread serves.

Ctrl-C in the parent abandons the call at once (its late reply is dropped); the child is
interrupted the same way and killed unless it shows within the grace period that the request
ended: a background ping answered (served in order, so only after the abandoned call) or, when
requests overlap in the child, the late reply itself (`Session.outlive`). Only SIGINT to the child's pid: the warden ignores
it, and the child's handler raises only inside a request's handler, never while a frame is
being written or read.
"""

from __future__ import annotations

import _thread
import os
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    import threading
    from types import FrameType, TracebackType
    from typing import Any, Callable

    from ._routing import Waiter
    from ._session import Session

from ._errors import ExtraditeTimeoutError

TIMEOUT_KEYWORD = "__extradite_timeout__"
DEFAULT_GRACE = 1.0
_SIGINT = 2


class Guard:
    """Stops a request of one session's child: interrupt it now, kill the child after the grace
    period unless it answers.

    One watch thread per session (started by the first deadline) keeps every armed deadline:
    arming and disarming a call costs a lock and a dict entry, not a thread.
    """

    def __init__(self, session: Session, pid: int, grace: float, kill: Callable[[], None],
                 ping: Callable[[], None] | None) -> None:
        """`ping`: a call the child answers only after every request sent before it ended (one
        request served at a time, `concurrency="serial"`); None: requests overlap in the child."""
        self.session = session
        self.pid = pid
        self.grace = grace
        self.kill = kill
        self._ping = ping
        import threading  # here: the child imports this module for its handler, never threading

        self._cond = threading.Condition()
        self._armed: dict[Deadline, float] = {}  # deadline -> when it interrupts (then: when it kills)
        # thread -> the deadline of its own (`__extradite_timeout__`) it calls in, which replaces call_timeout
        self.timed: dict[int, Deadline] = {}
        self._wrapped = 0  # calls in such deadlines while `bounded_call` stands in for `session.call`
        self._thread: threading.Thread | None = None
        self._closed = False

    def interrupt(self) -> None:
        """SIGINT to the child: it interrupts what its main thread serves, or the requests named."""
        try:
            os.kill(self.pid, _SIGINT)
        except OSError:  # already gone: the session sees its end
            pass

    def cancel(self, rid: int, channel: Any) -> bool:
        """Interrupt request `rid` alone: named in the shared page, then SIGINT; the child
        interrupts it where it runs, or refuses it when it comes. False: it could not be named
        (no page, every slot taken, the channel closed) and nothing was sent."""
        if channel.closed or not channel.ask_cancel(rid):
            return False
        self.interrupt()
        return True

    def stop(self, rid: int) -> None:
        """Interrupt request `rid` (0: not sent yet), by name when the page allows, else untargeted."""
        if not (rid and self.cancel(rid, self.session.channel)):
            self.interrupt()

    def within(self, seconds: float) -> Deadline:
        return Deadline(self, seconds)

    def adopt(self, deadline: Deadline) -> Deadline | None:
        """This thread's calls bounded by `deadline` (its own `__extradite_timeout__`, which replaces
        call_timeout) until `release`; their request ids reach it through `bounded_call`, which
        stands in for `session.call` meanwhile. Returns the deadline it replaces, for `release`."""
        me = _thread.get_ident()
        session = self.session
        with self._cond:
            outer = self.timed.get(me)
            self.timed[me] = deadline
            if self._wrapped == 0 and "call" not in vars(session):  # a session without call_timeout
                session.call = bounded_call(session, None)  # type: ignore[method-assign]
                self._wrapped = 1
            elif self._wrapped:
                self._wrapped += 1
        return outer

    def release(self, outer: Deadline | None) -> None:
        """End this thread's `adopt`: `outer` (or call_timeout) bounds its calls again."""
        me = _thread.get_ident()
        with self._cond:
            if outer is None:
                self.timed.pop(me, None)
            else:
                self.timed[me] = outer
            if self._wrapped:
                self._wrapped -= 1
                if self._wrapped == 0:
                    del self.session.call  # the method again: unbounded calls pay nothing

    def arm(self, deadline: Deadline, seconds: float) -> None:
        import time

        with self._cond:
            self._armed[deadline] = time.monotonic() + seconds
            if self._thread is None:
                import threading

                from ._process import daemon_threads_allowed

                self._thread = threading.Thread(target=self._watch, name=f"extradite-deadline-{self.pid}",
                                                daemon=daemon_threads_allowed())
                self._thread.start()
            self._cond.notify()

    def disarm(self, deadline: Deadline) -> None:
        with self._cond:
            self._armed.pop(deadline, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._armed.clear()
            self._cond.notify()
        import threading

        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)

    def _watch(self) -> None:
        import time

        cond = self._cond
        while True:
            kill = False
            with cond:
                while not self._closed:
                    now = time.monotonic()
                    for deadline, when in list(self._armed.items()):
                        if when > now:
                            continue
                        if not deadline.expired:  # first the interrupt, then the grace period
                            deadline.expired = True
                            self._armed[deadline] = now + self.grace
                            self.stop(deadline.rid)
                        else:
                            del self._armed[deadline]
                            deadline.killed = kill = True
                    if kill:
                        break
                    cond.wait(min(self._armed.values()) - now if self._armed else None)
                if self._closed and not kill:
                    return
            self.kill()  # outside the lock: it waits for the child to end

    def abandoned(self, exc: BaseException, rid: int, waiter: Waiter | None) -> bool:
        """Request `rid` was left by KeyboardInterrupt: interrupt it in the child; kill the child
        unless it shows within the grace period that the request ended.

        The proof: with one request served at a time, the answer to a ping (served after it);
        else the request's own late reply, taken by `waiter` (the call's, which the guard then
        keeps: True, the caller must not unregister it) or by a new one (`waiter` None: the
        caller registered none, its session counted the request finished).
        """
        if getattr(exc, "_xd_abandoned", False):  # seen by an inner call already
            return False
        try:
            exc._xd_abandoned = True  # type: ignore[attr-defined]
        except AttributeError:
            pass
        session, ping = self.session, self._ping
        late = None if ping is not None else session.outlive(rid, waiter)
        if late is None and ping is None:  # answered already: nothing runs
            return False
        import threading

        self.stop(rid)
        timer = threading.Timer(self.grace, self.kill)
        timer.daemon = True
        timer.start()

        def wait_for_answer() -> None:
            try:
                if late is not None:
                    session.await_late(rid, late)  # the request ended (or the session did)
                elif ping is not None:
                    ping()  # served after the abandoned call: its answer means the call ended
            except BaseException:
                pass
            finally:
                timer.cancel()

        threading.Thread(target=wait_for_answer, name=f"extradite-interrupt-{self.pid}", daemon=True).start()
        return late is not None


class Deadline:
    """`with guard.within(s): session.call(...)`: the call raises ExtraditeTimeoutError after `s` seconds.

    `rid`: the request it bounds now (set by `Session.call`, innermost while calls nest).
    """

    __slots__ = ("_guard", "_seconds", "expired", "killed", "rid")

    def __init__(self, guard: Guard, seconds: float) -> None:
        self._guard = guard
        self._seconds = seconds
        self.expired = False
        self.killed = False
        self.rid = 0

    def __enter__(self) -> Deadline:
        self._guard.arm(self, self._seconds)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._guard.disarm(self)
        if self.expired and exc is not None and not isinstance(exc, ExtraditeTimeoutError):
            if isinstance(exc, KeyboardInterrupt) and getattr(exc, "_xd_abandoned", False):
                return  # Ctrl-C in this process, not the deadline
            raise timeout_error(self._seconds, self._guard.grace, self.killed) from exc

    def bound(self, call: Callable[..., Any], session: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`call(session, *args, **kwargs)` with its request id known here while it runs."""
        outer = self.rid
        try:
            return call(session, *args, deadline=self, **kwargs)
        finally:
            self.rid = outer


def timeout_error(seconds: float, grace: float, killed: bool, what: str = "call") -> ExtraditeTimeoutError:
    """The error of a call that ran past its deadline: interrupted, or killed after `grace` seconds."""
    return ExtraditeTimeoutError(
        f"the {what} did not finish within {seconds:g} s (call_timeout / __extradite_timeout__); "
        "the child was interrupted" + (
            " and killed: the call did not answer within the grace period "
            f"({grace:g} s), e.g. blocked in C code that ignores the interrupt; "
            "every other call in flight on this session failed with it" if killed else ""))


def bounded_call(session: Any, seconds: float | None) -> Callable[..., Any]:
    """`session.call` with every call bounded by `seconds` (the `call_timeout` option; None: only
    the calls of threads inside a deadline of their own, `Guard.adopt`).

    Not the imports and configuration done while a proxy is made: importing a large target
    may take longer than any of its calls should.
    """
    from ._session import Session
    from ._wire import OP_CONFIGURE, OP_IMPORT, OP_WARM_UP

    call = Session.call
    unbounded = (OP_IMPORT, OP_CONFIGURE, OP_WARM_UP)
    guard = session.guard
    timed = guard.timed

    def call_within(*args: Any, **kwargs: Any) -> Any:
        own = timed.get(_thread.get_ident()) if timed else None
        if own is not None:
            return own.bound(call, session, args, kwargs)
        if seconds is None or kwargs.get("defer") or args[0] in unbounded:
            return call(session, *args, **kwargs)
        with guard.within(seconds) as deadline:
            return deadline.bound(call, session, args, kwargs)

    return call_within


def call_with_timeout(session: Any, seconds: object, function: Callable[..., Any], *args: Any,
                      **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` (a call through `session`) bounded by the `__extradite_timeout__` it was
    given, which replaces the session's `call_timeout` for that call."""
    from ._options import check_seconds

    limit = check_seconds(seconds, TIMEOUT_KEYWORD)
    if session.broken is not None and getattr(session, "revive", None) is not None:
        session = session.live()  # a restart first: the deadline is the new child's
    guard = session.guard
    if limit is None or guard is None:
        return function(*args, **kwargs)
    deadline = guard.within(limit)
    outer = guard.adopt(deadline)
    try:
        with deadline:
            return function(*args, **kwargs)
    finally:
        guard.release(outer)


# -- the child's side -----------------------------------------------------------------
_UNSAFE_FILES = ("_transport.py", "_ring.py", "_shm.py", "_polling.py", "_wire.py")


def install_child_handler(session: Any = None) -> None:
    """SIGINT raises KeyboardInterrupt in the request being served, and only there.

    When the parent named requests in the page's cancel slots (`Guard.cancel`), only those
    are interrupted: here (the main thread serves it), through the concurrency server (a task
    or a pool thread runs it), or when it starts (not read yet).
    """
    import _signal  # type: ignore[import-not-found]

    from ._dispatch import TABLE
    from ._session import Session

    serve = Session._serve.__code__
    handlers = {op.handler.__code__ for op in TABLE.values()}
    unsafe = {Session._send.__code__, Session._send_error.__code__, Session._send_request.__code__,
              Session._encode.__code__, Session._read_one.__code__}

    def serving_here(frame: FrameType | None) -> list[int]:
        """The requests this thread serves where raising is safe (innermost first)."""
        rids: list[int] = []
        safe = True
        below = None
        while frame is not None:
            code = frame.f_code
            if code in unsafe or code.co_filename.endswith(_UNSAFE_FILES):
                safe = False  # a frame half written or read: the parent kills after the grace period
            elif code is serve:
                if not safe:
                    return rids
                if below in handlers:  # not while the request is decoded or its answer made
                    rids.append(frame.f_locals.get("rid", 0))
            below = code
            frame = frame.f_back
        return rids

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        named = session.channel.take_cancels() if session is not None else []
        if named:
            here = serving_here(frame)
            raise_here = False
            for rid in named:
                if rid in here:
                    raise_here = True
                elif session.concurrency is None or not session.concurrency.interrupt(rid):
                    session.cancelled.add(rid)  # not started yet (or just finished: never comes)
            if raise_here:
                raise KeyboardInterrupt("cancelled by the parent")
            return
        below = None
        while frame is not None:
            code = frame.f_code
            if code in unsafe or code.co_filename.endswith(_UNSAFE_FILES):
                return  # a frame half written or read: the parent kills after the grace period
            if code is serve:
                if below in handlers:  # not while the request is decoded or its answer (an error too) made
                    raise KeyboardInterrupt("interrupted by the parent (deadline or Ctrl-C)")
                return
            below = code
            frame = frame.f_back
        # idle between requests: a late interrupt, nothing to stop

    _signal.signal(_signal.SIGINT, on_sigint)
