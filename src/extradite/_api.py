"""`extradite()`, shared sessions, prewarming and shutdown.

    extradite("pkg.mod:Cls")  -> validate (no process yet) -> SessionHandle (child + Session)
                              -> OP_IMPORT in the child   -> class proxy
                              -> a per-call subclass carrying its ClassHandle (close())

A `SessionHandle` owns one child process and its `Session`. Without `share_key`
every `extradite()` gets its own; with one, classes share it and it stops when
the last class handle closes (after `share_keepalive_seconds`, if given).
Everything still open is closed at interpreter exit.
"""

from __future__ import annotations

import _thread
import atexit
import sys
import types
from collections import deque
from collections.abc import Iterable, Mapping
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from os import PathLike
    from typing import Any

    from ._process import ChildProcess
    from ._session import Pending, Session

# The session machinery (_codec, _session, _proxy, _process, _transport and the pickle,
# socket and mmap modules under them) loads with the first session, not with
# `import extradite`: importing the package must stay cheap.

from ._errors import (
    ExtraditeClosedError,
    ExtraditeError,
    ExtraditeModuleLeakError,
    ExtraditeProcessError,
    ExtraditeProtocolError,
    ExtraditeRemoteError,
    ExtraditeSessionConflictError,
)
from ._options import SessionOptions
from ._targets import in_tree, loaded_modules, loaded_tree, parse_target, protected_tree
from ._wire import (
    EXTRA_DIGESTS,
    EXTRA_MEMBERS_KNOWN,
    EXTRA_RESULT_BY_REF,
    OP_CONFIGURE,
    OP_IMPORT,
    OP_STATS,
    OP_WARM_UP,
)

_lock = _thread.RLock()
_deferred: deque[ClassHandle] = deque()   # classes collected while _lock was busy
_shared: dict[str, SessionHandle] = {}
_live: set[SessionHandle] = set()   # open sessions, closed at exit
_atexit_registered = False


def _daemon_threads_allowed() -> bool:
    from ._process import daemon_threads_allowed

    return daemon_threads_allowed()


def _unprotect(tree: str) -> None:
    from ._codec import unprotect

    unprotect(tree)


def release(proxy: Any) -> None:
    """Release the remote object behind `proxy` now; any later use of the proxy is an error.

    A call, an attribute or `repr` then raises `ExtraditeClosedError` (an `ExtraditeProtocolError`)
    saying "Unknown or released remote object id". Idempotent. (Proxies are also released
    when garbage-collected.)
    """
    from ._proxy import release as release_proxy

    release_proxy(proxy)


def refuse_loaded(what: str, trees: Iterable[str], protect: tuple[str, ...]) -> None:
    """Refuse to start `what` while one of `trees` is imported here: they may only load in the child."""
    tree = loaded_tree(tuple(trees))
    if tree is None:
        return
    imported = ", ".join(loaded_modules(tree))
    if tree in protect:
        raise ExtraditeModuleLeakError(
            f"{what} refused: the module tree {tree!r}, which protect={protect!r} keeps out of this "
            f"interpreter, is already imported here ({imported}). Remove the import of {tree!r} from this "
            f"process, or leave {tree!r} out of protect=")
    raise ExtraditeModuleLeakError(
        f"{what} refused: the target module {tree!r} is already imported in this interpreter ({imported}), "
        f"but {tree!r} and its submodules may only ever be loaded in the child. Remove the import of {tree!r} "
        "from this process and use the proxy class instead (its parent package and sibling modules may "
        "stay imported)")


def _rule_for_wire(rule_type: type) -> Any:
    """A type rule's type as the child can load it (builtin types without a name via `types`)."""
    module = sys.modules.get(rule_type.__module__)
    if module is not None and getattr(module, rule_type.__qualname__, None) is rule_type:
        return rule_type
    for name in dir(types):
        if getattr(types, name) is rule_type:
            return ("types", name)
    return rule_type


