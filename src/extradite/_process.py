"""Start the child interpreter, watch it, and stop it.

    Popen([python, -S, -c, bootstrap], pass_fds=[child end of socketpair, compiled code])
      stdin  <- /dev/null
      stdout -> inherited (the target's prints show up as usual)
      stderr -> pipe -> drain thread -> this process's sys.stderr, last lines kept

The child is a plain `subprocess` (no `multiprocessing`): nothing re-imports
`__main__`, so scripts without a main guard, `python -c`, REPLs and notebooks
all work. In this very environment the child skips `site` and receives this
process's `sys.path` verbatim; another interpreter or environment keeps its own
installation and site-packages and gets only this program's own modules and
the `extradite` package (the rule is in `_interpreter`).

Stopping is a ladder, each step bounded: close the channel (the child exits on
EOF), wait, SIGTERM, wait, SIGKILL, wait.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import IO, Any

    from ._sandbox import Confinement

from ._errors import ExtraditeProcessError, UnsupportedInteractionError

_STDERR_LINES = 40
_EXTRADITE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds `extradite/`


def daemon_threads_allowed() -> bool:
    """False inside a subinterpreter that forbids daemon threads (3.12+ 'isolated' config).

    There our helper threads are ordinary threads, so the interpreter joins them
    before it ends: every session must be closed by then (`_api` arranges it).
    """
    import _thread

    allowed = getattr(_thread, "daemon_threads_allowed", None)
    return True if allowed is None else bool(allowed())


def _bootstrap(fd: int, *, path: list[str] | None = None, prelude: str | None = None,
               code_fd: int = -1, confine: tuple[Any, ...] | None = None) -> str:
    """The `python -c` program of a child: set up its path, then serve descriptor `fd`.

    `path` replaces sys.path; `prelude`: lines that set up a child of another interpreter
    (`_interpreter.foreign_prelude`); `code_fd`: a memfd of compiled modules; `confine`:
    a `_sandbox.Confinement.spec` (plain literals) the child applies before serving.
    """
    lines = ["import sys"]
    if path is not None:
        lines.append(f"sys.path[:] = {path!r}")
    if prelude is not None:
        lines.append(prelude)
    if code_fd >= 0:  # compiled runtime modules from the parent (see _bootcode); first in line
        from ._bootcode import FINDER

        lines.append(FINDER.replace("CODE_FD", str(code_fd)))
    lines.append("from extradite._child import main")
    lines.append(f"main({fd})" if confine is None else f"main({fd}, {confine!r})")
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


def child_command(fd: int, python: str | None, code_fd: int = -1,
                  confine: tuple[Any, ...] | None = None) -> list[str]:
    """The argv that starts a child serving the channel on descriptor `fd`.

    `python`: None or a path checked by `_interpreter.resolve_python`. `code_fd`: a
    memfd of compiled runtime modules (same binary only), see _bootcode. `confine`: see `_bootstrap`.
    """
    if same_interpreter(python):
        path = [entry for entry in sys.path if isinstance(entry, str)]  # imports skip the others too
        if _EXTRADITE_ROOT not in path:
            path.append(_EXTRADITE_ROOT)
        return [sys.executable, "-S", "-c", _bootstrap(fd, path=path, code_fd=code_fd, confine=confine)]
    assert python is not None
    from ._interpreter import foreign_prelude

    # -P: no script directory of its own; the program's own entries come from the prelude
    return [python, "-P", "-c", _bootstrap(fd, prelude=foreign_prelude(_EXTRADITE_ROOT), code_fd=code_fd,
                                           confine=confine)]


class ChildProcess:
    """The child interpreter of one session."""

    def __init__(self, child_fd: int, *, python: str | None, label: str,
                 confinement: Confinement | None = None) -> None:
        import subprocess

        self.label = label
        self.confinement = confinement
        self.tail: deque[str] = deque(maxlen=_STDERR_LINES)
        code_fd = -1
        if _ships_code(python):  # the same bytecode: ship it (see _bootcode)
            from ._bootcode import code_fd as make_code_fd

            code_fd = make_code_fd()
        argv = child_command(child_fd, python, code_fd, None if confinement is None else confinement.spec)
        env = None
        if not same_interpreter(python):
            from ._interpreter import foreign_environ

            env = foreign_environ()
        try:
            self.popen = subprocess.Popen(
                argv, pass_fds=(child_fd,) if code_fd < 0 else (child_fd, code_fd),
                stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, close_fds=True, env=env)
        except OSError as exc:
            raise ExtraditeProcessError(
                f"could not start the child interpreter {argv[0]!r} for {label}: {exc}; "
                "check the python= path") from exc
        finally:
            if code_fd >= 0:
                os.close(code_fd)
        self.pid = self.popen.pid
        assert self.popen.stderr is not None
        self._stopping = False
        self._drain = threading.Thread(target=self._drain_stderr, args=(self.popen.stderr,),
                                       name=f"extradite-stderr-{self.pid}",
                                       daemon=daemon_threads_allowed())
        try:
            self._drain.start()
        except RuntimeError as exc:  # a subinterpreter created with allow_threads=False
            self.kill()
            self.popen.stderr.close()
            raise UnsupportedInteractionError(
                f"extradite cannot start {label} in this interpreter: {exc}. The parent side needs a "
                "thread to forward the child's stderr; create the subinterpreter with threads allowed "
                "(the 'isolated' config of _interpreters / concurrent.interpreters allows them)") from exc

    def _drain_stderr(self, pipe: IO[bytes]) -> None:
        """Forward the child's stderr line by line, keeping the last lines for error messages.

        Polls so that `stop()` can end it even when a grandchild still holds the pipe
        (in a subinterpreter this thread cannot be a daemon, so it must end by itself).
        """
        import select

        fd = pipe.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        pending = b""
        try:
            while True:
                if not poller.poll(200):
                    if self._stopping:  # only once nothing is left to read
                        break
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    self._emit(raw.decode("utf-8", "replace"))
            if pending:
                self._emit(pending.decode("utf-8", "replace"))
        finally:
            pipe.close()

    def _emit(self, line: str) -> None:
        self.tail.append(line)
        stream = sys.stderr
        if stream is not None:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass

    def death_error(self, cause: BaseException | None = None, *, wait: float = 1.0) -> ExtraditeProcessError:
        """Describe how the child ended (waits up to `wait` seconds for it to finish dying)."""
        import subprocess

        try:
            returncode: int | None = self.popen.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            returncode = None
        self._drain.join(timeout=0.5)
        if returncode is None:
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
        try:
            self.popen.kill()
        except OSError:
            pass
        try:
            self.popen.wait(timeout=5)
        except Exception:
            pass

    def stop(self, grace: float = 2.0) -> None:
        """After the channel is closed: wait, terminate, kill (each bounded)."""
        import subprocess

        for step in (None, self.popen.terminate, self.popen.kill):
            if step is not None:
                try:
                    step()
                except OSError:
                    pass
            try:
                self.popen.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        self._stopping = True
        self._drain.join(timeout=1.0)


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
