"""One stub source wherever the generator runs: the `gen` extra brings it, the header names it.

The generator reads the standard library's stubs from the typeshed inside the installed
mypy (a dependency of the `gen` extra), so a venv with only that extra and the dev venv
write the same bytes, and `--check` says when a stale diff comes from other stubs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest

from conftest import python_env

ROOT = Path(__file__).resolve().parents[1]
# A pure-Python class, a C class (decimal's C accelerator), a generic builtin-based class.
TARGETS = ("fractions:Fraction", "decimal:Decimal", "collections:OrderedDict")


def _generate(python: str, out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-m", "extradite.gen", *TARGETS, "-o", str(out), *extra],
                          env=env if env is not None else python_env(), capture_output=True, text=True, timeout=600)


def test_header_records_the_stub_source(tmp_path: Path) -> None:
    result = _generate(sys.executable, tmp_path)
    assert result.returncode == 0, result.stderr
    expected = f"# stubs: typeshed of mypy {metadata.version('mypy')}\n"
    for path in tmp_path.iterdir():
        assert expected in path.read_text(), path


def test_check_names_a_stub_version_difference(tmp_path: Path) -> None:
    assert _generate(sys.executable, tmp_path).returncode == 0
    for path in tmp_path.glob("fractions_xdproxy.py*"):
        text = path.read_text()
        text = re.sub(r"^# stubs: .*$", "# stubs: typeshed of mypy 0.1", text, flags=re.MULTILINE)
        path.write_text(text.replace("def limit_denominator", "def limit_denominatorX"))
    result = _generate(sys.executable, tmp_path, "--check")
    assert result.returncode == 1
    assert "generated from typeshed of mypy 0.1" in result.stderr
    assert "may come from the stub version rather than a changed target" in result.stderr


def test_check_without_stub_difference_has_no_stub_note(tmp_path: Path) -> None:
    assert _generate(sys.executable, tmp_path).returncode == 0
    for path in tmp_path.glob("fractions_xdproxy.py*"):
        path.write_text(path.read_text().replace("def limit_denominator", "def limit_denominatorX"))
    result = _generate(sys.executable, tmp_path, "--check")
    assert result.returncode == 1
    assert "stub version" not in result.stderr


@pytest.mark.slow
def test_gen_extra_alone_gives_the_dev_output(tmp_path: Path) -> None:
    """`pip install extradite[gen]` in a fresh venv: the same bytes as this (dev) environment."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", f"{ROOT}[gen]", f"mypy=={metadata.version('mypy')}"],
                             capture_output=True, text=True, timeout=900)
    if install.returncode != 0:
        text = install.stdout + install.stderr
        unreachable = ("Could not find a version", "No matching distribution", "NewConnectionError",
                       "Failed to establish a new connection", "Network is unreachable", "Temporary failure")
        if any(marker in text for marker in unreachable):
            pytest.skip(f"the package index is unreachable, so the gen extra cannot be installed: {text.strip()[-300:]}")
        raise AssertionError(f"pip install .[gen] failed:\n{text}")
    listed = subprocess.run([python, "-m", "pip", "list"], capture_output=True, text=True, timeout=120).stdout
    assert not re.search(r"^(pytest|numpy) ", listed, flags=re.MULTILINE), "the venv must hold only the gen extra"
    # The installed copy, not this checkout: no PYTHONPATH.
    clean = {k: v for k, v in python_env().items() if k != "PYTHONPATH"}
    gen_only = _generate(python, tmp_path / "gen", env=clean)
    assert gen_only.returncode == 0, gen_only.stderr
    dev = _generate(sys.executable, tmp_path / "dev")
    assert dev.returncode == 0, dev.stderr
    produced = {p.name: p.read_bytes() for p in sorted((tmp_path / "gen").iterdir())}
    expected = {p.name: p.read_bytes() for p in sorted((tmp_path / "dev").iterdir())}
    assert produced.keys() == expected.keys()
    for name in expected:
        assert produced[name] == expected[name], name
