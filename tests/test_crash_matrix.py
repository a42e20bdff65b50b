"""Fault matrix: fail or die at each stage of a call; the caller gets a clear error, the rest carries on.

Stages: pickle the request (parent), unpickle it (child), run (child, see
test_child_death.py), pickle the result (child), unpickle the result (parent).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from conftest import python_env
from extradite import ExtraditeProcessError, UnsupportedInteractionError

import crashkit


def test_pickle_request_fails_then_travels_as_handle(Matrix: Any) -> None:
    obj = crashkit.ExplodesOnPickle()
    assert Matrix().echo(obj) is obj


def test_unpickle_request_raises_in_child(Matrix: Any) -> None:
    matrix = Matrix()
    with pytest.raises(UnsupportedInteractionError, match="could not be unpickled") as info:
        matrix.echo(crashkit.ExplodesOnUnpickle())
    assert "exploded while unpickling" in str(info.value)
    assert matrix.echo(1) == 1


def test_unpickle_request_kills_child(Matrix: Any) -> None:
    matrix = Matrix()
    with pytest.raises(ExtraditeProcessError, match="exited with code 9"):
        matrix.echo(crashkit.ExitsOnUnpickle())


def test_pickle_result_fails_then_travels_as_handle(Matrix: Any) -> None:
    result = Matrix().result("ExplodesOnPickle")
    assert type(result).__qualname__ == "ExplodesOnPickle"  # a proxy of the child's object


def test_pickle_result_kills_child(Matrix: Any) -> None:
    with pytest.raises(ExtraditeProcessError, match="exited with code 8"):
        Matrix().result("ExitsOnPickle")


def test_unpickle_result_raises_in_parent(Matrix: Any) -> None:
    matrix = Matrix()
    with pytest.raises(UnsupportedInteractionError, match="could not be unpickled here") as info:
        matrix.result("ExplodesOnUnpickle")
    assert "exploded while unpickling" in str(info.value.__cause__)
    assert matrix.echo(2) == 2


def test_child_loads_no_generator_jinja_or_libcst(Matrix: Any) -> None:
    loaded = set(Matrix().loaded_modules())
    assert "extradite._child" in loaded
    assert not {m for m in loaded if m.startswith(("jinja2", "libcst", "extradite.gen"))}
    assert "extradite._api" not in loaded  # the public API is for the parent; children skip it
    assert "extradite._session_handle" not in loaded


def test_importing_extradite_loads_no_generator_jinja_or_libcst() -> None:
    code = "import sys, extradite; print(sorted(m for m in sys.modules if m.startswith(('jinja2', 'libcst', 'extradite.gen', 'multiprocessing'))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
