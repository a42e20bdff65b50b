"""Remote errors keep their type, text and traceback; the protected tree never reaches the parent."""

from __future__ import annotations

import io
import pickle
import sys
import types
from typing import Any

import pytest

from extradite import (
    ExtraditeClosedError,
    ExtraditeError,
    ExtraditeModuleLeakError,
    ExtraditeProcessError,
    ExtraditeProtocolError,
    ExtraditeRemoteError,
    ExtraditeSessionConflictError,
    UnsupportedInteractionError,
    extradite,
)
from extradite._codec import Codec
from extradite._bodyfile import Frame
from extradite._shm import ArenaMaps


def test_error_hierarchy() -> None:
    for cls in (ExtraditeProtocolError, ExtraditeModuleLeakError, UnsupportedInteractionError,
                ExtraditeRemoteError, ExtraditeSessionConflictError):
        assert issubclass(cls, ExtraditeError)
    assert issubclass(ExtraditeProcessError, ExtraditeProtocolError)
    assert issubclass(ExtraditeClosedError, ExtraditeProtocolError)


def test_remote_error_fields(Values: Any) -> None:
    with pytest.raises(ExtraditeRemoteError) as info:
        Values().raise_("Custom", "lost")
    error = info.value
    assert error.remote_type_name == "CustomError"  # the type's __name__, as the original gives it
    assert (error.remote_type_module, error.remote_type_qualname) == ("targets.values", "CustomError")
    assert error.remote_message == "lost"
    assert "raise_" in error.remote_traceback and "CustomError: lost" in error.remote_traceback
    assert isinstance(error, LookupError)  # nearest builtin base of the custom type
    assert "CustomError: lost" in str(error.__cause__)  # remote traceback shown when uncaught


@pytest.mark.parametrize("kind, builtin, args", [
    ("KeyError", KeyError, ("k",)),
    ("ValueError", ValueError, ("bad value",)),
    ("AttributeError", AttributeError, ("no such",)),
    ("StopIteration", StopIteration, (5,)),
    ("OSError", FileNotFoundError, (2, "No such file")),  # OSError(ENOENT) is FileNotFoundError
])
def test_remote_builtin_error_is_also_builtin(Values: Any, kind: str, builtin: type, args: tuple[Any, ...]) -> None:
    with pytest.raises(builtin) as info:
        Values().raise_(kind, *args)
    error = info.value
    assert isinstance(error, ExtraditeRemoteError)
    assert error.remote_type_name == error.remote_type_qualname == builtin.__name__
    assert error.remote_type_module == "builtins"
    assert error.args == args
    assert str(error) == str(builtin(*args))  # prints exactly like the original
    if builtin is StopIteration:
        assert error.value == 5  # type: ignore[attr-defined]
    if builtin is FileNotFoundError:
        assert error.errno == 2  # type: ignore[attr-defined]


def test_protected_value_is_refused_in_child_naming_type(Values: Any) -> None:
    values = Values()
    with pytest.raises(UnsupportedInteractionError, match=r"targets\.values\.Thing") as info:
        values.thing()
    assert "reference" in str(info.value)
    assert "targets" not in sys.modules


def test_protected_value_nested_deep_in_container_is_refused(Values: Any) -> None:
    with pytest.raises(UnsupportedInteractionError, match=r"targets\.values\.Thing"):
        Values().nested_thing()
    assert "targets" not in sys.modules


def test_protected_class_by_value_is_refused(Values: Any) -> None:
    with pytest.raises(UnsupportedInteractionError, match="Thing"):
        Values().thing_class()


def test_protected_value_by_reference_is_a_proxy(Values: Any) -> None:
    values = Values()
    thing = values.thing(__extradite_policy__="reference")
    assert thing.n == 1
    # each call's result follows that call's policy: in a reference session every level is a proxy
    by_reference = extradite("targets.values:Values", transport_policy="reference")
    try:
        nested = by_reference().nested_thing()
        assert nested["a"][2][1]["deep"][0].n == 2
    finally:
        by_reference.close()
    assert "targets" not in sys.modules


def test_session_still_usable_after_refusal(Values: Any) -> None:
    values = Values()
    with pytest.raises(UnsupportedInteractionError):
        values.thing()
    assert values.echo(3) == 3


def test_refuses_to_start_when_tree_already_imported() -> None:
    sys.modules["targets.values"] = types.ModuleType("targets.values")
    try:
        with pytest.raises(ExtraditeModuleLeakError, match="'targets.values'") as info:
            extradite("targets.values:Values")
        assert "Remove the import of 'targets.values'" in str(info.value)
    finally:
        del sys.modules["targets.values"]


def test_import_of_tree_after_start_is_caught_at_next_call(Values: Any) -> None:
    values = Values()
    assert values.echo(1) == 1
    sys.modules["targets.values"] = types.ModuleType("targets.values")
    try:
        with pytest.raises(ExtraditeModuleLeakError, match="after the extradite session started"):
            values.echo(2)
    finally:
        del sys.modules["targets.values"]
    assert values.echo(3) == 3


class _FakeSession:
    pass


def _frame(payload: bytes) -> Frame:
    return Frame(2, 0, 1, 1, payload, [], ArenaMaps())


