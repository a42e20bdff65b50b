"""Smoke test of the benchmark suite: it runs, prints a table and writes valid JSON (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "benchmarks" / "extradite_performance_benchmark.py"


def _quick_run(tmp_path: Path, cases: str, repetitions: int = 1) -> tuple[str, dict[str, Any]]:
    """A `--quick` run of `cases`: its stdout and its JSON output."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--quick", "--repetitions", str(repetitions), "--cases", cases,
         "--json-output", str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(out.read_text())


def test_quick_run_prints_table_and_json(tmp_path: Path) -> None:
    stdout, data = _quick_run(tmp_path, "state_mutation,small_payload,bytes_512k_shm_floor")
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("case "))
    for column in ("direct", "extradite", "generated"):
        assert column in header
    assert any(line.startswith("state_mutation ") for line in lines)
    assert any(line.startswith("small_payload ") for line in lines)
    assert set(data["cases"]) == {"state_mutation", "small_payload", "bytes_512k_shm_floor"}
    floor = data["cases"].pop("bytes_512k_shm_floor")["columns"]["floor"]
    assert len(floor["samples"]) == 1 and floor["median"] > 0  # its echo process ran and stopped
    for case in data["cases"].values():
        for column in ("extradite", "generated"):  # small_payload's generated proxy is written by the run
            cell = case["columns"][column]
            assert cell["min"] <= cell["median"] <= cell["max"], cell
            assert len(cell["samples"]) == 1
    assert data["meta"]["repetitions"] == 1


def test_pinned_case_reports_cpu_per_side(tmp_path: Path) -> None:
    stdout, data = _quick_run(tmp_path, "tiny_call_pinned,tiny_call_no_switch")
    assert "tiny_call_pinned/extradite: CPU per call" in stdout
    assert "tiny_call_pinned/floor: CPU per call" in stdout
    # the split of the pinned CPU: both sides' Python work in one process, the rest the switches
    assert stdout.count("us is both sides' Python work (tiny_call_no_switch)") == 2
    work = data["cases"]["tiny_call_no_switch"]["columns"]
    assert 0 < work["floor"]["median"] < work["extradite"]["median"]
    assert "CPU per tiny call, pinned: parent <= 4 us" in stdout
    parent, child = data["pinned_cpu_seconds_per_call"]["extradite"]
    assert parent > 0 and child > 0  # both processes ran on the pinned CPU and were measured
    assert data["cases"]["tiny_call_pinned"]["columns"]["floor"]["median"] > 0


def test_generated_and_dynamic_are_also_compared_per_repetition(tmp_path: Path) -> None:
    stdout, data = _quick_run(tmp_path, "state_mutation,bind_pairs", repetitions=2)
    ratios = data["generated_over_dynamic"]
    assert set(ratios) == {"state_mutation"}  # bind_pairs is paired per bind instead
    columns = data["cases"]["state_mutation"]["columns"]
    paired = sorted(g / d for g, d in zip(columns["generated"]["samples"], columns["extradite"]["samples"]))
    assert ratios["state_mutation"]["median"] == pytest.approx(sum(paired) / 2)
    assert ratios["state_mutation"]["low"] <= ratios["state_mutation"]["median"] <= ratios["state_mutation"]["high"]
    goal = next(g for g in data["targets"] if g["target"] == "generated / dynamic <= 1 (state_mutation)")
    assert goal["measured"] == ratios["state_mutation"]["median"]
    assert goal["met"] == (ratios["state_mutation"]["low"] <= 1)  # NOT met only when shown slower
    assert "generated / dynamic <= 1 (state_mutation)" in stdout and "generated <= dynamic" not in stdout
    # polling against polling off is judged the same way (two sessions differ by a few percent)
    polled = data["polling_over_nopoll"]["state_mutation"]
    assert polled["low"] <= polled["median"] <= polled["high"]
    goal = next(g for g in data["targets"] if g["target"] == "polling / no polling <= 1 (state_mutation)")
    assert goal["met"] == (polled["low"] <= 1)


def test_bind_pairs_report_the_paired_difference(tmp_path: Path) -> None:
    stdout, data = _quick_run(tmp_path, "bind_pairs", repetitions=2)
    assert "bind_pairs: generated - dynamic, median of 4 pairs" in stdout
    assert "generated - dynamic <= 0, paired binds" in stdout
    assert "(bind_pairs)" not in stdout  # judged per pair, not by column medians or repetitions
    pairs = data["bind_pairs_seconds"]
    assert pairs["pairs"] == 4 and pairs["low"] <= pairs["median"] <= pairs["high"]
    columns = data["cases"]["bind_pairs"]["columns"]
    # both columns come from the same pairs: one sample each per repetition, both measured
    assert len(columns["extradite"]["samples"]) == len(columns["generated"]["samples"]) == 2
    assert columns["extradite"]["median"] > 0 and columns["generated"]["median"] > 0


def test_rpyc_column_runs_the_regimes_rpyc_can_do(tmp_path: Path) -> None:
    pytest.importorskip("rpyc", reason="rpyc is not installed (it is in the dev extra)")
    stdout, data = _quick_run(tmp_path, "cold_start_trivial,tiny_call,small_payload,callbacks,batch_call")
    assert "rpyc" in next(line for line in stdout.splitlines() if line.startswith("case "))
    for case in ("cold_start_trivial", "tiny_call", "small_payload", "callbacks"):
        cell = data["cases"][case]["columns"]["rpyc"]
        assert len(cell["samples"]) == 1 and cell["median"] > 0, (case, cell)
    assert data["cases"]["batch_call"]["columns"]["rpyc"] == {"note": "n/a (not applicable)"}


