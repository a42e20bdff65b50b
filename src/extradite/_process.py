"""Start the child interpreter, watch it, and stop it.

    spawn([python, -S, -c, bootstrap], pass_fds=[child end of socketpair, compiled code,
          log pipe], process_group=0: the child leads a process group of its own)
      stdin  <- /dev/null
      stdout -> inherited (the target's prints show up as usual)
      stderr -> pipe -> watch thread -> this process's sys.stderr, last lines kept (_output)
      log pipe ---------> watch thread -> this process's `logging` (_logforward)
      pidfd of the child -> watch thread: the child ended -> kill its group, wake the session

The child is a plain new process (`_spawn`, no `multiprocessing`): nothing re-imports
`__main__`, so scripts without a main guard, `python -c`, REPLs and notebooks
all work. In this very environment the child skips `site` and receives this
process's `sys.path` verbatim; another interpreter or environment keeps its own
installation and site-packages and gets only this program's own modules and
the `extradite` package (the rule is in `_interpreter`). Once a session of this
interpreter has started, later ones get a child forked from the fork server's template
instead (`_forkserver`): the same child, the same descriptors, without an interpreter start.

Fate sharing: whatever the target starts stays in the child's process group, and the
group is killed (SIGKILL) when the session closes, when the child dies and, by the
child's warden (`_warden`), when this process dies. The child's death is seen by the
process itself (its pidfd, else waitid), not only by the end of the channel: a
grandchild holding a copy of the channel cannot hide it. The group is only ever
killed while the child is not reaped yet, so its id cannot belong to another group
(a forked child is reaped by its template, and only when this process asks).

Stopping is a ladder, each step bounded: close the channel (the child exits on
EOF), wait, SIGTERM, wait, SIGKILL to the group, wait.
"""

from __future__ import annotations

import _thread
import os
import sys
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from collections import deque
    from typing import IO, Any, Callable

    from ._sandbox import Confinement

from ._errors import ExtraditeProcessError, UnsupportedInteractionError

_EXTRADITE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds `extradite/`
TICK_SECONDS = 0.2  # the watch thread's tick (see `ChildProcess.on_tick`)
_SIGKILL = 9


TEMPLATE_DELAY = 0.05  # seconds after a spawned child answered before the template starts (see `start_template`)


def _fork_server_enabled() -> bool:
    from ._forkserver import enabled

    return enabled()


def _fork_server() -> Any:
    """The fork server's module once a template was started (before that nothing can fork a
    child, and a first session does not import it ahead of its child's start); else None."""
    server = sys.modules.get("extradite._forkserver")
    return server if server is not None and server.enabled() else None


def daemon_threads_allowed() -> bool:
    """False inside a subinterpreter that forbids daemon threads (3.12+ 'isolated' config).

    There our helper threads are ordinary threads, so the interpreter joins them
    before it ends: every session must be closed by then (`_session_handle` arranges it).
    """
    import _thread

    allowed = getattr(_thread, "daemon_threads_allowed", None)
    return True if allowed is None else bool(allowed())


def _bootstrap(fd: int, *, path: list[str] | None = None, prelude: str | None = None,
               code_fd: int = -1, confine: tuple[Any, ...] | None = None, log_fd: int = -1,
               log_level: int = 0, template: bool = False) -> str:
    """The `python -c` program of a child: set up its path, then serve descriptor `fd`.

    `path` replaces sys.path; `prelude`: lines that set up a child of another interpreter
    (`_interpreter.foreign_prelude`); `code_fd`: a memfd of compiled modules; `confine`:
    a `_sandbox.Confinement.spec` (plain literals) the child applies before serving; `log_fd`:
    the log pipe (-1: records are not forwarded) and the level to forward from; `template`:
    a fork server's template instead (`_template`), serving its control socket `fd`.
    """
    lines = ["import sys"]
    if path is not None:
        lines.append(f"sys.path[:] = {path!r}")
    if prelude is not None:
        lines.append(prelude)
    if code_fd >= 0:  # compiled runtime modules from the parent (see _bootcode); first in line
        from ._bootcode import FINDER

        lines.append(FINDER.replace("CODE_FD", str(code_fd)))
    if template:
        lines.append("from extradite._template import serve")
        lines.append(f"serve({fd}, parent={os.getpid()})")
    else:
        lines.append("from extradite._child import main")
        lines.append(f"main({fd}, parent={os.getpid()}, log_fd={log_fd}, log_level={log_level}, "
                     f"confine={confine!r})")
    return "\n".join(lines)


