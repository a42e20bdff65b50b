"""Concurrency in the child (the `concurrency=` session option): which requests run side by side.

    serial     the main thread serves every request, in arrival order (this module is not loaded)
    async      a call whose result is awaited (an `async def` method: EXTRA_AWAIT) becomes a task
               on an event loop that runs in a thread of its own; tasks run concurrently, their
               replies go out as they finish. Everything else is served by the main thread, in
               arrival order, one at a time.
    threads:N  calls, attribute access and batches run on a pool of N threads; the main thread
               reads requests and hands them out (imports, configuration and diagnostics stay on it).

Re-entrant callbacks keep their chain in every mode: a pool thread serves its own requests
(the session's chain bookkeeping is per thread), and a task carries its chain in a context
variable that the loop thread's `_serving` entry reads (`_TaskChains`), so a callback it makes
goes back to the parent thread or task that made the call.

Ordering: a parent thread or task waits for each reply before it sends its next call, so its
calls run in order in every mode. Calls from different threads or tasks run in arrival order
in "serial" mode, and may overlap in the others (a thread's deferred calls too).

Interrupting one request (`_deadline`, page cancel slots) reaches a task (`task.cancel()`:
CancelledError inside the coroutine) or a pool thread (KeyboardInterrupt raised in it when it
next runs Python code; a call blocked in C finishes first, unless the parent kills the
child when its grace period ends).
"""

from __future__ import annotations

import _thread
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    import asyncio
    from contextvars import ContextVar
    from typing import Any

    from ._routing import Message
    from ._session import Session

from ._codec import error_record
from ._dispatch import Op
from ._policy import REFERENCE
from ._wire import (
    EXTRA_AWAIT,
    EXTRA_RESULT_BY_REF,
    EXTRA_TARGET_HID,
    OP_BATCH,
    OP_CALL,
    OP_CALL_METHOD,
    OP_DELATTR,
    OP_GETATTR,
    OP_SETATTR,
)

_get_ident = _thread.get_ident
_POOLED = frozenset({OP_CALL, OP_CALL_METHOD, OP_GETATTR, OP_SETATTR, OP_DELATTR, OP_BATCH})


def install(session: Session, mode: str) -> None:
    """Serve `session` with `mode` from now on (a child handler of OP_CONCURRENCY; once)."""
    if session.concurrency is not None:
        raise RuntimeError("this child's concurrency is already set")
    if mode == "async":
        session.concurrency = TaskServer(session)
    elif mode.startswith("threads:"):
        session.concurrency = PoolServer(session, int(mode[len("threads:"):]))
    elif mode != "serial":
        raise ValueError(f"unknown concurrency {mode!r}")


class _TaskChains(list):  # type: ignore[type-arg]
    """The loop thread's `_serving` entry: the chains it serves, else the running task's chain."""

    def __init__(self, current: ContextVar[int]) -> None:
        super().__init__()
        self.current = current

    def __bool__(self) -> bool:
        return len(self) > 0 or self.current.get() != 0

    def __getitem__(self, index: Any) -> Any:
        if len(self) > 0:
            return list.__getitem__(self, index)
        return self.current.get()


