"""The fork server: later sessions fork their child from a template instead of starting Python.

    first session:   spawns its child as always (`_process`); a moment after that child has
                     answered (`_process.TEMPLATE_DELAY`), starts the template (so the two
                     never compete for the CPUs, nor the template with the first calls)
    later sessions:  a spare offered? -- ("fork", context) + descriptors --> straight to it
                     (its pid came with the offer: nothing to wait for; steered off this
                     thread's CPU first, so it wakes beside this thread: `steer_away`)
                     else template ready? -- the same request --> the child's pid
                     (no interpreter start, no runtime import: about a millisecond)
                     not ready, gone or refusing -> spawn as always; a dead one is replaced

The template (`_template`) is a `python -S` of this very interpreter and environment that
has imported the child runtime and nothing else: never a target, never a thread. Each
request carries what a spawned child would inherit at that moment (sys.path, current
directory, environment, stdout, a new stderr pipe); when what an interpreter reads only at
its start has changed since the template started (a PYTHON* variable, the CPU affinity),
the template is replaced and that session spawns. The forked child runs the same
`_child.main` as a spawned one: its own process group, its warden, the sandbox and limits,
then the target. A child forked from it shares the template's hash seed; nothing else of
the template reaches it.

Only sessions of this interpreter use it (`python=` naming another interpreter or
environment spawns). It is off when EXTRADITE_FORK_SERVER=0 (or false/no/off), without
pidfds (Linux before 5.3) and outside the main interpreter. The template lives as long as
this process: it exits when this process ends (it watches a pidfd of it), and at exit.
"""

from __future__ import annotations

import _thread
import os
import sys
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

ENV_VAR = "EXTRADITE_FORK_SERVER"
_REPLY_TIMEOUT = 10.0  # seconds a template may take to answer before it counts as dead
_OFF = ("0", "false", "no", "off")

_lock = _thread.allocate_lock()
_template: list[Template] = []  # the current template, if any
_supported: list[bool] = []  # [] until checked


def enabled() -> bool:
    """Whether sessions of this interpreter may fork their child from a template."""
    if os.environ.get(ENV_VAR, "1").strip().lower() in _OFF:
        return False
    if not _supported:
        _supported.append(_check_supported())
    return _supported[0]


def _check_supported() -> bool:
    if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open") or not hasattr(os, "memfd_create"):
        return False
    for name in ("_interpreters", "_xxsubinterpreters"):  # a subinterpreter's sessions spawn
        try:
            module: Any = __import__(name)
        except ImportError:
            continue
        try:
            return bool(module.get_current() == module.get_main())
        except Exception:
            return False
    return True


def start() -> None:
    """Start a template unless one runs (or starts) already; never waits for it."""
    with _lock:
        if _template and not _template[0].dead:
            return
        if _template:
            _template.pop().close()
        try:
            _template.append(Template())
        except OSError:  # no process to spare: sessions keep spawning
            return
        if not _registered:
            import atexit

            atexit.register(shutdown)
            os.register_at_fork(after_in_child=_forget_in_fork)
            _registered.append(True)


_registered: list[bool] = []


def shutdown() -> None:
    """Stop the template (at exit; tests). Children it forked keep running until their sessions end."""
    with _lock:
        if _template:
            _template.pop().close()


def _current() -> Template | None:
    try:
        return _template[0]
    except IndexError:  # none, or another thread just replaced it
        return None


def current_pid() -> int | None:
    """The template's pid, if one runs."""
    template = _current()
    return None if template is None or template.dead else template.popen.pid


def spare_pid() -> int | None:
    """The pid of the child the template forked ahead for the next session, if any (tests)."""
    template = _current()
    if template is None or not template.usable():
        return None
    reply = template.request(("spare",))
    return None if reply is None or reply[0] != "ok" else reply[1]


def _forget_in_fork() -> None:
    """In a forked copy of this process the template is not ours: drop our copy of its socket."""
    global _lock
    _lock = _thread.allocate_lock()
    if _template:
        template = _template.pop()
        template.dead = True
        try:
            template._drop_offer()
            template.sock.close()
        except OSError:
            pass


