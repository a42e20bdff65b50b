"""The leak check of tests/conftest.py fails a test that leaves something behind, also now
that it collects garbage only when something looks left behind."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

LEAKING = '''
import gc, os

class Cycle:
    def __init__(self):
        self.me = self
        self.fd = os.open(os.devnull, os.O_RDONLY)

    def __del__(self):
        os.close(self.fd)

def test_a_descriptor_left_open():
    test_a_descriptor_left_open.fd = os.open(os.devnull, os.O_RDONLY)

def test_a_descriptor_closed_only_by_the_collector():
    Cycle()
    gc.disable()  # only the leak check's own collection may close it

def test_nothing_left():
    gc.enable()
'''


def test_the_leak_check_fails_a_leak_and_passes_what_a_collection_frees(tmp_path: Path) -> None:
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_leaking.py").write_text(LEAKING)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    out = result.stdout
    assert "ERROR at teardown of test_a_descriptor_left_open" in out, out
    assert "resource leak: descriptors left open" in out, out
    assert "1 error" in out and "3 passed" in out, out
