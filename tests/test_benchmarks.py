"""Smoke test of the benchmark suite: it runs, prints a table and writes valid JSON (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "benchmarks" / "extradite_performance_benchmark.py"


def test_quick_run_prints_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--quick", "--repetitions", "1",
         "--cases", "state_mutation,small_payload", "--json-output", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("case "))
    for column in ("direct", "extradite", "generated"):
        assert column in header
    assert any(line.startswith("state_mutation ") for line in lines)
    assert any(line.startswith("small_payload ") for line in lines)
    data = json.loads(out.read_text())
    assert set(data["cases"]) == {"state_mutation", "small_payload"}
    for case in data["cases"].values():
        extradite_cell = case["columns"]["extradite"]
        assert extradite_cell["min"] <= extradite_cell["median"] <= extradite_cell["max"]
        assert len(extradite_cell["samples"]) == 1
    assert data["meta"]["repetitions"] == 1


def test_unknown_case_is_refused() -> None:
    proc = subprocess.run([sys.executable, str(SUITE), "--cases", "no_such_case"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert "unknown case" in proc.stderr
