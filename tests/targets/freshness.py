"""A target that reports what its child process looks like (fork server tests)."""

from __future__ import annotations

import os
import sys
from typing import Any

COUNTER = 0  # mutated by one child: a later child must see it pristine


def _kind(fd: str) -> str:
    """What a descriptor is, without its number or inode ("socket", "pipe", "/dev/null", ...)."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # the listing's own descriptor, closed by now
        return "gone"
    return target.split(":")[0] if target.endswith("]") else target


class Probe:
    def bump(self) -> int:
        global COUNTER
        COUNTER += 1
        return COUNTER

    def counter(self) -> int:
        return COUNTER

    def load(self, name: str) -> bool:
        __import__(name)
        return name in sys.modules

    def modules(self) -> list[str]:
        return sorted(sys.modules)

    def process(self) -> dict[str, object]:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return {"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0),
                "threads": len(os.listdir("/proc/self/task")), "state": fields[0]}

    def context(self, variable: str) -> dict[str, object]:
        return {"cwd": os.getcwd(), "env": os.environ.get(variable), "path": list(sys.path),
                "fds": sorted(_kind(fd) for fd in os.listdir("/proc/self/fd"))}

    def write(self, text: str) -> None:
        print(text, flush=True)
        print(text, file=sys.stderr, flush=True)

    def cpus(self) -> list[int]:
        return sorted(os.sched_getaffinity(0))

    def dont_write_bytecode(self) -> bool:
        return bool(sys.flags.dont_write_bytecode)

    def rlimit_nofile(self) -> tuple[int, int]:
        import resource

        return resource.getrlimit(resource.RLIMIT_NOFILE)

    def polling_cap_ns(self) -> int:
        """The bound of this child's channel's polling window (EXTRADITE_SPIN_US, see `_polling`),
        reached through the SIGINT handler the runtime installed for its session."""
        import signal

        handler: Any = signal.getsignal(signal.SIGINT)
        for cell in handler.__closure__:
            session = cell.cell_contents
            if type(session).__name__ == "Session":
                return int(session.channel.spin_cap_ns)
        raise LookupError("no session behind the SIGINT handler")

    def has_children(self) -> bool:
        """Whether this process has a child the target's `os.wait()` could see (the runtime's
        warden is double-forked: it must not count)."""
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        return True
