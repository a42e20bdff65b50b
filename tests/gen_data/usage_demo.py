"""Calls every generated member of the demo proxies; mypy --strict must accept it (and it runs)."""

from __future__ import annotations

import asyncio
import threading

from extradite import close_extradite_session, extradite

from extradite_demo_callbacks_xdproxy import EventBus
from extradite_demo_counter_xdproxy import Counter
from extradite_demo_generic_xdproxy import Box
from extradite_demo_service_xdproxy import AsyncService


def _close(proxy: object) -> None:
    """`close()` comes from the runtime base class (instance or class)."""
    if isinstance(proxy, type):
        getattr(proxy, "close_proxy_class", getattr(proxy, "close"))()
    else:
        getattr(proxy, "close")()


def counter() -> None:
    c = Counter(3, step=2)
    assert c.increment() == 5
    assert c.increment(1) == 6
    assert c.increment_batch([(1,), (2,), ()]) == [7, 9, 11]
    assert c.decrement(1) == 10
    assert c.decrement_batch([(), (2,)]) == [9, 7]
    assert c.add_many(1, 2) == 10
    assert c.add_many_batch([(1,), (1, 1)]) == [11, 13]
    c.configure(step=1, label="x")
    # An instance attribute annotated in __init__: declared for mypy, read and set through the dynamic path.
    label: str | None = c.label
    assert label == "x"
    c.label = "y"
    assert c.label == "y"
    c.configure_batch([(1,), (1, None)])
    assert c.describe() == "13 items"
    assert c.describe("n=", "!") == "n=13 items !"
    assert c.describe_batch([(), ("a",)]) == ["13 items", "a13 items"]
    snap: dict[str, int] = c.snapshot()
    assert snap["value"] == 13
    assert c.snapshot_batch([()]) == [snap]
    twin: Counter = c.copy()
    assert twin.value == 13
    assert len(c.copy_batch([(), ()])) == 2
    c.value = 4
    assert c.value == 4 and c.step == 1
    assert Counter.limit == 1_000_000 and c.unit == "items"
    made: Counter = Counter.from_string("8")
    assert made.value == 8
    assert len(Counter.from_string_batch([("1",), ("2",)])) == 2
    assert Counter.parse("ff", 16) == 255
    assert Counter.parse_batch([("1",), ("10", 2)]) == [1, 2]
    assert len(c) == 4 and 2 in c and repr(c) == "Counter(4)" and str(c) == "Counter(4)"
    assert c == c and hash(c) == hash(4)
    _close(c)


def bus() -> None:
    seen: list[tuple[str, bytes]] = []
    b = EventBus()
    assert b.subscribe(lambda topic, payload: seen.append((topic, payload))) == 1
    assert b.subscribe_batch([(print,)]) == [2] or True
    assert b.publish("t", b"x") >= 1
    assert b.publish_batch([("u", b"y")]) == [b.publish("v", b"z")] or True
    assert b.transform(b"abc", lambda data: data.upper()) == b"ABC"
    assert b.transform_batch([(b"a", bytes)]) == [b"a"]
    big = b.blob(1 << 17)
    assert len(big) == 1 << 17 and b.blob_batch([(1,), (2, 0x62)]) == [b"a", b"bb"]
    assert b.reverse(bytearray(b"ab")) == b"ba" and b.reverse_batch([(b"xy",)]) == [b"yx"]
    assert len(EventBus.checksum(b"")) == 64 and len(EventBus.checksum_batch([(b"",)])[0]) == 64
    assert seen[0] == ("t", b"x")
    _close(b)


def box() -> None:
    bx: Box[int] = Box([1, 2])
    assert bx.put(3) == 3 and bx.put_batch([(4,), (5,)]) == [4, 5]
    first: int = bx.get(0)
    assert first == 1 and bx.get() == 5 and bx.get_batch([(), (0,)]) == [5, 1]
    assert bx.items() == [1, 2, 3, 4, 5] and bx.items_batch([()]) == [[1, 2, 3, 4, 5]]
    assert bx.pop_or(0) == 5 and bx.pop_or_batch([(0,)]) == [4]
    assert bx.label("k") == "k" and bx.label_batch([("k",)]) == ["k"]
    assert len(bx) == 3 and bx[0] == 1 and 2 in bx and list(bx) == [1, 2, 3]
    _close(bx)


def service() -> None:
    s = AsyncService("svc")
    text: str = s.convert(5)
    number: int = s.convert("6")
    assert (text, number) == ("5", 6)
    assert s.convert_batch([(1,), ("2",)]) == ["1", 2]
    assert s.count() == 4 and s.count_batch([()]) == [4]

    async def run() -> tuple[str, int, list[str], list[int]]:
        fetched: list[str] = await s.fetch_batch([("a",), ("b",)])
        delayed: list[int] = await s.delayed_batch([(1,), (2, 0.0)])
        return await s.fetch("k"), await s.delayed(7), fetched, delayed

    assert asyncio.run(run()) == ("svc:k", 7, ["svc:a", "svc:b"], [1, 2])
    _close(s)


def threads() -> None:
    """Binds on one shared session from several threads at once: the import and signature
    requests of each bind interleave with the other threads' binds and calls."""
    key = "usage-demo-threads"
    errors: list[BaseException] = []

    def work(start: int) -> None:
        try:
            for _ in range(5):
                bound = Counter.extradite(share_key=key, share_keepalive_seconds=30)
                assert bound(start).increment(1) == start + 1
                bound.close_proxy_class()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    assert close_extradite_session(key)


def shared_with_dynamic() -> None:
    """A generated and a dynamic proxy class of one target on one shared session: each
    constructs instances of its own class (the dynamic one keeps `method.batch`)."""
    key = "usage-demo-shared"
    dynamic = extradite("extradite.demo.counter:Counter", share_key=key)
    before = dynamic(1)
    typed = Counter.extradite(share_key=key)
    after = dynamic(1)
    assert type(before) is dynamic and type(after) is dynamic, (type(before), type(after))
    assert after.increment.batch([((1,), {}), ((2,), {})]) == [2, 4]
    made = typed(1)
    assert type(made) is typed and made.increment_batch([(1,), (2,)]) == [2, 4]
    assert typed.__dictoffset__ == 0  # no instance dict: the layout of every proxy of the target
    dynamic.close()
    typed.close_proxy_class()


if __name__ == "__main__":
    counter()
    bus()
    box()
    service()
    threads()
    shared_with_dynamic()
    for proxy in (Counter, EventBus, Box, AsyncService):
        _close(proxy)
    print("usage_demo ok")
