"""The fork server: later sessions fork their child from a template that holds the runtime.

A forked child must be as fresh as a spawned one for the target, share the parent's fate,
take the sandbox and limits, and the template must be replaced (or bypassed) when it is gone.
The conftest starts the template before the first test, as a program's first session does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from extradite import Limits, Sandbox, extradite
from extradite import _forkserver
from extradite._api import session_of
from extradite._sandbox import landlock_abi

from conftest import find_python, python_env, wait_gone

PROBE = "targets.freshness:Probe"


@pytest.fixture
def sessions() -> Iterator[Callable[..., Any]]:
    """`open(target=PROBE, **options)`: a proxy class, closed after the test."""
    made: list[Any] = []

    def make(target: str = PROBE, **options: Any) -> Any:
        cls = extradite(target, **options)
        made.append(cls)
        return cls

    yield make
    for cls in made:
        cls.close()


@pytest.fixture(autouse=True)
def template_ready() -> None:
    """Every test here needs the template serving (the conftest started it)."""
    if not _forkserver.enabled():
        pytest.skip("the fork server is off here (EXTRADITE_FORK_SERVER=0, no pidfds, or a subinterpreter)")
    deadline = time.monotonic() + 30
    while not _forkserver._template[0].usable():
        assert time.monotonic() < deadline, "the template never became ready"
        time.sleep(0.01)


def forked(cls: Any) -> bool:
    return bool(session_of(cls).process.forked)


def test_a_later_child_is_forked_and_fresh(sessions: Callable[..., Any]) -> None:
    first = sessions()
    probe = first()
    assert probe.load("colorsys")
    assert probe.bump() == 1 and probe.bump() == 2
    first.close()
    later = sessions()
    assert forked(later)
    fresh = later()
    assert "colorsys" not in fresh.modules()  # imported by the previous target: not here
    assert "targets.freshness" in fresh.modules()
    assert fresh.counter() == 0  # the previous child's mutation is not here


@pytest.mark.parametrize("from_spare", [True, False])
@pytest.mark.parametrize("forward_logging", [True, False])
def test_a_forked_child_has_the_modules_of_a_spawned_one(sessions: Callable[..., Any], forward_logging: bool,
                                                        from_spare: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    spare = offered_spare() if from_spare else None  # a spare built its session ahead: nothing more shows
    from_template = sessions(forward_logging=forward_logging)
    assert forked(from_template)
    if spare is not None:
        assert session_of(from_template).process.pid == spare
    monkeypatch.setenv(_forkserver.ENV_VAR, "0")
    spawned = sessions(forward_logging=forward_logging)
    assert not forked(spawned)
    assert set(from_template().modules()) == set(spawned().modules())


def test_a_forked_child_leads_its_own_group_under_a_single_threaded_template(sessions: Callable[..., Any]) -> None:
    cls = sessions()
    assert forked(cls)
    info = cls().process()
    template = _forkserver.current_pid()
    assert info["pgid"] == info["pid"] == session_of(cls).process.pid
    assert info["ppid"] == template  # not the parent's child: the template reaps it when asked
    assert len(os.listdir(f"/proc/{template}/task")) == 1


def test_a_forked_child_takes_the_parent_context_of_now(sessions: Callable[..., Any], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XD_FORK_SERVER_PROBE", "now")
    monkeypatch.syspath_prepend(str(extra))
    cls = sessions()
    assert forked(cls)
    probe = cls()
    context = probe.context("XD_FORK_SERVER_PROBE")
    assert context["cwd"] == str(tmp_path)
    assert context["env"] == "now"
    assert str(extra) in context["path"]
    probe.write("printed by a forked child")
    deadline = time.monotonic() + 5
    out = err = ""
    while "printed" not in err and time.monotonic() < deadline:
        captured = capfd.readouterr()
        out, err = out + captured.out, err + captured.err
        time.sleep(0.01)
    assert "printed by a forked child" in out
    assert "printed by a forked child" in err
    monkeypatch.setenv(_forkserver.ENV_VAR, "0")
    spawned = sessions()
    # the same descriptors as a spawned child: nothing of the template's leaks in
    assert context["fds"] == spawned().context("")["fds"]


def test_a_forked_child_polls_as_the_session_environment_says(sessions: Callable[..., Any],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """EXTRADITE_SPIN_US is read when `_polling` is imported: in the template, long before the
    session; a forked child's channel takes the session's value, as a spawned child's does,
    whether the template forked it on request or it waited as the spare (its channel built
    ahead)."""
    for micros, cap in (("0", 0), ("50", 50_000)):
        monkeypatch.setenv("EXTRADITE_SPIN_US", micros)
        for from_spare in (True, False):
            spare = offered_spare()
            if not from_spare:  # dead before the session: the template forks one on request
                os.kill(spare, signal.SIGKILL)
                wait_gone(spare)
            later = sessions()
            assert forked(later)
            assert (session_of(later).process.pid == spare) == from_spare
            assert later().polling_cap_ns() == cap
            later.close()


@pytest.mark.parametrize("forking", ["0", "1"])  # (not `fork_server`: the conftest's fixture)
def test_the_target_sees_no_child_of_the_runtime(sessions: Callable[..., Any], forking: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The warden's middle process is reaped before the first request: a target's `os.wait()`
    finds no child, in a spawned and in a forked child alike."""
    monkeypatch.setenv(_forkserver.ENV_VAR, forking)
    cls = sessions()
    assert forked(cls) == (forking == "1")
    assert not cls().has_children()


