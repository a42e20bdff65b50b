"""ExtraditeExecutor beside concurrent.futures.ProcessPoolExecutor, measured in one run.

Regimes (each a median [min - max] over the repetitions; workers are started and warm
before any timing, so no process start is measured):

    tiny_submit     N tasks that do nothing, submitted one by one, then waited for: the
                    per-task cost of the executor itself (µs per task, tasks per second)
    tiny_map_chunk  the same N through map(..., chunksize=64): chunks of tasks per round trip
    cpu_batch       8 CPU-bound tasks (pure Python, about 0.1 s each) with 1 and with 2
                    workers: the wall time of the batch and the speed-up of 2 over 1

Both executors run the same module-level functions (benchmarks/targets/extradite_bench_tasks.py,
imported by name in their workers). It reports; it never asserts a time.

    python benchmarks/executor.py [--quick] [--repetitions N] [--json-output FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures
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

import extradite_bench_tasks as tasks  # noqa: E402

from extradite import ExtraditeExecutor  # noqa: E402

CHUNK = 64
CPU_TASKS = 8


def _calibrate(seconds: float) -> int:
    """Rounds of `burn` that take about `seconds` here."""
    rounds = 20_000
    while True:
        start = time.perf_counter()
        tasks.burn(rounds)
        took = time.perf_counter() - start
        if took > 0.02:
            return max(1, int(rounds * seconds / took))
        rounds *= 2


def _warm(executor: concurrent.futures.Executor, workers: int, rounds: int) -> None:
    """Every worker started and busy once (busy tasks at once make the executors start them all)."""
    list(executor.map(tasks.burn, [rounds // 10] * workers * 2))


def _tiny_submit(executor: concurrent.futures.Executor, n: int) -> float:
    start = time.perf_counter()
    futures = [executor.submit(tasks.tiny) for _ in range(n)]
    for future in futures:
        future.result()
    return time.perf_counter() - start


def _tiny_map(executor: concurrent.futures.Executor, n: int) -> float:
    start = time.perf_counter()
    for _ in executor.map(tasks.tiny, range(n), chunksize=CHUNK):
        pass
    return time.perf_counter() - start


def _cpu_batch(executor: concurrent.futures.Executor, rounds: int) -> float:
    start = time.perf_counter()
    list(executor.map(tasks.burn, [rounds] * CPU_TASKS))
    return time.perf_counter() - start


def _executors(workers: int) -> dict[str, Callable[[], concurrent.futures.Executor]]:
    return {
        "extradite": lambda: ExtraditeExecutor(max_workers=workers),
        "process_pool": lambda: concurrent.futures.ProcessPoolExecutor(max_workers=workers),
    }


def _cell(samples: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks and repetitions (a smoke run)")
    parser.add_argument("--repetitions", type=int, default=None, help="samples per cell (default 5, quick 2)")
    parser.add_argument("--json-output", type=Path, default=None, help="write every sample as JSON")
    args = parser.parse_args(argv)
    repetitions = args.repetitions or (2 if args.quick else 5)
    n_tiny = 300 if args.quick else 3000
    rounds = _calibrate(0.02 if args.quick else 0.1)

    results: dict[str, dict[str, list[float]]] = {}

    def record(case: str, column: str, value: float) -> None:
        results.setdefault(case, {}).setdefault(column, []).append(value)

    executors: dict[str, tuple[int, concurrent.futures.Executor]] = {}
    try:
        for workers in (1, 2):
            for name, make in _executors(workers).items():
                executor = make()
                executors[f"{name}_{workers}"] = (workers, executor)
                _warm(executor, workers, rounds)
        # Each repetition runs every column once, in a new shuffled order, so that a busy
        # moment of the machine (other processes on its CPUs) is shared out between them.
        order = list(executors)
        for _ in range(repetitions):
            random.shuffle(order)
            for column in order:
                workers, executor = executors[column]
                record("cpu_batch", column, _cpu_batch(executor, rounds))
                if workers == 2:
                    name = column.rsplit("_", 1)[0]
                    record("tiny_submit", name, _tiny_submit(executor, n_tiny) / n_tiny)
                    record("tiny_map_chunk", name, _tiny_map(executor, n_tiny) / n_tiny)
    finally:
        for _, executor in executors.values():
            executor.shutdown()

    cases = {case: {column: _cell(samples) for column, samples in columns.items()}
             for case, columns in results.items()}
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"# {os.cpu_count()} CPUs (load average {' '.join(load)}), Python {sys.version.split()[0]}, "
          f"{repetitions} repetitions, "
          f"{n_tiny} tiny tasks, {CPU_TASKS} CPU tasks of ~{rounds} rounds")
    print(f"{'case':<16}{'column':<16}{'median':>14}{'min - max':>26}{'per second':>14}")
    for case in ("tiny_submit", "tiny_map_chunk"):
        for column, cell in sorted(cases[case].items()):
            us = [cell[k] * 1e6 for k in ("median", "min", "max")]
            print(f"{case:<16}{column:<16}{us[0]:>11.1f} us{us[1]:>14.1f} - {us[2]:.1f} us"
                  f"{1 / cell['median']:>14,.0f}")
    for column, cell in sorted(cases["cpu_batch"].items()):
        print(f"{'cpu_batch':<16}{column:<16}{cell['median']:>12.3f} s{cell['min']:>15.3f} - {cell['max']:.3f} s")
    speedups = {}
    for name in ("extradite", "process_pool"):
        one, two = cases["cpu_batch"][f"{name}_1"]["median"], cases["cpu_batch"][f"{name}_2"]["median"]
        speedups[name] = one / two
        print(f"cpu_batch speed-up of 2 workers over 1, {name}: {one / two:.2f}x")
    if args.json_output is not None:
        args.json_output.write_text(json.dumps({
            "meta": {"cpus": os.cpu_count(), "load_average": load, "python": sys.version, "repetitions": repetitions,
                     "tiny_tasks": n_tiny, "cpu_tasks": CPU_TASKS, "cpu_rounds": rounds, "chunksize": CHUNK},
            "cases": cases, "speedup_2_over_1": speedups}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
