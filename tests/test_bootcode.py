"""Children of the same interpreter get the runtime's compiled code instead of compiling it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import python_env

from extradite._bootcode import CHILD_MODULES


def test_a_child_imports_only_the_shipped_runtime_modules(Matrix: Any) -> None:
    loaded = {m for m in Matrix().loaded_modules() if m == "extradite" or m.startswith("extradite.")}
    assert loaded <= set(CHILD_MODULES), f"ship these too (see _bootcode): {sorted(loaded - set(CHILD_MODULES))}"


@pytest.mark.parametrize("fork_server", ["0", "1"])
def test_a_child_leaves_heavy_stdlib_modules_unimported(fork_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each module costs a child ~0.1-0.7 ms of start-up here; these are not needed to serve."""
    from extradite import extradite

    monkeypatch.setenv("EXTRADITE_FORK_SERVER", fork_server)
    Bare = extradite("targets.bare:Bare")
    try:
        loaded = set(Bare().modules())
    finally:
        Bare.close()
    heavy = {"threading", "weakref", "importlib", "warnings", "typing", "collections.abc", "re",
             "multiprocessing", "subprocess", "asyncio", "inspect", "traceback", "tempfile",
             "functools", "collections", "keyword", "operator", "reprlib", "struct"}
    assert not loaded & heavy, f"the child imported {sorted(loaded & heavy)}"


@pytest.mark.parametrize("fork_server", ["0", "1"])
def test_the_target_finds_a_plain_interpreter_after_the_lean_start(fork_server: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime loads `_pickle` without `functools` and takes `deque` and `Struct` from the C
    modules: the target still imports the real, complete `functools` and `collections`."""
    from extradite import extradite

    monkeypatch.setenv("EXTRADITE_FORK_SERVER", fork_server)
    Bare = extradite("targets.bare:Bare")
    try:
        bare = Bare()
        assert bare.partial() == 10
        assert bare.collector() == [("b", 2), ("a", 1)]
    finally:
        Bare.close()


# Parent-side modules: routing replies to waiting callers, deferred requests, proxies,
# starting and watching processes. A child serving a plain target needs none of them.
PARENT_ONLY = {"extradite._pending", "extradite._api", "extradite._proxy", "extradite._process",
               "extradite._spawn", "extradite._forkserver", "extradite._options", "extradite._iteration",
               "extradite._output", "extradite._status", "extradite._restart", "extradite._aio"}


@pytest.mark.parametrize("fork_server", ["0", "1"])
def test_a_child_loads_no_parent_side_module(fork_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spawned and a forked child serve with the serving side only (`_session`, `_routing`,
    `_dispatch`, ...), never the parent's (a deferred call's `Pending` lives apart for this)."""
    from extradite import extradite

    monkeypatch.setenv("EXTRADITE_FORK_SERVER", fork_server)
    Bare = extradite("targets.bare:Bare")
    try:
        loaded = set(Bare().modules())
    finally:
        Bare.close()
    assert "extradite._session" in loaded and "extradite._routing" in loaded
    assert not loaded & PARENT_ONLY, f"the child imported {sorted(loaded & PARENT_ONLY)}"


_PROBE = """
import sys
from extradite import extradite
Matrix = extradite("targets.matrix:Matrix")
try:
    m = Matrix()
    print(m.module_origin("extradite._session"))
    print(m.echo(41) + 1)
finally:
    Matrix.close()
"""


def _probe(tmp_path: Path, *, pyc: bool) -> list[str]:
    env = python_env()
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")  # empty: no valid bytecode cache
    if pyc:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        # fill the cache first, so that every child module has a valid .pyc
        warm = [sys.executable, "-c", "import " + ", ".join(CHILD_MODULES)]
        subprocess.run(warm, env=env, check=True, timeout=60)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_without_bytecode_cache_the_child_runs_shipped_code(tmp_path: Path) -> None:
    loader, origin, answer = _probe(tmp_path, pyc=False)
    assert loader == "_XdFinder"  # compiled by the parent, not by the child
    assert origin == str(Path(__file__).resolve().parent.parent / "src" / "extradite" / "_session.py")
    assert answer == "42"


def test_with_a_valid_bytecode_cache_the_child_reads_it(tmp_path: Path) -> None:
    loader, _origin, answer = _probe(tmp_path, pyc=True)
    assert loader == "SourceFileLoader"
    assert answer == "42"
