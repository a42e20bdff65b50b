"""A target that reports the environment it runs in (interpreter, paths, importable modules)."""

from __future__ import annotations

import importlib
import os
import sys


class Environment:
    def version(self) -> tuple[int, int]:
        return (sys.version_info[0], sys.version_info[1])

    def prefix(self) -> str:
        return sys.prefix

    def path(self) -> list[str]:
        return list(sys.path)

    def module_file(self, name: str) -> str | None:
        """Import `name` here and say where it came from (an ImportError crosses as a remote error)."""
        module = importlib.import_module(name)
        return getattr(module, "__file__", None)

    def module_version(self, name: str) -> str:
        return str(importlib.import_module(name).__version__)

    def loader_of(self, name: str) -> str:
        """The class name of the loader that loaded module `name` here."""
        loader = sys.modules[name].__spec__.loader
        return loader.__name__ if isinstance(loader, type) else type(loader).__name__

    def environ(self, name: str) -> str | None:
        return os.environ.get(name)
