"""Several parent threads on one instance and on one shared session at the same time.

The child serves one request at a time (see `_session`), so calls from the threads
are serialised there; each thread's callbacks still run on that thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from extradite import extradite

TARGET = "targets.handles:Service"
THREADS = 8
CALLS = 500


def _run_threads(work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def runner(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as exc:  # reported below, with the thread index
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,), name=f"worker-{i}") for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a worker thread hung"
    if errors:
        raise errors[0]


def _work_on(svc: Any, index: int) -> None:
    me = threading.current_thread().name
    for i in range(CALLS):
        token = (index, i)
        if i % 5 == 0:
            def callback(value: Any) -> Any:
                assert threading.current_thread().name == me  # callbacks run on the caller
                return (svc.echo(value), me)
            assert svc.call(callback, token) == (token, me)
        elif i % 5 == 1:
            assert svc.maybe_fail(i) == i * 10
        else:
            assert svc.echo(token) == token


def test_eight_threads_share_one_instance_with_callbacks() -> None:
    Service = extradite(TARGET)
    try:
        svc = Service()
        _run_threads(lambda index: _work_on(svc, index))
        assert svc.accumulate(0) == 0
    finally:
        Service.close()


def test_eight_threads_share_one_session_with_their_own_instances_and_classes() -> None:
    classes = [extradite(TARGET, share_key="threads") for _ in range(2)]
    try:
        instances = [classes[i % 2]() for i in range(THREADS)]

        def work(index: int) -> None:
            svc = instances[index]
            _work_on(svc, index)
            for _ in range(50):
                svc.accumulate(1)
            assert svc.accumulate(0) == 50

        _run_threads(work)
    finally:
        for cls in classes:
            cls.close()


def test_threads_get_their_own_exceptions() -> None:
    Service = extradite(TARGET)
    try:
        svc = Service()

        def work(index: int) -> None:
            for i in range(100):
                value = -(index * 1000 + i) - 1
                try:
                    svc.maybe_fail(value)
                except ValueError as exc:
                    assert exc.args[0] == f"negative: {value}"
                else:
                    raise AssertionError("no error")

        _run_threads(work)
    finally:
        Service.close()