def same_interpreter(python: str | None) -> bool:
    """Whether `python` starts this very environment (the fast start applies)."""
    if python is None:
        return True
    from ._interpreter import same_environment

    return same_environment(python)


def _ships_code(python: str | None) -> bool:
    """Whether this process's bytecode suits the child (the same binary, whatever its venv)."""
    if python is None:
        return True
    from ._interpreter import same_binary

    return same_binary(python)


def child_path() -> list[str]:
    """The sys.path of a child of this interpreter: this process's, with extradite's own root."""
    path = [entry for entry in sys.path if isinstance(entry, str)]  # imports skip the others too
    if _EXTRADITE_ROOT not in path:
        path.append(_EXTRADITE_ROOT)
    return path


def template_command(fd: int, code_fd: int) -> list[str]:
    """The argv of a fork server's template (`_forkserver`) serving its control socket `fd`."""
    return [sys.executable, "-S", "-c", _bootstrap(fd, path=child_path(), code_fd=code_fd, template=True)]


def child_command(fd: int, python: str | None, code_fd: int = -1, log_fd: int = -1,
                  log_level: int = 0, confine: tuple[Any, ...] | None = None) -> list[str]:
    """The argv that starts a child serving the channel on descriptor `fd`.

    `python`: None or a path checked by `_interpreter.resolve_python`. `code_fd`: a
    memfd of compiled runtime modules (same binary only), see _bootcode. `log_fd`,
    `log_level`, `confine`: see `_bootstrap`.
    """
    if same_interpreter(python):
        return [sys.executable, "-S", "-c", _bootstrap(fd, path=child_path(), code_fd=code_fd, log_fd=log_fd,
                                                     log_level=log_level, confine=confine)]
    assert python is not None
    from ._interpreter import foreign_prelude

    # -P: no script directory of its own; the program's own entries come from the prelude
    return [python, "-P", "-c", _bootstrap(fd, prelude=foreign_prelude(_EXTRADITE_ROOT),
                                                code_fd=code_fd, log_fd=log_fd, log_level=log_level,
                                                confine=confine)]


