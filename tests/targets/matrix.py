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

    def module_origin(self, name: str) -> str:
        """How this child got module `name`: its loader's name and its file, space-separated."""
        module = sys.modules[name]
        loader = module.__spec__.loader
        return f"{getattr(loader, '__name__', type(loader).__name__)} {module.__file__}"
