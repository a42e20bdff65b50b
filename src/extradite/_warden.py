"""Fate sharing in the child: a warden process kills the child's whole process group when
the parent or the child ends, whatever the child is doing.

    parent --Popen(process_group=0)--> child: leader of its own process group
                                         |-- warden: forked once the runtime is loaded, before
                                         |   the target; waits on pidfds of the parent and the child
                                         `-- whatever the target starts (same group)

Why a separate process, not PR_SET_PDEATHSIG or a thread in the child:
- PDEATHSIG follows the parent *thread* that forked the child, not the parent process:
  a session started from a short-lived thread would lose its child when that thread
  ends. And it reaches the child alone: the target's own processes would be orphaned.
- A watcher thread in the child needs the GIL to act: a target spinning in C with the
  GIL held would keep it from ever running, and the child would outlive its parent.

The warden is a single-threaded copy of the child made before any target code runs in it.
It holds no descriptor of the child but two pidfds (it is double-forked, so it is not
the child's child: the target's `os.wait()` never sees it), sleeps in poll() and, when
either process ends, sends SIGKILL to the whole group, itself included. The parent
kills the same group when it closes the session or sees the child die (`_process`).
Without pidfds (not Linux 5.3+) it looks every POLL_SECONDS instead. A process the
target moves out of the group (`setsid`, `start_new_session=True`) is out of reach.
"""

from __future__ import annotations

import os

POLL_SECONDS = 0.1


def start_warden(parent_pid: int) -> int:
    """Fork the warden of this child, whose parent is `parent_pid` (it is already gone: exit now).

    Called in the child while it has one thread (forking is safe), once the runtime is
    loaded and before the target is: forked earlier, the warden would share every page the
    child writes while it loads the runtime, and each such write would copy a page. Returns
    the pid of the short-lived middle process (0: none), which the caller reaps with
    `os.waitpid` just before serving, so that the target's `os.wait()` never sees it.
    """
    if os.getppid() != parent_pid and not _alive(parent_pid):  # it died before this child got here
        os._exit(1)
    # (a live parent that is not ours: `python=` named a wrapper that forked this interpreter)
    pidfd_open = getattr(os, "pidfd_open", None)
    fds: list[int] = []
    if pidfd_open is not None:
        try:
            fds = [pidfd_open(parent_pid), pidfd_open(os.getpid())]
        except OSError:  # a kernel without pidfds: the polling fallback
            for fd in fds:
                os.close(fd)
            fds = []
    if fds and os.getppid() != parent_pid and not _alive(parent_pid):  # gone while its pidfd opened
        os._exit(1)
    child_pid = os.getpid()
    # The group is the child's own only when the parent made it so (`_process`); otherwise
    # (a child started by hand) the warden must not touch the group it shares with others.
    group = os.getpgid(0) == child_pid
    try:
        middle = os.fork()
    except OSError:  # no process to spare (rlimits): the parent still kills the group on close
        middle = 0
    if middle == 0 and os.getpid() != child_pid:
        try:
            if os.fork() == 0:
                _serve(parent_pid, child_pid, fds, group)
        finally:
            os._exit(0)  # the warden is an orphan now: init (or a subreaper) reaps it
    for fd in fds:
        os.close(fd)
    return middle


def _serve(parent_pid: int, child_pid: int, fds: list[int], group: bool) -> None:
    """The warden's whole life: hold nothing, wait for either end, kill the group."""
    import _signal  # type: ignore[import-not-found]

    # An interrupt meant for the child (a deadline, Ctrl-C sent to the group) must not end the
    # warden early: it would take the group down with it.
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):  # never hold the child's stderr pipe: the parent reads it to EOF
            os.dup2(null, std)
        keep = sorted({*fds, 0, 1, 2})
        low = 3
        for fd in keep[3:]:
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, 1 << 20)  # the channel, the stderr pipe's duplicates, everything
        if fds:
            import select

            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            while not poller.poll():
                pass
        else:
            import time

            while _alive(parent_pid) and _alive(child_pid):
                time.sleep(POLL_SECONDS)
    finally:
        try:
            if group:
                os.killpg(child_pid, 9)  # SIGKILL to the group, this warden included
            else:
                os.kill(child_pid, 9)
        finally:
            os._exit(0)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