def test_a_forked_child_takes_the_environment_of_now_when_it_changed_back(sessions: Callable[..., Any],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment as the template started with it is told apart by a comparison with the
    template's copy of it: a variable set, then removed again, is gone in the next child too."""
    monkeypatch.setenv("XD_FORK_SERVER_PROBE", "set")
    assert sessions()().context("XD_FORK_SERVER_PROBE")["env"] == "set"
    monkeypatch.delenv("XD_FORK_SERVER_PROBE")
    later = sessions()
    assert forked(later)
    assert later().context("XD_FORK_SERVER_PROBE")["env"] is None


def test_limits_apply_to_a_forked_child(sessions: Callable[..., Any]) -> None:
    cls = sessions(limits=Limits(open_files=100))
    assert forked(cls)
    assert cls().rlimit_nofile()[0] == 100


@pytest.mark.skipif(landlock_abi() < 4, reason="needs Landlock ABI 4 (Linux 6.7+)")
def test_the_sandbox_applies_to_a_forked_child(sessions: Callable[..., Any], tmp_path: Path) -> None:
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    cls = sessions("targets.confined:Probe", sandbox=Sandbox(writable=[inside]))
    assert forked(cls)
    probe = cls()
    assert probe.write(str(inside / "ok.txt")) == "written"
    with pytest.raises(PermissionError):
        probe.write(str(outside / "denied.txt"))
    assert not (outside / "denied.txt").exists()


def test_the_opt_out_spawns(sessions: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_forkserver.ENV_VAR, "off")
    cls = sessions()
    assert not forked(cls)
    assert cls().process()["ppid"] == os.getpid()


def test_another_interpreter_spawns(sessions: Callable[..., Any]) -> None:
    other = next((found for found in map(find_python, ("3.13", "3.12")) if found), None)
    if other is None:
        pytest.skip("no Python 3.12 or 3.13 here")
    cls = sessions(python=other)
    assert not forked(cls)
    assert cls().process()["ppid"] == os.getpid()


PROGRAM = """
import json, os, sys, time
from extradite import extradite, _forkserver
from extradite._api import session_of

def ready():
    deadline = time.monotonic() + 30
    while not (_forkserver._template and _forkserver._template[0].usable()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return _forkserver.current_pid()

def report(**values):
    print(json.dumps(values), flush=True)

first = extradite("targets.freshness:Probe")
first().bump()
{body}
"""


def run_program(tmp_path: Path, body: str) -> subprocess.Popen[str]:
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(PROGRAM.format(body=textwrap.dedent(body))))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=python_env())


def read_report(program: subprocess.Popen[str]) -> dict[str, Any]:
    assert program.stdout is not None
    line = program.stdout.readline()
    assert line, f"the program ended without a report (status {program.wait(30)})"
    values: dict[str, Any] = json.loads(line)
    return values


def finish(program: subprocess.Popen[str]) -> None:
    if program.poll() is None:
        program.kill()
    program.wait(30)
    if program.stdout is not None:
        program.stdout.close()


