"""The fork server's template process: the child runtime, loaded once, forked once per session.

    parent --Popen--> template: `python -S`, this process's sys.path, the runtime imported,
       |               never a target; one thread; stdin/stdout/stderr on /dev/null
       |-- control socket (SOCK_SEQPACKET): ("fork", ...) + descriptors -> the child's pid
       |                                    ("reap", pid)               -> its wait status
       |                                    ("spare",)                  -> the child forked ahead
       |       unasked, once per spare:     <- ("offer", pid) + the spare's socket
       `-- pidfd of the parent: the parent ended -> the template exits at once

The spare (a child forked ahead, once the template was quiet for a moment) is offered
to the parent with its socket: the parent sends its next session's ("fork", ...) and
descriptors straight to it and knows its pid, so a later session waits for no
process to wake up and answer. The spare tells the template "taken" (the template then
forks the next one, and reaps this one only when asked, as any child); a spare whose
socket ends without it died unused and is reaped at once.

While it waits, the spare does ahead what needs no session: its warden and signals, its
pages, and its child's `Session` but the socket (`_child.new_session`). The parent steers
it off the CPU the parent runs on just before it sends the session (`_forkserver.steer_away`),
so it wakes beside the parent, which goes on with its own side, instead of queued behind
it; woken, it takes the template's CPUs again, which are a spawned child's.

A forked child starts where a spawned one would be after its imports: it leads a
process group of its own, takes the descriptors the parent sent (channel, stderr
pipe, stdout, log pipe), the parent's current directory, environment and sys.path,
and then runs `_child.main` exactly as a spawned child does: warden first (this
process has one thread), then the confinement, then the target with the first request.
When `main` returns, the interpreter ends as a spawned child's does (atexit, flushes).

The template reaps a child only when the parent asks (after the parent saw it end
through its pidfd), so a child's pid, and with it its process group id, cannot be
reused while the parent may still signal that group (see `_process`).
"""

from __future__ import annotations

import os
import sys
from ._child import import_pickle, new_session, prepare

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._session import Session

# What every spawned child imports before its first request (tests compare the two).
RUNTIME = ("extradite._child", "extradite._session", "extradite._warden", "extradite._pickling", "extradite._logforward",
           "extradite._deadline", "_pickle", "_socket", "faulthandler", "mmap")
MAX_REQUEST = 256 << 10  # a request holds the environment; a larger one is refused (the parent spawns)
_MADV_POPULATE_WRITE = 23
SPARE_DELAY_MS = 3  # quiet this long after a fork: fork the next child ahead (after a session's start, before the next)
_environ: dict[bytes, bytes] = {}  # the environment the template started with (it never changes it)


def serve(control: int, *, parent: int) -> None:
    """The template's life: load the runtime, then answer the parent until it goes away.

    Returns only in a forked child, which has become a session's child by then.
    """
    import_pickle()  # as a spawned child does: its children have no `functools` either
    for name in RUNTIME:
        __import__(name)
    runtime = set(sys.modules)
    import _socket
    import gc
    import marshal
    import select

    # compile() makes the interpreter's AST types on its first call, which costs more than most
    # imports: a child compiles when a target has no bytecode cache. Once here, not per child.
    compile("", "", "exec")
    for name in set(sys.modules) - runtime:  # the template's own tools: not in a child's sys.modules
        del sys.modules[name]
    cpus = os.sched_getaffinity(0)  # the parent's, as a spawned child's (see `_forkserver._startup_state`)
    _environ.update(os.environb)  # a child compares the parent's with this plain dict (`_take_environment`)

    # Everything loaded so far lives as long as the template: no collection in a child walks
    # it (each object it touched would be a page copied into that child).
    gc.freeze()
    if os.getppid() != parent:  # the parent died while this process started
        os._exit(0)
    pidfd = os.pidfd_open(parent)
    sock = _socket.socket(fileno=control)
    sock.send(b"ready")
    poller = select.poll()
    poller.register(control, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    spare: tuple[int, Any] | None = None  # (pid, socket) of the child forked ahead, offered to the parent
    while True:
        events = poller.poll(-1 if spare is not None else SPARE_DELAY_MS)
        if not events:  # quiet for a moment: fork the next session's child ahead
            try:
                spare_sock, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
                pid = _fork()
            except OSError:
                continue
            if pid == 0:
                sock.close()
                spare_sock.close()
                os.close(pidfd)
                _spare(parent, theirs, cpus)
                return
            theirs.close()
            spare = (pid, spare_sock)
            poller.register(spare_sock.fileno(), select.POLLIN)
            try:  # the parent sends its next session straight to it (see `_forkserver`)
                sock.sendmsg([marshal.dumps(("offer", pid))],
                               [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _rights([spare_sock.fileno()]))])
            except OSError:
                os._exit(0)  # the parent is gone
            continue
        if any(fd == pidfd for fd, _ in events):
            os._exit(0)  # the parent ended: so does the template (each child has its warden)
        if spare is not None and any(fd == spare[1].fileno() for fd, _ in events):
            # the spare took a session ("taken": the parent reaps it through us later), or it died
            pid, spare_sock = spare
            try:
                taken = spare_sock.recv(16) == b"taken"
            except OSError:
                taken = False
            if not taken:
                os.waitpid(pid, 0)  # died before any session reached it: nobody else asks for it
            poller.unregister(spare_sock.fileno())
            spare_sock.close()
            spare = None
            if not any(fd == control for fd, _ in events):
                continue
        try:
            data, ancillary, flags, _ = sock.recvmsg(MAX_REQUEST, _socket.CMSG_SPACE(4 * 8),
                                                     _socket.MSG_CMSG_CLOEXEC)
        except InterruptedError:
            continue
        if not data:
            os._exit(0)  # the parent closed the server (a spare sees its socket end and exits)
        fds = _descriptors(ancillary)
        reply: Any
        try:
            if flags & (_socket.MSG_TRUNC | _socket.MSG_CTRUNC):
                raise ValueError("request too large")
            request = marshal.loads(data)
            if request[0] == "fork":  # the parent holds no spare (the offered one is the parent's)
                pid = _fork()
                if pid == 0:
                    sock.close()
                    os.close(pidfd)
                    if spare is not None:
                        spare[1].close()
                    os.setpgid(0, 0)  # before its warden: the group is what the warden kills
                    _become_child(request, fds, prepare(parent))
                    return
                reply = ("ok", pid)
            elif request[0] == "spare":
                reply = ("ok", None if spare is None else spare[0])
            elif request[0] == "reap":
                done, status = os.waitpid(request[1], os.WNOHANG)
                reply = ("ok", status if done else None)
            else:
                raise ValueError(f"unknown request {request[0]!r}")
        except Exception as exc:  # the parent falls back to spawning a child
            reply = ("error", f"{type(exc).__name__}: {exc}")
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        sock.send(marshal.dumps(reply))


