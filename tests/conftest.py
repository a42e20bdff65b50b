"""Shared fixtures. Every test must leave no child process, no /dev/shm segment and no descriptor behind."""

from __future__ import annotations

import functools
import gc
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# Target modules live in tests/targets and are imported only by children: the
# children receive this sys.path, the parent never imports them.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def child_pids() -> set[int]:
    """Live (or unreaped) direct children of this process, and the session children that the
    fork server's template forked for it (the template is a direct child; the child it forked
    ahead for the next session is not counted: no session has it yet)."""
    me = os.getpid()
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name may contain spaces: fields after the closing paren are fixed
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry)] = int(fields[1])
    found = {pid for pid, parent in parents.items() if parent == me}
    from extradite import _forkserver

    template = _forkserver.current_pid()
    if template in found:
        # The template itself is not counted: the runtime replaces it when it dies or when a
        # variable read at interpreter start changes (Ray's start-up sets some), and the one
        # in use is the process's, not a test's. One it no longer uses is counted.
        found.discard(template)
        forked = {pid for pid, parent in parents.items() if parent == template}
        found |= forked - {_forkserver.spare_pid()}
    return found


def shm_entries() -> set[str]:
    try:
        return {name for name in os.listdir("/dev/shm") if not name.startswith("sem.")}
    except FileNotFoundError:
        return set()


def open_fds() -> set[int]:
    """Open descriptors, but the fork server's control socket and the socket of the spare it
    offered for the next session (see `child_pids`)."""
    from extradite import _forkserver

    template = _forkserver._current()
    skip = set() if template is None or template.dead else {template.sock.fileno(), template.offer_fd()}
    return {fd for fd in map(int, os.listdir("/proc/self/fd")) if fd not in skip and _is_open(fd)}


def _is_open(fd: int) -> bool:
    """False for the listing's own descriptor (closed by now; its number varies with the others)."""
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def describe_fds(fds: set[int]) -> list[str]:
    out = []
    for fd in sorted(fds):
        try:
            out.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            out.append(f"{fd} -> ?")
    return out


@pytest.fixture(autouse=True, scope="session")
def fork_server() -> Iterator[None]:
    """The fork server's template runs for the whole test session, as in a program that started
    a session once: started here, before any test, so that tests fork their children from it."""
    from extradite import _forkserver

    if _forkserver.enabled():
        _forkserver.start()
    yield
    _forkserver.shutdown()


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves child processes, /dev/shm segments or descriptors behind."""
    # A full collection costs a few tenths of a second once the run's heap has grown, so it is
    # made only when something looks left behind.
    children_before = child_pids()
    shm_before = shm_entries()
    fds_before = open_fds()
    yield
    check_fds = not request.node.get_closest_marker("allow_fd_growth")

    def left_behind() -> tuple[set[int], set[str], set[int]]:
        return (child_pids() - children_before, shm_entries() - shm_before,
                open_fds() - fds_before if check_fds else set())

    deadline = time.monotonic() + 3.0
    leaked_children, leaked_shm, leaked_fds = left_behind()
    while (leaked_children or leaked_shm or leaked_fds) and time.monotonic() <= deadline:
        gc.collect()  # a proxy in a reference cycle closes its session only when collected
        leaked_children, leaked_shm, leaked_fds = left_behind()
        if leaked_children or leaked_shm or leaked_fds:
            time.sleep(0.05)
            leaked_children, leaked_shm, leaked_fds = left_behind()
    problems = []
    if leaked_children:
        problems.append(f"child processes still running: {sorted(leaked_children)}")
        for pid in leaked_children:  # do not let one leak cascade into every later test
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (OSError, ChildProcessError):
                pass
    if leaked_shm:
        problems.append(f"/dev/shm segments left: {sorted(leaked_shm)}")
    if leaked_fds:
        problems.append(f"descriptors left open: {describe_fds(leaked_fds)}")
    if problems:
        pytest.fail("resource leak: " + "; ".join(problems), pytrace=False)


def _proxy_class(target: str) -> Iterator[Any]:
    from extradite import extradite

    cls = extradite(target)
    try:
        yield cls
    finally:
        cls.close()


@pytest.fixture
def Service() -> Iterator[Any]:
    """Proxy class of tests/targets/handles.py:Service (handles, callbacks, batches), closed after the test."""
    yield from _proxy_class("targets.handles:Service")


@pytest.fixture
def Values() -> Iterator[Any]:
    """Proxy class of tests/targets/values.py:Values (values of every kind), closed after the test."""
    yield from _proxy_class("targets.values:Values")


@pytest.fixture
def Matrix() -> Iterator[Any]:
    """Proxy class of tests/targets/matrix.py:Matrix (results that fail at each stage), closed after the test."""
    yield from _proxy_class("targets.matrix:Matrix")


@pytest.fixture
def Busy() -> Iterator[Any]:
    """Proxy class of tests/targets/lineage.py:Busy (sleeps, spins, starts processes), closed after the test."""
    yield from _proxy_class("targets.lineage:Busy")


def _classes_of(target: str | None) -> Iterator[Callable[..., Any]]:
    """A factory fixture's body: `factory(**options)` makes a proxy class of `target` (with no
    `target`: `factory(target, **options)`); every class made is closed after the test."""
    from extradite import extradite

    opened: list[Any] = []

    def factory(*named: str, **options: Any) -> Any:
        cls = extradite(*(named or (target,)), **options)
        opened.append(cls)
        return cls

    try:
        yield factory
    finally:
        for cls in opened:
            cls.close()


@pytest.fixture
def make_class() -> Iterator[Callable[..., Any]]:
    """`make_class(target, **options)`: a proxy class of any target, closed after the test."""
    yield from _classes_of(None)


@pytest.fixture
def make() -> Iterator[Callable[..., Any]]:
    """`make(**options)`: a proxy class of tests/targets/handles.py:Service with those options."""
    yield from _classes_of("targets.handles:Service")


@pytest.fixture
def waiter_class() -> Iterator[Callable[..., Any]]:
    """`waiter_class(**options)`: a proxy class of tests/targets/waiting.py:Waiter (sync sleeps,
    coroutines, callbacks, a record of how calls ended) with those options (`concurrency=`...)."""
    yield from _classes_of("targets.waiting:Waiter")


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """The file a hostile payload writes the pid of the process that ran it to; the test fails
    if that was this process."""
    path = tmp_path / "marker"
    yield path
    if path.exists():
        assert path.read_text().strip() != str(os.getpid()), "the payload ran in the parent"


def private_copy(module: str) -> Any:
    """`module` executed from its source under a private name, for tests that need its classes in
    this process: `module` itself stays unimported, so other tests can still extradite it."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    name = "_private_copy_of_" + module.replace(".", "_")
    copy_spec = importlib.util.spec_from_file_location(name, spec.origin)
    assert copy_spec is not None and copy_spec.loader is not None
    copy = importlib.util.module_from_spec(copy_spec)
    sys.modules[name] = copy  # dataclasses and pickling look a class's module up by name
    copy_spec.loader.exec_module(copy)
    return copy


