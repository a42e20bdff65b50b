"""Start a helper process (a child, the fork server's template) without the `subprocess` module.

Importing `subprocess` costs a program's first session several milliseconds (it loads
`signal`, `locale`, `re`, `enum`, `selectors`, ...); `os.posix_spawn` needs none of them.
It does what `Popen(argv, pass_fds=..., close_fds=True, process_group=0, ...)` does:

    the passed descriptors: inheritable in the new process only (dup2 onto themselves,
        which clears close-on-exec there: glibc 2.29 and later, checked once)
    every other inheritable descriptor of this process: closed in the new process
    0, 1, 2: /dev/null or the given descriptor, else inherited
    SIGPIPE and SIGXFSZ back to their defaults, a process group of its own

Where that cannot be guaranteed (another C library, an older glibc, no posix_spawn)
`spawn` returns None and the caller uses `subprocess` as before.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import IO, Any, Mapping, Sequence

_usable: list[bool] = []  # [] until checked


def usable() -> bool:
    """Whether `spawn` can start a process here with `Popen`'s guarantees."""
    if not _usable:
        _usable.append(_check())
    return _usable[0]


def _check() -> bool:
    if not sys.platform.startswith("linux") or not hasattr(os, "posix_spawn"):
        return False
    try:
        libc, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # type: ignore[union-attr]
        major, minor = (int(part) for part in version.split(".")[:2])
    except (AttributeError, ValueError, OSError):
        return False
    return libc == "glibc" and (major, minor) >= (2, 29)


def spawn(argv: Sequence[str], *, pass_fds: Sequence[int] = (), stdin: int | None = None,
          stdout: int | None = None, stderr: int | None = None,
          env: Mapping[str, str] | None = None) -> SpawnedProcess:
    """Start `argv` in a process group of its own; returns it (raises OSError as `Popen` does).

    `stdin`, `stdout`, `stderr`: a descriptor to put there (-1: /dev/null; None: this
    process's own). Call only where `usable()` is true.
    """
    keep = set(pass_fds)
    streams = [(target, fd) for target, fd in ((0, stdin), (1, stdout), (2, stderr)) if fd is not None]
    # copies first: a source descriptor may itself be 0, 1 or 2 (this process closed its own)
    actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in streams if fd >= 0]
    actions += [(os.POSIX_SPAWN_OPEN, target, os.devnull, os.O_RDWR, 0) for target, fd in streams if fd < 0]
    for fd in _inheritable_fds():
        if fd > 2 and fd not in keep:
            actions.append((os.POSIX_SPAWN_CLOSE, fd))
    actions += [(os.POSIX_SPAWN_DUP2, fd, fd) for fd in sorted(keep)]
    import _signal  # type: ignore[import-not-found]

    defaults = [getattr(_signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(_signal, name)]
    start = os.posix_spawn if "/" in argv[0] else os.posix_spawnp  # a bare name is looked up on PATH, as Popen does
    pid = start(argv[0], list(argv), os.environ if env is None else env, file_actions=actions,
                setpgroup=0, setsigdef=defaults)
    return SpawnedProcess(pid, list(argv))


def _inheritable_fds() -> list[int]:
    """The descriptors of this process a new process would inherit (a `Popen` child never does)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if os.get_inheritable(fd):
                found.append(fd)
        except OSError:  # the listing's own descriptor, already closed; or one closed meanwhile
            pass
    return found


class SpawnedProcess:
    """The part of `subprocess.Popen` the runtime uses, for a process `spawn` started."""

    def __init__(self, pid: int, args: list[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None
        self.stderr: IO[bytes] | None = None  # the read end of its stderr pipe, when the caller keeps one

    def poll(self) -> int | None:
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code, once it ended; TimeoutError after `timeout` seconds."""
        if timeout is None:
            while self.returncode is None:
                self._reap(0)
            return self.returncode
        import time

        deadline = time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"process {self.pid} still runs after {timeout} s")
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.02)
        assert self.returncode is not None
        return self.returncode

    def _reap(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored, os.wait()): as Popen does
            self.returncode = 0
            return
        except InterruptedError:
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)

    def send_signal(self, number: int) -> None:
        if self.returncode is None and self.poll() is None:  # never signal a reaped pid
            os.kill(self.pid, number)

    def terminate(self) -> None:
        self.send_signal(15)

    def kill(self) -> None:
        self.send_signal(9)