class TaskServer:
    """`concurrency="async"`: awaited calls run as tasks on the child's own event loop."""

    def __init__(self, session: Session) -> None:
        import asyncio
        import contextvars
        import threading

        self.session = session
        self.loop = asyncio.new_event_loop()
        self.chain: ContextVar[int] = contextvars.ContextVar("extradite_chain", default=0)
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        started = threading.Event()

        def run() -> None:
            session._serving[_get_ident()] = _TaskChains(self.chain)
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="extradite-child-loop", daemon=True)
        self.thread.start()
        started.wait()
        session._serve = self.serve  # type: ignore[method-assign]

    def serve(self, message: Message) -> None:
        session = self.session
        if message.problem is None:
            payload = message.payload
            if payload[7] & EXTRA_AWAIT and payload[1] in (OP_CALL, OP_CALL_METHOD):
                self._start(message)
                return
        type(session)._serve(session, message)

    def _start(self, message: Message) -> None:
        """Make the coroutine here (the main thread decodes and resolves), run it on the loop."""
        session = self.session
        rid, chain = message.rid, message.chain
        _releases, op, target, name, args, kwargs, policy, extra = message.payload
        if extra & EXTRA_RESULT_BY_REF:
            policy = REFERENCE
        try:
            if session.cancelled and rid in session.cancelled:
                session.cancelled.discard(rid)
                raise KeyboardInterrupt("cancelled by the parent before it started")
            if extra & EXTRA_TARGET_HID:
                target = session.codec.exports.get(target)
            function = target if op == OP_CALL else getattr(target, name)
            value = function(*args, **kwargs)
        except BaseException as exc:
            if isinstance(exc, SystemExit):
                raise
            session._send_error(rid, chain, error_record(exc))
            return
        if not hasattr(value, "__await__"):
            session.send_result(rid, chain, value, policy)
            return
        self.loop.call_soon_threadsafe(self._spawn, rid, chain, value, policy)

    def _spawn(self, rid: int, chain: int, awaitable: Any, policy: str | None) -> None:
        self.tasks[rid] = self.loop.create_task(self._run(rid, chain, awaitable, policy))

    async def _run(self, rid: int, chain: int, awaitable: Any, policy: str | None) -> None:
        import asyncio

        session = self.session
        self.chain.set(chain)
        try:
            if session.cancelled and rid in session.cancelled:
                session.cancelled.discard(rid)
                raise asyncio.CancelledError("cancelled by the parent before it started")
            value = await awaitable
        except BaseException as exc:  # CancelledError included: the parent hears of it
            self.tasks.pop(rid, None)
            if session.broken is None:
                session._send_error(rid, chain, error_record(exc))
            return
        self.tasks.pop(rid, None)
        session.send_result(rid, chain, value, policy)

    def interrupt(self, rid: int) -> bool:
        """Cancel the task of request `rid` (the SIGINT handler, main thread); False: no such task."""
        task = self.tasks.get(rid)
        if task is None:
            return False
        self.loop.call_soon_threadsafe(task.cancel)
        return True


class PoolServer:
    """`concurrency="threads:N"`: calls run on N threads; the main thread reads and hands out."""

    def __init__(self, session: Session, workers: int) -> None:
        import threading
        from queue import SimpleQueue

        self.session = session
        # `_thread` threads, not a ThreadPoolExecutor: the interpreter does not wait for them at
        # exit, so a child whose parent left ends even while a call still runs on one
        self.queue: SimpleQueue[Message] = SimpleQueue()
        for _ in range(workers):
            _thread.start_new_thread(self._work, ())
        self.local = threading.local()
        self.lock = _thread.allocate_lock()
        self.running: dict[int, int] = {}  # request id -> thread id, while its handler runs
        for code in _POOLED:
            op = session._ops[code]
            session._ops[code] = Op(op.name, self._watched(op.handler), op.served_by, op.by_reference, op.envelope)
        session._serve = self.serve  # type: ignore[method-assign]

    def serve(self, message: Message) -> None:
        session = self.session
        if (_get_ident() == session._server_ident and message.problem is None
                and message.payload[1] in _POOLED):
            self.queue.put(message)
            return
        type(session)._serve(session, message)

    def _work(self) -> None:
        while True:
            self._run(self.queue.get())

    def _run(self, message: Message) -> None:
        self.local.rid = message.rid
        try:
            type(self.session)._serve(self.session, message)
        except KeyboardInterrupt:  # an interrupt that came as the request ended: nothing to stop
            pass
        finally:
            self.local.rid = 0

    def _watched(self, handler: Any) -> Any:
        """`handler` with its request findable by `interrupt` while it runs (on a pool thread)."""
        local, lock, running = self.local, self.lock, self.running

        def watched(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
                    kwargs: dict[str, Any], extra: int) -> Any:
            rid = getattr(local, "rid", 0)
            if not rid:  # nested (a callback's call) or on the main thread: not interruptible by id
                return handler(session, target, name, args, kwargs, extra)
            local.rid = 0
            with lock:
                running[rid] = _get_ident()
            try:
                return handler(session, target, name, args, kwargs, extra)
            finally:
                try:
                    with lock:
                        running.pop(rid, None)
                except KeyboardInterrupt:  # the interrupt came as the handler returned: forget it all the same
                    with lock:
                        running.pop(rid, None)
                    raise
                finally:
                    local.rid = rid
        return watched

    def interrupt(self, rid: int) -> bool:
        """Raise KeyboardInterrupt in the pool thread running request `rid` (False: none runs it)."""
        with self.lock:
            ident = self.running.get(rid)
            if ident is None:
                return False
            import ctypes

            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt))
        return True
