"""`ExtraditeExecutor`: a `concurrent.futures.Executor` whose workers are isolated children.

    submit(fn, *args) -> a work item (Future, call, args, kwargs) -> one shared queue
                                                                        |
      worker thread 1 (its own session: child 1) <-- get() ------------+
      worker thread 2 (its own session: child 2) <-- get() ------------+   ... up to max_workers

Each worker is a thread of this process that owns one `SessionHandle` (one child) and
runs one item at a time: whichever worker is idle takes the next item, so work goes to
idle children. Workers start as demand grows (a submit that finds no idle worker starts
one, up to `max_workers`), like `ProcessPoolExecutor`; a worker starts its child itself,
so `submit` never waits for a process start.

What a call names is resolved at submit, in the caller's thread, to a key the child can
import ("module", "qualname", protect): a "pkg.mod:func" string (its module tree is
protected, as for `extradite()`), a function proxy (the same, read from the child), or a
plain module-level function of this process (imported there by name, nothing protected:
this process has it already). Each worker imports a key once and keeps the callable proxy.

A worker whose child dies fails only the item it was running (with the session's
`ExtraditeProcessError`) and starts a new child for its next item. `shutdown()` puts one
stop mark per worker in the queue; `cancel_futures=True` first cancels what is queued.
"""

from __future__ import annotations

import functools
import os
import queue
import sys
import threading
import time
import types
import weakref
from concurrent.futures import Executor, Future

TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from os import PathLike
    from typing import Any

    from ._restart import Restart
    from ._sandbox import Limits, Sandbox
    from ._session_handle import SessionHandle

from ._options import SessionOptions
from ._targets import loaded_tree, parse_target, protected_tree

__all__ = ["ExtraditeExecutor"]

_FUNCTION = "function"    # call the callable a key names
_METHOD = "method"        # call a method of the worker's instance
# A call: (kind, key or method name, batched: whether args is a list of (args, kwargs) to run in one round trip)
if TYPE_CHECKING:
    _Call = tuple[str, Any, bool]


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _check_instance(instance: object) -> tuple[str, str, tuple[Any, ...], dict[str, Any]] | None:
    """`instance=("pkg.mod:Cls", args, kwargs)` (args and kwargs optional) checked."""
    if instance is None:
        return None
    if isinstance(instance, str):
        instance = (instance,)
    if not isinstance(instance, tuple) or not 1 <= len(instance) <= 3:
        raise TypeError(f"instance must be a tuple ('pkg.mod:Cls', args, kwargs), not {instance!r}")
    target, args, kwargs = (*instance, (), {})[:3]
    module, qualname = parse_target(target)
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"instance args must be a tuple or list, not {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise TypeError(f"instance kwargs must be a dict, not {type(kwargs).__name__}")
    return module, qualname, tuple(args), dict(kwargs)


def _refuse_loaded(module: str, trees: tuple[str, ...]) -> None:
    from ._targets import refuse_loaded

    refuse_loaded(f"ExtraditeExecutor: the target module {module!r}", (protected_tree(module), *trees), trees)


