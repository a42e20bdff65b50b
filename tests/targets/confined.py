"""A target that tries what a sandbox or resource limits forbid, and reports what happened."""

from __future__ import annotations

import errno
import os
import socket
import time


class Probe:
    def write(self, path: str, text: str = "written") -> str:
        """Create (or overwrite) `path`; returns its content read back."""
        with open(path, "w") as stream:
            stream.write(text)
        with open(path) as stream:
            return stream.read()

    def read(self, path: str) -> str:
        with open(path) as stream:
            return stream.read()

    def remove(self, path: str) -> None:
        os.remove(path)

    def connect(self, port: int) -> str:
        """Connect to 127.0.0.1:`port`; 'connected' or the errno's name."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            try:
                sock.connect(("127.0.0.1", port))
            except OSError as exc:
                return errno.errorcode.get(exc.errno or 0, str(exc))
            return "connected"

    def bind(self) -> str:
        """Bind a TCP socket to a free port on 127.0.0.1; 'bound' or the errno's name."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", 0))
            except OSError as exc:
                return errno.errorcode.get(exc.errno or 0, str(exc))
            return "bound"

    def allocate(self, size: int) -> int:
        return len(bytearray(size))

    def spin(self, seconds: float) -> str:
        """Burn CPU for up to `seconds` of wall-clock time (a CPU limit kills it before)."""
        end = time.monotonic() + seconds
        count = 0
        while time.monotonic() < end:
            count += 1
        return "still running"

    def open_many(self, count: int) -> int:
        """Open /dev/null `count` times (then close all); raises OSError(EMFILE) past the limit."""
        opened: list[int] = []
        try:
            for _ in range(count):
                opened.append(os.open(os.devnull, os.O_RDONLY))
            return len(opened)
        finally:
            for fd in opened:
                os.close(fd)

    def fork(self) -> str:
        """Start one process (reaped at once); 'forked' or the errno's name."""
        try:
            pid = os.fork()
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, str(exc))
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        return "forked"

    def limits(self) -> dict[str, tuple[int, int]]:
        import resource

        return {name: resource.getrlimit(getattr(resource, f"RLIMIT_{name}"))
                for name in ("AS", "CPU", "NOFILE", "NPROC")}

    def blob(self, size: int) -> bytes:
        return bytes(size)

    def hog(self, step: int) -> int:
        """Keep allocating `step` bytes at a time until memory runs out."""
        held = []
        while True:
            held.append(bytearray(step))

    def send_signal(self, pid: int, signum: int) -> str:
        """Send `signum` to `pid`; 'sent' or the errno's name."""
        try:
            os.kill(pid, signum)
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, str(exc))
        return "sent"

    def echo(self, value: object) -> object:
        return value

    def modules(self) -> list[str]:
        import sys

        return sorted(sys.modules)
