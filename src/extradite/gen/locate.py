"""Where modules and stubs are, judged from files only (the generator imports no target).

Stubs for the standard library come from the typeshed copy that mypy ships, found on
disk (mypy is not imported); stubs beside a target module or in a `*-stubs` package
are found by the introspection child for the target's interpreter.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache

__all__ = ["find_typeshed", "typeshed_stub", "is_module"]


@lru_cache(maxsize=None)
def find_typeshed() -> str | None:
    """The `typeshed/stdlib` directory inside the installed mypy, found without importing it."""
    spec = importlib.util.find_spec("mypy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, "typeshed", "stdlib")
        if os.path.isdir(candidate):
            return candidate
    return None


def typeshed_stub(module: str) -> str | None:
    """The typeshed stub file of `module`, None when typeshed has none (or is not installed)."""
    root = find_typeshed()
    if root is None:
        return None
    rel = module.replace(".", os.sep)
    for candidate in (os.path.join(root, rel + ".pyi"), os.path.join(root, rel, "__init__.pyi")):
        if os.path.exists(candidate):
            return candidate
    return None


@lru_cache(maxsize=None)
def is_module(name: str) -> bool:
    """Whether `name` names a module, judged from files only (typeshed, sys.path)."""
    if typeshed_stub(name) is not None:
        return True
    rel = name.replace(".", os.sep)
    for entry in sys.path:
        base = os.path.join(entry or ".", rel)
        for candidate in (base + ".py", base + ".pyi", os.path.join(base, "__init__.py"), os.path.join(base, "__init__.pyi")):
            if os.path.exists(candidate):
                return True
        top, _, rest = name.partition(".")
        stubs = os.path.join(entry or ".", top + "-stubs", rest.replace(".", os.sep))
        if rest and (os.path.exists(stubs + ".pyi") or os.path.exists(os.path.join(stubs, "__init__.pyi"))):
            return True
    return False
