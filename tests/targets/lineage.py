"""A target that keeps busy and starts processes of its own (fate-sharing tests)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time


class Busy:
    def pid(self) -> int:
        return os.getpid()

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    def spin(self, seconds: float) -> int:
        """A busy loop in Python (the GIL changes hands)."""
        end = time.monotonic() + seconds
        rounds = 0
        while time.monotonic() < end:
            rounds += 1
        return rounds

    def spin_in_c(self) -> bool:
        """Catastrophic backtracking: minutes inside the regex engine, the GIL held all along."""
        return re.match(r"(a+)+$", "a" * 64 + "b") is not None

    def start_grandchild(self, how: str) -> int:
        """A process of the target's own that would live forever; its pid."""
        if how == "popen":
            return subprocess.Popen(["sleep", "1000"]).pid
        pid = os.fork()
        if pid == 0:
            try:
                time.sleep(1000)
            finally:
                os._exit(0)
        return pid

    def die_leaving_the_channel_open(self, pid_file: str, escape: bool) -> None:
        """Fork a grandchild holding copies of every socket (the channel among them), then die.

        With `escape`, the grandchild leaves the process group (setsid): killing the group
        does not reach it. It writes its pid to `pid_file` so that the test can end it.
        """
        copies = []
        for name in os.listdir("/proc/self/fd"):
            try:
                if stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                    copies.append(os.dup(int(name)))
            except OSError:
                pass
        pid = os.fork()
        if pid == 0:
            try:
                if escape:
                    os.setsid()
                with open(pid_file + ".tmp", "w") as out:
                    out.write(str(os.getpid()))
                os.rename(pid_file + ".tmp", pid_file)
                time.sleep(1000)
            finally:
                os._exit(0)
        while not os.path.exists(pid_file):
            time.sleep(0.01)
        sys.stderr.write("lineage: dying with the channel held by a grandchild\n")
        sys.stderr.flush()
        os._exit(3)

    def exit_hard(self, code: int) -> None:
        os._exit(code)

    def write_stderr(self, size: int, newline_every: int = 0) -> int:
        """Write `size` bytes of 'x' to fd 2, a newline every `newline_every` bytes (0: none), then one."""
        chunk = b"x" * 65536
        if newline_every:
            line = b"x" * (newline_every - 1) + b"\n"
            chunk = line * max(1, 65536 // len(line))
        left = size
        while left > 0:
            piece = chunk[:left]
            view = memoryview(piece)
            while view:
                view = view[os.write(2, view):]
            left -= len(piece)
        os.write(2, b"\nlineage: stderr done\n")
        return size

    def run_inheriting(self, argv: list[str]) -> str:
        """Run `argv` letting it inherit every inheritable descriptor; its stdout."""
        return subprocess.run(argv, stdout=subprocess.PIPE, close_fds=False, check=True).stdout.decode()

    def say(self, text: str) -> None:
        print(text)
