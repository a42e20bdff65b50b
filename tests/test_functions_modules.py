"""Function and attribute targets (`extradite("pkg.mod:func")`) and module proxies (`import_isolated`)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from extradite import (
    ExtraditeClosedError,
    ExtraditeModuleLeakError,
    ExtraditeRemoteError,
    extradite,
    import_isolated,
)
from extradite._api import session_of
from extradite._targets import parse_module


def tree_loaded(tree: str) -> list[str]:
    return [name for name in sys.modules if name == tree or name.startswith(tree + ".")]


@pytest.fixture
def toolkit() -> Iterator[Any]:
    mod = import_isolated("targets.toolkit")
    try:
        yield mod
    finally:
        mod.close()
    assert not tree_loaded("targets.toolkit")


# -- function and attribute targets ----------------------------------------------------------
def test_a_function_target_is_a_callable_proxy() -> None:
    add = extradite("targets.toolkit:add")
    try:
        assert add(2, 3) == 5
        assert add(2, b=10) == 12
        assert add.batch([([1], {}), ([2], {"b": 5})]) == [2, 7]
        assert "function add" in repr(add)
        assert not tree_loaded("targets.toolkit")
    finally:
        add.close()


def test_a_function_target_takes_policies() -> None:
    echo = extradite("targets.toolkit:echo")
    try:
        data = [1, 2]
        assert echo(data) == data and echo(data) is not data
        assert echo(data, __extradite_policy__="reference") is data  # lent, and home again as itself
        assert echo.get_effective_policy(data) == "value"
        assert echo.get_effective_policy_trace(data, "reference")["source"] == "call_override"
    finally:
        echo.close()
    echo = extradite("targets.toolkit:echo", transport_policy="reference")
    try:
        data = [1, 2]
        assert echo(data) is data
    finally:
        echo.close()


def test_a_function_target_raises_remote_errors_as_their_builtin() -> None:
    fail = extradite("targets.toolkit:fail")
    try:
        with pytest.raises(ValueError, match="broken on purpose") as caught:
            fail("broken on purpose")
        assert isinstance(caught.value, ExtraditeRemoteError)
        assert caught.value.remote_type_name == "ValueError"
    finally:
        fail.close()


def test_closing_a_function_target_ends_its_child() -> None:
    pid = extradite("targets.toolkit:pid")
    handle = session_of(pid)
    child = pid()
    assert child == handle.process.pid
    pid.close()
    assert handle.process.popen.poll() is not None
    with pytest.raises(ExtraditeClosedError):
        pid()
    pid.close()  # idempotent


def test_a_collected_function_target_ends_its_child() -> None:
    pid = extradite("targets.toolkit:pid")
    handle = session_of(pid)
    del pid
    gc.collect()
    assert handle.process.popen.poll() is not None


def test_an_object_target_is_a_handle_proxy() -> None:
    acc = extradite("targets.toolkit:default_accumulator")
    try:
        assert acc.add(1) == 101
        assert acc.total == 101
    finally:
        acc.close()
    limits = extradite("targets.toolkit:LIMITS")  # picklable, yet a handle: the live dict
    try:
        assert limits["high"] == 9
        assert len(limits) == 2
    finally:
        limits.close()


def test_a_module_attribute_target_is_a_module_proxy() -> None:
    shapes = extradite("targets.toolkit:shapes")
    try:
        assert "'targets.toolkit.shapes'" in repr(shapes)
        assert shapes.square(5) == 25
    finally:
        shapes.close()


def test_a_scalar_attribute_target_is_its_value_and_leaves_no_child() -> None:
    assert extradite("targets.toolkit:VERSION") == "1.2"


def test_a_class_target_is_unchanged() -> None:
    Accumulator = extradite("targets.toolkit:Accumulator")
    try:
        assert isinstance(Accumulator, type)
        acc = Accumulator(5)
        assert acc.add(2) == 7 and isinstance(acc, Accumulator)
    finally:
        Accumulator.close()


def test_function_targets_share_a_session_by_key() -> None:
    add = extradite("targets.toolkit:add", share_key="fm-shared")
    pid = extradite("targets.toolkit:pid", share_key="fm-shared")
    try:
        assert session_of(add) is session_of(pid)
        add.close()
        assert pid() == session_of(pid).process.pid  # the other use keeps the child
    finally:
        pid.close()


def test_a_missing_attribute_says_which() -> None:
    with pytest.raises(AttributeError, match="nothing_here"):
        extradite("targets.toolkit:nothing_here")


# -- module targets ---------------------------------------------------------------------------
def test_module_functions_classes_and_constants(toolkit: Any) -> None:
    assert toolkit.add(1, 2) == 3
    assert toolkit.add is toolkit.add  # looked up once
    assert toolkit.add.batch([([1], {}), ([5], {})]) == [2, 6]
    assert toolkit.VERSION == "1.2"
    assert toolkit.LIMITS == {"low": 1, "high": 9}  # a copy under the value policy
    assert type(toolkit.LIMITS) is dict
    Accumulator = toolkit.Accumulator
    assert isinstance(Accumulator, type) and Accumulator is toolkit.Accumulator
    acc = Accumulator(3)
    assert acc.add(4) == 7 and isinstance(acc, Accumulator)
    made = toolkit.make_accumulator(1, __extradite_policy__="reference")  # a protected type: a handle
    assert made.add(1) == 2
    assert toolkit.default_accumulator.add(1) == 101  # a protected type's instance: a handle, not a copy
    assert toolkit.ordered == {"a": 1}
    assert toolkit.square(3) == 9
    assert not tree_loaded("targets.toolkit")


def test_module_values_follow_the_session_policy() -> None:
    mod = import_isolated("targets.toolkit", transport_policy="reference")
    try:
        limits = mod.LIMITS
        assert type(limits) is not dict and limits["low"] == 1
        assert limits is mod.LIMITS  # one handle, same proxy
        assert mod.VERSION == "1.2"  # scalars always travel by value
    finally:
        mod.close()


def test_module_state_is_read_at_every_access(toolkit: Any) -> None:
    before = toolkit.calls
    toolkit.add(1)
    assert toolkit.calls == before + 1
    toolkit.calls = 40
    assert toolkit.calls == 40
    toolkit.add = "replaced"  # setting forgets what was looked up
    assert toolkit.add == "replaced"


def test_module_dir_and_repr(toolkit: Any) -> None:
    names = dir(toolkit)
    assert {"add", "Accumulator", "VERSION", "shapes"} <= set(names)
    assert f"pid {session_of(toolkit).process.pid}" in repr(toolkit)
    assert "'targets.toolkit'" in repr(toolkit)


def test_submodules_on_attribute_access(toolkit: Any) -> None:
    shapes = toolkit.shapes
    assert shapes is toolkit.shapes
    assert "'targets.toolkit.shapes'" in repr(shapes)
    assert shapes.Box(2).area() == 4
    lazy = toolkit.lazy  # not imported by its package: imported now, in the child
    assert lazy.hello("you") == "hello you"
    assert toolkit.loaded("targets.toolkit") == ["targets.toolkit", "targets.toolkit.lazy", "targets.toolkit.shapes"]
    with pytest.raises(AttributeError, match="no_such_thing"):
        toolkit.no_such_thing
    assert not tree_loaded("targets.toolkit")


def test_module_errors_arrive_as_their_builtin(toolkit: Any) -> None:
    with pytest.raises(ValueError, match="nope"):
        toolkit.fail("nope")


def test_module_callbacks_reach_this_process(toolkit: Any) -> None:
    seen: list[int] = []
    assert toolkit.apply(lambda x: seen.append(x) or x * 2, 21) == 42
    assert seen == [21]


def test_closing_a_module_ends_its_child_and_everything_from_it() -> None:
    mod = import_isolated("targets.toolkit")
    handle = session_of(mod)
    add, Accumulator, shapes = mod.add, mod.Accumulator, mod.shapes
    assert add(1) == 2
    mod.close()
    assert handle.process.popen.poll() is not None
    with pytest.raises(ExtraditeClosedError):
        add(1)
    with pytest.raises(ExtraditeClosedError, match=r"import_isolated\('targets.toolkit'\)"):
        Accumulator()
    with pytest.raises(ExtraditeClosedError):
        shapes.square(2)
    assert "closed" in repr(mod)


def test_what_a_module_handed_out_keeps_its_child() -> None:
    shapes = import_isolated("targets.toolkit").shapes
    square, Box = shapes.square, shapes.Box
    del shapes
    gc.collect()
    assert square(4) == 16
    assert Box(3).area() == 9
    handle = session_of(square)
    del square
    gc.collect()
    assert handle.running  # `Box` still holds it
    del Box
    gc.collect()
    assert handle.process.popen.poll() is not None


def test_a_module_already_imported_is_refused() -> None:
    with pytest.raises(ExtraditeModuleLeakError, match="'json'"):
        import_isolated("json")


def test_module_names_are_checked() -> None:
    with pytest.raises(ValueError, match="extradite\\(\\) takes 'pkg.mod:f'"):
        import_isolated("pkg.mod:f")
    with pytest.raises(ValueError, match="not a module name"):
        import_isolated("pkg..mod")
    with pytest.raises(TypeError, match="string"):
        import_isolated(3)  # type: ignore[arg-type]
    assert parse_module("a.b") == "a.b"


def test_a_missing_module_says_so() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        import_isolated("targets.no_such_module_here")


def test_numpy_submodules() -> None:
    import importlib.util

    if importlib.util.find_spec("numpy") is None:  # find_spec, not importorskip: no import here
        pytest.skip("numpy is not installed")
    if "numpy" in sys.modules:
        pytest.skip("numpy was imported in this process by another test")
    np = import_isolated("numpy", transport_policy="reference")
    try:
        norm = np.linalg.norm([3.0, 4.0])
        assert float(norm) == 5.0
        assert np.pi == pytest.approx(3.14159)
        assert float(np.linalg.norm([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(2 ** 0.5)
        assert "linalg" in dir(np)
    finally:
        np.close()
    assert not tree_loaded("numpy")
