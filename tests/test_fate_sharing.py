"""The child and everything it started die with the parent, on close and on a crash; the parent
sees the child's death by the process, even when a grandchild holds the channel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from extradite import ExtraditeProcessError, extradite
from extradite._api import session_of

from conftest import process_gone, python_env, wait_gone


def group_members(pgid: int) -> list[int]:
    """Live processes (not zombies) of process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def wait_group_gone(pgid: int, timeout: float = 2.0) -> list[int]:
    """The members of `pgid` still alive after `timeout` seconds (none, if all went)."""
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return group_members(pgid)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


PARENT = """
import sys
from extradite import extradite
from extradite._api import session_of
Busy = extradite("targets.lineage:Busy")
busy = Busy()
grandchild = {grandchild!r}
if grandchild:
    busy.start_grandchild(grandchild)
print(session_of(Busy).process.pid, flush=True)
{work}
"""

WORK = {
    "sleep": "busy.sleep(1000)",
    "spin": "busy.spin(1000)",
    "spin_in_c": "busy.spin_in_c()",  # the GIL held in C: no thread of the child can run
    "idle": "import time; time.sleep(1000)",
}


def kill_parent_once_the_group_is_up(parent: subprocess.Popen[Any], child_pid: int, expected: int) -> None:
    """Wait for `expected` live members of the child's group, let the work get under way,
    SIGKILL the parent, and fail if any member outlives it."""
    deadline = time.monotonic() + 10
    while len(group_members(child_pid)) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(group_members(child_pid)) >= expected, group_members(child_pid)
    time.sleep(0.2)  # the work is under way in the child
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    left = wait_group_gone(child_pid)
    assert not left, f"processes outlived their killed parent: {left}"


def children_of(pid: int) -> list[int]:
    return [int(child) for task in os.listdir(f"/proc/{pid}/task")
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]


def test_parent_killed_while_the_target_imports_takes_the_child(tmp_path: Path) -> None:
    """The warden is up before any target code runs: a target whose import never ends still
    dies with its parent."""
    script = tmp_path / "parent.py"
    script.write_text('from extradite import extradite\nextradite("targets.spins_on_import:Never")\n')
    parent = subprocess.Popen([sys.executable, str(script)], env=python_env())
    child_pid = 0
    try:
        deadline = time.monotonic() + 10
        while not child_pid and time.monotonic() < deadline:
            child_pid = next(iter(children_of(parent.pid)), 0)
            time.sleep(0.02)
        assert child_pid, "the parent started no child"
        kill_parent_once_the_group_is_up(parent, child_pid, 2)  # the child and its warden
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child_pid:
            kill_all(group_members(child_pid))


@pytest.mark.parametrize("grandchild", [None, "fork", "popen"])
@pytest.mark.parametrize("work", ["sleep", "spin", "spin_in_c", "idle"])
def test_parent_killed_takes_the_whole_tree(tmp_path: Path, work: str, grandchild: str | None) -> None:
    if grandchild is not None and work in ("spin", "idle"):
        pytest.skip("covered by the other combinations")
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT.format(grandchild=grandchild, work=WORK[work])))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=python_env())
    child_pid = 0
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        kill_parent_once_the_group_is_up(parent, child_pid, 3 if grandchild else 2)  # + its warden, its grandchild
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        if child_pid:
            kill_all(group_members(child_pid))


@pytest.mark.parametrize("how", ["fork", "popen"])
def test_close_kills_what_the_target_started(Busy: Any, how: str) -> None:
    busy = Busy()
    grandchild = busy.start_grandchild(how)
    child_pid = session_of(Busy).process.pid
    assert not process_gone(grandchild)
    Busy.close()
    assert wait_gone(grandchild, 2.0), "the target's process outlived Class.close()"
    assert not wait_group_gone(child_pid)


@pytest.mark.parametrize("how", ["fork", "popen"])
def test_crash_kills_what_the_target_started(Busy: Any, how: str) -> None:
    busy = Busy()
    grandchild = busy.start_grandchild(how)
    with pytest.raises(ExtraditeProcessError, match="exited with code 5"):
        busy.exit_hard(5)
    assert wait_gone(grandchild, 2.0), "the target's process outlived the crashed child"


def _call_bounded(call: Callable[[], Any], timeout: float) -> BaseException | None:
    """Run `call` in a thread; what it raised, or None. Fails the test if it does not return in time."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else TimeoutError(f"the call did not return within {timeout} s")


@pytest.mark.parametrize("escape", [False, True], ids=["in_group", "escaped_group"])
def test_grandchild_holding_the_channel_cannot_hide_the_death(Busy: Any, tmp_path: Path, escape: bool) -> None:
    """A grandchild keeps a copy of the channel and sleeps, the child dies: the waiting call fails
    at once. Escaped from the group (setsid), the grandchild lives on, and only the parent's
    watch of the child's pid ends the call."""
    busy = Busy()
    pid_file = tmp_path / "grandchild.pid"
    start = time.monotonic()
    try:
        error = _call_bounded(lambda: busy.die_leaving_the_channel_open(str(pid_file), escape), 20)
    finally:
        if pid_file.exists():
            grandchild = int(pid_file.read_text())
            if escape:
                assert not process_gone(grandchild)  # killing the group did not reach it
            kill_all([grandchild])
    assert isinstance(error, ExtraditeProcessError), error
    assert time.monotonic() - start < 5, "the child's death was noticed too late"
    assert "exited with code 3" in str(error)
    assert "lineage: dying with the channel held by a grandchild" in str(error)
    with pytest.raises(ExtraditeProcessError):
        busy.pid()


def test_channel_and_log_pipe_are_not_inherited(Busy: Any) -> None:
    """A program the target runs, even with close_fds=False, gets no descriptor of the child's
    but stdin, stdout and stderr: not the channel, not the log pipe."""
    import json

    code = "import os, json; print(json.dumps(sorted(int(fd) for fd in os.listdir('/proc/self/fd'))))"
    listed = json.loads(Busy().run_inheriting([sys.executable, "-c", code]))
    assert listed == [0, 1, 2, 3]  # 3: the listing's own descriptor


@pytest.mark.parametrize("fork_server", ["0", "1"])
def test_a_spawned_child_gets_no_inheritable_descriptor_of_the_parent(
        fork_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A descriptor this process made inheritable (for programs of its own) does not reach a
    child, spawned or forked: the child would keep that pipe open as long as it runs."""
    monkeypatch.setenv("EXTRADITE_FORK_SERVER", fork_server)
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        cls = extradite("targets.freshness:Probe")
        try:
            pid = cls().process()["pid"]
            held = set()
            for name in os.listdir(f"/proc/{pid}/fd"):
                try:
                    held.add(os.stat(f"/proc/{pid}/fd/{name}").st_ino)
                except OSError:
                    pass
            assert os.fstat(write_end).st_ino not in held
            assert held, "the child's descriptors could not be listed"
        finally:
            cls.close()
    finally:
        os.close(read_end)
        os.close(write_end)
