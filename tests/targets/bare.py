"""A target that imports nothing: what a child loads for it is extradite's own doing."""

from __future__ import annotations

import sys


class Bare:
    def modules(self) -> list[str]:
        return sorted(sys.modules)

    def warmed_up(self) -> bool:
        """Whether this child ran extradite's idle warm-up (a prewarmed session does)."""
        members = sys.modules.get("extradite._members")
        return bool(getattr(members, "warmed_up", False))

    def partial(self) -> int:
        """`functools` as a plain interpreter has it (the runtime loaded `_pickle` without it)."""
        import functools

        assert functools.__file__ and functools.partial.__module__ == "functools"
        return functools.reduce(functools.partial(int.__add__), [1, 2, 3, 4])

    def collector(self) -> list[tuple[str, int]]:
        """`collections` as a plain interpreter has it."""
        import collections

        return collections.Counter("abb").most_common()