class SessionHandle:
    """One child process and its session."""

    def __init__(self, options: SessionOptions, *, label: str, share_key: str | None = None) -> None:
        from ._process import ChildProcess, socketpair
        from ._proxy import ProxyFactory
        from ._session import Session

        parent_end, child_end = socketpair()
        try:
            self.process = ChildProcess(child_end.fileno(), python=options.python, label=label)
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self.options = options
        config, protect = options.config, options.protect
        self.config = config
        self.python = options.python
        self.share_key = share_key
        self.keepalive = options.keepalive
        self.users = 0
        self.protect = protect
        self.trees: list[str] = []   # protected here while this session runs: `protect`, then each target's
        self._timer: Any = None   # threading.Timer of the keepalive
        self.session = Session(parent_end, is_child=False, factory=ProxyFactory, name=label)
        self.session.codec.config = config
        self.session.on_broken = self._describe_failure
        _live.add(self)
        _register_atexit()
        for tree in protect:
            self._protect(tree)
        if config.rules or config.default != "value" or protect:
            try:
                self.session.call(OP_CONFIGURE, None, None, (
                    config.default, [(_rule_for_wire(t), p) for t, p in config.rules], protect))
            except BaseException:
                self.close()  # the child is already running: do not leave it behind
                raise

    def _describe_failure(self, exc: BaseException) -> BaseException:
        from ._transport import ChannelEOF

        if isinstance(exc, (ChannelEOF, OSError)):
            return self.process.death_error(exc)
        self.process.kill()
        error = ExtraditeProtocolError(f"{exc}; the child process (pid {self.process.pid}) was stopped")
        error.__cause__ = exc
        return error

    def import_class(self, module: str, qualname: str, target: str, *,
                     expect: tuple[str, str, dict[str, str]] | None = None) -> Any:
        """The class proxy of `target`.

        With what a generated proxy embeds, `expect` = (fingerprint, `kinds_checksum` of its
        member table, the table): the class proxy is built from that table (the child leaves
        it out of the import reply), and the result is (class proxy, `Pending` of
        `_members.check_members`: None when the live class matches). Both requests go out at
        once; the child checks while this side builds its classes.
        """
        tree = protected_tree(module)
        refuse_loaded(f"extradite({target!r})", (tree, *self.protect), self.protect)
        if not in_tree(tree, self.trees):
            self._protect(tree)
        session = self.session
        verdict: Pending | None = None
        try:
            if expect is not None:
                fingerprint, kinds, table = expect
                session.codec.expect_table(kinds, table)
                imported = session.call(OP_IMPORT, module, qualname, (tree, kinds), None, None,
                                        EXTRA_RESULT_BY_REF | EXTRA_MEMBERS_KNOWN, defer=True)
                try:
                    verdict = session.call(OP_IMPORT, module, qualname, (fingerprint, kinds), None, None,
                                              EXTRA_DIGESTS, defer=True)
                except BaseException:
                    imported.cancel()
                    raise
                cls = imported.result()
            else:
                cls = session.call(OP_IMPORT, module, qualname, (tree,), None, None, EXTRA_RESULT_BY_REF)
            # A wait as long as an import shrinks the polling window, but the calls that follow
            # (construction, the first call) are short: poll them fully rather than sleep.
            session.channel.poll_next_wait_fully()
            from ._proxy import RemoteClass

            if not isinstance(cls, RemoteClass):
                kind = type(cls).__qualname__
                raise TypeError(f"extradite({target!r}): {qualname!r} is a {kind}, not a class; "
                                "extradite() takes classes")
        except BaseException as exc:
            if verdict is not None:
                verdict.cancel()
            if isinstance(exc, ExtraditeRemoteError):
                exc.remote_message = (f"extradite({target!r}) could not load the target in the child: "
                                      f"{exc.remote_message}")
                exc.args = (exc.remote_message,) if not isinstance(exc, ImportError) else exc.args
            raise
        finally:
            if expect is not None:
                session.codec.forget_table(expect[1])
        return (cls, verdict) if expect is not None else cls

    def _protect(self, tree: str) -> None:
        """From now on every rule of this session (and the parent's unpickler) keeps `tree` out."""
        from ._codec import protect

        self.trees.append(tree)
        protect(tree)
        self.session.protected = self.session.codec.protected = tuple(self.trees)

    def acquire(self) -> None:
        with _lock:
            self.users += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def release_user(self) -> None:
        with _lock:
            self.users -= 1
            if self.users > 0:
                return
            if self.keepalive:
                import threading

                self._timer = threading.Timer(self.keepalive, self._expire)
                self._timer.daemon = _daemon_threads_allowed()
                self._timer.start()
                return
        self.close()

    def _expire(self) -> None:
        with _lock:
            if self.users > 0:
                return
        self.close()

    @property
    def running(self) -> bool:
        return not self.session.closed and self.session.broken is None

    def stats(self) -> dict[str, Any]:
        """Handle-table sizes on both sides (for tests and diagnostics)."""
        self.session.flush_releases()
        child = self.session.call(OP_STATS, None)
        return {"parent": self.session.stats(), "child": child}

    def close(self) -> None:
        with _lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self.share_key is not None and _shared.get(self.share_key) is self:
                del _shared[self.share_key]
            trees, self.trees = self.trees, []
        self.session.close()
        self.process.stop()
        for tree in trees:
            _unprotect(tree)
        _live.discard(self)


