"""sandbox= and limits=: the child confined by the kernel (Landlock, no_new_privs, rlimits).

Every test runs a real child under the real kernel. The no-Landlock case runs in a
separate process whose seccomp filter blocks the Landlock syscalls, as a container
profile does; the processes limit, which the kernel does not apply to root, runs as
user nobody when the suite runs as root.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import python_env

from extradite import (
    ExtraditeError,
    ExtraditeProcessError,
    ExtraditeSandboxError,
    ExtraditeSessionConflictError,
    ExtraditeStaleProxyWarning,
    Limits,
    Sandbox,
    close_extradite_session,
    extradite,
    prewarm_extradite_session,
)
from extradite._api import session_of
from extradite._sandbox import landlock_abi

PROBE = "targets.confined:Probe"
needs_landlock = pytest.mark.skipif(landlock_abi() < 4, reason="needs Landlock ABI 4 (Linux 6.7+)")


@pytest.fixture
def confined() -> Iterator[Callable[..., Any]]:
    """`confined(**options)`: a proxy class of tests/targets/confined.py:Probe, closed after the test."""
    made: list[Any] = []

    def make(**options: Any) -> Any:
        cls = extradite(PROBE, **options)
        made.append(cls)
        return cls

    yield make
    for cls in made:
        cls.close()


# -- filesystem -------------------------------------------------------------------------

@needs_landlock
def test_the_target_writes_only_inside_its_writable_paths(tmp_path: Path, confined: Callable[..., Any]) -> None:
    inside = tmp_path / "inside"
    inside.mkdir()
    existing = tmp_path / "existing.txt"
    existing.write_text("original")
    probe = confined(sandbox=Sandbox(writable=[inside]))()

    assert probe.write(str(inside / "new.txt"), "data") == "data"
    assert (inside / "new.txt").read_text() == "data"
    probe.remove(str(inside / "new.txt"))
    assert probe.write(os.devnull) == ""  # libraries discard output there

    with pytest.raises(PermissionError) as created:
        probe.write(str(tmp_path / "outside.txt"))
    assert isinstance(created.value, ExtraditeError)
    assert not (tmp_path / "outside.txt").exists()
    with pytest.raises(PermissionError):
        probe.write(str(existing), "overwritten")
    with pytest.raises(PermissionError):
        probe.remove(str(existing))
    assert existing.read_text() == "original"
    assert probe.read(str(existing)) == "original"  # reading stays allowed everywhere


@needs_landlock
def test_a_writable_file_is_writable_and_its_directory_is_not(tmp_path: Path, confined: Callable[..., Any]) -> None:
    log = tmp_path / "log.txt"
    log.write_text("")
    probe = confined(sandbox=Sandbox(writable=[str(log)]))()
    assert probe.write(str(log), "entry") == "entry"
    with pytest.raises(PermissionError):
        probe.write(str(tmp_path / "beside.txt"))


@needs_landlock
def test_the_runtime_works_under_the_sandbox(confined: Callable[..., Any]) -> None:
    """Shared memory (memfd), callbacks and imports keep working: only new writes are denied."""
    probe = confined(sandbox=Sandbox())()
    big = bytes(range(256)) * 40_000  # through shared memory
    assert probe.echo(big) == big
    assert len(probe.blob(10_000_000)) == 10_000_000
    assert probe.echo(lambda x: x + 1)(41) == 42


# -- network ----------------------------------------------------------------------------

@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    yield server
    server.close()


@needs_landlock
def test_the_target_can_neither_connect_nor_bind(listener: socket.socket, confined: Callable[..., Any]) -> None:
    probe = confined(sandbox=Sandbox())()
    assert probe.connect(listener.getsockname()[1]) == "EACCES"
    assert probe.bind() == "EACCES"
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing ever reached the listener


@needs_landlock
def test_allow_network_lets_the_target_connect(listener: socket.socket, confined: Callable[..., Any]) -> None:
    probe = confined(sandbox=Sandbox(allow_network=True))()
    assert probe.connect(listener.getsockname()[1]) == "connected"
    assert probe.bind() == "bound"
    listener.accept()[0].close()


@pytest.mark.skipif(landlock_abi() < 6, reason="signal scoping needs Landlock ABI 6")
def test_the_target_cannot_signal_the_parent(confined: Callable[..., Any]) -> None:
    probe = confined(sandbox=Sandbox(allow_network=True))()
    assert probe.send_signal(os.getpid(), 0) == "EPERM"
    assert confined()().send_signal(os.getpid(), 0) == "sent"  # the same probe unconfined reaches it


# -- limits -----------------------------------------------------------------------------

def test_over_the_memory_limit_a_call_raises_memoryerror_and_the_session_lives(
        confined: Callable[..., Any]) -> None:
    limit = 200 * 2**20
    probe = confined(limits=Limits(memory_bytes=limit))()
    assert probe.limits()["AS"] == (limit, limit)
    # one allocation too big, memory held until it runs out, a reply too big to map
    for attempt in ("probe.allocate(limit)", "probe.hog(2**20)", "probe.hog(10_000)", "probe.blob(limit // 2)"):
        with pytest.raises(MemoryError, match=f"limited to {limit} bytes: Limits") as raised:
            eval(attempt)
        assert isinstance(raised.value, ExtraditeError), attempt
        assert probe.allocate(1000) == 1000, attempt  # the same child, still serving


def test_memory_exhausted_by_small_objects_is_a_memoryerror_or_a_death_that_names_the_limit(
        confined: Callable[..., Any]) -> None:
    """Where even a traceback finds no memory, Python cannot raise MemoryError: the child may die."""
    limit = 200 * 2**20
    probe = confined(limits=Limits(memory_bytes=limit))()
    try:
        probe.hog(100)
    except MemoryError as exc:
        assert isinstance(exc, ExtraditeError) and f"limited to {limit} bytes" in str(exc)
        assert probe.allocate(1000) == 1000
    except ExtraditeProcessError as exc:
        assert f"probably exceeded its memory limit Limits(memory_bytes={limit})" in str(exc)
    else:
        pytest.fail("hog() returned")


def test_over_the_cpu_limit_the_child_dies_with_a_clear_error(confined: Callable[..., Any]) -> None:
    probe = confined(limits=Limits(cpu_seconds=1))()
    with pytest.raises(ExtraditeProcessError) as died:
        probe.spin(120)  # returns only if the limit never struck
    assert died.value.returncode == -signal.SIGXCPU
    assert "SIGXCPU" in str(died.value) and "Limits(cpu_seconds=1)" in str(died.value)


def test_a_memory_limited_child_that_crashes_names_its_memory_limit(confined: Callable[..., Any]) -> None:
    """A crash as native code makes when an allocation it did not check fails (SIGSEGV here):
    the error says which limit the child probably hit."""
    cls = confined(limits=Limits(memory_bytes=300 * 2**20))
    probe = cls()
    os.kill(session_of(cls).process.pid, signal.SIGSEGV)
    with pytest.raises(ExtraditeProcessError, match=r"SIGSEGV.*Limits\(memory_bytes=314572800\)"):
        probe.allocate(10)


def test_over_the_open_files_limit_opening_fails_and_the_session_lives(confined: Callable[..., Any]) -> None:
    probe = confined(limits=Limits(open_files=32))()
    with pytest.raises(OSError) as raised:
        probe.open_many(100)
    assert raised.value.errno == errno.EMFILE
    assert probe.open_many(5) == 5
    assert len(probe.blob(5_000_000)) == 5_000_000  # the channel's own descriptors still fit


def _python_for_nobody() -> str | None:
    """An interpreter (3.11+) that user nobody may run, for a test the kernel skips for root."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        try:
            done = subprocess.run([candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                                  user=65534, group=65534, extra_groups=[], cwd="/", capture_output=True,
                                  timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return candidate
    return None


_FORK = """
import json, sys
from extradite import extradite, Limits
results = {}
for processes in (None, 1):
    Probe = extradite("targets.confined:Probe", limits=None if processes is None else Limits(processes=processes))
    results[str(processes)] = Probe().fork()
    Probe.close()
print(json.dumps(results))
"""


def test_over_the_processes_limit_the_target_cannot_fork() -> None:
    """Runs as nobody when this is root: the kernel does not apply RLIMIT_NPROC to root."""
    if os.geteuid() == 0:
        python = _python_for_nobody()
        if python is None:
            pytest.skip("running as root and no interpreter user nobody may run")
        as_user: dict[str, Any] = {"user": 65534, "group": 65534, "extra_groups": []}
    else:
        python, as_user = sys.executable, {}
    done = subprocess.run([python, "-c", _FORK], env=python_env(), cwd="/", capture_output=True, text=True,
                          timeout=120, **as_user)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"None": "forked", "1": "EAGAIN"}


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal concerns root")
def test_a_processes_limit_is_refused_for_root() -> None:
    with pytest.raises(ExtraditeSandboxError, match="RLIMIT_NPROC.*root"):
        extradite(PROBE, limits=Limits(processes=10))


# -- a kernel without Landlock -----------------------------------------------------------

# Blocks the three Landlock syscalls with ENOSYS, as a container's seccomp profile does.
_NO_LANDLOCK = """
import ctypes
class Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Insn))]
LOAD_NR, JEQ, RET = 0x20, 0x15, 0x06
ALLOW, ENOSYS = 0x7FFF0000, 0x00050000 | 38
code = (Insn * 6)(Insn(LOAD_NR, 0, 0, 0), Insn(JEQ, 3, 0, 444), Insn(JEQ, 2, 0, 445), Insn(JEQ, 1, 0, 446),
                  Insn(RET, 0, 0, ALLOW), Insn(RET, 0, 0, ENOSYS))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS, required to load a filter
prog = Prog(6, code)
assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0, ctypes.get_errno()  # PR_SET_SECCOMP, FILTER
"""

_WITHOUT_LANDLOCK = _NO_LANDLOCK + """
import json, sys
from extradite import extradite, ExtraditeSandboxError, Limits, Sandbox
from extradite._sandbox import landlock_abi
out = {"abi": landlock_abi()}
try:
    extradite("targets.confined:Probe", sandbox=Sandbox())
except ExtraditeSandboxError as exc:
    out["refused"] = str(exc)
Probe = extradite("targets.confined:Probe", sandbox=Sandbox(require_landlock=False),
                  limits=Limits(open_files=64))
probe = Probe()
out["weaker"] = [probe.write(sys.argv[1], "unconfined"), probe.limits()["NOFILE"]]
Probe.close()
print(json.dumps(out))
"""


@needs_landlock
def test_without_landlock_the_sandbox_refuses_unless_a_weaker_one_is_allowed(tmp_path: Path) -> None:
    target = tmp_path / "written.txt"
    done = subprocess.run([sys.executable, "-c", _WITHOUT_LANDLOCK, str(target)], env=python_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["abi"] == 0
    assert "no Landlock at all" in out["refused"] and "require_landlock=False" in out["refused"]
    assert out["weaker"] == ["unconfined", [64, 64]]  # the rlimits still hold
    assert target.read_text() == "unconfined"


# -- options ----------------------------------------------------------------------------

def test_sandbox_and_limits_are_validated_and_frozen(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"writable=\.\.\.\) must be a list of paths"):
        Sandbox(writable="/tmp")
    with pytest.raises(TypeError, match="writable"):
        Sandbox(writable=[3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="allow_network"):
        Sandbox(allow_network="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="require_landlock"):
        Sandbox(require_landlock=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"memory_bytes=\.\.\.\) must be at least"):
        Limits(memory_bytes=1000)
    with pytest.raises(TypeError, match="cpu_seconds"):
        Limits(cpu_seconds=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="open_files"):
        Limits(open_files=True)
    with pytest.raises(ValueError, match="processes"):
        Limits(processes=0)
    with pytest.raises(TypeError, match=r"sandbox= must be a Sandbox"):
        extradite(PROBE, sandbox={"writable": []})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"limits= must be a Limits"):
        extradite(PROBE, limits=Sandbox())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not exist"):
        extradite(PROBE, sandbox=Sandbox(writable=[tmp_path / "missing"]))

    sandbox = Sandbox(writable=[tmp_path, str(tmp_path), "relative"])
    assert sandbox.writable == tuple(sorted({str(tmp_path), os.path.abspath("relative")}))
    assert sandbox == Sandbox(writable=[str(tmp_path), "relative"]) and sandbox != Sandbox()
    assert hash(Limits(cpu_seconds=2)) == hash(Limits(cpu_seconds=2))
    assert pickle.loads(pickle.dumps(sandbox)) == sandbox  # options travel to other processes
    with pytest.raises(AttributeError, match="immutable"):
        sandbox.allow_network = True
    assert "Sandbox(writable=" in repr(sandbox) and repr(Limits(open_files=20)).startswith("Limits(memory_bytes=None")


def test_sandbox_and_limits_are_part_of_a_shared_sessions_identity() -> None:
    key = "sandbox-identity"
    try:
        assert prewarm_extradite_session(key, sandbox=Sandbox(allow_network=True), limits=Limits(open_files=64))
        with pytest.raises(ExtraditeSessionConflictError, match="sandbox="):
            extradite(PROBE, share_key=key, sandbox=Sandbox(), limits=Limits(open_files=64))
        with pytest.raises(ExtraditeSessionConflictError, match="limits="):
            extradite(PROBE, share_key=key, sandbox=Sandbox(allow_network=True))
        # equal options (new objects) share the running child
        Probe = extradite(PROBE, share_key=key, sandbox=Sandbox(allow_network=True), limits=Limits(open_files=64))
        try:
            assert Probe().limits()["NOFILE"] == (64, 64)
        finally:
            Probe.close()
    finally:
        close_extradite_session(key)


@needs_landlock
def test_a_generated_proxy_binds_with_a_sandbox(tmp_path: Path, placeholder_proxy: Callable[..., Any]) -> None:
    Generated = placeholder_proxy(PROBE, "Probe")
    with pytest.warns(ExtraditeStaleProxyWarning):
        Bound = Generated.extradite(sandbox=Sandbox(), limits=Limits(open_files=48))
    try:
        probe = Bound()
        with pytest.raises(PermissionError):
            probe.write(str(tmp_path / "outside.txt"))
        assert probe.limits()["NOFILE"] == (48, 48)
    finally:
        Bound.close_proxy_class()


def test_the_sandbox_code_loads_only_in_confined_children(confined: Callable[..., Any]) -> None:
    plain = confined()().modules()
    assert "extradite._sandbox" not in plain and "ctypes" not in plain
    limited = confined(limits=Limits(open_files=64))().modules()
    assert "extradite._sandbox" in limited and "ctypes" not in limited  # rlimits need no ctypes
