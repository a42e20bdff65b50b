"""A counter-style class: state, properties, class attributes, class/static methods, dunders."""

from __future__ import annotations

from typing import ClassVar


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET = _Unset()


class Counter:
    """Counts up (and down); the state lives wherever the instance lives."""

    limit: ClassVar[int] = 1_000_000
    unit = "items"

    def __init__(self, start: int = 0, *, step: int = 1) -> None:
        self._value = start
        self._step = step
        self.label: str | None = None

    def increment(self, amount: int | None = None) -> int:
        """Add `amount` (default: the step) and return the new value."""
        self._value += self._step if amount is None else amount
        return self._value

    def decrement(self, amount: int = 1, /) -> int:
        self._value -= amount
        return self._value

    def add_many(self, *amounts: int) -> int:
        for amount in amounts:
            self._value += amount
        return self._value

    def configure(self, *, step: int, label: str | None = None) -> None:
        self._step = step
        self.label = label

    def describe(self, prefix: str = "", marker: object = _UNSET) -> str:
        """A one-line description; `marker` shows only when given."""
        text = f"{prefix}{self._value} {self.unit}"
        return text if marker is _UNSET else f"{text} {marker}"

    def snapshot(self) -> dict[str, int]:
        return {"value": self._value, "step": self._step}

    def copy(self) -> Counter:
        """A new counter with the same value and step (stays on the child's side)."""
        return Counter(self._value, step=self._step)

    @property
    def value(self) -> int:
        """The current value."""
        return self._value

    @value.setter
    def value(self, new: int) -> None:
        self._value = new

    @property
    def step(self) -> int:
        return self._step

    @classmethod
    def from_string(cls, text: str) -> Counter:
        """Parse a counter from its decimal text."""
        return cls(int(text))

    @staticmethod
    def parse(text: str, base: int = 10) -> int:
        return int(text, base)

    def __len__(self) -> int:
        return max(self._value, 0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counter) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Counter({self._value})"

    def __contains__(self, item: int) -> bool:
        return 0 <= item < self._value
