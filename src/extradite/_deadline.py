"""Deadlines and interrupts: a call that runs too long, or that Ctrl-C abandons, is stopped in the child.

    deadline expires  -> SIGINT to the child (its running call raises KeyboardInterrupt and
                         is answered with an error) -> the call raises ExtraditeTimeoutError
    no answer within the grace period (C code holding the GIL) -> SIGKILL to the child's
                         group -> the call raises ExtraditeTimeoutError, the session is dead

Ctrl-C in the parent abandons the call at once (its late reply is dropped by request id);
the child is interrupted the same way, and a background ping (served in order, so it
answers only after the abandoned call ended) cancels the kill. Only SIGINT to the child's
pid: the warden ignores it, and the child's handler (`install_child_handler`) raises only
inside a request's handler, never while a frame is being written or read.
"""

from __future__ import annotations

import os
import threading
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from types import FrameType, TracebackType
    from typing import Any, Callable

from ._errors import ExtraditeTimeoutError

TIMEOUT_KEYWORD = "__extradite_timeout__"
DEFAULT_GRACE = 1.0
_SIGINT = 2


def check_seconds(value: object, what: str, *, zero: bool = False) -> float | None:
    """`value` as seconds (None stays None); anything else raises naming `what`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"{what} must be a number of seconds {bound}, or None, not {value!r}")
    return float(value)


class Guard:
    """Stops the child of one session: interrupt now, kill after the grace period unless it answers."""

    def __init__(self, pid: int, grace: float, kill: Callable[[], None], ping: Callable[[], None]) -> None:
        self.pid = pid
        self.grace = grace
        self._kill = kill
        self._ping = ping

    def interrupt(self) -> None:
        try:
            os.kill(self.pid, _SIGINT)
        except OSError:  # already gone: the session sees its end
            pass

    def kill_later(self, killed: list[bool] | None = None) -> threading.Timer:
        def kill() -> None:
            if killed is not None:
                killed.append(True)
            self._kill()

        timer = threading.Timer(self.grace, kill)
        timer.daemon = True
        timer.start()
        return timer

    def abandoned(self, exc: BaseException) -> None:
        """A call was left by KeyboardInterrupt: interrupt the child; kill it unless it answers a ping in time."""
        if getattr(exc, "_xd_abandoned", False):  # seen by an inner call already
            return
        try:
            exc._xd_abandoned = True  # type: ignore[attr-defined]
        except AttributeError:
            pass
        self.interrupt()
        timer = self.kill_later()

        def wait_for_answer() -> None:
            try:
                self._ping()
            except BaseException:
                pass
            finally:
                timer.cancel()

        threading.Thread(target=wait_for_answer, name=f"extradite-interrupt-{self.pid}", daemon=True).start()

    def within(self, seconds: float) -> Deadline:
        return Deadline(self, seconds)


class Deadline:
    """`with guard.within(s): session.call(...)`: the call raises ExtraditeTimeoutError after `s` seconds."""

    __slots__ = ("_guard", "_seconds", "_timer", "_killer", "_killed", "expired")

    def __init__(self, guard: Guard, seconds: float) -> None:
        self._guard = guard
        self._seconds = seconds
        self._timer: threading.Timer | None = None
        self._killer: threading.Timer | None = None
        self._killed: list[bool] = []
        self.expired = False

    def _expire(self) -> None:
        self.expired = True
        self._killer = self._guard.kill_later(self._killed)
        self._guard.interrupt()

    def __enter__(self) -> Deadline:
        self._timer = threading.Timer(self._seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._timer is not None
        self._timer.cancel()
        self._timer.join()  # `_expire` finished if it started: `_killer` is set or never will be
        if self._killer is not None:
            self._killer.cancel()
        if self.expired and exc is not None and not isinstance(exc, ExtraditeTimeoutError):
            if isinstance(exc, KeyboardInterrupt) and getattr(exc, "_xd_abandoned", False):
                return  # Ctrl-C in this process, not the deadline
            raise ExtraditeTimeoutError(
                f"the call did not finish within {self._seconds:g} s (call_timeout / __extradite_timeout__); "
                "the child was interrupted" + (" and killed: it did not answer within the grace period "
                                               f"({self._guard.grace:g} s)" if self._killed else "")) from exc


def bounded_call(session: Any, seconds: float) -> Callable[..., Any]:
    """`session.call` with every top-level call bounded by `seconds` (the `call_timeout` option)."""
    from ._session import Session

    call = Session.call

    def call_within(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("defer") or session.guard is None:
            return call(session, *args, **kwargs)
        with session.guard.within(seconds):
            return call(session, *args, **kwargs)

    return call_within


def call_with_timeout(session: Any, seconds: object, function: Callable[..., Any], *args: Any,
                      **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` (a call through `session`) bounded by the `__extradite_timeout__` it was given."""
    limit = check_seconds(seconds, TIMEOUT_KEYWORD)
    guard = session.guard
    if limit is None or guard is None:
        return function(*args, **kwargs)
    with guard.within(limit):
        return function(*args, **kwargs)


# -- the child's side -----------------------------------------------------------------
_UNSAFE_FILES = ("_transport.py", "_ring.py", "_shm.py", "_polling.py", "_wire.py")


def install_child_handler() -> None:
    """SIGINT raises KeyboardInterrupt in the request being served, and only there."""
    import _signal  # type: ignore[import-not-found]

    from ._session import Session

    serve = Session._serve.__code__
    unsafe = {Session._send.__code__, Session._send_error.__code__, Session._send_request.__code__,
              Session._encode.__code__, Session._read_one.__code__}

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        while frame is not None:
            code = frame.f_code
            if code in unsafe or code.co_filename.endswith(_UNSAFE_FILES):
                return  # a frame half written or read: the parent kills after the grace period
            if code is serve:
                raise KeyboardInterrupt("interrupted by the parent (deadline or Ctrl-C)")
            frame = frame.f_back
        # idle between requests: a late interrupt, nothing to stop

    _signal.signal(_signal.SIGINT, on_sigint)