def test_parent_unpickler_refuses_globals_from_protected_tree() -> None:
    import json.decoder

    # a real pickle whose loading would import json.decoder
    payload = pickle.dumps({"error": json.decoder.JSONDecodeError}, 5)
    codec = Codec(_FakeSession(), None, is_child=False)
    codec.protected = ("json",)
    saved = {name: mod for name, mod in sys.modules.items() if name == "json" or name.startswith("json.")}
    for name in saved:
        del sys.modules[name]
    try:
        with pytest.raises(ExtraditeModuleLeakError, match="json.decoder.JSONDecodeError"):
            codec.decode(_frame(payload))
        assert "json" not in sys.modules and "json.decoder" not in sys.modules
    finally:
        sys.modules.update(saved)


def test_parent_ignores_the_plain_flag_on_frames_from_the_child() -> None:
    """FLAG_PLAIN lets a child load its parent's request with `_pickle.loads`; a parent given
    the flag by a child still unpickles with its restricted unpickler."""
    import json.decoder
    import socket

    from extradite._proxy import ProxyFactory
    from extradite._session import Session
    from extradite._wire import FLAG_PLAIN, REPLY

    payload = pickle.dumps(((), json.decoder.JSONDecodeError), 5)
    ours, theirs = socket.socketpair()
    session = Session(ours, is_child=False, factory=ProxyFactory)
    real = session.channel

    class OneFrame:
        def recv(self) -> Frame:
            return Frame(REPLY, FLAG_PLAIN, 1, 1, payload, [], ArenaMaps())

    session.codec.protected = ("json",)
    saved = {name: mod for name, mod in sys.modules.items() if name == "json" or name.startswith("json.")}
    for name in saved:
        del sys.modules[name]
    try:
        session.channel = OneFrame()  # type: ignore[assignment]
        message = session._read_one()
        assert message is not None and isinstance(message.problem, ExtraditeModuleLeakError)
        assert "json" not in sys.modules and "json.decoder" not in sys.modules
    finally:
        sys.modules.update(saved)
        session.channel = real
        session.close()
        theirs.close()


def test_child_unpickling_failure_is_reported(Values: Any) -> None:
    class Local:  # defined in a function: cannot be pickled, so it travels as a handle
        pass

    obj = Local()
    assert Values().echo(obj) is obj


@pytest.mark.parametrize("target, message", [
    ("targets.values.Values", "no ':'"),
    (":Values", "empty module part"),
    ("targets.values:", "empty class part"),
    ("targets values:Values", "dotted Python identifiers"),
    ("targets.values:Values:x", "dotted Python identifiers"),
])
def test_bad_target_string_fails_before_any_process(target: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        extradite(target)


def test_bad_target_type() -> None:
    with pytest.raises(TypeError, match="must be a string"):
        extradite(42)  # type: ignore[arg-type]


def test_invalid_policy_fails_before_any_process() -> None:
    with pytest.raises(ValueError, match="transport_policy must be 'value' or 'reference', not 'copy'"):
        extradite("targets.values:Values", transport_policy="copy")
    with pytest.raises(ValueError, match="transport_type_rules"):
        extradite("targets.values:Values", transport_type_rules={list: "ref"})
    with pytest.raises(TypeError, match="transport_type_rules keys must be type objects"):
        extradite("targets.values:Values", transport_type_rules={"list": "value"})  # type: ignore[dict-item]


def test_invalid_call_policy(Values: Any) -> None:
    with pytest.raises(ValueError, match="__extradite_policy__"):
        Values().echo(1, __extradite_policy__="copy")


def test_missing_module_carries_child_text() -> None:
    with pytest.raises(ModuleNotFoundError) as info:
        extradite("targets.no_such_module:Thing")
    assert isinstance(info.value, ExtraditeRemoteError)
    assert "No module named 'targets.no_such_module'" in str(info.value)


def test_missing_class_name() -> None:
    with pytest.raises(AttributeError, match="NoSuchClass"):
        extradite("targets.values:NoSuchClass")


def test_targets_that_are_not_classes() -> None:
    # functions and other attributes are targets too (tests/test_functions_modules.py)
    function = extradite("targets.values:not_a_class")
    try:
        assert function() is None
    finally:
        function.close()
    assert extradite("targets.values:CONSTANT") == 42


def test_keepalive_requires_share_key() -> None:
    with pytest.raises(ValueError, match="requires share_key"):
        extradite("targets.values:Values", share_keepalive_seconds=1)


def test_callback_error_crosses_both_ways_with_its_type() -> None:
    def broken() -> None:
        raise io.UnsupportedOperation("nope")

    counter_class = extradite("targets.counter:Counter")
    try:
        with pytest.raises(ExtraditeRemoteError) as info:
            counter_class(0).call(broken)
    finally:
        counter_class.close()
    assert info.value.remote_type_name == "UnsupportedOperation"
    assert (info.value.remote_type_module, info.value.remote_type_qualname) == ("io", "UnsupportedOperation")
    assert info.value.remote_message == "nope"
    assert isinstance(info.value, OSError)
    assert "broken" in info.value.remote_traceback
