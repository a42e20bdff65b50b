"""A counter-style target exercising methods, properties, class attributes and dunders."""

from __future__ import annotations

from typing import Any, Callable


class Counter:
    """Counts up."""

    STEP = 1

    def __init__(self, start: int = 0) -> None:
        self.value = start
        self._items: dict[Any, Any] = {}

    def increment(self, by: int = 1) -> int:
        self.value += by
        return self.value

    def echo(self, value: Any) -> Any:
        return value

    def fail(self, exc: BaseException) -> None:
        raise exc

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    @property
    def doubled(self) -> int:
        return self.value * 2

    @property
    def settable(self) -> int:
        return self.value

    @settable.setter
    def settable(self, v: int) -> None:
        self.value = v

    @classmethod
    def make(cls, start: int) -> "Counter":
        return cls(start)

    @staticmethod
    def add(a: int, b: int) -> int:
        return a + b

    def clone(self) -> "Counter":
        return Counter(self.value)

    def same(self) -> "Counter":
        return self

    def __repr__(self) -> str:
        return f"Counter({self.value})"

    def __str__(self) -> str:
        return f"counter at {self.value}"

    def __bytes__(self) -> bytes:
        return str(self.value).encode()

    def __len__(self) -> int:
        return self.value

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(range(self.value))

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._items[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._items[key]

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counter) and other.value == self.value or other == self.value

    def __lt__(self, other: Any) -> bool:
        return self.value < (other.value if isinstance(other, Counter) else other)

    def __hash__(self) -> int:
        return hash(("Counter", self.value))

    def __call__(self, x: int) -> int:
        return self.value + x

    def __enter__(self) -> "Counter":
        self.entered = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.entered = False
