"""The dynamic proxy behaves like the real class: members, dunders, start-up contexts, closing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import extradite
from extradite import (
    ExtraditeClosedError,
    ExtraditeProtocolError,
    ExtraditeRemoteError,
    UnsupportedInteractionError,
    extradite as make_proxy,
)
from extradite._api import session_of
from extradite._wire import REQUEST

from conftest import require_python

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


@pytest.fixture
def Counter() -> Iterator[Any]:
    cls = make_proxy("targets.counter:Counter")
    try:
        yield cls
    finally:
        cls.close()


def count_requests(cls: Any) -> list[int]:
    """Record the kind of every frame the parent sends (the instance's senders are wrapped)."""
    channel = session_of(cls).session.channel
    sent: list[int] = []

    def wrap(original: Any) -> Any:
        def send(kind: int, *rest: Any) -> None:
            sent.append(kind)
            original(kind, *rest)
        return send

    channel.send = wrap(channel.send)  # type: ignore[method-assign]
    channel.send_bytes = wrap(channel.send_bytes)  # type: ignore[method-assign]
    return sent


def test_construct_and_call_method(Counter: Any) -> None:
    counter = Counter(3)
    assert counter.increment(2) == 5
    assert counter.increment() == 6
    assert counter.value == 6


def test_method_call_is_one_round_trip(Counter: Any) -> None:
    counter = Counter(0)
    counter.increment()  # warm: nothing is looked up lazily afterwards
    sent = count_requests(Counter)
    counter.increment(1)
    counter.increment(by=2)
    assert sent == [REQUEST, REQUEST]


def test_member_table_learned_once(Counter: Any) -> None:
    members = Counter.__mro__[1].__dict__["_xd_members"]
    assert members["increment"] == "method"
    assert members["doubled"] == "property"
    assert members["settable"] == "property_rw"
    assert members["make"] == "classmethod"
    assert members["add"] == "staticmethod"
    assert members["STEP"] == "attribute"


def test_attributes_get_set_delete(Counter: Any) -> None:
    counter = Counter(1)
    counter.extra = "x"
    assert counter.extra == "x"
    del counter.extra
    assert not hasattr(counter, "extra")
    with pytest.raises(AttributeError):
        del counter.extra


def test_properties(Counter: Any) -> None:
    counter = Counter(4)
    assert counter.doubled == 8
    counter.settable = 10
    assert counter.value == 10
    with pytest.raises(AttributeError):
        counter.doubled = 3


def test_class_attributes_classmethods_staticmethods(Counter: Any) -> None:
    assert Counter.STEP == 1
    Counter.STEP = 5
    assert Counter.STEP == 5
    assert Counter(0).STEP == 5
    assert Counter.add(2, 3) == 5
    made = Counter.make(7, __extradite_policy__="reference")
    assert made.value == 7
    assert isinstance(made, Counter.__mro__[1])


def test_missing_attribute_is_attribute_error(Counter: Any) -> None:
    counter = Counter(0)
    with pytest.raises(AttributeError) as info:
        counter.missing
    assert isinstance(info.value, ExtraditeRemoteError)
    assert not hasattr(counter, "missing")
    assert getattr(counter, "missing", "default") == "default"
    assert not hasattr(Counter, "missing_on_class")


def test_repr_str_bytes_bool_len(Counter: Any) -> None:
    counter = Counter(3)
    assert repr(counter) == "Counter(3)"
    assert str(counter) == "counter at 3"
    assert bytes(counter) == b"3"
    assert len(counter) == 3
    assert bool(counter) is True
    assert bool(Counter(0)) is False  # through __len__, as for the real object


def test_iteration(Counter: Any) -> None:
    counter = Counter(4)
    assert list(counter) == [0, 1, 2, 3]
    iterator = iter(counter)
    assert next(iterator) == 0
    assert [*iterator] == [1, 2, 3]
    with pytest.raises(StopIteration):
        next(iterator)


def test_item_access_and_contains(Counter: Any) -> None:
    counter = Counter(0)
    counter["k"] = [1, 2]
    assert "k" in counter
    assert counter["k"] == [1, 2]
    del counter["k"]
    assert "k" not in counter
    with pytest.raises(KeyError):
        counter["k"]


def test_comparisons_and_hash(Counter: Any) -> None:
    a, b = Counter(2), Counter(2)
    assert a == b
    assert a == 2
    assert a != Counter(3)
    assert a < 3
    assert a < Counter(5)
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_call_and_context_manager(Counter: Any) -> None:
    counter = Counter(10)
    assert counter(5) == 15
    with counter as entered:
        assert entered is counter
        assert counter.entered is True
    assert counter.entered is False


def test_identity_of_returned_self(Counter: Any) -> None:
    counter = Counter(1)
    assert counter.same() is counter


def test_isinstance_of_proxy_class(Counter: Any) -> None:
    assert isinstance(Counter(1), Counter)
    assert "Counter" in repr(Counter)


def test_instance_close_then_use_raises_protocol_error(Counter: Any) -> None:
    counter = Counter(1)
    counter.close()
    counter.close()  # idempotent
    with pytest.raises(ExtraditeProtocolError, match="Unknown or released remote object id"):
        counter.increment()
    with pytest.raises(ExtraditeProtocolError, match="Unknown or released remote object id"):
        repr(counter)  # a use like any other


def test_instance_close_releases_remote_object(Counter: Any) -> None:
    handle = session_of(Counter)
    before = handle.stats()["child"]["exports"]
    counter = Counter(1)
    assert handle.stats()["child"]["exports"] == before + 1
    counter.close()
    assert handle.stats()["child"]["exports"] == before


def test_class_close_stops_child_and_waits() -> None:
    cls = make_proxy("targets.counter:Counter")
    process = session_of(cls).process
    assert cls(1).increment() == 2
    cls.close()
    assert process.popen.returncode is not None  # waited for
    cls.close()  # idempotent
    with pytest.raises(ExtraditeClosedError):
        cls(1)


def test_calls_on_instance_after_class_close_raise_closed() -> None:
    cls = make_proxy("targets.counter:Counter")
    counter = cls(1)
    cls.close()
    with pytest.raises(ExtraditeProtocolError):
        counter.increment()


def test_works_from_a_thread() -> None:
    result: list[Any] = []

    def run() -> None:
        cls = make_proxy("targets.counter:Counter")
        try:
            result.append(cls(1).increment(41))
        finally:
            cls.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert result == [42]


def _run_python(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60,
                          env=env, **kwargs)


def test_works_from_python_c_without_main_guard() -> None:
    code = ("from extradite import extradite; C = extradite('targets.counter:Counter'); "
            "print(C(2).increment(3))")
    done = _run_python(["-W", "error", "-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"
    assert done.stderr == ""


def test_works_from_script_without_main_guard_and_exits_cleanly(tmp_path: Path) -> None:
    script = tmp_path / "plain_script.py"
    script.write_text(textwrap.dedent("""
        from extradite import extradite
        Counter = extradite("targets.counter:Counter")
        Other = extradite("targets.values:Values", share_key="k")
        counter = Counter(1)
        print(counter.increment(1), Other().echo([1, 2]))
        # no close(): interpreter exit must clean up without warnings
    """))
    done = _run_python(["-W", "error", str(script)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 [1, 2]"
    assert done.stderr == ""


def test_public_surface_is_what_the_readme_documents() -> None:
    readme = (TESTS.parent / "README.md").read_text()
    for name in extradite.__all__:
        assert f"`{name}" in readme, f"{name} is exported but not documented in README.md"
    public = {n for n in dir(extradite)
              if not n.startswith("_") and not isinstance(getattr(extradite, n), types.ModuleType)}
    assert public == set(extradite.__all__), public ^ set(extradite.__all__)


def test_unpicklable_proxy_refuses_pickling(Counter: Any) -> None:
    import copy
    import pickle

    counter = Counter(1)
    with pytest.raises(UnsupportedInteractionError):
        pickle.dumps(counter)
    with pytest.raises(UnsupportedInteractionError):
        copy.copy(counter)


def test_collected_class_closes_without_blocking_when_registry_is_busy() -> None:
    """A proxy class collected in a thread while another holds the registry lock never deadlocks."""
    from extradite import _api

    cls = make_proxy("targets.counter:Counter")
    api = cls.__dict__["_xd_api"]
    process = session_of(cls).process
    with _api._lock:
        finalizer = threading.Thread(target=_api.close_collected, args=(api,))
        finalizer.start()
        finalizer.join(5)
        assert not finalizer.is_alive(), "the finalizer blocked on the registry lock"
        assert not api.closed  # deferred: the lock was busy
    other = make_proxy("targets.counter:Counter")  # the next API call closes it
    try:
        assert api.closed and process.popen.returncode is not None
    finally:
        other.close()
        cls.close()


def test_collected_class_stops_its_child() -> None:
    import gc

    cls = make_proxy("targets.counter:Counter")
    process = session_of(cls).process
    del cls
    gc.collect()
    assert process.popen.returncode is not None


def test_child_with_another_interpreter_finds_program_modules() -> None:
    cls = make_proxy("targets.values:Values", python=require_python("3.13"))
    try:
        values = cls()
        assert values.python_version() == (3, 13)
        assert values.echo([1, "two"]) == [1, "two"]
    finally:
        cls.close()
