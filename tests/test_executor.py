"""ExtraditeExecutor: the concurrent.futures.Executor contract with isolated children as workers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import gc
import operator
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from extradite import (
    ExtraditeExecutor,
    ExtraditeModuleLeakError,
    ExtraditeProcessError,
    ExtraditeRemoteError,
    extradite,
)

from conftest import wait_gone


@pytest.fixture
def executor() -> Iterator[ExtraditeExecutor]:
    with ExtraditeExecutor(max_workers=2) as ex:
        yield ex
    assert "targets.tasks" not in sys.modules


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_is_an_executor() -> None:
    assert issubclass(ExtraditeExecutor, concurrent.futures.Executor)


def test_submit_a_target_string(executor: ExtraditeExecutor) -> None:
    future = executor.submit("targets.tasks:add", 2, b=3)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=60) == 5


def test_submit_a_function_proxy(executor: ExtraditeExecutor) -> None:
    add = extradite("targets.tasks:add")
    try:
        assert executor.submit(add, 4, 5).result(timeout=60) == 9
        assert list(executor.map(add, [1, 2], [10, 20])) == [11, 22]
        pid = extradite("targets.tasks:pid")
        try:
            assert executor.submit(pid).result(timeout=60) != pid()  # a worker's child, not the proxy's
        finally:
            pid.close()
    finally:
        add.close()


def test_submit_plain_module_level_functions(executor: ExtraditeExecutor) -> None:
    assert executor.submit(operator.add, 1, 2).result(timeout=60) == 3
    assert executor.submit(os.getpid).result(timeout=60) in executor.worker_pids()
    assert executor.submit(functools.partial(operator.mul, 6), 7).result(timeout=60) == 42
    assert list(executor.map(functools.partial(operator.add, 1), [1, 2, 3])) == [2, 3, 4]


def local_function() -> None:
    pass


def test_what_cannot_be_imported_by_a_worker_is_refused(executor: ExtraditeExecutor) -> None:
    def inner() -> None:
        pass

    with pytest.raises(TypeError, match="lambda"):
        executor.submit(lambda: 1)
    with pytest.raises(TypeError, match="inside another function"):
        executor.submit(inner)
    with pytest.raises(TypeError, match="bound method"):
        executor.submit([].append, 1)
    with pytest.raises(TypeError, match="not callable|callables"):
        executor.submit(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="instance="):
        executor.submit("add", 1)
    with pytest.raises(ValueError, match="pkg.module"):
        executor.submit("targets.tasks:", 1)
    with pytest.raises(ExtraditeModuleLeakError, match="'json'"):
        executor.submit("json:dumps", 1)  # a target string names a protected tree: it is loaded here


def test_map_keeps_the_order_of_its_inputs(executor: ExtraditeExecutor) -> None:
    delays = [0.4, 0.0, 0.2, 0.0]
    assert list(executor.map("targets.tasks:nap", delays, range(4))) == [0, 1, 2, 3]
    assert list(executor.map("targets.tasks:add", range(50), range(50), chunksize=7)) == [2 * i for i in range(50)]
    assert list(executor.map("targets.tasks:add", [])) == []


def test_map_timeout(executor: ExtraditeExecutor) -> None:
    results = executor.map("targets.tasks:nap", [2.0], timeout=0.1)
    with pytest.raises(TimeoutError):
        next(results)


def test_map_rejects_bad_chunksize(executor: ExtraditeExecutor) -> None:
    with pytest.raises(ValueError, match="chunksize"):
        executor.map("targets.tasks:add", [1], chunksize=0)


def test_map_raises_the_first_failure_at_its_item(executor: ExtraditeExecutor) -> None:
    for chunksize in (1, 2):  # a chunk fails as a whole (as in ProcessPoolExecutor): here the second
        results = executor.map("targets.tasks:add", [1, 2, None, 4], [1, 1, 1, 1], chunksize=chunksize)
        assert next(results) == 2
        assert next(results) == 3
        with pytest.raises(TypeError):
            next(results)


def test_remote_errors_keep_their_builtin_type(executor: ExtraditeExecutor) -> None:
    future = executor.submit("targets.tasks:fail", "bad input")
    with pytest.raises(ValueError, match="bad input") as caught:
        future.result(timeout=60)
    assert isinstance(caught.value, ExtraditeRemoteError)
    error = executor.submit("targets.tasks:fail_custom", "custom").exception(timeout=60)
    assert isinstance(error, ExtraditeRemoteError)
    assert error.remote_type_name == "TaskError" and error.remote_message == "custom"
    assert executor.submit("targets.tasks:add", 1, 1).result(timeout=60) == 2  # the worker goes on


def test_pending_futures_can_be_cancelled() -> None:
    with ExtraditeExecutor(max_workers=1) as executor:
        blocker = executor.submit("targets.tasks:nap", 1.0, "blocker")
        queued = [executor.submit("targets.tasks:nap", 0, name) for name in "abc"]
        assert queued[1].cancel()
        assert queued[1].cancelled()
        assert blocker.result(timeout=60) == "blocker"
        assert not blocker.cancel()  # done: too late
        assert [f.result(timeout=60) for f in (queued[0], queued[2])] == ["a", "c"]
        with pytest.raises(concurrent.futures.CancelledError):
            queued[1].result()
        assert executor.submit("targets.tasks:ran").result(timeout=60) == ["'blocker'", "'a'", "'c'"]


def test_shutdown_waits_and_stops_the_children() -> None:
    executor = ExtraditeExecutor(max_workers=2)
    futures = [executor.submit("targets.tasks:nap", 0.2, i) for i in range(4)]
    pids = set(executor.map("targets.tasks:pid", range(2)))
    executor.shutdown(wait=True)
    assert all(f.done() for f in futures) and [f.result() for f in futures] == [0, 1, 2, 3]
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit("targets.tasks:add", 1)
    executor.shutdown()  # again: nothing to do


def test_shutdown_cancel_futures() -> None:
    executor = ExtraditeExecutor(max_workers=1)
    running = executor.submit("targets.tasks:nap", 0.5, "running")
    queued = [executor.submit("targets.tasks:nap", 0, i) for i in range(5)]
    executor.shutdown(wait=True, cancel_futures=True)
    assert running.result() == "running"
    assert all(f.cancelled() for f in queued)


def test_shutdown_without_waiting_still_finishes_the_work() -> None:
    executor = ExtraditeExecutor(max_workers=1)
    future = executor.submit("targets.tasks:nap", 0.2, "late")
    executor.shutdown(wait=False)
    assert future.result(timeout=60) == "late"
    executor.shutdown(wait=True)


def test_a_crashing_worker_fails_only_its_future_and_is_replaced() -> None:
    with ExtraditeExecutor(max_workers=2) as executor:
        first = executor.submit("targets.tasks:pid").result(timeout=60)
        slow = executor.submit("targets.tasks:nap", 0.5, "survivor")
        crash = executor.submit("targets.tasks:crash", 7)
        error = crash.exception(timeout=60)
        assert isinstance(error, ExtraditeProcessError)
        assert error.returncode == 7
        assert slow.result(timeout=60) == "survivor"
        after = set(executor.map("targets.tasks:nap", [0.2] * 4, [None] * 4))
        assert after == {None}
        pids = executor.worker_pids()
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        assert first in pids or len(set(pids)) == 2  # the survivor kept its child, the crashed one has a new one
    assert not any(alive(pid) for pid in pids)


def test_a_worker_killed_while_idle_is_replaced_without_failing_work() -> None:
    import signal

    with ExtraditeExecutor(max_workers=1) as executor:
        pid = executor.submit("targets.tasks:pid").result(timeout=60)
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid)
        new = executor.submit("targets.tasks:pid").result(timeout=60)
        assert new != pid


def test_workers_start_as_demand_grows() -> None:
    with ExtraditeExecutor(max_workers=2) as executor:
        assert executor.worker_pids() == []
        executor.submit("targets.tasks:add", 1).result(timeout=60)
        assert len(executor.worker_pids()) == 1  # one item at a time needs one worker
        busy = [executor.submit("targets.tasks:nap", 0.5) for _ in range(2)]
        concurrent.futures.wait(busy, timeout=60)
        assert len(executor.worker_pids()) == 2


def test_work_spreads_over_idle_workers() -> None:
    with ExtraditeExecutor(max_workers=2) as executor:
        futures = [executor.submit("targets.tasks:nap", 0.3) for _ in range(2)]
        concurrent.futures.wait(futures, timeout=60)
        # both busy at once: two children served them
        pids = {executor.submit("targets.tasks:pid").result(timeout=60) for _ in range(6)}
        assert len(executor.worker_pids()) == 2 and pids <= set(executor.worker_pids())


def test_one_instance_per_worker() -> None:
    with ExtraditeExecutor(max_workers=2, instance=("targets.tasks:Model", (10,), {"offset": 1})) as executor:
        assert executor.submit("predict", 4).result(timeout=60) == 41
        assert list(executor.map("predict", range(5))) == [1, 11, 21, 31, 41]
        assert list(executor.map("predict", range(5), chunksize=2)) == [1, 11, 21, 31, 41]
        where = [executor.submit("where").result(timeout=60) for _ in range(3)]
        assert all(pid in executor.worker_pids() for pid, _ in where)
        crash = executor.submit("targets.tasks:crash", 1)
        assert isinstance(crash.exception(timeout=60), ExtraditeProcessError)
        assert executor.submit("predict", 1).result(timeout=60) == 11  # a new child, a new instance
        with pytest.raises(AttributeError):
            executor.submit("no_such_method").result(timeout=60)


def test_instance_spec_is_checked() -> None:
    with pytest.raises(TypeError, match="instance"):
        ExtraditeExecutor(instance=("targets.tasks:Model", 3))  # args not a tuple
    with pytest.raises(ValueError, match="pkg.module"):
        ExtraditeExecutor(instance=("no colon",))
    with pytest.raises(TypeError, match="share_key"):
        ExtraditeExecutor(share_key="k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_workers"):
        ExtraditeExecutor(max_workers=0)
    with ExtraditeExecutor(max_workers=1, instance=("targets.tasks:add",)) as executor:
        with pytest.raises(TypeError, match="not a class"):
            executor.submit("predict", 1).result(timeout=60)


def test_run_in_executor() -> None:
    async def main(executor: ExtraditeExecutor) -> list[Any]:
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(
            loop.run_in_executor(executor, operator.add, 1, 2),
            loop.run_in_executor(executor, functools.partial(pow, 2), 10),
            loop.run_in_executor(executor, "targets.tasks:nap", 0.1, "async"),  # type: ignore[arg-type]
        ))

    with ExtraditeExecutor(max_workers=2) as executor:
        assert asyncio.run(main(executor)) == [3, 1024, "async"]


def test_a_collected_executor_stops_its_workers() -> None:
    executor = ExtraditeExecutor(max_workers=1)
    pid = executor.submit("targets.tasks:pid").result(timeout=60)
    threads = [w.thread for w in executor._pool.workers]
    del executor
    gc.collect()
    for thread in threads:
        thread.join(timeout=60)
    assert not alive(pid)


def test_policies_reach_the_workers() -> None:
    with ExtraditeExecutor(max_workers=1, transport_policy="reference") as executor:
        data = [1, 2]
        # the worker's child holds a handle to `data`, and hands it back as itself
        assert executor.submit("targets.toolkit:echo", data).result(timeout=60) is data


def test_the_executor_benchmark_runs(tmp_path: Any) -> None:
    """A smoke run of benchmarks/executor.py: it prints its table and writes JSON (no time asserted)."""
    import json
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "executor.json"
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "executor.py"), "--quick", "--repetitions", "1",
                           "--json-output", str(out)], capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "speed-up of 2 workers over 1, extradite" in proc.stdout
    data = json.loads(out.read_text())
    assert set(data["cases"]) == {"tiny_submit", "tiny_map_chunk", "cpu_batch"}
    assert set(data["cases"]["cpu_batch"]) == {"extradite_1", "extradite_2", "process_pool_1", "process_pool_2"}
    for columns in data["cases"].values():
        for cell in columns.values():
            assert cell["min"] <= cell["median"] <= cell["max"] and len(cell["samples"]) == 1
