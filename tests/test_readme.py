"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import python_env

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize("block", [b for b in PYTHON_BLOCKS if "from extradite import extradite" in b],
                         ids=lambda b: b.splitlines()[0][:40])
def test_readme_python_example_runs_as_a_plain_script(block: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block)
    done = subprocess.run([sys.executable, "-W", "error", str(script)], capture_output=True, text=True,
                          timeout=60, env=python_env())
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_quickstart_main_job_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "extradite.demo.quickstart"], capture_output=True, text=True,
                          timeout=120, env=python_env())
    assert done.returncode == 0, done.stderr
    assert "extradite.demo.counter imported here: no" in done.stdout
    assert "increment_batch" in done.stdout
