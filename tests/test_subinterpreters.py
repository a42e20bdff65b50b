"""The subinterpreter demonstration, run with each Python that has subinterpreters.

`python -m extradite.demo.subinterpreters` runs in a separate process per
interpreter version (3.13 through pyenv, 3.14 when installed), so this suite
itself can run on any Python. On a Python without subinterpreters the demo must
exit 2 naming the Python it needs; that is checked with the running interpreter
when it is older than 3.13.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import find_python, require_python

SRC = Path(__file__).resolve().parent.parent / "src"


def run_demo(python: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return subprocess.run([python, "-m", "extradite.demo.subinterpreters", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def check_demo(version: str) -> None:
    result = run_demo(require_python(version), "--workers", "3")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ImportError: module readline does not support loading in subinterpreters" in result.stdout, output
    assert "3 of 3 subinterpreters validated" in result.stdout, output
    assert "FAILED" not in result.stdout, output
    assert result.stdout.rstrip().endswith("OK"), output
    for index in (1, 2, 3):
        assert f"subinterpreter-{index}: readline ran in child pid" in result.stdout, output


def test_demo_on_python_3_13() -> None:
    check_demo("3.13")


def test_demo_on_python_3_14() -> None:
    check_demo("3.14")


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="this Python has subinterpreters; the demo runs in full")
def test_demo_names_the_python_it_needs() -> None:
    result = run_demo(sys.executable)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "needs Python 3.13 or newer" in result.stderr
    assert result.stdout == ""


# Runs in a fresh Python 3.13+ process: three isolated subinterpreters exercise the runtime's edges.
_EDGES = r'''
import _interpreters, json, os, sys, textwrap
SRC = sys.argv[1]
def run(code, **overrides):
    iid = _interpreters.create(_interpreters.new_config("isolated", **overrides))
    try:
        prelude = f"import sys; sys.path.insert(0, {SRC!r})\nfrom extradite import extradite\n"
        info = _interpreters.exec(iid, prelude + textwrap.dedent(code))
        return None if info is None else info.formatted
    finally:
        _interpreters.destroy(iid)
def children():
    me = str(os.getpid())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me:
            found.append(pid)
    return found
target = "extradite.demo.native_dependency_workload:ReadlineWorkload"
out = {}
# a proxy left open when the subinterpreter ends: its session closes before the thread join
out["left_open"] = run(f"W = extradite({target!r})\nw = W('x')\nassert w.backend()")
out["children_after_left_open"] = children()
# a shared session kept warm by a (non-daemon) timer
out["keepalive"] = run(f"W = extradite({target!r}, share_key='k', share_keepalive_seconds=30)\n"
                       "assert W('y').exercise_history(['a'], ' ')['history'] == ['a']\nW.close()")
# no threads at all: a clear UnsupportedInteractionError, no child left behind
out["no_threads"] = run(f"W = extradite({target!r})", allow_threads=False)
out["children_at_end"] = children()
print(json.dumps(out))
'''


def test_runtime_edges_in_isolated_subinterpreters() -> None:
    python = find_python("3.13") or (sys.executable if sys.version_info >= (3, 13) else None)
    if python is None:
        pytest.skip("needs Python 3.13+ (the _interpreters module) and none is installed")
    result = subprocess.run([python, "-c", _EDGES, str(SRC)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["left_open"] is None
    assert out["children_after_left_open"] == []
    assert out["keepalive"] is None
    assert out["no_threads"].startswith("extradite._errors.UnsupportedInteractionError: extradite cannot start")
    assert "create the subinterpreter with threads allowed" in out["no_threads"]
    assert out["children_at_end"] == []