def test_parent_killed_takes_forked_children_and_the_template(tmp_path: Path) -> None:
    program = run_program(tmp_path, """
        template = ready()
        later = extradite("targets.freshness:Probe")
        later().bump()
        report(template=template, first=session_of(first).process.pid, later=session_of(later).process.pid,
               forked=session_of(later).process.forked)
        time.sleep(1000)
    """)
    try:
        seen = read_report(program)
        assert seen["forked"]
        os.kill(program.pid, signal.SIGKILL)
        program.wait(10)
        for name in ("later", "first", "template"):
            assert wait_gone(seen[name], 2.0), f"the {name} process outlived its killed parent"
    finally:
        finish(program)


def test_a_dead_template_is_bypassed_then_replaced(tmp_path: Path) -> None:
    program = run_program(tmp_path, """
        old = ready()
        during = extradite("targets.freshness:Probe")
        during().bump()
        os.kill(old, 9)
        os.waitid(os.P_PID, old, os.WEXITED | os.WNOWAIT)  # dead (not reaped: the runtime does that)
        after = extradite("targets.freshness:Probe")  # finds the template gone: spawns, starts a new one
        after_value = after().bump()
        new = ready()
        replaced = extradite("targets.freshness:Probe")
        replaced().bump()
        still = during().bump()  # its template is gone: the session lives on
        report(old=old, new=new, after_forked=session_of(after).process.forked, after_value=after_value,
               replaced_forked=session_of(replaced).process.forked, still=still,
               children=[session_of(c).process.pid for c in (first, during, after, replaced)])
        during.close()  # its exit status is lost with the template: closing still works
        replaced.close()
        after.close()
        report(closed=True)
    """)
    try:
        seen = read_report(program)
        assert seen["old"] != seen["new"]
        assert seen["after_forked"] is False and seen["after_value"] == 1
        assert seen["replaced_forked"] is True
        assert seen["still"] == 2  # the same child: its counter went on
        assert read_report(program) == {"closed": True}
        assert program.wait(30) == 0
        for pid in [seen["old"], seen["new"], *seen["children"]]:
            assert wait_gone(pid, 5.0), f"process {pid} outlived the program's exit"
    finally:
        finish(program)


def test_a_changed_startup_variable_replaces_the_template(tmp_path: Path) -> None:
    """PYTHONDONTWRITEBYTECODE is read at start only: a template started with another value would
    give its children another bytecode setting than a spawned child gets. The session spawns; the
    next one forks from a template started with the variable as it is now."""
    program = run_program(tmp_path, """
        old = ready()
        was = "PYTHONDONTWRITEBYTECODE" in os.environ
        if was:
            del os.environ["PYTHONDONTWRITEBYTECODE"]
        else:
            os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        spawned = extradite("targets.freshness:Probe")
        new = ready()
        forked = extradite("targets.freshness:Probe")
        report(old=old, new=new, was=was, spawned=session_of(spawned).process.forked,
               forked=session_of(forked).process.forked, flags=[c().dont_write_bytecode() for c in (spawned, forked)])
    """)
    try:
        seen = read_report(program)
        assert seen["old"] != seen["new"]
        assert seen["spawned"] is False and seen["forked"] is True
        assert seen["flags"] == [not seen["was"]] * 2  # both as the variable is now
        assert program.wait(30) == 0
    finally:
        finish(program)


