"""Awaits every kind of member of the generated async variants; mypy --strict must accept it (and it runs)."""

from __future__ import annotations

import asyncio

from extradite_demo_counter_xdproxy import AsyncCounter, Counter
from extradite_demo_generic_xdproxy import AsyncBox
from extradite_demo_service_xdproxy import AsyncAsyncService


async def counter() -> None:
    c = await AsyncCounter.create(3, step=2)
    assert await c.increment() == 5
    assert await c.increment_batch([(1,), ()]) == [6, 8]
    assert await c.decrement(1) == 7
    assert await c.value == 7 and await c.step == 2
    await c.configure(step=1)
    assert await AsyncCounter.parse("ff", 16) == 255
    copy: Counter = await c.copy()
    assert copy.value == 7
    made: Counter = await AsyncCounter.from_string("4")
    assert made.value == 4
    assert isinstance(c.sync_proxy, Counter) and c.sync_proxy.value == 7
    AsyncCounter.close_proxy_class()


async def box() -> None:
    b: AsyncBox[int] = await AsyncBox.create([1, 2])
    first: int = await b.get(0)
    assert first == 1 and await b.items() == [1, 2]
    AsyncBox.close_proxy_class()


async def service() -> None:
    s = await AsyncAsyncService.create("svc")
    fetched: str = await s.fetch("k")
    converted: str = await s.convert(3)
    back: int = await s.convert("4")
    assert (fetched, converted, back) == ("svc:k", "3", 4)
    assert await s.delayed_batch([(1,), (2, 0.01)]) == [1, 2]
    AsyncAsyncService.close_proxy_class()


async def main() -> None:
    await asyncio.gather(counter(), box(), service())


if __name__ == "__main__":
    asyncio.run(main())
