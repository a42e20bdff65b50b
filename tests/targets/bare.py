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