def _plain_key(fn: Any) -> tuple[str, str, bool]:
    """The import key of a function of this process (`module:qualname`), or a TypeError saying why not."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if isinstance(fn, (types.MethodType, types.BuiltinMethodType)) and not isinstance(
            getattr(fn, "__self__", None), (types.ModuleType, type(None))):
        raise TypeError(
            f"ExtraditeExecutor cannot send the bound method {fn!r}: a worker imports what it runs by "
            "name. Submit a module-level function, a 'pkg.mod:func' string, or use instance= and "
            "submit the method's name")
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise TypeError(f"ExtraditeExecutor cannot run {fn!r}: it has no module and qualified name to be "
                        "imported by; submit a module-level function or a 'pkg.mod:func' string")
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise TypeError(
            f"ExtraditeExecutor cannot run {module}.{qualname}: a lambda or a function defined inside "
            "another function cannot be imported in a worker; define it at module level")
    if module == "__main__":
        raise TypeError(
            f"ExtraditeExecutor cannot run __main__.{qualname}: a worker cannot import this program's "
            "main script; move the function into a module and submit it from there")
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not fn:
        raise TypeError(f"ExtraditeExecutor cannot run {fn!r}: it is not {module}.{qualname} (the name a "
                        "worker would import); submit a module-level function or a 'pkg.mod:func' string")
    return module, qualname, False


class _Pool:
    """What the workers share (the executor holds it; the workers never hold the executor)."""

    def __init__(self, max_workers: int, options: SessionOptions,
                 instance: tuple[str, str, tuple[Any, ...], dict[str, Any]] | None) -> None:
        self.max_workers = max_workers
        self.options = options
        self.instance = instance
        self.queue: queue.SimpleQueue[tuple[Future[Any], _Call, Any, dict[str, Any]] | None] = queue.SimpleQueue()
        self.idle = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.workers: list[_Worker] = []
        self.shut = False
        self.started = 0   # workers ever started, and children ever started (for names and tests)
        self.children = 0

    def put(self, call: _Call, args: Any, kwargs: dict[str, Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self.lock:
            if self.shut:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self.queue.put((future, call, args, kwargs))
            if not self.idle.acquire(blocking=False) and len(self.workers) < self.max_workers:
                self.started += 1
                worker = _Worker(self, self.started)
                self.workers.append(worker)
                worker.thread.start()
        return future

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        with self.lock:
            self.shut = True
            if cancel_futures:
                while True:
                    try:
                        item = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            workers = list(self.workers)
            for _ in workers:
                self.queue.put(None)
        if wait:
            for worker in workers:
                if worker.thread is not threading.current_thread():
                    worker.thread.join()


class _Worker:
    """One thread and the child it runs items in (see the module docstring)."""

    def __init__(self, pool: _Pool, number: int) -> None:
        from ._process import daemon_threads_allowed

        self.pool = pool
        self.number = number
        self.handle: SessionHandle | None = None
        self.functions: dict[tuple[str, str, bool], Any] = {}
        self.instance: Any = None
        self.thread = threading.Thread(target=self.run, name=f"extradite-executor-{number}",
                                       daemon=daemon_threads_allowed())

    def run(self) -> None:
        pool = self.pool
        try:
            while True:
                item = pool.queue.get()
                if item is None:
                    return
                future, call, args, kwargs = item
                del item
                if future.set_running_or_notify_cancel():
                    try:
                        result = self._run(call, args, kwargs)
                    except BaseException as exc:
                        self._check_child()
                        future.set_exception(exc)
                        del exc
                    else:
                        future.set_result(result)
                        del result
                del future, args, kwargs  # an idle worker keeps no result, argument or exception alive
                pool.idle.release()
        finally:
            self._stop_child()

    def _check_child(self) -> None:
        """After a failed item: a child that died is stopped (the next item starts a new one)."""
        if self.handle is not None and not self.handle.running and not self.handle.revivable:
            self._stop_child()  # (a supervised one restarts on its next call, within its budget)

    def _stop_child(self) -> None:
        handle, self.handle = self.handle, None
        self.functions.clear()
        self.instance = None
        if handle is not None:
            handle.close()

    def _session(self) -> SessionHandle:
        handle = self.handle
        if handle is not None and handle.process.popen.poll() is None and handle.running:
            return handle
        if handle is not None and handle.revivable:  # restart=: its next call restarts it (`_restart`)
            return handle
        if handle is not None:  # died while idle: not the next item's fault
            self._stop_child()
        from ._session_handle import SessionHandle

        with self.pool.lock:
            self.pool.children += 1
        handle = self.handle = SessionHandle(self.pool.options, label=f"ExtraditeExecutor worker {self.number}")
        spec = self.pool.instance
        if spec is not None:
            module, qualname, args, kwargs = spec
            from ._proxy import RemoteClass

            cls = handle.import_object(module, qualname, f"ExtraditeExecutor(instance={module}:{qualname!r})")
            if not isinstance(cls, RemoteClass):
                self._stop_child()
                raise TypeError(f"ExtraditeExecutor(instance=...): {module}:{qualname} is not a class")
            try:
                self.instance = cls(*args, **kwargs)
            except BaseException:
                self._stop_child()
                raise
        return handle

    def _callable(self, handle: SessionHandle, key: tuple[str, str, bool]) -> Any:
        fn = self.functions.get(key)
        if fn is None:
            module, qualname, protect = key
            fn = handle.import_object(module, qualname, f"ExtraditeExecutor task {module}:{qualname}",
                                      protect=protect)
            if not callable(fn):
                raise TypeError(f"ExtraditeExecutor: {module}:{qualname} is a {type(fn).__name__}, not callable")
            self.functions[key] = fn
        return fn

    def _run(self, call: _Call, args: Any, kwargs: dict[str, Any]) -> Any:
        handle = self._session()
        kind, what, batched = call
        if kind == _FUNCTION:
            fn = self._callable(handle, what)
        else:
            fn = getattr(self.instance, what)
        if batched:
            return fn.batch(args)
        return fn(*args, **kwargs)


def _wake_workers(pool: _Pool) -> None:
    """The executor was collected or the interpreter exits: let the workers end."""
    pool.shutdown(wait=False, cancel_futures=False)


def _wake_at_exit(pool_ref: Callable[[], _Pool | None]) -> None:
    pool = pool_ref()
    if pool is not None:
        _wake_workers(pool)


class ExtraditeExecutor(Executor):
    """A `concurrent.futures.Executor` whose workers are isolated child interpreters.

    `submit("pkg.mod:func", *args, **kwargs)`, `submit(function_proxy, ...)` or
    `submit(module_level_function, ...)` run the function in one of up to `max_workers`
    children (default: the CPUs this process may use), each with its own session.
    Workers start as work arrives. With `instance=("pkg.mod:Cls", args, kwargs)` each
    worker builds one instance when it starts, and `submit("method", *args)` calls that
    instance's method. The remaining options are `extradite()`'s (policies, `python=`,
    `protect=`); the module tree of every "pkg.mod:..." target stays out of this process.

    A remote exception arrives as `ExtraditeRemoteError` (still an instance of its builtin
    type); a worker whose child dies fails only its own future, with
    `ExtraditeProcessError`, and starts a new child for its next item. With `restart=Restart(...)`
    that new child is a supervised restart of the worker's session (reported, counted, its
    instance rebuilt); the item that finds the budget used up fails with it, and the worker
    starts a new session for the item after.
    """

    def __init__(self, max_workers: int | None = None, *,
                 instance: tuple[Any, ...] | str | None = None, transport_policy: str = "value",
                 transport_type_rules: Mapping[type, str] | None = None,
                 python: str | PathLike[str] | None = None, protect: tuple[str, ...] | list[str] = (),
                 sandbox: Sandbox | None = None, limits: Limits | None = None, forward_logging: bool = True,
                 requirements: Iterable[str] | None = None, call_timeout: float | None = None,
                 timeout_grace: float = 1.0, restart: Restart | None = None, share_key: None = None,
                 untrusted: bool = False,
                 trusted_types: Iterable[type] = (), lend_attributes: Mapping[type, Iterable[str]] | None = None,
                 max_frame_bytes: int | None = None) -> None:
        if share_key is not None:
            raise TypeError("ExtraditeExecutor takes no share_key: each worker has its own child, which "
                            "is what lets the work run in parallel")
        if max_workers is None:
            max_workers = _default_workers()
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, not {max_workers!r}")
        options = SessionOptions.from_user(None, transport_policy=transport_policy,
                                           transport_type_rules=transport_type_rules, python=python,
                                           protect=protect, sandbox=sandbox, limits=limits,
                                           forward_logging=forward_logging, requirements=requirements,
                                           call_timeout=call_timeout, timeout_grace=timeout_grace,
                                           untrusted=untrusted, trusted_types=trusted_types,
                                           lend_attributes=lend_attributes, max_frame_bytes=max_frame_bytes, restart=restart)
        spec = _check_instance(instance)
        if spec is not None:
            _refuse_loaded(spec[0], options.protect)
        self._pool = _Pool(max_workers, options, spec)
        self._max_workers = max_workers
        weakref.finalize(self, _wake_workers, self._pool)
        register = getattr(threading, "_register_atexit", None)
        if register is not None:  # before threading joins non-daemon threads (subinterpreters)
            register(functools.partial(_wake_at_exit, weakref.ref(self._pool)))

    # -- what a call names ------------------------------------------------------------------
    def _call_for(self, fn: Any) -> _Call:
        if isinstance(fn, str):
            if ":" not in fn:
                if self._pool.instance is None:
                    raise ValueError(
                        f"{fn!r} is not a target like 'pkg.module:function'; a bare name calls a method "
                        "of the worker's instance, which needs ExtraditeExecutor(instance=('pkg.mod:Cls', "
                        "args, kwargs))")
                if not fn.isidentifier():
                    raise ValueError(f"{fn!r} is not a method name")
                return (_METHOD, fn, False)
            module, qualname = parse_target(fn)
            _refuse_loaded(module, self._pool.options.protect)
            return (_FUNCTION, (module, qualname, True), False)
        from ._proxy import RemoteObject

        if isinstance(fn, RemoteObject):
            return (_FUNCTION, self._proxy_key(fn), False)
        if not callable(fn):
            raise TypeError(f"ExtraditeExecutor runs callables or 'pkg.mod:func' strings, not {type(fn).__name__}")
        return (_FUNCTION, _plain_key(fn), False)

    @staticmethod
    def _proxy_key(fn: Any) -> tuple[str, str, bool]:
        """A function proxy's key, read from its own child: where it lives there."""
        from ._proxy import RemoteClass, RemoteObject

        if isinstance(fn, RemoteClass):
            raise TypeError("ExtraditeExecutor: submit a 'pkg.mod:Cls' string to build instances in a worker")
        remote = RemoteObject.__getattr__  # past the proxy class's own __module__ (its type's)
        module = remote(fn, "__module__")
        try:
            qualname = remote(fn, "__qualname__")
        except AttributeError:  # builtin callables of C extensions (numpy's ufuncs) have only a name
            qualname = remote(fn, "__name__")
        if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
            raise TypeError(f"ExtraditeExecutor cannot run {fn!r} in another child: it is not a module-level "
                            "function there (no importable module and name)")
        return module, qualname, loaded_tree((protected_tree(module),)) is None

    @staticmethod
    def _unwrap(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        while isinstance(fn, functools.partial):  # run_in_executor callers bind arguments so
            args = (*fn.args, *args)
            kwargs = {**fn.keywords, **kwargs}
            fn = fn.func
        return fn, args, kwargs

    # -- the Executor interface ---------------------------------------------------------------
    def submit(self, fn: Callable[..., Any] | str, /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run `fn(*args, **kwargs)` in a worker; the Future gets its result or exception."""
        fn, args, kwargs = self._unwrap(fn, args, kwargs)
        return self._pool.put(self._call_for(fn), args, kwargs)

    def map(self, fn: Callable[..., Any] | str, *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1, buffersize: int | None = None) -> Iterator[Any]:
        """`fn` over the zipped iterables, results in order (like `Executor.map`).

        `chunksize` > 1 sends each chunk as one work item that runs in one round trip
        (a batch); `timeout` counts from this call, as in `Executor.map`.
        """
        if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if buffersize is not None:
            raise TypeError("ExtraditeExecutor.map takes no buffersize; it submits every item at once")
        end = time.monotonic() + timeout if timeout is not None else None
        fn, bound_args, bound_kwargs = self._unwrap(fn, (), {})
        kind, what, _ = self._call_for(fn)
        items = zip(*iterables)
        futures: list[Future[Any]] = []
        if chunksize == 1 and not bound_args and not bound_kwargs:
            for args in items:
                futures.append(self._pool.put((kind, what, False), args, {}))
        else:
            chunk: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
            for args in items:
                chunk.append(((*bound_args, *args), bound_kwargs))
                if len(chunk) == chunksize:
                    futures.append(self._pool.put((kind, what, True), chunk, {}))
                    chunk = []
            if chunk:
                futures.append(self._pool.put((kind, what, True), chunk, {}))
        return self._results(futures, end, chunked=chunksize > 1 or bool(bound_args or bound_kwargs))

    @staticmethod
    def _results(futures: list[Future[Any]], end: float | None, *, chunked: bool) -> Iterator[Any]:
        try:
            futures.reverse()  # pop from the end: the first result first
            while futures:
                future = futures.pop()
                try:
                    result = future.result() if end is None else future.result(end - time.monotonic())
                finally:
                    del future
                if chunked:
                    yield from result
                else:
                    yield result
        finally:
            for future in futures:
                future.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new work; with `cancel_futures` queued work is cancelled; with `wait`, return when the
        workers have finished what they run and their children have exited."""
        self._pool.shutdown(wait, cancel_futures)

    # -- diagnostics ----------------------------------------------------------------------------
    @property
    def max_workers(self) -> int:
        return self._max_workers

    def worker_pids(self) -> list[int]:
        """The pids of the workers' children running now (diagnostics and tests)."""
        out = []
        for worker in list(self._pool.workers):
            handle = worker.handle
            if handle is not None and handle.running:
                out.append(handle.process.pid)
        return out