def test_the_template_starts_only_once_the_first_child_answered(tmp_path: Path) -> None:
    """The first session spawns its child and starts the template only after that child's first
    reply: started together, the two would compete for the CPUs and delay the first call."""
    script = tmp_path / "first.py"
    script.write_text(textwrap.dedent("""
        import json, time
        from extradite import extradite, _api, _forkserver

        seen = []
        original = _forkserver.Template.__init__

        def recording(self):
            seen.append([handle.session.counts() for handle in _api._live])
            original(self)

        _forkserver.Template.__init__ = recording
        first = extradite("targets.freshness:Probe")
        first().bump()
        deadline = time.monotonic() + 30
        while not (_forkserver._template and _forkserver._template[0].usable()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        print(json.dumps(seen))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=python_env(),
                          timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert len(seen) == 1, "one template for the program"
    [sessions] = seen
    assert len(sessions) == 1 and sessions[0][1] >= 1, f"the template started before a reply came: {sessions}"


def offered_spare() -> int:
    """The pid of the spare the template offered to this process (waits for it)."""
    template = _forkserver._template[0]
    deadline = time.monotonic() + 30
    while True:
        pid = _forkserver.spare_pid()  # a request: collects the offer that came with the spare
        if pid is not None and template.offer is not None and template.offer[0] == pid:
            return pid
        assert time.monotonic() < deadline, "the template offered no spare"
        time.sleep(0.01)


def test_a_later_session_goes_straight_to_the_offered_spare(sessions: Callable[..., Any]) -> None:
    spare = offered_spare()
    cls = sessions()
    assert forked(cls)
    assert session_of(cls).process.pid == spare == cls().process()["pid"]
    assert _forkserver._template[0].offer is None or _forkserver._template[0].offer[0] != spare


def test_a_dead_offered_spare_is_bypassed_and_reaped(sessions: Callable[..., Any]) -> None:
    spare = offered_spare()
    os.kill(spare, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{spare}") and time.monotonic() < deadline:  # a zombie still has an entry
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{spare}"), "the killed spare was never reaped by the template"
    cls = sessions()
    assert forked(cls)  # the template forked it on request instead
    assert session_of(cls).process.pid != spare
    assert cls().bump() == 1


def test_a_spare_waits_with_its_session_built(sessions: Callable[..., Any]) -> None:
    """All of the child's session but its socket is built while the spare waits: its SIGINT
    handler, which needs the session, is installed already (before, SIGINT was ignored until then)."""
    spare = offered_spare()
    deadline = time.monotonic() + 5
    while not signal_caught(spare, signal.SIGINT):
        assert time.monotonic() < deadline, "the spare never installed its SIGINT handler"
        time.sleep(0.01)
    cls = sessions()
    assert session_of(cls).process.pid == spare
    assert cls().bump() == 1


def signal_caught(pid: int, number: int) -> bool:
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return bool(int(fields["SigCgt"], 16) >> (number - 1) & 1)


def two_cpus() -> set[int]:
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        pytest.skip("needs two CPUs allowed")
    return allowed


def test_steering_a_spare_keeps_it_off_this_cpu_only() -> None:
    allowed = two_cpus()
    spare = offered_spare()
    here = min(allowed)
    os.sched_setaffinity(0, {here})  # this thread stays on one CPU while it steers
    try:
        assert _forkserver.current_cpu() == here
        assert _forkserver.steer_away(spare, allowed)
        assert os.sched_getaffinity(spare) == allowed - {here}
        # one CPU allowed, or this CPU not among them: nothing to steer away from
        assert not _forkserver.steer_away(spare, {here})
        assert not _forkserver.steer_away(spare, allowed - {here})
        assert os.sched_getaffinity(spare) == allowed - {here}
    finally:
        os.sched_setaffinity(0, allowed)
    assert not _forkserver.steer_away(2 ** 22 + 1, allowed)  # no such process: a harmless failure


def test_a_later_session_steers_the_spare_it_wakes(sessions: Callable[..., Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = two_cpus()
    steered: list[tuple[int, set[int]]] = []
    real = _forkserver.steer_away

    def recording(pid: int, cpus: set[int]) -> bool:
        done = real(pid, cpus)
        steered.append((pid, os.sched_getaffinity(pid)))
        return done

    monkeypatch.setattr(_forkserver, "steer_away", recording)
    spare = offered_spare()
    cls = sessions()
    assert session_of(cls).process.pid == spare
    [(pid, cpus)] = steered
    assert pid == spare
    assert len(cpus) == len(allowed) - 1 and cpus < allowed  # off the CPU the session started on


def test_a_spare_woken_on_another_cpu_serves_with_the_cpus_of_a_spawned_child(
        sessions: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = two_cpus()
    spare = offered_spare()
    os.sched_setaffinity(spare, {max(allowed)})  # as steered, or woken while on one CPU only
    cls = sessions()
    assert session_of(cls).process.pid == spare
    from_spare = cls().cpus()
    monkeypatch.setenv(_forkserver.ENV_VAR, "0")
    spawned = sessions()
    assert not forked(spawned)
    assert from_spare == spawned().cpus() == sorted(allowed)
