"""The Ray backend: the local child's contract served by Ray actors of a real local cluster.

One cluster serves the module (`ray_cluster`); it is shut down at the end and its
processes must be gone. Ray's driver keeps gRPC connections and log pipes open while
the cluster runs, so these tests are marked `allow_fd_growth`; the module fixture
checks that every process Ray started has exited after `ray.shutdown()`.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import child_pids, python_env, wait_gone
from extradite import (
    ExtraditeClosedError,
    ExtraditeModuleLeakError,
    ExtraditeProcessError,
    ExtraditeRemoteError,
    UnsupportedInteractionError,
    ExtraditeStaleProxyWarning,
    extradite,
    import_isolated,
)

NODE = "targets.remote:Node"
COUNTER = "targets.counter:Counter"
VALUES = "targets.values:Values"
ROOT = Path(__file__).resolve().parent.parent

try:
    import ray
except ImportError:  # the `dev` extra installs it; a plain checkout may not have it
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'extradite[ray]')")
on_cluster = [needs_ray, pytest.mark.ray, pytest.mark.allow_fd_growth, pytest.mark.usefixtures("ray_cluster")]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local cluster for this module: started once, shut down at the end, its processes gone."""
    before = child_pids()
    # Ray kills workers when the machine's memory runs short, whoever uses it: on a shared
    # test machine that would be other jobs' memory. These tests use little; no policing.
    policing = os.environ.get("RAY_memory_monitor_refresh_ms")
    os.environ["RAY_memory_monitor_refresh_ms"] = "0"
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        if policing is None:
            del os.environ["RAY_memory_monitor_refresh_ms"]
        else:
            os.environ["RAY_memory_monitor_refresh_ms"] = policing
    started = child_pids() - before
    try:
        yield
    finally:
        ray.shutdown()
        left = [pid for pid in started if not wait_gone(pid, 15)]
        assert not left, f"Ray processes still running after ray.shutdown(): {left}"


@pytest.fixture
def make() -> Iterator[Any]:
    """`make(target, **options)`: a Ray-backed proxy class, closed after the test."""
    opened: list[Any] = []

    def factory(target: str = NODE, **options: Any) -> Any:
        cls = extradite(target, backend="ray", **options)
        opened.append(cls)
        return cls

    try:
        yield factory
    finally:
        for cls in opened:
            cls.close()


# -- without a cluster: options, the missing extra, import cost ---------------------------------------
@pytest.mark.parametrize(("options", "error", "text"), [
    ({"backend": "cluster"}, ValueError, "backend must be 'local'"),
    ({"backend": 1}, TypeError, "backend must be a string"),
    ({"ray_options": {"num_cpus": 1}}, ValueError, "ray_options requires backend='ray'"),
    ({"backend": "ray", "ray_options": [("num_cpus", 1)]}, TypeError, "ray_options must be a dict"),
    ({"backend": "ray", "ray_options": {"num_cpu": 1}}, ValueError, "unknown key 'num_cpu'"),
    ({"backend": "ray", "ray_options": {"num_gpus": -1}}, ValueError, "num_gpus.*number >= 0"),
    ({"backend": "ray", "ray_options": {"max_restarts": 1.5}}, ValueError, "max_restarts"),
    ({"backend": "ray", "ray_options": {"resources": {"gpu_node": "x"}}}, ValueError, "gpu_node"),
    ({"backend": "ray", "ray_options": {"runtime_env": "env"}}, TypeError, "runtime_env"),
    ({"backend": "ray", "ray_options": {"name": ""}}, TypeError, "name"),
    ({"backend": "ray", "ray_options": {"namespace": "ns"}}, ValueError, "give ray_options\\['name'\\]"),
    ({"backend": "ray", "share_key": "k"}, UnsupportedInteractionError, "share_key= is an option of the local"),
    ({"backend": "ray", "python": sys.executable}, UnsupportedInteractionError, "runtime_env"),
])
def test_backend_and_ray_options_are_validated_before_anything_starts(options: dict[str, Any], error: type,
                                                                     text: str) -> None:
    before = child_pids()
    with pytest.raises(error, match=text):
        extradite(NODE, **options)
    assert child_pids() == before


@pytest.mark.parametrize(("options", "error", "text"), [
    ({"backend": "cluster"}, ValueError, "backend must be 'local'"),
    ({"backend": "ray", "ray_options": {"name": "one"}}, UnsupportedInteractionError, "each get actors"),
    ({"backend": "ray", "sandbox": object()}, UnsupportedInteractionError, "sandbox= is an option of the local"),
])
def test_import_isolated_checks_the_ray_options_first(options: dict[str, Any], error: type, text: str) -> None:
    before = child_pids()
    with pytest.raises(error, match=text):
        import_isolated("targets.toolkit", **options)
    assert child_pids() == before and "targets.toolkit" not in sys.modules


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(),
                          timeout=120)