def test_rpyc_column_copies_values_both_ways() -> None:
    """The rpyc column moves what the other columns move: copies, not references, and calls back."""
    pytest.importorskip("rpyc", reason="rpyc is not installed (it is in the dev extra)")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import rpyc_alternative
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    server = rpyc_alternative.Server([str(ROOT / "src"), str(ROOT / "benchmarks" / "targets")])
    try:
        workload = server.by_value(server.new("extradite_bench_workload:Workload"))
        for payload in ({"k": [1, 2.5, None]}, list(range(1000)), b"x" * 100_000, "text", 7):
            echoed = workload.echo(payload)
            assert type(echoed) is type(payload) and echoed == payload
            if isinstance(payload, (dict, list)):  # by reference, rpyc would hand back this very object
                assert echoed is not payload
        assert workload.pipeline_stage([{"key": "a", "amount": 2}])["total"] == 2
        seen: list[int] = []
        assert workload.fan_out(seen.append, 3) == 3
        assert seen == [0, 1, 2]
    finally:
        server.close()
    assert server.conn.proc.returncode == 0  # the server process ended with the connection


def test_unknown_case_is_refused() -> None:
    proc = subprocess.run([sys.executable, str(SUITE), "--cases", "no_such_case"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert "unknown case" in proc.stderr


def test_import_path_stays_light() -> None:
    """`import extradite` must not pull in typing, multiprocessing, the generator or jinja2/libcst."""
    code = ("import sys; import extradite; "
            "print(sorted(m for m in ('typing', 'multiprocessing', 'extradite.gen', 'jinja2', 'libcst', "
            "'subprocess', 'asyncio', '_pickle', '_socket', 'mmap') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("spin_us", ["0", "100"])
def test_waits_with_and_without_polling_keep_calls_correct(spin_us: str) -> None:
    """Every wait sleeping (EXTRADITE_SPIN_US=0) or polling first: results, callbacks and big buffers intact."""
    code = """
import sys
from extradite import extradite
from extradite._api import session_of
Counter = extradite("extradite.demo.counter:Counter")
Bus = extradite("extradite.demo.callbacks:EventBus")
try:
    import os
    polls = session_of(Counter).session.channel._spin_ns > 0
    assert polls == (os.environ["EXTRADITE_SPIN_US"] != "0"), "the setting did not reach the channel"
    counter = Counter(0)
    assert [counter.increment(1) for _ in range(2000)][-1] == 2000
    bus = Bus()
    seen = []
    bus.subscribe(lambda topic, payload: seen.append(payload))
    assert [bus.publish("t", b"x") for _ in range(200)] == [1] * 200 and len(seen) == 200
    blob = bytes(range(256)) * 4096
    assert bus.reverse(blob) == blob[::-1]
    print("ok")
finally:
    Counter.close()
    Bus.close()
"""
    import os

    env = dict(os.environ, EXTRADITE_SPIN_US=spin_us, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_the_bytecode_cases_write_no_cache_into_the_checkout(tmp_path: Path) -> None:
    """A .pyc left in src/ changes what later children load (and so later runs' start-up figures)."""
    def caches() -> dict[Path, int]:
        return {path: path.stat().st_mtime_ns for path in (ROOT / "src").rglob("*.pyc")}

    before = caches()
    _quick_run(tmp_path, "import_extradite,cold_start_trivial_pyc")
    written = {path for path, mtime in caches().items() if before.get(path) != mtime}
    assert not written, sorted(map(str, written))


def test_untrusted_benchmark_runs_both_columns(tmp_path: Path) -> None:
    out = tmp_path / "untrusted.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "untrusted.py"), "--quick", "--repetitions", "1",
                           "--json-output", str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "tiny_call" in proc.stdout and "bytes_512k" in proc.stdout
    data = json.loads(out.read_text())
    assert set(data["cases"]) == {"tiny_call", "small_payload", "bytes_512k"}
    for case in data["cases"].values():
        for kind in ("wall", "cpu"):
            assert set(case[kind]["median_us"]) == {"default", "untrusted"}


def test_supervision_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "supervision.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "supervision.py"), "--quick", "--repetitions",
                           "1", "--json-output", str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "restart_first_call" in proc.stdout and proc.stderr == ""  # the restarts' warnings stay out
    cases = json.loads(out.read_text())["cases"]
    assert set(cases) == {"timeout_interrupt", "timeout_killed", "restart_first_call", "restart_noticed",
                          "restart_after_notice", "fresh_first_call"}
    assert all(len(cell["samples"]) == 1 for cell in cases.values())


def test_iteration_and_first_transfer_cases_report_their_goals(tmp_path: Path) -> None:
    stdout, data = _quick_run(tmp_path, "iterate_rows,iterate_generator,first_512k")
    for case in ("iterate_rows", "iterate_generator", "first_512k"):
        columns = data["cases"][case]["columns"]
        assert columns["extradite"]["median"] > 0 and columns["floor"]["median"] > 0, case
    goals = {goal["target"] for goal in data["targets"]}
    assert "for row in remote iterable <= 3x one call (list)" in goals
    assert "first 512 KiB echo <= 2x warm (same sessions)" in goals
    assert "iterate_rows: one call returning the rows as a list" in stdout


def test_asyncio_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "asyncio.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "asyncio_calls.py"), "--quick",
                           "--repetitions", "1", "--json-output", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert set(data["medians"]) == {"sync", "aio", "run_in_executor", "aio_gather", "executor_gather"}
    assert all(len(samples) == 1 for samples in data["samples"].values())
