"""A target that imports nothing: what a child loads for it is extradite's own doing."""

from __future__ import annotations

import sys


class Bare:
    def modules(self) -> list[str]:
        return sorted(sys.modules)