def test_without_ray_backend_ray_says_what_to_install() -> None:
    result = _run(
        "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
        "from extradite import extradite\n"
        "try:\n"
        "    extradite('targets.remote:Node', backend='ray')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n")
    assert result.returncode == 0, result.stderr
    assert "pip install 'extradite[ray]'" in result.stdout
    assert "targets.remote" not in result.stdout


def test_import_extradite_never_imports_ray() -> None:
    result = _run("import sys, extradite\n"
                  "from extradite import extradite as xd, _api, _proxy, _ray\n"
                  "print('ray' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# -- on the cluster -----------------------------------------------------------------------------------
class TestOnCluster:
    pytestmark = on_cluster

    def test_calls_attributes_properties_and_dunders(self, make: Any) -> None:
        Counter = make(COUNTER)
        assert Counter.STEP == 1 and Counter.add(2, 3) == 5
        c = Counter(5)
        assert isinstance(c, Counter)
        assert c.increment(2) == 7 and c.value == 7 and c.doubled == 14
        c.settable = 10
        assert c.value == 10
        assert (len(c), list(c)[:3], str(c), repr(c), bytes(c)) == (10, [0, 1, 2], "counter at 10", "Counter(10)",
                                                                   b"10")
        c["k"] = "v"
        assert "k" in c and c["k"] == "v"
        del c["k"]
        assert "k" not in c
        assert c == 10 and c < 11 and c(1) == 11 and hash(c) == hash(c)
        with c as entered:
            assert entered.entered
        assert c.entered is False

    def test_batch_is_one_actor_call_and_stops_at_the_first_error(self, make: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
        from extradite import _ray

        c = make(COUNTER)(0)
        calls: list[Any] = []
        real = _ray.RaySession._remote
        monkeypatch.setattr(_ray.RaySession, "_remote", lambda self, *a: calls.append(a) or real(self, *a))
        assert c.increment.batch([([1], {}), ([2], {}), ([], {"by": 3})]) == [1, 3, 6]
        assert len(calls) == 1
        with pytest.raises(TypeError) as info:
            c.increment.batch([([1], {}), (["x"], {}), ([1], {})])
        assert info.value.batch_index == 1  # type: ignore[attr-defined]
        assert "batch item 1" in str(info.value)
        assert c.value == 7  # the first item ran, the third did not

    def test_builtin_iterators_and_iterate_read_ahead_in_chunks(self, make: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
        """An actor serves OP_NEXT_CHUNK as a local child does: a builtin iterator's proxy, and any
        iterator through iterate(), take many items per actor call instead of one."""
        from extradite import _ray, iterate

        c = make(COUNTER)(300)
        calls: list[Any] = []
        real = _ray.RaySession._remote
        monkeypatch.setattr(_ray.RaySession, "_remote", lambda self, *a: calls.append(a) or real(self, *a))
        assert list(c) == list(range(300))
        assert len(calls) <= 6, f"{len(calls)} actor calls for 300 items: not read ahead"
        calls.clear()
        assert [item for item in iterate(c, chunk=100)] == list(range(300))
        assert len(calls) <= 5, f"{len(calls)} actor calls for 300 items in chunks of 100"

    def test_values_travel_by_value_and_protected_values_are_refused_as_locally(
            self, make: Any, Values: Any) -> None:
        remote = make(VALUES)()
        data = {"a": [1, 2, (3, b"x" * 100_000)], "b": bytearray(b"y" * 70_000)}
        echoed = remote.echo(data)
        assert echoed == data and echoed is not data
        with pytest.raises(UnsupportedInteractionError) as on_ray:
            remote.thing()
        with pytest.raises(UnsupportedInteractionError) as local:
            Values().thing()
        assert str(on_ray.value) == str(local.value)
        assert "protected module tree 'targets.values'" in str(on_ray.value)
        thing = remote.thing(__extradite_policy__="reference")
        assert thing.n == 1
        assert "targets.values" not in sys.modules

    def test_policy_introspection_and_type_rules(self, make: Any) -> None:
        Node = make(NODE, transport_type_rules={dict: "reference"})
        node = Node()
        trace = node.get_effective_policy_trace({})
        assert trace == {"effective_policy": "reference", "source": "type_rule", "matched_type": "builtins.dict"}
        assert Node.get_effective_policy([]) == "value"
        assert Node.get_effective_policy([], call_policy="reference") == "reference"

    def test_objects_that_stay_in_the_actor_keep_one_proxy_each(self, make: Any) -> None:
        node = make()(4)
        part = node.part(__extradite_policy__="reference")
        assert node.part(__extradite_policy__="reference") is part
        assert part.value() == 4
        assert node.echo(part, __extradite_policy__="reference") is part  # a handle going home
        node.add(1)
        assert part.value() == 5
        del node
        gc.collect()  # the instance's proxy is gone, not released: its actor serves what it returned
        assert part.value() == 5

    def test_remote_errors_keep_type_message_and_traceback(self, make: Any) -> None:
        values = make(VALUES)()
        with pytest.raises(KeyError) as info:
            values.raise_("KeyError", "missing")
        error = info.value
        assert isinstance(error, ExtraditeRemoteError)
        assert (error.remote_type_name, error.remote_message) == ("KeyError", "'missing'")
        assert "in raise_" in error.remote_traceback
        with pytest.raises(LookupError) as custom:
            values.raise_("Custom", "mine")
        assert (custom.value.remote_type_module, custom.value.remote_type_qualname) == (  # type: ignore[attr-defined]
            "targets.values", "CustomError")
        with pytest.raises(AttributeError):
            values.no_such_member
        assert not hasattr(values, "no_such_member")
        with pytest.raises(ZeroDivisionError):
            make(COUNTER)(1).fail(ZeroDivisionError("boom"))

    def test_a_constructor_error_is_a_remote_error_and_leaves_no_actor(self, make: Any) -> None:
        Counter = make(COUNTER)
        with pytest.raises(TypeError) as info:
            Counter("not", "an", "int")
        assert info.value.remote_type_name == "TypeError"  # type: ignore[attr-defined]
        assert not list(Counter._xd_api.instances)

    def test_the_target_runs_in_the_actor_never_in_the_driver(self, make: Any) -> None:
        node = make()()
        assert node.pid() != os.getpid()
        assert node.loaded("targets.remote")
        assert "targets.remote" not in sys.modules
        sys.modules["targets.remote"] = type(sys)("targets.remote")
        try:
            with pytest.raises(ExtraditeModuleLeakError, match="targets.remote"):
                node.add(1)
            with pytest.raises(ExtraditeModuleLeakError, match="already imported"):
                make()
        finally:
            del sys.modules["targets.remote"]
        assert node.add(1) == 1

    def test_close_kills_the_actor(self, make: Any) -> None:
        Node = make()
        node, other = Node(), Node()
        pid, other_pid = node.pid(), other.pid()
        node.close()
        assert wait_gone_anywhere(pid)
        with pytest.raises(ExtraditeClosedError, match="was closed"):
            node.add(1)
        assert other.add(2) == 2
        Node.close()
        assert wait_gone_anywhere(other_pid)
        with pytest.raises(ExtraditeClosedError):
            other.add(1)
        with pytest.raises(ExtraditeClosedError):
            Node()

    def test_two_actors_of_one_class_run_in_parallel(self, make: Any, tmp_path: Path) -> None:
        Node = make()
        first, second = Node(), Node()
        assert first.pid() != second.pid()
        a, b = str(tmp_path / "a"), str(tmp_path / "b")
        met: dict[str, bool] = {}
        threads = [threading.Thread(target=lambda: met.__setitem__("first", first.meet(a, b, 60))),
                   threading.Thread(target=lambda: met.__setitem__("second", second.meet(b, a, 60)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert met == {"first": True, "second": True}

    def test_a_crashed_actor_restarts_with_max_restarts(self, make: Any) -> None:
        node = make(ray_options={"max_restarts": 1})(5)
        assert node.add(1) == 6
        pid = node.pid()
        with pytest.raises(ExtraditeProcessError, match="died"):
            node.crash()
        assert node.add(1) == 6  # a fresh instance from the same arguments, same proxy
        assert node.pid() != pid
        with pytest.raises(ExtraditeProcessError):
            node.crash()
        with pytest.raises(ExtraditeProcessError):  # no restarts left
            node.add(1)

    def test_callbacks_and_driver_handles_are_refused_naming_the_limit(self, make: Any) -> None:
        Counter = make(COUNTER)
        counter = Counter(1)
        with pytest.raises(UnsupportedInteractionError,
                           match="cannot send function <function .* cannot call back into the driver"):
            counter.call(lambda: 1)  # refused here, before anything is sent

        class Local:
            pass

        with pytest.raises(UnsupportedInteractionError, match="cannot call back into the driver"):
            counter.echo(Local())
        with pytest.raises(UnsupportedInteractionError, match="cannot call back into the driver"):
            counter.echo([1, 2], __extradite_policy__="reference")
        with pytest.raises(UnsupportedInteractionError, match="cannot call back into the driver"):
            Counter(threading.Lock())
        assert counter.echo([1, 2]) == [1, 2]  # a refused call sent nothing and lent nothing
        assert counter.call(len, "abc") == 3   # a builtin travels by value

    def test_proxies_of_two_actors_do_not_mix(self, make: Any) -> None:
        Node = make()
        first, second = Node(), Node()
        part = first.part(__extradite_policy__="reference")
        with pytest.raises(UnsupportedInteractionError, match="another extradite session"):
            second.echo(part)

    def test_a_named_actor_is_attached_not_created_again(self, make: Any) -> None:
        options = {"name": "xd-test-node", "namespace": "xd-tests"}
        Node = make(ray_options=options)
        node = Node(3)
        assert Node(99) is node  # the class's named instance
        Again = make(ray_options=options)
        attached = Again()
        assert attached.add(1) == 4 and node.add(1) == 5
        Again.close()  # attached, not created here: the actor keeps running
        assert node.add(0) == 5
        assert ray.get_actor("xd-test-node", namespace="xd-tests") is not None

    def test_a_generated_proxy_binds_to_ray(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Unit tests of descriptors import the demo target into this process; the bind would
        # rightly refuse it, so this test runs as if they had not.
        monkeypatch.delitem(sys.modules, "extradite.demo.counter", raising=False)
        spec = importlib.util.spec_from_file_location(
            "xd_ray_generated_counter", ROOT / "generated" / "extradite_demo_counter_xdproxy.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        Counter = module.Counter.extradite(backend="ray")
        try:
            counter = Counter(2, step=3)
            assert isinstance(counter, module.Counter)
            assert counter.increment() == 5 and counter.value == 5
            assert counter.add_many_batch([(1,), (2, 3)]) == [6, 11]
            assert Counter.limit == 1_000_000
            copy = counter.copy()  # a method whose default is `reference`: a typed proxy
            assert isinstance(copy, module.Counter) and copy is not counter and copy.value == counter.value
            assert "extradite.demo.counter" not in sys.modules
        finally:
            Counter.close_proxy_class()
        from extradite import _proxy

        _proxy.GENERATED.pop("extradite.demo.counter:Counter", None)

    def test_import_isolated_serves_the_module_from_an_actor(self) -> None:
        mod = import_isolated("targets.toolkit", backend="ray")
        try:
            assert "Ray actor" in repr(mod)
            assert mod.add(2, 3) == 5 and mod.add.batch([([1], {}), ([2], {"b": 5})]) == [2, 7]
            assert mod.VERSION == "1.2" and mod.LIMITS == {"low": 1, "high": 9}
            assert mod.pid() != os.getpid()
            assert {"add", "Accumulator", "VERSION", "shapes"} <= set(dir(mod))
            with pytest.raises(ValueError, match="boom") as info:
                mod.fail("boom")
            assert info.value.remote_type_name == "ValueError"  # type: ignore[attr-defined]
            accumulator = mod.Accumulator(5)  # an instance in an actor of its own, as extradite() gives
            assert isinstance(accumulator, mod.Accumulator) and accumulator.add(2) == 7
            assert accumulator._xd_session.actor != mod._xd_session.actor
            assert mod.default_accumulator.add(1) == 101  # an object of the module: served by its actor
            assert mod.lazy.hello("ray") == "hello ray"  # a submodule its package never imported
            assert mod.shapes.Box(3).area() == 9
            assert not [name for name in sys.modules if name.startswith("targets.toolkit")]
            sys.modules["targets.toolkit"] = type(sys)("targets.toolkit")
            try:
                with pytest.raises(ExtraditeModuleLeakError, match="targets.toolkit"):
                    mod.add(1, 1)
            finally:
                del sys.modules["targets.toolkit"]
        finally:
            mod.close()
        with pytest.raises(ExtraditeClosedError):
            mod.add(1, 1)
        with pytest.raises(ExtraditeClosedError):
            accumulator.add(1)  # the module's close() ends its classes' actors too

    def test_a_stale_generated_proxy_warns_on_ray(self, placeholder_proxy: Any) -> None:
        Stale = placeholder_proxy(VALUES)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ExtraditeStaleProxyWarning)
            with pytest.raises(ExtraditeStaleProxyWarning, match="no longer matches"):
                Stale.extradite(backend="ray")
        with pytest.warns(ExtraditeStaleProxyWarning, match="added: .*echo"):
            bound = Stale.extradite(backend="ray")
        try:
            assert bound().echo(3) == 3  # a member the proxy does not know: the dynamic path
        finally:
            bound.close_proxy_class()


def wait_gone_anywhere(pid: int) -> bool:
    """An actor's worker is Ray's child, not ours: poll /proc until it is gone."""
    return wait_gone(pid, 15)
