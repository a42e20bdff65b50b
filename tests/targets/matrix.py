"""A target whose results misbehave at each stage of the trip home."""

from __future__ import annotations

import sys
from typing import Any

import crashkit


class Matrix:
    def echo(self, value: Any) -> Any:
        return value

    def result(self, kind: str) -> Any:
        return getattr(crashkit, kind)()

    def loaded_modules(self) -> list[str]:
        return sorted(sys.modules)
