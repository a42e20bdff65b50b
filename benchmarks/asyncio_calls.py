"""The per-call cost of an awaited call beside the sync call and beside `loop.run_in_executor`.

Regimes (each a median [min - max] over the repetitions, µs per call; one session, warm):

    sync             proxy.ping() in a plain loop
    aio              await proxy.ping.aio() in a coroutine, one call after another
    run_in_executor  await loop.run_in_executor(None, proxy.ping), one after another
    aio_gather       64 awaited calls gathered at once, per call (the child serves them in turn)
    executor_gather  64 run_in_executor calls gathered at once, per call

Each repetition runs every regime once, in a new shuffled order. It reports; it never
asserts a time.

    python benchmarks/asyncio_calls.py [--quick] [--repetitions N] [--json-output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "targets"))
if (HERE.parent / "src").is_dir():
    sys.path.insert(0, str(HERE.parent / "src"))

from extradite import extradite  # noqa: E402

GATHER = 64


def _regimes(proxy: Any, calls: int) -> dict[str, Callable[[], Awaitable[float]]]:
    async def sync() -> float:
        ping = proxy.ping
        start = time.perf_counter()
        for _ in range(calls):
            ping()
        return time.perf_counter() - start

    async def aio() -> float:
        ping = proxy.ping
        start = time.perf_counter()
        for _ in range(calls):
            await ping.aio()
        return time.perf_counter() - start

    async def run_in_executor() -> float:
        loop = asyncio.get_running_loop()
        ping = proxy.ping
        start = time.perf_counter()
        for _ in range(calls):
            await loop.run_in_executor(None, ping)
        return time.perf_counter() - start

    async def aio_gather() -> float:
        ping = proxy.ping
        start = time.perf_counter()
        for _ in range(calls // GATHER):
            await asyncio.gather(*(ping.aio() for _ in range(GATHER)))
        return time.perf_counter() - start

    async def executor_gather() -> float:
        loop = asyncio.get_running_loop()
        ping = proxy.ping
        start = time.perf_counter()
        for _ in range(calls // GATHER):
            await asyncio.gather(*(loop.run_in_executor(None, ping) for _ in range(GATHER)))
        return time.perf_counter() - start

    return {"sync": sync, "aio": aio, "run_in_executor": run_in_executor,
            "aio_gather": aio_gather, "executor_gather": executor_gather}


async def _run(repetitions: int, calls: int) -> dict[str, list[float]]:
    cls = extradite("extradite_bench_trivial:Trivial")
    try:
        proxy = cls()
        regimes = _regimes(proxy, calls)
        per_call = {name: calls // GATHER * GATHER if "gather" in name else calls for name in regimes}
        for regime in regimes.values():  # warm: the loop's reader, the executor's threads
            await regime()
        samples: dict[str, list[float]] = {name: [] for name in regimes}
        for _ in range(repetitions):
            order = list(regimes)
            random.shuffle(order)
            for name in order:
                samples[name].append(await regimes[name]() / per_call[name] * 1e6)
        return samples
    finally:
        cls.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the calls, 3 repetitions")
    parser.add_argument("--repetitions", type=int, default=None)
    parser.add_argument("--json-output", default=None)
    options = parser.parse_args(argv)
    repetitions = options.repetitions or (3 if options.quick else 7)
    calls = 256 if options.quick else 2560
    samples = asyncio.run(_run(repetitions, calls))
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}, {repetitions} repetitions of {calls} calls")
    print(f"{'regime':<18} {'µs per call: median [min - max]':>34}")
    medians = {}
    for name, values in samples.items():
        medians[name] = statistics.median(values)
        print(f"{name:<18} {medians[name]:>10.1f} [{min(values):.1f} - {max(values):.1f}]")
    if options.json_output:
        Path(options.json_output).write_text(json.dumps({"samples": samples, "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
