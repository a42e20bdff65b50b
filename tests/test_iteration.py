"""Iterating remote iterators: builtin iterators read ahead in chunks, others only through iterate().

Every test runs a real child; round trips are counted with the session's request counter.
"""

from __future__ import annotations

import gc
import operator
from collections.abc import Iterator
from typing import Any

import pytest

from extradite import ExtraditeRemoteError, extradite, iterate
from extradite._api import session_of
from extradite._proxy import RemoteIterator, RemoteObject

TARGET = "targets.iteration:Source"


@pytest.fixture
def Source() -> Iterator[Any]:
    cls = extradite(TARGET)
    try:
        yield cls
    finally:
        cls.close()


def _requests(proxy: Any) -> int:
    return int(session_of(proxy).session.counts()[0])


def _local_source() -> Any:
    """The target's code loaded here under another name (its tree stays out of sys.modules)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent / "targets" / "iteration.py"
    spec = importlib.util.spec_from_file_location("xd_local_iteration", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Source()


def _expected(kind: str, count: int) -> list[Any]:
    return list(_local_source().box(kind, count))


@pytest.mark.parametrize("kind", ["list", "tuple", "dict", "set", "frozenset", "range", "str", "bytes"])
def test_builtin_iterators_prefetch_and_give_identical_results(Source: Any, kind: str) -> None:
    box = Source().box(kind, 3000)
    before = _requests(Source)
    iterator = iter(box)
    assert isinstance(iterator, RemoteIterator)
    items = [item for item in iterator]
    assert items == _expected(kind, 3000)
    # one __iter__, then chunks of 16, 64, 256, 1024, ... (not 3000 round trips)
    assert _requests(Source) - before <= 8
    with pytest.raises(StopIteration):  # exhausted stays exhausted, with no round trip
        next(iterator)
    assert next(iterator, "done") == "done"


@pytest.mark.parametrize("kind", ["keys", "values", "items", "reversed_list", "reversed_items"])
def test_dict_views_and_reversed_iterators_prefetch(Source: Any, kind: str) -> None:
    view = Source().view(kind, 500, __extradite_policy__="reference")  # a view or an iterator, remote
    iterator = iter(view)
    assert isinstance(iterator, RemoteIterator)
    before = _requests(Source)
    assert list(iterator) == list(_local_source().view(kind, 500))
    assert _requests(Source) - before <= 6


def test_empty_and_short_iterables_take_one_chunk(Source: Any) -> None:
    empty, short = Source().box("tuple", 0), Source().box("tuple", 3)
    before = _requests(Source)
    assert list(empty) == []
    assert list(short) == [0, 1, 2]
    assert _requests(Source) - before == 4  # __iter__ and one chunk each


def test_generators_are_not_read_ahead(Source: Any) -> None:
    source = Source()
    generator = source.counting(100)
    assert not isinstance(generator, RemoteIterator)
    assert next(generator) == 0
    assert source.produced == 1  # the generator ran exactly as far as the consumer
    before = _requests(Source)
    assert [next(generator) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert _requests(Source) - before == 5  # one round trip per item
    assert source.produced == 6


def test_iterate_reads_a_generator_ahead_by_chunk(Source: Any) -> None:
    source = Source()
    items = iterate(source.counting(100), chunk=30)
    assert next(items) == 0
    assert source.produced == 30  # documented: the remote side runs up to `chunk` items ahead
    before = _requests(Source)
    assert list(items) == list(range(1, 100))
    assert _requests(Source) - before == 3  # 30, 30, then 10 and the end in one chunk
    assert source.produced == 100


def test_iterate_gives_what_a_for_loop_gives(Source: Any) -> None:
    source = Source()
    assert list(iterate(source.counting(1234), chunk=100)) == list(range(1234))
    assert list(iterate(source.box("list", 700), chunk=50)) == _expected("list", 700)
    flaky_plain, flaky_chunked = [], []
    for into, wrap in ((flaky_plain, lambda it: it), (flaky_chunked, lambda it: iterate(it, chunk=4))):
        iterator = wrap(source.flaky(10, 6))
        while True:
            try:
                into.append(next(iterator))
            except KeyError as exc:
                into.append(("error", str(exc)))
            except StopIteration:
                break
    assert flaky_chunked == flaky_plain == [0, 1, 2, 3, 4, 5, ("error", "'flaky at 6'"), 6, 7, 8, 9]


@pytest.mark.parametrize("chunk", [1, 3, 7, 500])
def test_an_exception_surfaces_at_its_item(Source: Any, chunk: int) -> None:
    got: list[int] = []
    with pytest.raises(ValueError, match="boom at 5") as info:
        for item in iterate(Source().failing(20, 5), chunk=chunk):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]  # every item before the error, none after
    assert isinstance(info.value, ExtraditeRemoteError)
    assert "boom at 5" in info.value.remote_traceback  # the child's traceback comes along


def test_early_break_releases_the_remote_iterator(Source: Any) -> None:
    handle = session_of(Source)
    source = Source()
    box, generator = source.box("list", 5000), source.counting(5000)
    before = handle.stats()["child"]["exports"]
    for item in box:
        if item["n"] == 20:
            break
    for number in iterate(generator, chunk=100):
        if number == 3:
            break
    assert handle.stats()["child"]["exports"] == before  # released at once, no collector needed
    del box, generator, item
    gc.collect()
    assert handle.stats()["child"]["exports"] == before - 2
    assert source.produced == 100  # one chunk was pulled, nothing more


def test_items_follow_the_session_policy() -> None:
    cls = extradite(TARGET, transport_policy="reference")
    try:
        items = list(cls().box("list", 40))
        assert all(isinstance(item, RemoteObject) for item in items)  # dicts by reference: proxies
        assert [item["n"] for item in items[:3]] == [0, 1, 2]
        chunked = list(iterate(cls().box("list", 5), chunk=2))
        assert all(isinstance(item, RemoteObject) for item in chunked)
    finally:
        cls.close()
    ruled = extradite(TARGET, transport_type_rules={dict: "reference"})
    try:
        assert all(isinstance(item, RemoteObject) for item in ruled().box("list", 40))
        assert list(ruled().box("tuple", 5)) == [0, 1, 2, 3, 4]  # other items by value
    finally:
        ruled.close()


def test_unpicklable_items_come_back_as_proxies(Source: Any) -> None:
    locks = list(Source().box("locks", 30))
    assert len(locks) == 30 and all(isinstance(lock, RemoteObject) for lock in locks)
    assert locks[0].acquire() is True and locks[0].locked() is True and locks[1].locked() is False


def test_an_item_that_cannot_be_sent_fails_its_chunk(Source: Any) -> None:
    from extradite import UnsupportedInteractionError

    with pytest.raises(UnsupportedInteractionError, match="protected module tree"):
        next(iter(Source().box("protected", 5)))  # by value it would import the tree here
    chunked = iterate(Source().box("protected", 5), chunk=2)
    cls = extradite(TARGET, transport_policy="reference")
    try:
        items = list(cls().box("protected", 5))
        assert [item.n for item in items] == [0, 1, 2, 3, 4]  # as proxies, they come
    finally:
        cls.close()
    with pytest.raises(UnsupportedInteractionError):
        next(chunked)  # the same through iterate()


def test_length_hint_counts_the_buffer(Source: Any) -> None:
    iterator = iter(Source().box("tuple", 100))
    assert operator.length_hint(iterator) == 100
    next(iterator)
    assert operator.length_hint(iterator) == 99
    list(iterator)
    assert operator.length_hint(iterator) == 0


def test_iterate_refuses_what_it_cannot_iterate(Source: Any) -> None:
    source = Source()
    with pytest.raises(TypeError, match="chunk= as an int >= 1"):
        iterate(source.counting(3), chunk=0)
    with pytest.raises(TypeError, match="chunk= as an int >= 1"):
        iterate(source.counting(3), chunk="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a local object needs no iterate"):
        iterate([1, 2, 3])
    with pytest.raises(TypeError, match="is not iterable"):
        iterate(source)


def test_iterate_on_a_builtin_iterator_uses_its_chunk(Source: Any) -> None:
    iterator = iter(Source().box("range", 1000))
    chunked = iterate(iterator, chunk=250)
    assert chunked is iterator  # already prefetching: it takes the chunk size
    before = _requests(Source)
    assert list(chunked) == list(range(1000))
    # list() asks the length hint (1), then 4 full chunks and the end (an empty chunk)
    assert _requests(Source) - before == 6
