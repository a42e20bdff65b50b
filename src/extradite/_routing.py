"""What threads waiting on one channel wait on: a condition, their waiters, routed messages.

Both sides use it: a session's readers route each decoded frame (`Message`) to the
`Waiter` of its request id or of its chain (`_session`), and the waiting threads sleep
on the session's `Condition` until theirs arrives.
"""

from __future__ import annotations

import _thread
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from collections import deque
    from typing import Any
else:  # the same class without `collections` and what it imports (a child's start-up)
    from _collections import deque

from ._wire import ERROR, RELEASE, REPLY, REQUEST


class Condition:
    """`threading.Condition`'s wait and notify_all over a `_thread` lock.

    A child imports no `threading` (it would slow every start-up); nothing here waits
    with a timeout or notifies a single waiter.
    """

    __slots__ = ("_lock", "_waiters", "acquire", "release")

    def __init__(self, lock: _thread.LockType) -> None:
        self._lock = lock
        self._waiters: list[_thread.LockType] = []
        self.acquire = lock.acquire
        self.release = lock.release

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()

    def wait(self) -> None:
        """Release the lock, block until `notify_all`, take the lock again. Caller holds it."""
        waiter = _thread.allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        self._lock.release()
        try:
            waiter.acquire()
        finally:
            self._lock.acquire()

    def notify_all(self) -> None:
        """Wake every thread in `wait` (they run once the caller releases the lock). Caller holds it."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.release()


class Message:
    """A frame as it is routed: decoded, or with the `problem` that kept it from being decoded.

    `payload`: a request's body (releases, op, target, name, args, kwargs, policy, extra),
    a reply's value, an error's record (`_codec.error_record`), or None (a release).
    Built by `new_message` and filled in by its maker: one per frame, a Python
    `__init__` would cost every call a frame of its own.
    """

    __slots__ = ("kind", "rid", "chain", "payload", "problem")

    kind: int
    rid: int
    chain: int
    payload: Any
    problem: BaseException | None


new_message = object.__new__


def failed(exc: BaseException) -> Message:
    """What a waiter gets when no reply will come (the session broke)."""
    message = new_message(Message)
    message.kind, message.rid, message.chain, message.payload, message.problem = ERROR, 0, 0, None, exc
    return message


class Waiter:
    __slots__ = ("chain", "reply", "inbox")

    def __init__(self, chain: int) -> None:
        self.chain = chain
        self.reply: Message | None = None   # its reply, or a local failure (`problem`)
        self.inbox: deque[Message] = deque()


def undecodable(message: Message, problem: BaseException) -> Message:
    """`message` as one that could not be decoded: its waiter gets `problem`."""
    message.payload = None
    message.problem = problem
    return message


KIND_NAMES = {REQUEST: "request", REPLY: "reply", ERROR: "error", RELEASE: "release"}