def _fork() -> int:
    if len(os.listdir("/proc/self/task")) != 1:  # forking is safe with one thread only
        raise RuntimeError("the template has more than one thread")
    return os.fork()


def _own_pages() -> None:
    """Copy now, ahead of the session, the template's pages this child would copy on its first
    writes: madvise(MADV_POPULATE_WRITE) on its writable private mappings (Linux 5.14+).
    Nothing of this shows in the child: the modules it loads for it are dropped again."""
    before = set(sys.modules)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        with open("/proc/self/maps") as maps:
            regions = [line.split(None, 2)[:2] for line in maps]
        for span, perms in regions:
            if perms.startswith("rw") and perms.endswith("p"):
                low, high = (int(end, 16) for end in span.split("-"))
                madvise(low, high - low, _MADV_POPULATE_WRITE)  # fails harmlessly where not allowed
    except Exception:  # an older kernel, no ctypes: the child copies its pages as it goes
        pass
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]


def _rights(fds: list[int]) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def _spare(parent: int, sock: Any, cpus: set[int]) -> None:
    """A child forked ahead: prepare (warden, signals), then wait for its session and serve it.

    The parent may steer it off its own CPU while it sleeps (`_forkserver.steer_away`);
    woken, it takes `cpus` again, the CPUs a spawned child has."""
    import _socket
    import marshal

    os.setpgid(0, 0)  # a process group of its own, as a spawned child (the warden kills it whole)
    middle = prepare(parent)
    if middle:
        os.waitpid(middle, 0)
    session = new_session()  # all but its socket: the session's descriptors only come with it
    loaded = set(sys.modules)
    import select

    if not select.select([sock], [], [], 0)[0]:  # no session waits for it yet: time to spare
        _own_pages()
    for name in set(sys.modules) - loaded:  # a spawned child has not loaded it
        del sys.modules[name]
    while True:
        try:
            data, ancillary, flags, _ = sock.recvmsg(MAX_REQUEST, _socket.CMSG_SPACE(4 * 8),
                                                     _socket.MSG_CMSG_CLOEXEC)
            break
        except InterruptedError:
            continue
    if not data:  # the template and the parent ended without a session for it
        os._exit(0)
    if len(cpus) > 1:
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:  # the CPUs allowed changed meanwhile (a cpuset): keep what is left
            pass
    try:
        sock.send(b"taken")  # to the template: not dead, do not reap (the parent asks later)
    except OSError:
        pass
    sock.close()
    _become_child(marshal.loads(data), _descriptors(ancillary), 0, session)


def _descriptors(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    import _socket

    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(int.from_bytes(data[i:i + 4], sys.byteorder, signed=True) for i in range(0, usable, 4))
    return fds


def _become_child(request: tuple[Any, ...], fds: list[int], warden_middle: int, session: Session | None = None) -> None:
    """In the forked process: take the session's descriptors and the parent's context, serve
    (`session`: the one a spare built ahead, see `_child.new_session`)."""
    _, parent, path, cwd, environ, log_level, confine = request
    channel, stderr, stdout = fds[:3]
    log_fd = fds[3] if len(fds) > 3 else -1
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.close(stdout)
    os.close(stderr)
    os.chdir(cwd)
    _take_environment(environ)
    from ._polling import spin_cap_from_environment

    spin_cap_from_environment()  # read at import, in the template: the session's value counts
    sys.path[:] = path
    sys.path_importer_cache.clear()  # directory listings cached by the template: the target finds files of now
    sys.modules.pop(__name__, None)  # a spawned child never imports this module
    package = sys.modules["extradite"]
    if getattr(package, "_template", None) is not None:
        del package._template
    if log_fd < 0:  # nor, without log forwarding, this one
        sys.modules.pop("extradite._logforward", None)
        if getattr(package, "_logforward", None) is not None:
            del package._logforward
    from ._child import serve

    serve(channel, warden_middle=warden_middle, log_fd=log_fd, log_level=log_level, confine=confine, session=session)


def _take_environment(environ: dict[bytes, bytes]) -> None:
    """Make this process's environment the parent's (the template holds the one it started with)."""
    if environ == _environ:  # the usual case, told by comparing two dicts (`os.environb` decodes each item)
        return
    current = os.environb
    for key in [key for key in current if key not in environ]:
        del current[key]
    for key, value in environ.items():
        if current.get(key) != value:
            current[key] = value