@pytest.fixture
def placeholder_proxy() -> Iterator[Callable[..., Any]]:
    """`make(target, name)`: a generated proxy class of `target` that embeds no members and a
    fingerprint no target has, so every bind reads the child's signature data (a stale bind).
    The runtime's registry of generated targets forgets them after the test."""
    from extradite import _proxy
    from extradite.generated_support import GeneratedProxy

    made: list[str] = []

    def make(target: str, name: str = "Placeholder") -> Any:
        made.append(target)
        return type(name, (GeneratedProxy,), {
            "__module__": __name__, "__extradite_target__": target,
            "__extradite_fingerprint__": "0" * 16, "__extradite_members__": {}})

    yield make
    for target in made:
        _proxy.GENERATED.pop(target, None)


def stress_scale() -> float:
    """Multiplier for stress loops: CI runs the slow tests short (EXTRADITE_STRESS_SCALE=0.1)."""
    return float(os.environ.get("EXTRADITE_STRESS_SCALE", "1"))


SRC = TESTS.parent / "src"
def python_env() -> dict[str, str]:
    """Environment for a separate Python process that can import extradite and the test targets."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]))


PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


def _version_key(path: Path) -> list[int]:
    """`~/.pyenv/versions/3.13.10/bin/python` -> [3, 13, 10] (so builds sort by version)."""
    return [int(x) if x.isdigit() else 0 for x in path.parts[-3].split(".")]


@functools.cache
def find_python(version: str) -> str | None:
    """A working interpreter for `version` ("3.13"), or None: the one place tests look for one.

    Candidates, in order: `pythonX.Y` on PATH, `PYENV_VERSION=X.Y pyenv which python`, the
    newest `$PYENV_ROOT/versions/X.Y.*/bin/python`. A pyenv shim on PATH exists even when
    that version is not installed (it then exits 127), so each candidate must prove that
    it runs and is the version asked for; the result is the path the interpreter reports
    as its own `sys.executable`.
    """
    import shutil
    import subprocess

    candidates: list[str] = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            which = subprocess.run([pyenv, "which", "python"], env=dict(os.environ, PYENV_VERSION=version),
                                   capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            which = None
        if which is not None and which.returncode == 0 and which.stdout.strip():
            candidates.append(which.stdout.strip())
    builds = sorted(PYENV_ROOT.glob(f"versions/{version}.*/bin/python"), key=_version_key, reverse=True)
    candidates.extend(str(p) for p in builds)
    for candidate in dict.fromkeys(candidates):
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"],
                capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = probe.stdout.split("\n")
        if probe.returncode == 0 and lines[0] == version and len(lines) > 1 and lines[1]:
            return lines[1]
    return None


def require_python(version: str) -> str:
    """The interpreter for `version`, or skip the test saying which one is missing (visible in -ra)."""
    python = find_python(version)
    if python is None:
        pytest.skip(f"Python {version} is not installed (no working python{version} on PATH, "
                    f"via `PYENV_VERSION={version} pyenv which python` or under {PYENV_ROOT}/versions)")
    return python


def process_gone(pid: int) -> bool:
    """True once `pid` no longer runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not process_gone(pid):
        time.sleep(0.05)
    return process_gone(pid)


def ctrl_c_while_ready(code: str, *args: str, after: float = 0.3) -> str:
    """Run Python `code` (it prints "ready" once it is in the call to interrupt), press Ctrl-C
    (SIGINT) `after` seconds later; what it printed after "ready"."""
    import signal
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True,
                            env=python_env(), cwd=TESTS.parent)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(after)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return out


def kill_parent_of_a_child(script: Path) -> int:
    """Run `script` (which prints its child's pid, then sleeps), kill -9 it; return the child's pid."""
    import signal
    import subprocess

    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=python_env())
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        return child_pid
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