class ClassHandle:
    """What one `extradite()` call returned; `Class.close()` ends it."""

    def __init__(self, handle: SessionHandle, target: str) -> None:
        self.handle = handle
        self.target = target
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise ExtraditeClosedError(
                f"the proxy class for {self.target!r} was closed; call extradite({self.target!r}) again")

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


def extradite(target: str, share_key: str | None = None, transport_policy: str = "value",
              transport_type_rules: Mapping[type, str] | None = None, *,
              share_keepalive_seconds: float | None = None, python: str | PathLike[str] | None = None,
              protect: tuple[str, ...] | list[str] = (), backend: str = "local",
              ray_options: Mapping[str, Any] | None = None) -> Any:
    """Return a proxy class for `target` ("pkg.module:ClassName"), imported only in a child.

    See the README for the full contract. The target's module and its submodules
    must never be imported here; `protect=("myapp",)` keeps whole trees out too.
    `python=` runs the child with another interpreter or virtual environment; it
    needs nothing installed there (see `_interpreter`). `backend="ray"` serves each
    instance from its own Ray actor instead (`ray_options`: see `_ray`).
    """
    module, qualname = parse_target(target)
    if backend != "local" or ray_options is not None:
        from ._ray import extradite_ray

        return extradite_ray(target, backend, ray_options, share_key=share_key, transport_policy=transport_policy,
                             transport_type_rules=transport_type_rules,
                             share_keepalive_seconds=share_keepalive_seconds, python=python, protect=protect)
    options = SessionOptions.from_user(
        share_key, transport_policy=transport_policy, transport_type_rules=transport_type_rules,
        share_keepalive_seconds=share_keepalive_seconds, python=python, protect=protect)
    if _deferred:
        _close_deferred()
    trees = options.protect
    refuse_loaded(f"extradite({target!r})", (protected_tree(module), *trees), trees)
    handle, started = _session_for(share_key, options, repr(target))
    handle.acquire()
    try:
        root = handle.import_class(module, qualname, target)
    except BaseException:
        handle.release_user()
        raise
    api = ClassHandle(handle, target)
    from ._proxy import RemoteClass

    cls = RemoteClass(root.__name__, (root,), {
        "__slots__": (), "_xd_api": api, "__module__": root.__module__, "__qualname__": root.__qualname__,
    })
    import weakref

    weakref.finalize(cls, close_collected, api)
    return cls


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
                              protect: tuple[str, ...] | list[str] = ()) -> bool:
    """Start the shared child for `share_key` now, so a later `extradite()` skips start-up.

    Returns True when a child was started, False when one was already running
    with the same options (different options raise `ExtraditeSessionConflictError`).
    """
    if not isinstance(share_key, str):
        raise TypeError(f"share_key must be a string, not {type(share_key).__name__}")
    options = SessionOptions.from_user(
        share_key, transport_policy=transport_policy, transport_type_rules=transport_type_rules,
        share_keepalive_seconds=share_keepalive_seconds, python=python, protect=protect)
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


def _close_all() -> None:
    for handle in list(_live):
        try:
            handle.close()
        except Exception:
            pass


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_close_all)
        if not _daemon_threads_allowed():
            # A subinterpreter joins its (here non-daemon) threads before it runs
            # atexit, and the stderr drains only end with their children: close
            # the sessions first, from threading's own pre-join hook.
            import threading

            register = getattr(threading, "_register_atexit", None)
            if register is not None:
                register(_close_all)


__all__ = [
    "extradite", "prewarm_extradite_session", "close_extradite_session", "parse_target",
    "protected_tree", "ExtraditeError", "ExtraditeProcessError",
]
