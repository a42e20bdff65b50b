"""Golden output: extradite-gen's files for a few standard-library classes, byte for byte.

The generator's output depends on the interpreter that introspects the target (its
runtime signatures) and on the stubs it reads (the typeshed copy inside the installed
mypy), so the golden files record the environment they were made in
(tests/golden/ENVIRONMENT) and this test runs in the dev venv (`pip install -e '.[dev]'`,
which brings mypy). A difference in that environment is a failure; in another one
(a different Python minor version or mypy) the test skips and says why.

Refresh after an intended change of the output, then review and commit the diff:

    EXTRADITE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from conftest import python_env

GOLDEN = Path(__file__).resolve().parent / "golden"
ENVIRONMENT = GOLDEN / "ENVIRONMENT"
# A pure-Python class with stubs, a C class that is generic, a pure-Python generic class.
TARGETS = ("fractions:Fraction", "collections:OrderedDict", "difflib:SequenceMatcher")


def current_environment() -> str:
    """What the output depends on besides the generator: the Python minor version and the stubs."""
    try:
        mypy = metadata.version("mypy")
    except metadata.PackageNotFoundError:
        mypy = "not installed"
    return f"python {sys.version_info[0]}.{sys.version_info[1]}\nmypy {mypy}\n"


def generated_files(out: Path) -> dict[str, bytes]:
    result = subprocess.run([sys.executable, "-m", "extradite.gen", *TARGETS, "-o", str(out)],
                            env=python_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_golden_output(tmp_path: Path) -> None:
    produced = generated_files(tmp_path / "out")
    assert produced, "extradite-gen wrote nothing"
    if os.environ.get("EXTRADITE_UPDATE_GOLDEN") == "1":
        for old in GOLDEN.glob("*_xdproxy.py*"):
            old.unlink()
        for name, data in produced.items():
            (GOLDEN / name).write_bytes(data)
        ENVIRONMENT.write_text(current_environment())
        pytest.skip(f"golden files rewritten in {GOLDEN}: review and commit the diff")
    expected = {p.name: p.read_bytes() for p in sorted(GOLDEN.glob("*_xdproxy.py*"))}
    if produced == expected:
        return
    recorded = ENVIRONMENT.read_text()
    if recorded != current_environment():
        pytest.skip("the golden files were made with " + recorded.strip().replace("\n", ", ")
                    + ", this is " + current_environment().strip().replace("\n", ", ")
                    + "; the output differs, run the dev venv of that environment or refresh the files "
                    "(EXTRADITE_UPDATE_GOLDEN=1)")
    assert sorted(produced) == sorted(expected), "a different set of generated files"
    diffs = []
    for name in sorted(expected):
        if produced[name] != expected[name]:
            diffs.extend(difflib.unified_diff(expected[name].decode().splitlines(), produced[name].decode().splitlines(),
                                              f"tests/golden/{name}", f"generated/{name}", lineterm=""))
    pytest.fail("generated output differs from tests/golden (refresh with EXTRADITE_UPDATE_GOLDEN=1 if the "
                "change is intended):\n" + "\n".join(diffs[:200]), pytrace=False)
