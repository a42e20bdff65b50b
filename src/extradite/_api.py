"""`extradite()`, shared sessions, prewarming and shutdown.

    extradite("pkg.mod:Cls")  -> validate (no process yet) -> SessionHandle (child + Session)
                              -> OP_IMPORT in the child   -> class proxy
                              -> a per-call subclass carrying its ClassHandle (close())

A `SessionHandle` (`_session_handle`) owns one child process and its `Session`. Without
`share_key` every `extradite()` gets its own; with one, classes share it and it stops when
the last class handle closes (after `share_keepalive_seconds`, if given).
Everything still open is closed at interpreter exit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from os import PathLike
    from typing import Any

    from ._restart import Restart
    from ._sandbox import Limits, Sandbox

# The session machinery (_codec, _session, _proxy, _process, _transport and the pickle,
# socket and mmap modules under them) loads with the first session, not with
# `import extradite`: importing the package must stay cheap.

from ._errors import ExtraditeClosedError, ExtraditeError, ExtraditeProcessError, ExtraditeSessionConflictError
from ._options import SessionOptions
from ._session_handle import SessionHandle, _live, _lock, _shared
from ._targets import parse_module, parse_target, protected_tree, refuse_loaded
from ._wire import OP_WARM_UP

_deferred: deque[ClassHandle] = deque()   # classes collected while _lock was busy


def release(proxy: Any) -> None:
    """Release the remote object behind `proxy` now; any later use of the proxy is an error.

    A call, an attribute or `repr` then raises `ExtraditeClosedError` (an `ExtraditeProtocolError`)
    saying "Unknown or released remote object id". Idempotent. (Proxies are also released
    when garbage-collected.)
    """
    from ._proxy import release as release_proxy

    release_proxy(proxy)


class ClassHandle:
    """One use of a session: what one `extradite()` or `import_isolated()` call returned.

    `Class.close()` (or the function's, object's or module's `close()`) ends it.
    """

    def __init__(self, handle: SessionHandle, target: str, *, opener: str = "extradite") -> None:
        self.handle = handle
        self.target = target
        self.opener = opener   # the call that made it, named when it is used after close()
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            what = "module" if self.opener == "import_isolated" else "class"
            raise ExtraditeClosedError(
                f"the proxy {what} for {self.target!r} was closed; call {self.opener}({self.target!r}) again")

    def close(self) -> None:
        with _lock:
            if self.closed:
                return
            self.closed = True
        self.handle.release_user()


def _session_for(share_key: str | None, options: SessionOptions, label: str) -> tuple[SessionHandle, bool]:
    """The session to use and whether it was started now."""
    if share_key is None:
        return SessionHandle(options, label=label), True
    with _lock:
        existing = _shared.get(share_key)
        if existing is not None and not existing.running and existing.revivable:
            try:
                existing.session.live()  # its child died: restart it now, as its next call would
            except ExtraditeError:
                pass  # past its budget (or the restart failed): a new session takes the key
        if existing is not None and existing.running:
            problems = options.conflicts(existing.options)
            if problems:
                raise ExtraditeSessionConflictError(
                    f"share_key already exists: {share_key!r} names a running session with other options: "
                    f"{'; '.join(problems)}. "
                    "Use the same options for every class sharing a key, or another key")
            return existing, False
        handle = SessionHandle(options, label=f"share_key {share_key!r}", share_key=share_key)
        _shared[share_key] = handle
        return handle, True


def _local_only(untrusted: bool, trusted_types: Iterable[type], lend_attributes: object,
                max_frame_bytes: int | None) -> None:
    """Ray pickles with its own serializer: this runtime's untrusted mode cannot guard it."""
    if untrusted or tuple(trusted_types) or lend_attributes is not None or max_frame_bytes is not None:
        raise ValueError("untrusted=, trusted_types=, lend_attributes= and max_frame_bytes= need the local "
                         "backend (backend='local'): Ray's own serializer loads whatever an actor returns")


def extradite(target: str, share_key: str | None = None, transport_policy: str = "value",
              transport_type_rules: Mapping[type, str] | None = None, *,
              share_keepalive_seconds: float | None = None, python: str | PathLike[str] | None = None,
              protect: tuple[str, ...] | list[str] = (), sandbox: Sandbox | None = None,
              limits: Limits | None = None, forward_logging: bool = True,
              requirements: Iterable[str] | None = None, call_timeout: float | None = None,
              timeout_grace: float = 1.0, restart: Restart | None = None, concurrency: str = "serial", backend: str = "local",
              ray_options: Mapping[str, Any] | None = None, untrusted: bool = False,
              trusted_types: Iterable[type] = (), lend_attributes: Mapping[type, Iterable[str]] | None = None,
              max_frame_bytes: int | None = None) -> Any:
    """Return a proxy for `target` ("pkg.module:ClassName"), imported only in a child.

    A class target gives a proxy class; a function (any callable) a callable proxy; any
    other module attribute a handle proxy (a scalar: its value). See the README for the
    full contract. The target's module and its submodules
    must never be imported here; `protect=("myapp",)` keeps whole trees out too.
    `python=` runs the child with another interpreter or virtual environment, or a
    version such as "3.13"; it needs nothing installed there (see `_interpreter`).
    `requirements=["pkg==1.0", ...]` runs it in an environment holding exactly those
    packages, built once per (requirements, interpreter) and cached (see `_envs`). `sandbox=` and `limits=`
    confine the child before it imports the target (see `_sandbox`).
    `forward_logging=False` leaves the child's `logging` records in the child (see `_logforward`).
    `call_timeout=` bounds every call (ExtraditeTimeoutError; the child is interrupted, and killed
    after `timeout_grace` seconds if it does not answer: see `_deadline`).
    `restart=Restart(...)` starts a new child when this one dies and rebuilds what it can (`_restart`).
    `concurrency="async"` or `"threads:N"` lets calls run side by side in the child (see `_concurrency`).
    `backend="ray"` serves each instance from its own Ray actor instead (`ray_options`: see `_ray`).
    `untrusted=True` is for a target you do not trust: nothing it sends runs code here and what
    this process lends shows only a safe surface (`trusted_types=`, `lend_attributes=`: see
    `_untrusted`). `max_frame_bytes=` caps one frame's body (refused beyond: the session ends).
    """
    module, qualname = parse_target(target)
    if backend != "local" or ray_options is not None:
        _local_only(untrusted, trusted_types, lend_attributes, max_frame_bytes)
        _refuse_concurrency_on_ray(concurrency)
        from ._ray import extradite_ray

        return extradite_ray(target, backend, ray_options, share_key=share_key, transport_policy=transport_policy,
                             transport_type_rules=transport_type_rules,
                             share_keepalive_seconds=share_keepalive_seconds, python=python, protect=protect,
                             sandbox=sandbox, limits=limits, requirements=requirements, call_timeout=call_timeout,
                             restart=restart)
    options = SessionOptions.from_user(
        share_key, transport_policy=transport_policy, transport_type_rules=transport_type_rules,
        share_keepalive_seconds=share_keepalive_seconds, python=python, protect=protect,
        sandbox=sandbox, limits=limits, forward_logging=forward_logging,
        requirements=requirements, call_timeout=call_timeout, timeout_grace=timeout_grace,
        untrusted=untrusted, trusted_types=trusted_types, lend_attributes=lend_attributes,
        max_frame_bytes=max_frame_bytes, restart=restart, concurrency=concurrency)
    if _deferred:
        _close_deferred()
    trees = options.protect
    refuse_loaded(f"extradite({target!r})", (protected_tree(module), *trees), trees)
    handle, started = _session_for(share_key, options, repr(target))
    handle.acquire()
    try:
        root = handle.import_object(module, qualname, f"extradite({target!r})")
    except BaseException:
        handle.release_user()
        raise
    api = ClassHandle(handle, target)
    from ._proxy import RemoteClass

    if not isinstance(root, RemoteClass):
        from ._modules import attribute_proxy

        return attribute_proxy(api, root)
    cls = RemoteClass(root.__name__, (root,), {
        "__slots__": (), "_xd_api": api, "__module__": root.__module__, "__qualname__": root.__qualname__,
    })
    import weakref

    weakref.finalize(cls, close_collected, api)
    return cls


def extradite_async(target: str, share_key: str | None = None, transport_policy: str = "value",
                    transport_type_rules: Mapping[type, str] | None = None, **options: Any) -> Any:
    """`extradite()` with every member a coroutine: `obj = await AsyncCls.create(...)`, `await obj.m(x)`.

    Takes `extradite()`'s options; the target must be a class. The event loop is never blocked
    and no thread is used per call (see `_aio`, `_asyncproxy`).
    """
    sync_class = extradite(target, share_key, transport_policy, transport_type_rules, **options)
    from ._asyncproxy import async_class
    from ._proxy import RemoteClass

    if not isinstance(sync_class, RemoteClass):
        close = getattr(sync_class, "close", None)
        if callable(close):
            close()
        raise TypeError(f"extradite_async({target!r}) takes a class; {target!r} is a "
                        f"{type(sync_class).__qualname__}: use extradite() and `await aio(proxy)...`")
    return async_class(sync_class)


def import_isolated(module: str, *, share_key: str | None = None, transport_policy: str = "value",
                    transport_type_rules: Mapping[type, str] | None = None,
                    share_keepalive_seconds: float | None = None, python: str | PathLike[str] | None = None,
                    protect: tuple[str, ...] | list[str] = (), sandbox: Sandbox | None = None,
                    limits: Limits | None = None, forward_logging: bool = True,
                    requirements: Iterable[str] | None = None, call_timeout: float | None = None,
                    timeout_grace: float = 1.0, restart: Restart | None = None, concurrency: str = "serial", backend: str = "local",
                    ray_options: Mapping[str, Any] | None = None, untrusted: bool = False,
                    trusted_types: Iterable[type] = (),
                    lend_attributes: Mapping[type, Iterable[str]] | None = None,
                    max_frame_bytes: int | None = None) -> Any:
    """Import module `module` ("pkg.mod") only in a child and return a proxy of it.

    `mod.func(...)` calls the function there, `mod.Cls` is a proxy class (as `extradite()`
    returns) sharing the module's child, `mod.sub` a submodule proxy, other values follow
    the session's policy; `dir(mod)` lists the module's names, `mod.close()` ends the use.
    The options are `extradite()`'s; the module tree `pkg.mod`, `pkg.mod.*` stays out of
    this interpreter exactly as for a class target. `backend="ray"` serves the module from a
    Ray actor, each instance of its classes from an actor of its own (see `_ray`).
    """
    if backend != "local" or ray_options is not None:
        _local_only(untrusted, trusted_types, lend_attributes, max_frame_bytes)
        _refuse_concurrency_on_ray(concurrency)
        from ._ray import import_isolated_ray

        return import_isolated_ray(module, backend, ray_options, share_key=share_key,
                                   transport_policy=transport_policy, transport_type_rules=transport_type_rules,
                                   share_keepalive_seconds=share_keepalive_seconds, python=python,
                                   protect=protect, sandbox=sandbox, limits=limits, requirements=requirements,
                                   call_timeout=call_timeout, restart=restart)
    name = parse_module(module)
    options = SessionOptions.from_user(
        share_key, transport_policy=transport_policy, transport_type_rules=transport_type_rules,
        share_keepalive_seconds=share_keepalive_seconds, python=python, protect=protect,
        sandbox=sandbox, limits=limits, forward_logging=forward_logging, requirements=requirements,
        call_timeout=call_timeout, timeout_grace=timeout_grace,
        untrusted=untrusted, trusted_types=trusted_types, lend_attributes=lend_attributes,
        max_frame_bytes=max_frame_bytes, restart=restart, concurrency=concurrency)
    if _deferred:
        _close_deferred()
    what = f"import_isolated({name!r})"
    trees = options.protect
    refuse_loaded(what, (protected_tree(name), *trees), trees)
    handle, started = _session_for(share_key, options, repr(name))
    handle.acquire()
    try:
        remote = handle.import_object(name, "", what)
    except BaseException:
        handle.release_user()
        raise
    from ._modules import module_proxy

    return module_proxy(ClassHandle(handle, name, opener="import_isolated"), remote, name)


def _refuse_concurrency_on_ray(concurrency: object) -> None:
    if concurrency != "serial":
        raise ValueError(f"concurrency={concurrency!r} is for the local backend: a Ray actor serves its calls "
                         "itself; leave concurrency at 'serial' with backend='ray'")


def close_collected(api: ClassHandle) -> None:
    """Finalizer of a proxy class: close its handle without ever blocking.

    Garbage collection can run this in any thread at any point, e.g. in a thread
    that another thread holding `_lock` is waiting to see start. So it only closes
    when `_lock` is free right now; otherwise the next API call does it.
    """
    _deferred.append(api)
    if _lock.acquire(blocking=False):
        try:
            _close_deferred()
        finally:
            _lock.release()


def _close_deferred() -> None:
    while _deferred:
        try:
            _deferred.popleft().close()
        except Exception:  # a finalizer's close must not take down the caller
            pass


def prewarm_extradite_session(share_key: str, *, transport_policy: str = "value",
                              transport_type_rules: Mapping[type, str] | None = None,
                              share_keepalive_seconds: float | None = None,
                              python: str | PathLike[str] | None = None,
                              protect: tuple[str, ...] | list[str] = (), sandbox: Sandbox | None = None,
                              limits: Limits | None = None, forward_logging: bool = True,
                              requirements: Iterable[str] | None = None,
                              call_timeout: float | None = None, timeout_grace: float = 1.0,
                              untrusted: bool = False, trusted_types: Iterable[type] = (),
                              lend_attributes: Mapping[type, Iterable[str]] | None = None,
                              max_frame_bytes: int | None = None, restart: Restart | None = None,
                              concurrency: str = "serial") -> bool:
    """Start the shared child for `share_key` now, so a later `extradite()` skips start-up.

    Returns True when a child was started, False when one was already running
    with the same options (different options raise `ExtraditeSessionConflictError`).
    """
    if not isinstance(share_key, str):
        raise TypeError(f"share_key must be a string, not {type(share_key).__name__}")
    options = SessionOptions.from_user(
        share_key, transport_policy=transport_policy, transport_type_rules=transport_type_rules,
        share_keepalive_seconds=share_keepalive_seconds, python=python, protect=protect,
        sandbox=sandbox, limits=limits, forward_logging=forward_logging,
        requirements=requirements, call_timeout=call_timeout, timeout_grace=timeout_grace,
        untrusted=untrusted, trusted_types=trusted_types, lend_attributes=lend_attributes,
        max_frame_bytes=max_frame_bytes, restart=restart, concurrency=concurrency)
    trees = options.protect
    refuse_loaded(f"prewarm_extradite_session({share_key!r})", trees, trees)
    handle, started = _session_for(share_key, options, repr(share_key))
    if started:  # the child warms up while nobody waits for it; its reply is dropped
        handle.session.call(OP_WARM_UP, None, defer=True).cancel()
    if started and share_keepalive_seconds:
        handle.acquire()
        handle.release_user()  # no users yet: the keepalive clock starts now
    return started


def close_extradite_session(share_key: str) -> bool:
    """Stop the shared child of `share_key` now. True if one was running, else False.

    Classes still using it raise `ExtraditeClosedError` on their next call.
    """
    with _lock:
        handle = _shared.get(share_key)
    if handle is None:
        return False
    handle.close()
    return True


def session_of(proxy: Any) -> SessionHandle:
    """The `SessionHandle` behind a proxy class or object (diagnostics and tests)."""
    cls = proxy if isinstance(proxy, type) else type(proxy)
    for klass in cls.__mro__:
        api = klass.__dict__.get("_xd_api")
        if api is not None:
            return api.handle  # type: ignore[no-any-return]
    session = getattr(cls, "_xd_class_session", None)
    for handle in list(_live):
        if handle.session is session:
            return handle
    raise TypeError(f"{proxy!r} is not an extradite proxy")


__all__ = [
    "extradite", "import_isolated", "prewarm_extradite_session", "close_extradite_session", "parse_target",
    "protected_tree", "ExtraditeError", "ExtraditeProcessError",
]
