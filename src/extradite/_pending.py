"""A request sent without waiting (`Session.call(..., defer=True)`): the parent's side.

Loaded with the first deferred call: a child never defers, so it never imports this.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

    from ._routing import Waiter
    from ._session import Session


class Pending:
    """A request sent with `Session.call(..., defer=True)`, its reply not yet taken."""

    __slots__ = ("_session", "_rid", "_waiter")

    def __init__(self, session: Session, rid: int, waiter: Waiter) -> None:
        self._session = session
        self._rid = rid
        self._waiter = waiter

    def result(self) -> Any:
        """Wait for the reply (serving callbacks meanwhile): its value, or its error raised."""
        session, waiter = self._session, self._waiter
        with session._lock:  # innermost of its chain from now on: its callbacks come to this thread
            waiting = session._waiters.get(self._rid) is waiter
            if waiting:
                session._register(self._rid, waiter)
        if not waiting and waiter.reply is None:
            raise RuntimeError("this request was cancelled before its reply came; there is no result to take")
        return session._collect(self._rid, waiter)

    def cancel(self) -> None:
        """Stop waiting: the reply is dropped when it comes (the other side still runs the request)."""
        self._session._unregister(self._rid, self._waiter)