class ChildProcess:
    """The child interpreter of one session.

    `on_exit` is called (on the watch thread) once the child has ended and its group was
    killed; `on_tick` every TICK_SECONDS while it runs. Both are set by the session's owner.
    `log_level`: forward the child's `logging` records from this level up (None: do not).
    `confinement`: the sandbox and limits the child applies to itself (`_sandbox`).
    """

    def __init__(self, child_fd: int, *, python: str | None, label: str, log_level: int | None = None,
                 confinement: Confinement | None = None) -> None:
        self.label = label
        self.confinement = confinement
        self.on_exit: Callable[[], None] | None = None
        self.on_tick: Callable[[], None] | None = None
        self._reap_lock = _thread.allocate_lock()
        code_fd = log_read = log_write = -1
        if log_level is not None:
            log_read, log_write = os.pipe()
        spec = None if confinement is None else confinement.spec
        # a _spawn.SpawnedProcess (or subprocess.Popen), or a _forkserver.ForkedChild: the same few members
        self.popen: Any = None
        same = same_interpreter(python)
        server = _fork_server() if same else None
        if server is not None:  # a template of this interpreter forks it (see _forkserver)
            try:
                self.popen = server.fork_child(child_fd, log_write, log_level or 0, spec)
            except BaseException:
                for fd in (log_read, log_write):
                    if fd >= 0:
                        os.close(fd)
                raise
        self.forked = self.popen is not None
        if self.popen is None:
            if _ships_code(python):  # the same bytecode: ship it (see _bootcode)
                from ._bootcode import code_fd as make_code_fd

                code_fd = make_code_fd()
            argv = child_command(child_fd, python, code_fd, log_write, log_level or 0, spec)
            env = None
            if not same_interpreter(python):
                from ._interpreter import foreign_environ

                env = foreign_environ()
            try:
                self.popen = _start(argv, tuple(fd for fd in (child_fd, code_fd, log_write) if fd >= 0), env)
            except OSError as exc:
                if log_read >= 0:
                    os.close(log_read)
                raise ExtraditeProcessError(
                    f"could not start the child interpreter {argv[0]!r} for {label}: {exc}; "
                    "check the python= path") from exc
            finally:
                for fd in (code_fd, log_write):
                    if fd >= 0:
                        os.close(fd)
        elif log_write >= 0:
            os.close(log_write)
        # Spawned where a template could have forked it: the session's owner starts one once
        # this child is up (`start_template`), so the two never compete for the CPUs. (Asked
        # only now: the fork server's module loads while the child starts.)
        self.template_due = same and not self.forked and _fork_server_enabled()
        self.pid = self.popen.pid
        from ._output import StderrForwarder

        self.stderr = StderrForwarder()
        self.logs: Any = None
        if log_read >= 0:
            from ._logforward import LogReceiver

            self.logs = LogReceiver(self.pid)
        self._log_fd = log_read
        self._pidfd = -1
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                self._pidfd = pidfd_open(self.pid)
            except OSError:  # a kernel without pidfds: waitid on every tick instead
                pass
        assert self.popen.stderr is not None
        self._stopping = False
        self.exited = False
        try:
            self._watcher = _Watcher(self._watch, self.popen.stderr, f"extradite-watch-{self.pid}")
        except RuntimeError as exc:  # a subinterpreter created with allow_threads=False
            self.kill()
            self._close_watched(self.popen.stderr)
            raise UnsupportedInteractionError(
                f"extradite cannot start {label} in this interpreter: {exc}. The parent side needs a "
                "thread to forward the child's stderr; create the subinterpreter with threads allowed "
                "(the 'isolated' config of _interpreters / concurrent.interpreters allows them)") from exc

    def start_template(self) -> None:
        """Once this spawned child has answered: start the fork server's template for the next
        sessions, on a thread of its own (never on a caller's call, never before the child is up)."""
        if self.template_due:
            self.template_due = False
            import _thread

            _thread.start_new_thread(_start_template_later, ())

    @property
    def tail(self) -> deque[str]:
        """The last lines of the child's stderr (for error messages)."""
        return self.stderr.tail

    # -- the watch thread ------------------------------------------------------------
    def _watch(self, pipe: IO[bytes]) -> None:
        """Forward stderr and log records, notice the child's end, tick.

        Polls so that `stop()` can end it even when a grandchild still holds the pipes
        (in a subinterpreter this thread cannot be a daemon, so it must end by itself).
        """
        import select
        import time

        err = pipe.fileno()
        poller = select.poll()
        reading = {err}
        poller.register(err, select.POLLIN)
        if self._log_fd >= 0:
            reading.add(self._log_fd)
            poller.register(self._log_fd, select.POLLIN)
        if self._pidfd >= 0:
            poller.register(self._pidfd, select.POLLIN)
        next_tick = time.monotonic() + TICK_SECONDS
        try:
            while True:
                events = poller.poll(int(TICK_SECONDS * 1000))
                for fd, _ in events:
                    if fd == self._pidfd:
                        poller.unregister(fd)
                        self._ended()
                        continue
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        poller.unregister(fd)
                        reading.discard(fd)
                    elif fd == err:
                        self.stderr.feed(chunk)
                    else:
                        self._guarded(self.logs.feed, chunk)
                if not events or not reading:
                    if self.exited and not reading:
                        break
                    if not events and (self._stopping or self.exited):  # nothing left to read
                        break
                    if self._pidfd < 0 and not self.exited and self._has_exited():
                        self._ended()
                now = time.monotonic()
                if now >= next_tick and not self.exited:
                    next_tick = now + TICK_SECONDS
                    if self.on_tick is not None:
                        self._guarded(self.on_tick)
            self.stderr.finish()
        finally:
            self._close_watched(pipe)

    def _ended(self) -> None:
        """The child process ended: kill what it left in its group, tell the session."""
        self._kill_group()
        if self.on_exit is not None:
            self._guarded(self.on_exit)
        self.exited = True  # after on_exit: whoever sees it sees what on_exit did to the session

    @staticmethod
    def _guarded(function: Callable[..., None], *args: Any) -> None:
        try:
            function(*args)
        except Exception:  # a failing handler must not stop the forwarding
            pass

    def _close_watched(self, pipe: IO[bytes]) -> None:
        pipe.close()
        for name in ("_log_fd", "_pidfd"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)

    # -- waiting, reaping, killing -----------------------------------------------------
    def _has_exited(self) -> bool:
        """Whether the child has ended, without reaping it (its pid stays its own)."""
        if self.popen.returncode is not None:
            return True
        if self.forked:  # the template's child: its pidfd says, the template reaps on request
            return bool(self.popen.exited())
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def _wait_exit(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the child to end, without reaping it."""
        import time

        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not self._has_exited():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.02)
        return True

    def _kill_group(self) -> None:
        """SIGKILL to the child's process group, only while the child is not reaped (see module docstring)."""
        with self._reap_lock:
            self._kill_group_unreaped()

    def _kill_group_unreaped(self) -> None:
        """`_kill_group` for a caller holding `_reap_lock`: once reaped, the pid may be another's."""
        if self.popen.returncode is None:
            try:
                os.killpg(self.pid, _SIGKILL)
            except OSError:
                pass

    def _reap(self) -> int | None:
        """After the child ended: kill what is left of its group, then collect its exit status."""
        with self._reap_lock:
            if self.popen.returncode is None:
                self._kill_group_unreaped()
                self.popen.wait()
            code: int | None = self.popen.returncode
            return code

    def death_error(self, cause: BaseException | None = None, *, wait: float = 1.0) -> ExtraditeProcessError:
        """Describe how the child ended (waits up to `wait` seconds for it to finish dying)."""
        returncode: int | None = self._reap() if self._wait_exit(wait) else None
        if not self._watcher.is_current():
            self._watcher.join(timeout=0.5)  # the last lines of stderr
        if self.forked and self.popen.lost:
            status = "ended; its exit status is unknown (the fork server's template that started it is gone)"
            returncode = None
        elif returncode is None:
            status = "closed the channel but is still running (it was killed)"
            self.kill()
        elif returncode < 0:
            status = f"was killed by signal {-returncode} ({_signal_name(-returncode)})"
        else:
            status = f"exited with code {returncode}"
        tail = "\n".join(self.tail)
        if self.confinement is not None:
            status += self.confinement.death_hint(returncode, tail)
        message = f"the extradite child process (pid {self.pid}) serving {self.label} {status}"
        if tail:
            quoted = "\n".join("    " + line for line in tail.splitlines()[-15:])
            message += f"; last lines of its stderr:\n{quoted}"
        else:
            message += "; it wrote nothing to stderr"
        error = ExtraditeProcessError(message, returncode=returncode, stderr_tail=tail)
        if cause is not None and not isinstance(cause, EOFError):
            error.__cause__ = cause
        return error

    def kill(self) -> None:
        """SIGKILL to the child and its whole group, then reap it."""
        self._kill_group()
        if self._wait_exit(5):
            self._reap()

    def stop(self, grace: float = 2.0) -> None:
        """After the channel is closed: wait, terminate, kill the group (each bounded), reap."""
        for step in (None, self.popen.terminate, self._kill_group):
            if step is not None:
                try:
                    step()
                except OSError:
                    pass
            if self._wait_exit(grace):
                self._reap()
                break
        self._stopping = True
        self._watcher.join(timeout=1.0)


class _Watcher:
    """The watch thread: a bare `_thread` thread where daemon threads are allowed (starting a
    `threading.Thread` waits until the new thread runs, which a session's start would pay),
    else a `threading.Thread` the interpreter joins at its end."""

    def __init__(self, watch: Callable[[Any], None], pipe: Any, name: str) -> None:
        if not daemon_threads_allowed():
            import threading

            self._thread: Any = threading.Thread(target=watch, args=(pipe,), name=name)
            self._thread.start()
            return
        self._thread = None
        self._ident = -1
        self._running = _thread.allocate_lock()
        self._running.acquire()  # released when `watch` returns: `join`

        def run() -> None:
            self._ident = _thread.get_ident()
            try:
                watch(pipe)
            finally:
                self._running.release()

        self._ident = _thread.start_new_thread(run, ())

    def is_current(self) -> bool:
        """Whether the caller runs on this thread."""
        if self._thread is not None:
            import threading

            return threading.current_thread() is self._thread
        return _thread.get_ident() == self._ident

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        elif self._running.acquire(timeout=timeout):
            self._running.release()


def _start(argv: list[str], pass_fds: tuple[int, ...], env: dict[str, str] | None) -> Any:
    """A child running `argv`, stdin on /dev/null, stderr a pipe (its read end: `.stderr`)."""
    from ._spawn import spawn, usable

    if not usable():  # `subprocess` guarantees the same everywhere, at an import's cost
        import subprocess

        return subprocess.Popen(argv, pass_fds=pass_fds, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                close_fds=True, env=env, process_group=0)
    err_read, err_write = os.pipe()
    try:
        process = spawn(argv, pass_fds=pass_fds, stdin=-1, stderr=err_write, env=env)
    except BaseException:
        os.close(err_read)
        raise
    finally:
        os.close(err_write)
    process.stderr = open(err_read, "rb", buffering=0)
    return process


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def socketpair() -> tuple[Any, Any]:
    """A connected AF_UNIX stream pair; both ends non-inheritable until passed on."""
    import _socket

    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)


def _start_template_later() -> None:
    """Start the fork server's template a moment after a spawned child answered: the first
    calls of that session go first (a template's start takes a CPU for milliseconds)."""
    import time

    time.sleep(TEMPLATE_DELAY)
    from ._forkserver import start

    start()
