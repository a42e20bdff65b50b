"""Where modules and stubs are, judged from files only (the generator imports no target).

Stubs for the standard library come from one source wherever the generator runs:
the typeshed copy inside the installed mypy, which the `gen` extra depends on. It is
the copy `mypy` itself reads, so the proxies carry the signatures mypy would see for
the real class, and two environments with the same mypy produce the same bytes.
Stubs beside a target module or in a `*-stubs` package are found by the
introspection child for the target's interpreter.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from importlib import metadata

__all__ = ["StubsMissing", "find_typeshed", "stub_source", "typeshed_stub", "is_module"]


class StubsMissing(Exception):
    """The typeshed stubs the generator needs are not installed."""


@lru_cache(maxsize=None)
def find_typeshed() -> str:
    """The `typeshed/stdlib` directory inside the installed mypy, found without importing it."""
    spec = importlib.util.find_spec("mypy")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = os.path.join(location, "typeshed", "stdlib")
        if os.path.isdir(candidate):
            return candidate
    raise StubsMissing("the standard library's stubs (typeshed, shipped inside mypy) are not installed for "
                       f"{sys.executable}: install the generator's extra, e.g. pip install 'extradite[gen]'")


@lru_cache(maxsize=None)
def stub_source() -> str:
    """Which stubs the output was made from, as the generated header records it."""
    find_typeshed()
    try:
        version = metadata.version("mypy")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"typeshed of mypy {version}"


def typeshed_stub(module: str) -> str | None:
    """The typeshed stub file of `module`, None when typeshed has none."""
    root = find_typeshed()
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
