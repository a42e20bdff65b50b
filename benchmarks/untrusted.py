"""What `untrusted=True` costs per call, beside the default mode, measured in one run.

Regimes (each a median [min - max] of µs per operation over the repetitions; both
sessions are started and warm before any timing, so no process start is measured):

    tiny_call      `inc(1)`: an int each way (the reply skips the unpickler in both modes)
    small_payload  `echo(record)`: a dict of 20 str/int/float/datetime/Decimal items each way,
                   through the unpickler on both sides (the allow-list loads datetime and Decimal)
    bytes_512k     `echo(512 KiB bytes)`: shared memory each way

The two columns use the same target (benchmarks/targets/extradite_bench_workload.py) in two
sessions; each repetition runs both columns of every case in a new shuffled order, each
sample after an untimed warm-up of a tenth of its operations. Beside the wall time per
operation it reports the CPU time both processes spent per operation (this process's
`process_time` plus the child's user + system time from /proc), which other load on the
machine disturbs far less. It reports; it never asserts a time.

    python benchmarks/untrusted.py [--quick] [--repetitions N] [--json-output FILE]
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "targets"))
if (HERE.parent / "src").is_dir():
    sys.path.insert(0, str(HERE.parent / "src"))

from extradite import extradite  # noqa: E402
from extradite._api import session_of  # noqa: E402

TARGET = "extradite_bench_workload:Workload"
CASES: dict[str, int] = {"tiny_call": 20000, "small_payload": 5000, "bytes_512k": 1000}
COLUMNS = ("default", "untrusted")


def _record() -> dict[str, Any]:
    when = datetime.datetime(2024, 5, 6, 7, 8, 9)
    return {f"k{i}": (f"value {i}", i, i / 3, when, decimal.Decimal(i))[i % 5] for i in range(20)}


def _child_cpu(pid: int) -> float:
    """User + system seconds the child has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runner(worker: Any, case: str) -> Callable[[int], tuple[float, float]]:
    if case == "tiny_call":
        def body(ops: int) -> None:
            inc = worker.inc
            for _ in range(ops):
                inc(1)
    elif case == "small_payload":
        record = _record()

        def body(ops: int) -> None:
            echo = worker.echo
            for _ in range(ops):
                echo(record)
    else:
        payload = bytes(512 * 1024)

        def body(ops: int) -> None:
            echo = worker.echo
            for _ in range(ops):
                echo(payload)

    pid = session_of(worker).process.pid

    def run(ops: int) -> tuple[float, float]:
        body(max(1, ops // 10))  # warm-up, untimed
        cpu, child, start = time.process_time(), _child_cpu(pid), time.perf_counter()
        body(ops)
        wall = time.perf_counter() - start
        used = time.process_time() - cpu + _child_cpu(pid) - child
        return wall / ops * 1e6, used / ops * 1e6
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the operations, 3 repetitions")
    parser.add_argument("--repetitions", type=int, default=None)
    parser.add_argument("--json-output", type=Path, default=None)
    args = parser.parse_args()
    repetitions = args.repetitions or (3 if args.quick else 7)
    scale = 0.1 if args.quick else 1.0

    classes = {"default": extradite(TARGET), "untrusted": extradite(TARGET, untrusted=True)}
    try:
        workers = {column: cls() for column, cls in classes.items()}
        assert workers["untrusted"].echo(_record()) == _record()  # the allow-list loads every item
        runners = {(case, column): _runner(workers[column], case) for case in CASES for column in COLUMNS}
        samples: dict[str, dict[str, dict[str, list[float]]]] = {
            kind: {case: {c: [] for c in COLUMNS} for case in CASES} for kind in ("wall", "cpu")}
        for _ in range(repetitions):
            order = list(runners)
            random.shuffle(order)
            for case, column in order:
                wall, cpu = runners[case, column](max(1, int(CASES[case] * scale)))
                samples["wall"][case][column].append(wall)
                samples["cpu"][case][column].append(cpu)
    finally:
        for cls in classes.values():
            cls.close()

    report: dict[str, Any] = {"repetitions": repetitions, "cases": {case: {} for case in CASES}}
    for kind, title in (("wall", "wall time"), ("cpu", "CPU time of both processes")):
        print(f"untrusted=True beside the default mode, {title} in µs per operation: "
              f"median [min - max] of {repetitions}")
        print(f"{'case':<15}{'default':>28}{'untrusted':>28}{'ratio':>8}")
        for case, columns in samples[kind].items():
            cells = []
            for column in COLUMNS:
                values = columns[column]
                cells.append(f"{statistics.median(values):9.1f} [{min(values):7.1f} - {max(values):7.1f}]")
            ratio = statistics.median(columns["untrusted"]) / statistics.median(columns["default"])
            print(f"{case:<15}{cells[0]:>28}{cells[1]:>28}{ratio:>8.2f}")
            report["cases"][case][kind] = {"samples_us": columns, "ratio_of_medians": ratio,
                                           "median_us": {c: statistics.median(v) for c, v in columns.items()}}
        print()
    if args.json_output is not None:
        args.json_output.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
