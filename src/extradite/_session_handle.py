"""The handle on one live child process and its `Session`, which starts, supervises and stops it.

    SessionHandle(options)   -> sandbox/limits prepared (refused before any child starts)
                             -> `_spawn`: socketpair, ChildProcess, Session, deadline guard
                             -> `_configure`: untrusted mode, type rules, protect=, concurrency
    handle.import_object()   -> OP_IMPORT: class proxy, function, module or value (its tree protected here)
    child dies, next call    -> `Session.revive` = `_revive` -> `_restart`: budget, new child, replay
    handle.close()           -> session closed, child stopped, its trees unprotected

Every entry point (`_api`, `_generated`, `_executor`) reaches a child through one of these,
so starting, restarting and stopping a child is written once. The registry of open
handles (`_live`, closed at interpreter exit) and of shared ones (`_shared`, by
`share_key`) lives here because `close()` must leave both; `_api` decides who shares.
"""

from __future__ import annotations

import _thread
import atexit
import sys
import types
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

    from ._options import SessionOptions
    from ._process import ChildProcess
    from ._session import Session

# The session machinery (_codec, _session, _proxy, _process, _transport) loads with the
# first child, inside the methods that need it: importing `_api` must stay cheap.

from ._errors import ExtraditeProtocolError, ExtraditeRemoteError
from ._targets import in_tree, protected_tree, refuse_loaded
from ._wire import OP_CALL, OP_CONCURRENCY, OP_CONFIGURE, OP_IMPORT, OP_STATS

__all__ = ["SessionHandle"]

_lock = _thread.RLock()   # guards the registries, users counts and keepalive timers
_shared: dict[str, SessionHandle] = {}
_live: set[SessionHandle] = set()   # open sessions, closed at exit
_atexit_registered = False


def _daemon_threads_allowed() -> bool:
    from ._process import daemon_threads_allowed

    return daemon_threads_allowed()


def _unprotect(tree: str) -> None:
    from ._codec import unprotect

    unprotect(tree)


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
        self.clock: Any = None  # `_status.CallClock`, made once the first child is starting
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
        # loaded once the child is starting: a first session's imports overlap the child's start
        try:
            from ._proxy import ProxyFactory
            from ._session import Session
            from ._status import CallClock
        except BaseException:
            parent_end.close()
            process.kill()
            raise
        if self.clock is None:  # a restarted child keeps counting on the same clock
            self.clock = CallClock()
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
        if self.process.template_due:  # the child is up: the fork server may start now
            self.process.start_template()
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
            if self.process.template_due:  # the child is up: the fork server may start now
                self.process.start_template()
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

