"""`extradite_status()`: how a session's child is doing, read without asking the child.

Nothing here costs a call anything: the session counts requests it starts and finishes
(`Session.counts`, where the request id and the reply are handled anyway), and the
watch thread (`_process`) samples those counts every tick. A call still in flight
when no call has finished for a while is the one the child is running (it serves
one request after another), so its age is the time since the counts last moved,
known to within one tick.
"""

from __future__ import annotations

import time
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

_FIELDS = ("pid", "alive", "restarts", "calls", "in_flight", "oldest_call_seconds")


class ExtraditeStatus:
    """A snapshot of one session, as `extradite_status()` returns it (read-only).

    pid: the child process; alive: the child runs and the session takes calls;
    restarts: children started after the first one; calls: requests the child answered
    (or that were given up); in_flight: requests sent and not answered yet;
    oldest_call_seconds: the age of the call the child runs now, None when idle.
    """

    __slots__ = _FIELDS
    pid: int
    alive: bool
    restarts: int
    calls: int
    in_flight: int
    oldest_call_seconds: float | None

    def __init__(self, *, pid: int, alive: bool, restarts: int, calls: int, in_flight: int,
                 oldest_call_seconds: float | None) -> None:
        for name, value in zip(_FIELDS, (pid, alive, restarts, calls, in_flight, oldest_call_seconds)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("an ExtraditeStatus is a snapshot; call extradite_status() again")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"ExtraditeStatus({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExtraditeStatus):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _FIELDS)

    __hash__ = None  # type: ignore[assignment]


class CallClock:
    """Sampled by the watch thread: since when calls have been in flight with none finishing."""

    __slots__ = ("_done", "_since")

    def __init__(self) -> None:
        self._done = 0
        self._since: float | None = None

    def sample(self, started: int, done: int) -> None:
        if started == done:
            self._since = None
        elif self._since is None or done != self._done:  # a call began running since the last tick
            self._since = time.monotonic()
        self._done = done

    def age(self, started: int, done: int) -> float | None:
        """The in-flight call's age; 0.0 for one that began after the last tick."""
        if started == done:
            return None
        since = self._since
        if since is None or done != self._done:
            return 0.0
        return time.monotonic() - since


def extradite_status(proxy_or_class: Any) -> ExtraditeStatus:
    """Report on the session behind a proxy class, a proxy object or a generated proxy class.

    Never waits for the child: it answers while the child is busy or dead.
    """
    from ._api import session_of

    return extradite_status_of(session_of(proxy_or_class))


def extradite_status_of(handle: Any) -> ExtraditeStatus:
    """The status of a `SessionHandle` (see `extradite_status`)."""
    session, process = handle.session, handle.process
    started, done = session.counts()
    alive = session.broken is None and not session.closed and not process.exited
    return ExtraditeStatus(pid=process.pid, alive=alive, restarts=handle.restarts, calls=done,
                           in_flight=started - done, oldest_call_seconds=handle.clock.age(started, done))