def fork_child(child_fd: int, log_fd: int, log_level: int, confine: tuple[Any, ...] | None) -> ForkedChild | None:
    """A child forked by the template serving the channel on `child_fd`, or None: spawn one.

    None when no template is ready yet, it died or it refused; the spawned child's session
    then starts one (`_process.ChildProcess.start_template`). The arguments are those of `_process.child_command`.
    """
    template = _current()
    if template is None or not template.usable():
        return None  # the spawned child's session starts (or replaces) it once up: `start_template`
    if template.startup != _startup_state():  # it would not start like a spawned child now
        shutdown()
        return None
    from ._process import child_path

    stderr_read, stderr_write = os.pipe()
    fds = [child_fd, stderr_write, 1] + ([log_fd] if log_fd >= 0 else [])
    request = ("fork", os.getpid(), child_path(), os.getcwd(), dict(os.environb), log_level, confine)
    try:
        pid = template.hand_to_spare(request, fds)  # no answer to wait for
        if pid is None:
            reply = template.request(request, fds)
            pid = reply[1] if reply is not None and reply[0] == "ok" else None
    finally:
        os.close(stderr_write)
    if pid is None:
        os.close(stderr_read)
        return None
    reply = ("ok", pid)
    try:
        return ForkedChild(template, reply[1], stderr_read)
    except OSError:  # it ended before we could watch it: kill whatever is left, spawn instead
        try:
            os.killpg(reply[1], 9)
        except OSError:
            pass
        template.request(("reap", reply[1]))
        os.close(stderr_read)
        return None


def _startup_state() -> tuple[Any, ...]:
    """What an interpreter reads only when it starts (PYTHON* variables: bytecode cache, hash
    seed, warnings, I/O encoding, ...) and the CPUs it may run on: a template started with
    other values would give its children other ones than a spawned child gets. PYTHONPATH
    is not among them: a child of this interpreter gets this process's sys.path anyway."""
    return (sorted((key, value) for key, value in os.environ.items()
                   if key.startswith("PYTHON") and key != "PYTHONPATH"), os.sched_getaffinity(0))


def steer_away(pid: int, allowed: set[int]) -> bool:
    """Keep process `pid` off the CPU this thread runs on now: its CPUs become `allowed` but
    this one. Whether it was steered: not with one CPU allowed, nor when this thread runs on
    none of them; a failure (the process is gone, not ours) changes nothing.

    A spare asleep until its session is woken by this thread, which then goes on building its
    side of the session: a wake-up placed on this CPU would wait for this thread to yield
    instead of running beside it. The spare restores its CPUs once woken (`_template._spare`).
    """
    if len(allowed) < 2:
        return False
    try:
        cpu = current_cpu()
        if cpu not in allowed:
            return False
        os.sched_setaffinity(pid, allowed - {cpu})
    except (OSError, ValueError, IndexError):
        return False
    return True


def current_cpu() -> int:
    """The CPU this thread runs on (the 39th field of its /proc stat; no C call without ctypes)."""
    fd = os.open("/proc/thread-self/stat", os.O_RDONLY)
    try:
        stat = os.read(fd, 4096)
    finally:
        os.close(fd)
    return int(stat.rsplit(b")", 1)[1].split()[36])


