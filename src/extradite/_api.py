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
    from ._restart import Restart
    from ._sandbox import Limits, Sandbox
    from ._session import Session

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
from ._targets import in_tree, loaded_modules, loaded_tree, parse_module, parse_target, protected_tree
from ._wire import OP_CALL, OP_CONCURRENCY, OP_CONFIGURE, OP_IMPORT, OP_STATS, OP_WARM_UP

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
        self._confinement = None
        if options.sandbox is not None or options.limits is not None:
            from ._sandbox import prepare

            self._confinement = prepare(options.sandbox, options.limits)  # refuses before a child starts
        self._log_level: int | None = None
        if options.forward_logging:
            from ._logforward import parent_threshold

            self._log_level = parent_threshold()
        self.label = label
        self.restarts = 0
        from ._status import CallClock

        self.clock = CallClock()
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
        self.rebuild: Any = None  # `_restart.Rebuild` of a supervised session
        self._supervisor: Any = None
        self.process, self.session = self._spawn()
        _live.add(self)
        _register_atexit()
        for tree in protect:
            self._protect(tree)
        if options.restart is not None:
            from ._restart import Rebuild, Supervisor

            self.rebuild = self.session.rebuild = Rebuild()
            self._supervisor = Supervisor(options.restart)
            self.session.revive = self._revive
        try:
            self._configure(self.session)
        except BaseException:
            self.close()  # the child is already running: do not leave it behind
            raise

    def _spawn(self) -> tuple[ChildProcess, Session]:
        """Start a child and its session, wired to this handle (each closure to its own child)."""
        from ._process import ChildProcess, socketpair
        from ._proxy import ProxyFactory
        from ._session import Session

        options = self.options
        parent_end, child_end = socketpair()
        try:
            process = ChildProcess(child_end.fileno(), python=options.child_python, label=self.label,
                                   confinement=self._confinement, log_level=self._log_level)
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        session = Session(parent_end, is_child=False, factory=ProxyFactory, name=self.label)
        session.codec.config = self.config
        if options.max_frame_bytes is not None:
            session.channel.max_frame = options.max_frame_bytes
        session.on_broken = lambda exc: self._describe_failure(exc, process)
        process.on_tick = lambda: self._tick(session)
        process.on_exit = lambda: self._child_exited(session, process)
        from ._deadline import Guard

        def ping() -> None:  # after Ctrl-C: answered once the abandoned call ended
            if session.broken is None:  # (a dead child is not restarted from here: by the next call)
                session.call(OP_STATS, None, defer=True).result()

        # one request at a time (serial): a ping proves an abandoned call ended; else its late reply does
        session.guard = Guard(session, process.pid, options.timeout_grace, process.kill,
                              ping if options.concurrency == "serial" else None)
        if options.call_timeout is not None:
            from ._deadline import bounded_call

            session.call = bounded_call(session, options.call_timeout)  # type: ignore[method-assign]
            session.call_timeout = options.call_timeout
        return process, session

    def _configure(self, session: Session) -> None:
        if self.options.untrusted:
            self._distrust(session)
        config, protect = self.config, self.protect
        if config.rules or config.default != "value" or protect:
            session.call(OP_CONFIGURE, None, args=(
                config.default, [(_rule_for_wire(t), p) for t, p in config.rules], protect))
        if self.options.concurrency != "serial":
            session.call(OP_CONCURRENCY, None, args=(self.options.concurrency,))

    def _distrust(self, session: Session) -> None:
        """Untrusted mode, before anything else crosses: the allow-list here and in the child, guarded ops."""
        from ._untrusted import Trust, guarded_ops, trust_parent
        from ._wire import OP_TRUST

        options = self.options
        trust = Trust(options.trusted_types, dict(options.lend_attributes))
        trust_parent(session.codec, trust)
        session._ops = guarded_ops(session._ops)
        session.call(OP_TRUST, None, args=(trust.wire(),))

    def _describe_failure(self, exc: BaseException, process: ChildProcess | None = None) -> BaseException:
        from ._transport import ChannelEOF

        process = self.process if process is None else process
        if isinstance(exc, (ChannelEOF, OSError)):
            return process.death_error(exc)
        process.kill()
        error = ExtraditeProtocolError(f"{exc}; the child process (pid {process.pid}) was stopped")
        error.__cause__ = exc
        return error

    def _child_exited(self, session: Session, process: ChildProcess) -> None:
        """The child process ended (watch thread): a channel still open is held by a process it
        left behind, so end it here; frames already sent are still read before the end."""
        if self._supervisor is not None:
            self._supervisor.died(session, process)
        if session.broken is None and not session.closed:
            try:
                session.channel.sock.shutdown(2)  # SHUT_RDWR: a blocked reader wakes up
            except OSError:
                pass

    # -- supervision (`_restart`) ----------------------------------------------------------
    @property
    def revivable(self) -> bool:
        """Dead or alive, whether the next call may still get a child (a restart within budget)."""
        return self.session.revive is not None and not self.session.closed

    def _revive(self, old: Session) -> Session:
        """`Session.revive` of every session this handle started: the session of a new child."""
        supervisor = self._supervisor
        with supervisor.lock:
            if self.session is not old:  # another thread restarted it meanwhile
                return self.session
            if old.closed or old.revive is None or supervisor.restarting:
                old.check_usable()  # raises (an old proxy used while a restart replays: not rebuilt yet)
            supervisor.restarting = True
            try:
                cause, old_pid, rebuilt, failures = self._restart(old, supervisor)
            finally:
                supervisor.restarting = False
        supervisor.report(self, cause, old_pid, rebuilt, failures)  # the hook may call: not under the lock
        return self.session

    def _restart(self, old: Session, supervisor: Any) -> tuple[BaseException | None, int, int, list[str]]:
        """Replace the dead child of `old` (the caller holds the supervisor's lock): how it died, its
        pid, how many proxies were rebuilt and why the others were not."""
        cause = old.broken
        old_process = self.process
        if getattr(cause, "_xd_provisional", False):  # noticed while idle: now with its last stderr lines
            cause = old.broken = old_process.death_error()
        supervisor.admit(old, self.label, cause)  # raises past the budget (the session stays dead)
        old.guard.close()
        old_process.kill()
        old_process.stop(grace=0.5)
        process, session = self._spawn()  # a failed attempt counts: `admit` refuses after enough
        try:
            session.rebuild, session.adopts_generated = self.rebuild, old.adopts_generated
            session.protected = session.codec.protected = old.protected
            self._configure(session)
            rebuilt, failures = self.rebuild.replay(old, session)
        except BaseException:  # the new child died too (or an interrupt): nothing of it is kept
            session.close()
            session.guard.close()
            process.stop(grace=0.5)
            raise
        session.revive = self._revive
        self.process, self.session = process, session
        self.restarts += 1
        old.close()
        old.broken = supervisor.lost_error(self.label, old_process.pid, cause)
        old.revive = None
        return cause, old_process.pid, rebuilt, failures

    def import_object(self, module: str, qualname: str, what: str, *, protect: bool = True) -> Any:
        """`module`'s attribute `qualname` (the module itself when empty), imported in the child.

        Classes come back as class proxies, other objects by reference (scalars by value).
        With `protect` (targets a user names) the module's tree is kept out of this
        interpreter as for a class target; without it (a function this process already
        imported, handed to an executor) nothing is protected. `what` names the caller in errors.
        """
        tree = protected_tree(module)
        if protect:
            refuse_loaded(what, (tree, *self.protect), self.protect)
            if not in_tree(tree, self.trees):
                self._protect(tree)
        try:
            reply = self.session.call(OP_IMPORT, module, name=qualname, args=(tree,) if protect else ())
        except ExtraditeRemoteError as exc:
            exc.remote_message = f"{what} could not load the target in the child: {exc.remote_message}"
            exc.args = (exc.remote_message,) if not isinstance(exc, ImportError) else exc.args
            raise
        if not (type(reply) is tuple and len(reply) == 2):  # a broken or hostile child: stopped
            problem = ValueError(f"the child answered the import of {module}:{qualname} with a "
                                 f"{type(reply).__name__}, not (object, verdict)")
            raise self._describe_failure(problem) from None
        self.session.channel.poll_next_wait_fully()  # see `import_class`
        if self.rebuild is not None:
            self.rebuild.imported(reply[0], module, qualname, (tree,) if protect else ())
        return reply[0]

    def _tick(self, session: Session) -> None:
        """Every tick of the watch thread: the status clock, the parent's logging threshold."""
        self.clock.sample(*session.counts())
        if self._log_level is None or session.broken is not None:
            return
        from ._logforward import parent_threshold, set_threshold

        level = parent_threshold()
        if level != self._log_level:
            self._log_level = level
            # runs in the child between calls; nobody waits for its reply
            # (by value whatever the session's rules: the function must run there, not call back)
            session.call(OP_CALL, set_threshold, args=(level,), policy="value", defer=True).cancel()

    def import_class(self, module: str, qualname: str, target: str, *,
                     expect: tuple[str, str] | None = None) -> tuple[Any, Any]:
        """The class proxy of `target` and the verdict of a generated proxy's check.

        `expect`: what a generated proxy embeds, (fingerprint, `kinds_checksum` of its member
        table). The child compares them with the live class in the same request: the verdict
        is None when both match (and always without `expect`), else what the child sent to
        say what changed (see `_dispatch.op_import`).
        """
        tree = protected_tree(module)
        refuse_loaded(f"extradite({target!r})", (tree, *self.protect), self.protect)
        if not in_tree(tree, self.trees):
            self._protect(tree)
        session = self.session
        try:
            reply = session.call(OP_IMPORT, module, name=qualname,
                                 args=(tree,) if expect is None else (tree, *expect))
            if not (type(reply) is tuple and len(reply) == 2):  # a broken or hostile child: stopped
                problem = ValueError(f"the child answered the import of {target} with a "
                                     f"{type(reply).__name__}, not (class, verdict)")
                raise self._describe_failure(problem) from None
            cls, verdict = reply
            if self.rebuild is not None:
                self.rebuild.imported(cls, module, qualname, (tree,))
            # A wait as long as an import shrinks the polling window, but the calls that follow
            # (construction, the first call) are short: poll them fully rather than sleep.
            session.channel.poll_next_wait_fully()
            from ._proxy import RemoteClass

            if not isinstance(cls, RemoteClass):
                kind = type(cls).__qualname__
                raise TypeError(f"extradite({target!r}): {qualname!r} is a {kind}, not a class; "
                                "extradite() takes classes")
        except ExtraditeRemoteError as exc:
            exc.remote_message = (f"extradite({target!r}) could not load the target in the child: "
                                  f"{exc.remote_message}")
            exc.args = (exc.remote_message,) if not isinstance(exc, ImportError) else exc.args
            raise
        return cls, verdict

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
        if self._supervisor is not None:
            with self._supervisor.lock:  # not in the middle of a restart: its child would outlive this
                self.session.close()
        else:
            self.session.close()
        self.session.guard.close()
        self.process.stop()
        for tree in trees:
            _unprotect(tree)
        _live.discard(self)


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
    "extradite", "import_isolated", "prewarm_extradite_session", "close_extradite_session", "parse_target",
    "protected_tree", "ExtraditeError", "ExtraditeProcessError",
]
