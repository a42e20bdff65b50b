"""A class crossing the channel for the first time carries a descriptor; the receiver checks it.

The descriptor's plain fields (module, names, repr, member table, exception flag) travel
pre-pickled as one bytes object. The receiver reads them with an unpickler that loads no
global and checks their types: a broken or hostile sender gets a corrupt-frame error,
never code run on its behalf or a proxy class built from garbage.
"""

from __future__ import annotations

import os
import pickle
import types
from typing import Any

import pytest

from extradite._codec import Codec
from extradite._errors import ExtraditeProtocolError
from extradite._members import describe_type
from extradite._pickling import dump_plain
from extradite._proxy import ProxyFactory
from extradite._shm import ArenaMaps
from extradite._bodyfile import Frame
from extradite._wire import REPLY
from conftest import private_copy

counter = private_copy("extradite.demo.counter")
callbacks = private_copy("extradite.demo.callbacks")


def _sent(cls: type) -> Any:
    """`cls` encoded by reference by a child's codec, decoded by a parent's."""
    child = Codec(None, ProxyFactory, is_child=True)
    releases: list[Any] = []
    writer = child.encode((releases, cls), (releases,), call_policy="reference")
    assert not writer.big
    parent = Codec(types.SimpleNamespace(adopts_generated=False), ProxyFactory, is_child=False)
    return parent.decode(Frame(REPLY, 0, 1, 1, b"".join(writer.parts), [], ArenaMaps()))[1]


@pytest.mark.parametrize("cls", [counter.Counter, callbacks.EventBus, KeyError])
def test_a_class_arrives_with_its_members_name_and_kind(cls: type) -> None:
    proxy = _sent(cls)
    assert proxy.__qualname__ == cls.__qualname__
    assert proxy.__dict__["_xd_members"] == describe_type(cls)
    assert repr(cls) in repr(proxy)


def test_bases_arrive_as_their_own_class_proxies() -> None:
    proxy = _sent(KeyError)
    assert [b.__qualname__ for b in proxy.__mro__[1:3]] == ["LookupError", "Exception"]


def _global() -> bytes:
    return pickle.dumps(("m", "q", "r", (), os.system), 5)


@pytest.mark.parametrize("descriptor, why", [
    (None, "without its descriptor"),
    ((b"garbage", ()), "does not unpickle"),
    ((_global(), ()), "names a global"),
    (("not bytes", ()), "not bytes"),
    ((dump_plain(("m", "q", "r", ())), ()), "malformed"),                       # a field short
    ((dump_plain(("m", "q", "r", (("a", 1),), False)), ()), "expected types"),  # a kind that is no str
    ((dump_plain(("m", "q", "r", (), "yes")), ()), "expected types"),
    ((dump_plain(("m", "q", "r", (), False)),), "malformed"),                   # no bases
    ((dump_plain(("m", "q", "r", "0123456789abcdef", False)), ()), "expected types"),  # no table
])
def test_a_forged_descriptor_is_a_corrupt_frame(descriptor: Any, why: str) -> None:
    parent = Codec(None, ProxyFactory, is_child=False)
    with pytest.raises(ExtraditeProtocolError, match=f"corrupt frame.*{why}"):
        parent._load_class((7, descriptor))
    assert 7 not in parent.imports.classes
