"""Supervised restart with real children: kill -9 the child (or let a deadline kill it), and the
next call runs in a new child where the targets and the instances built from by-value constructor
arguments were rebuilt; everything else says it died with the child; the budget ends it."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from extradite import (
    ExtraditeExecutor,
    ExtraditeProcessError,
    ExtraditeStatus,
    ExtraditeTimeoutError,
    Restart,
    close_extradite_session,
    extradite,
    extradite_status,
    import_isolated,
    prewarm_extradite_session,
)

COUNTER = "tests.targets.counter:Counter"
SLOWPOKE = "tests.targets.slowpoke:Slowpoke"


def _kill_child(proxy: Any) -> int:
    """kill -9 the child behind `proxy` and wait until the parent has seen it die; its pid."""
    pid = extradite_status(proxy).pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while extradite_status(proxy).alive:
        assert time.monotonic() < deadline, "the parent never noticed the child's death"
        time.sleep(0.01)
    return pid


def test_restart_rebuilds_two_instances_from_their_constructor_arguments() -> None:
    Counter = extradite(COUNTER, restart=Restart())
    try:
        gone = Counter(0)  # its remote id is skipped in the new child: the others' ids differ there
        first, second = Counter(5), Counter(start=7)
        del gone
        first.increment(10)
        second.increment(100)
        assert (first.value, second.value) == (15, 107)
        old_pid = _kill_child(Counter)
        assert extradite_status(Counter).restarts == 0  # nothing restarts until the next call
        # state is what the constructor made: the calls since then died with the child
        assert (first.value, second.value) == (5, 7)
        status = extradite_status(Counter)
        assert status.restarts == 1 and status.alive and status.pid != old_pid
        assert first.increment(1) == 6 and second.increment(2) == 9
        assert Counter.add(2, 3) == 5 and Counter.STEP == 1  # the class proxy itself
        third = Counter(1)  # new instances come from the new child, as instances of the same class
        assert isinstance(first, Counter) and isinstance(third, Counter) and type(third) is type(first)
        assert first.echo(third) is third  # identity still holds in the new session
    finally:
        Counter.close()


def test_the_call_in_flight_raises_and_is_not_retried() -> None:
    Slowpoke = extradite(SLOWPOKE, restart=Restart())
    try:
        poke = Slowpoke(3)
        pid = poke.pid()
        killer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
        killer.start()
        try:
            with pytest.raises(ExtraditeProcessError, match="killed by signal 9"):
                poke.sleep(3600)
        finally:
            killer.join()
        assert poke.add(1) == 4  # the next call: a new child, the instance rebuilt
        assert poke.pid() != pid and extradite_status(Slowpoke).restarts == 1
    finally:
        Slowpoke.close()


def test_a_child_killed_after_a_deadline_is_restarted() -> None:
    Slowpoke = extradite(SLOWPOKE, call_timeout=0.3, timeout_grace=0.3, restart=Restart())
    try:
        poke = Slowpoke(1)
        pid = poke.pid()
        with pytest.raises(ExtraditeTimeoutError, match="killed"):
            poke.deaf()  # never answers the interrupt: killed after the grace period
        assert poke.add(1) == 2
        assert poke.pid() != pid and extradite_status(Slowpoke).restarts == 1
        with pytest.raises(ExtraditeTimeoutError):  # deadlines hold in the new child too
            poke.sleep(3600)
        assert poke.add(1) == 3  # interrupted cleanly: no restart needed
        assert extradite_status(Slowpoke).restarts == 1
    finally:
        Slowpoke.close()


def test_objects_that_cannot_be_rebuilt_say_they_died_with_the_child() -> None:
    Counter = extradite(COUNTER, restart=Restart())
    try:
        kept = Counter(2)
        returned = kept.clone(__extradite_policy__="reference")  # made by another call
        from_handle = Counter(lambda: 1)  # its argument went as a handle (a local function)
        assert returned.value == 2
        _kill_child(Counter)
        assert kept.value == 2
        for lost in (returned, from_handle):
            with pytest.raises(ExtraditeProcessError, match="died with the extradite child process .* not rebuilt"):
                lost.increment()
        with pytest.raises(ExtraditeProcessError, match="not rebuilt"):
            kept.echo(returned)  # sent as an argument: the same error
        assert kept.increment(1) == 3  # the lost ones do not break the session
        assert extradite_status(Counter).restarts == 1
    finally:
        Counter.close()


def test_past_the_budget_the_session_stays_dead() -> None:
    Counter = extradite(COUNTER, restart=Restart(max_restarts=2, within_seconds=600))
    try:
        counter = Counter(1)
        for restarts in (1, 2):
            _kill_child(Counter)
            assert counter.increment(1) == 2
            assert extradite_status(Counter).restarts == restarts
        _kill_child(Counter)
        for _ in range(2):  # and stays so: every later call says why
            with pytest.raises(ExtraditeProcessError, match=r"max_restarts=2, within_seconds=600.*stays dead"):
                counter.increment(1)
        with pytest.raises(ExtraditeProcessError, match="stays dead"):
            Counter(1)
        status = extradite_status(Counter)
        assert not status.alive and status.restarts == 2
    finally:
        Counter.close()


def test_restarts_are_logged_and_reported_to_the_hook(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[ExtraditeStatus, BaseException]] = []

    def failing_hook(status: ExtraditeStatus, cause: BaseException) -> None:
        seen.append((status, cause))
        raise RuntimeError("a broken hook")

    Counter = extradite(COUNTER, restart=Restart(on_restart=failing_hook))
    try:
        counter = Counter(4)
        caplog.set_level(logging.WARNING, logger="extradite")
        old_pid = _kill_child(Counter)
        assert counter.value == 4  # the hook's error is logged, not raised into the call
        (status, cause), = seen
        assert status.restarts == 1 and status.alive and status.pid == extradite_status(Counter).pid
        assert isinstance(cause, ExtraditeProcessError) and cause.returncode == -signal.SIGKILL
        assert f"pid {old_pid}" in str(cause)
        warnings = [r for r in caplog.records if r.name == "extradite" and r.levelno == logging.WARNING]
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        assert f"pid {old_pid} died" in message and f"pid {status.pid}" in message and "rebuilt 2" in message
        errors = [r for r in caplog.records if r.name == "extradite" and r.levelno == logging.ERROR]
        assert errors and "on_restart" in errors[0].getMessage() and "a broken hook" in (errors[0].exc_text or "")
    finally:
        Counter.close()


def test_without_restart_a_dead_child_stays_dead() -> None:
    Counter = extradite(COUNTER)
    try:
        counter = Counter(1)
        _kill_child(Counter)
        with pytest.raises(ExtraditeProcessError, match="killed by signal 9"):
            counter.increment(1)
        assert extradite_status(Counter).restarts == 0
    finally:
        Counter.close()


def test_module_targets_restart_and_function_proxies_keep_working() -> None:
    tasks = import_isolated("tests.targets.tasks", restart=Restart())
    try:
        add, nap = tasks.add, tasks.nap
        assert add(1, 2) == 3 and nap(0, "x") == "x"
        pid = tasks.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while extradite_status(add).alive:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert add(2, 2) == 4  # the same function proxy, now in the new child
        assert tasks.ran() == []  # the module was imported again: its state is fresh
        assert tasks.pid() != pid and extradite_status(add).restarts == 1
        assert add.batch([([1, 1], {}), ([2], {"b": 3})]) == [2, 5]
    finally:
        tasks.close()


def test_shared_session_restarts_every_class_and_a_new_extradite_restarts_it() -> None:
    key = "restart-shared"
    options: dict[str, Any] = {"share_key": key, "restart": Restart()}
    prewarm_extradite_session(key, restart=options["restart"])
    Counter = extradite(COUNTER, **options)
    Slowpoke = extradite(SLOWPOKE, **options)
    try:
        counter, poke = Counter(3), Slowpoke(4)
        assert extradite_status(Counter).pid == extradite_status(Slowpoke).pid
        _kill_child(Counter)
        Again = extradite(COUNTER, **options)  # the key's session is restarted, not replaced
        try:
            assert extradite_status(Again).restarts == 1
            assert (counter.value, poke.add(1)) == (3, 5)
            assert Again(8).value == 8
            assert extradite_status(Counter).pid == extradite_status(Slowpoke).pid == extradite_status(Again).pid
        finally:
            Again.close()
    finally:
        Counter.close()
        Slowpoke.close()
        close_extradite_session(key)


def test_generated_proxy_restarts(tmp_path: Path) -> None:
    from test_gen_cli import gen

    out = tmp_path / "out"
    result = gen(SLOWPOKE, "-o", str(out))
    assert result.returncode == 0, result.stderr
    sys.path.insert(0, str(out))
    try:
        from tests_targets_slowpoke_xdproxy import Slowpoke as Generated  # type: ignore[import-not-found]

        Slowpoke = Generated.extradite(restart=Restart())
        try:
            poke = Slowpoke(10)
            assert poke.add(5) == 15
            _kill_child(Slowpoke)
            assert poke.add(5) == 15 and poke.add_batch([(1,), (1,)]) == [16, 17]
            assert type(Slowpoke(1)) is Slowpoke is type(poke) and extradite_status(Slowpoke).restarts == 1
        finally:
            Slowpoke.close_proxy_class()
    finally:
        sys.path.remove(str(out))
        sys.modules.pop("tests_targets_slowpoke_xdproxy", None)
        from extradite import _proxy

        _proxy.GENERATED.pop(SLOWPOKE, None)


def _wait_worker_death(pool: ExtraditeExecutor) -> None:
    handle = pool._pool.workers[0].handle  # (private: a worker's session has no proxy to ask about)
    assert handle is not None
    deadline = time.monotonic() + 10
    while not handle.process.exited:
        assert time.monotonic() < deadline, "the parent never noticed the worker's child die"
        time.sleep(0.01)


def test_executor_workers_restart_within_the_budget() -> None:
    with ExtraditeExecutor(max_workers=1, instance=(SLOWPOKE, (5,), {}), restart=Restart(max_restarts=1)) as pool:
        pid = pool.submit("pid").result()
        assert pool.submit("add", 1).result() == 6
        os.kill(pid, signal.SIGKILL)
        _wait_worker_death(pool)
        assert pool.submit("add", 1).result() == 6  # the worker's instance, rebuilt
        pid = pool.submit("pid").result()
        os.kill(pid, signal.SIGKILL)
        _wait_worker_death(pool)
        with pytest.raises(ExtraditeProcessError, match="max_restarts=1"):
            pool.submit("add", 1).result()
        assert pool.submit("add", 1).result() == 6  # the worker gave that session up: a new one


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"max_restarts": 0}, ValueError, "max_restarts.*at least 1"),
    ({"max_restarts": "3"}, TypeError, "max_restarts"),
    ({"max_restarts": True}, TypeError, "max_restarts"),
    ({"within_seconds": 0}, ValueError, "within_seconds"),
    ({"within_seconds": float("inf")}, ValueError, "within_seconds"),
    ({"backoff": -1}, ValueError, "backoff"),
    ({"backoff": "1s"}, TypeError, "backoff"),
    ({"on_restart": "print"}, TypeError, "on_restart"),
])
def test_bad_restart_arguments_are_refused(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Restart(**kwargs)


def test_restart_option_is_checked_and_part_of_a_shared_sessions_identity() -> None:
    with pytest.raises(TypeError, match=r"restart= must be a Restart\(...\)"):
        extradite(COUNTER, restart=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="restart="):
        import_isolated("tests.targets.tasks", restart={"max_restarts": 3})  # type: ignore[arg-type]
    assert Restart(3, 60) == Restart() and Restart(max_restarts=2) != Restart()
    with pytest.raises(AttributeError, match="immutable"):
        Restart().max_restarts = 5  # type: ignore[misc]
    Counter = extradite(COUNTER, share_key="restart-identity", restart=Restart())
    try:
        from extradite import ExtraditeSessionConflictError

        with pytest.raises(ExtraditeSessionConflictError, match="restart"):
            extradite(COUNTER, share_key="restart-identity")
    finally:
        Counter.close()


def test_function_targets_and_classes_of_a_module_proxy_are_rebuilt() -> None:
    add = extradite("tests.targets.tasks:add", restart=Restart())
    counters = import_isolated("tests.targets.counter", restart=Restart())
    try:
        Counter = counters.Counter
        counter = Counter(3)
        counter.increment(1)
        assert add(1, 2) == 3
        _kill_child(add)
        _kill_child(counter)
        assert add(2, 3) == 5  # the function target, imported again
        assert counter.value == 3 and isinstance(counter, Counter)  # mod.Cls looked up again, instance rebuilt
        assert Counter(9).increment(1) == 10 and counters.Counter is Counter
        assert extradite_status(add).restarts == extradite_status(counter).restarts == 1
    finally:
        add.close()
        counters.close()


def test_a_backoff_delays_but_does_not_stop_a_restart() -> None:
    policy = Restart(max_restarts=2, backoff=0.05)
    assert (policy.delay(0), policy.delay(1)) == (0.05, 0.1)  # doubled per restart within the window
    Counter = extradite(COUNTER, restart=policy)
    try:
        counter = Counter(6)
        for restarts in (1, 2):
            _kill_child(Counter)
            assert counter.value == 6 and extradite_status(Counter).restarts == restarts
    finally:
        Counter.close()


def test_an_instance_whose_constructor_fails_again_is_lost_and_logged(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    Claims = extradite("tests.targets.restarts:ClaimsFile", restart=Restart())
    try:
        claim = Claims(str(tmp_path / "claimed"))
        caplog.set_level(logging.WARNING, logger="extradite")
        _kill_child(Claims)
        with pytest.raises(ExtraditeProcessError, match="not rebuilt"):
            claim.where()
        message, = [r.getMessage() for r in caplog.records if r.name == "extradite"]
        assert "rebuilt 1 object(s); could not rebuild 1" in message and "FileExistsError" in message
        assert Claims(str(tmp_path / "other")).where().endswith("other")
    finally:
        Claims.close()