def _rights(fds: list[int]) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def _readable(fd: int) -> bool:
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class Template:
    """One template process and the parent's end of its control socket."""

    def __init__(self) -> None:
        import _socket

        from ._bootcode import code_fd as make_code_fd
        from ._process import template_command

        self.startup = _startup_state()
        self.sock, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        code_fd = -1
        try:
            code_fd = make_code_fd()
            argv = template_command(theirs.fileno(), code_fd)
            self.popen = _start(argv, tuple(fd for fd in (theirs.fileno(), code_fd) if fd >= 0))
        except BaseException:
            self.sock.close()
            raise
        finally:
            theirs.close()
            if code_fd >= 0:
                os.close(code_fd)
        self.sock.settimeout(_REPLY_TIMEOUT)
        self.ready = False
        self.dead = False
        self._lock = _thread.allocate_lock()
        self.offer: tuple[int, Any] | None = None  # (pid, socket) of the spare the template offered

    def usable(self) -> bool:
        """Whether it has loaded the runtime and serves (never waits)."""
        if self.ready or self.dead:
            return self.ready and not self.dead
        with self._lock:
            if not self.ready and not self.dead and _readable(self.sock.fileno()):
                try:
                    said = self.sock.recv(16)
                except OSError:
                    said = b""
                if said == b"ready":
                    self.ready = True
                else:
                    self._died()
        return self.ready and not self.dead

    def request(self, message: tuple[Any, ...], fds: list[int] | None = None) -> tuple[Any, ...] | None:
        """Send one request (with `fds`), return the reply; None: the template is gone."""
        import _socket
        import marshal

        data = marshal.dumps(message)
        with self._lock:
            if self.dead:
                return None
            try:
                if fds:
                    self.sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _rights(fds))])
                else:
                    self.sock.send(data)
            except OSError:  # EBADF: this process closed its stdout (a spawned child copes)
                if self.popen.poll() is not None:
                    self._died()
                return None
            while True:
                try:
                    reply = self._receive()
                except OSError:  # no answer in time: it is stuck or gone
                    reply = None
                if reply is None:
                    self._died()
                    return None
                if reply[0] != "offer":
                    return reply

    def hand_to_spare(self, message: tuple[Any, ...], fds: list[int]) -> int | None:
        """Send a ("fork", ...) request straight to the spare the template offered: its pid,
        or None (no spare offered, or it is gone: ask the template instead)."""
        import _socket
        import marshal

        with self._lock:
            if self.dead:
                return None
            try:
                while _readable(self.sock.fileno()):  # collect an offer sent meanwhile
                    if self._receive() is None:
                        self._died()
                        return None
            except OSError:  # the request to the template says what became of it
                return None
            if self.offer is None:
                return None
            (pid, spare), self.offer = self.offer, None
        steer_away(pid, self.startup[1])  # it wakes beside this thread, not queued behind it
        try:
            spare.sendmsg([marshal.dumps(message)], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _rights(fds))])
        except OSError:  # it died: the template reaps it
            return None
        finally:
            spare.close()
        return pid

    def _receive(self) -> tuple[Any, ...] | None:
        """(lock held) One message from the template, an offer kept in `offer`; None: it ended."""
        import _socket
        import marshal

        data, ancillary, _, _ = self.sock.recvmsg(65536, _socket.CMSG_SPACE(4), _socket.MSG_CMSG_CLOEXEC)
        if not data:
            return None
        message: tuple[Any, ...] = marshal.loads(data)
        if message[0] == "offer":
            for level, kind, payload in ancillary:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(payload) >= 4:
                    self._drop_offer()
                    spare = _socket.socket(fileno=int.from_bytes(payload[:4], sys.byteorder, signed=True))
                    self.offer = (message[1], spare)
        return message

    def _drop_offer(self) -> None:
        if self.offer is not None:
            self.offer[1].close()
            self.offer = None

    def offer_fd(self) -> int:
        """The descriptor of the offered spare's socket, -1 if none (tests)."""
        offer = self.offer
        return -1 if offer is None else offer[1].fileno()

    def _died(self) -> None:
        """(lock held) It is gone or no longer answers: kill and reap it; `start()` replaces it."""
        self.dead = True
        self._drop_offer()
        try:
            self.sock.close()
        except OSError:
            pass
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()

    def close(self) -> None:
        """Stop it: close the socket (it exits on EOF), then wait a moment, then kill."""
        with self._lock:
            self.dead = True
            self._drop_offer()
            try:
                self.sock.close()
            except OSError:
                pass
            try:
                self.popen.wait(timeout=1.0)
            except (TimeoutError, _timeout_expired()):
                self.popen.kill()
                self.popen.wait()


def _start(argv: list[str], pass_fds: tuple[int, ...]) -> Any:
    """The template's process: stdin, stdout and stderr on /dev/null, its own process group."""
    from ._spawn import spawn, usable

    if usable():
        return spawn(argv, pass_fds=pass_fds, stdin=-1, stdout=-1, stderr=-1)
    import subprocess

    return subprocess.Popen(argv, pass_fds=pass_fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, close_fds=True, process_group=0)


def _timeout_expired() -> type[BaseException]:
    """`subprocess.TimeoutExpired` where `subprocess` is loaded (a `Popen` fallback raises it)."""
    module = sys.modules.get("subprocess")
    return TimeoutError if module is None else module.TimeoutExpired


class ForkedChild:
    """The part of `subprocess.Popen` that `ChildProcess` uses, for a child the template forked.

    Its end shows on a pidfd; its exit status comes from the template, which reaps it only
    when asked (`_collect`). `lost`: the template died first, so the status is unknown.
    """

    def __init__(self, template: Template, pid: int, stderr_fd: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.lost = False
        self._template = template
        self._pidfd = os.pidfd_open(pid)
        self.stderr = open(stderr_fd, "rb", buffering=0)

    def exited(self) -> bool:
        """Whether it has ended (reaped or not)."""
        return self.returncode is not None or _readable(self._pidfd)

    def poll(self) -> int | None:
        if self.exited():
            self._collect()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.exited():
            if deadline is not None and time.monotonic() >= deadline:
                import subprocess

                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
            time.sleep(0.001)
        self._collect()
        return self.returncode

    def terminate(self) -> None:
        self._signal(15)

    def kill(self) -> None:
        self._signal(9)

    def _signal(self, number: int) -> None:
        if self.returncode is None:  # not reaped: the pid is still this child's
            os.kill(self.pid, number)

    def _collect(self) -> None:
        """After it ended: have the template reap it, keep its exit status."""
        import time

        if self.returncode is not None:
            return
        for _ in range(1000):
            reply = self._template.request(("reap", self.pid))
            if reply is None or reply[0] != "ok":
                self.lost = True
                self.returncode = 0
                break
            if reply[1] is not None:
                self.returncode = os.waitstatus_to_exitcode(reply[1])
                break
            time.sleep(0.001)  # the pidfd saw its end a moment before waitpid can
        else:
            self.lost = True
            self.returncode = 0
        os.close(self._pidfd)
        self._pidfd = -1
