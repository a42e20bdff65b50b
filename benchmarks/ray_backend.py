"""The Ray backend beside the local child and beside a hand-written Ray actor, in one run.

Columns (the same `Workload` target everywhere, imported only where it runs):

- `local`: `extradite(...)`, the default child process;
- `ray_backend`: `extradite(..., backend="ray")`, one Ray actor per instance;
- `ray_actor`: a minimal hand-written Ray actor wrapping the same target, called with
  `ray.get(actor.method.remote(...))`: what Ray itself costs, the floor of the backend.

Cases: `tiny_call` (`ping()`, no arguments, returns None) and `echo_16m` (16 MiB of
bytes there and back). Each repetition runs every column of every case once,
interleaved; the table shows the median per operation over the repetitions. It reports;
it never asserts a time. Needs Ray (`pip install 'extradite[ray]'`); starts a local
cluster (`ray.init(num_cpus=2)`) and shuts it down.

    python benchmarks/ray_backend.py                  # 7 repetitions
    python benchmarks/ray_backend.py --repetitions 3 --quick
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGETS = str(HERE / "targets")
ROOT = HERE.parent
TARGET = "extradite_bench_workload:Workload"
PAYLOAD = bytes(range(256)) * (16 * 1024 * 1024 // 256)


class HandWritten:
    """The hand-written actor: the target imported in the actor, two forwarding methods."""

    def __init__(self, path: str) -> None:
        sys.path.insert(0, path)
        from extradite_bench_workload import Workload

        self.workload = Workload()

    def ping(self) -> None:
        return self.workload.ping()

    def echo(self, payload: Any) -> Any:
        return self.workload.echo(payload)


def per_op(run: Callable[[int], None], ops: int) -> float:
    start = time.perf_counter()
    run(ops)
    return (time.perf_counter() - start) / ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a fifth of the operations")
    options = parser.parse_args()
    scale = 5 if options.quick else 1
    sys.path.insert(0, TARGETS)  # children get this sys.path; this process never imports the target
    sys.path.insert(0, str(ROOT / "src"))
    import ray

    from extradite import extradite

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    Local = extradite(TARGET)
    OnRay = extradite(TARGET, backend="ray")
    local, on_ray = Local(), OnRay()
    hand = ray.remote(HandWritten).remote(TARGETS)
    ray.get(hand.ping.remote())

    def loop(call: Callable[[], Any]) -> Callable[[int], None]:
        def run(ops: int) -> None:
            for _ in range(ops):
                call()
        return run

    def echo(call: Callable[[bytes], Any]) -> Callable[[], None]:
        def run() -> None:
            if len(call(PAYLOAD)) != len(PAYLOAD):
                raise AssertionError("the echo lost bytes")
        return run

    cases: dict[str, tuple[int, dict[str, Callable[[int], None]]]] = {
        "tiny_call": (2000 // scale, {
            "local": loop(local.ping),
            "ray_backend": loop(on_ray.ping),
            "ray_actor": loop(lambda: ray.get(hand.ping.remote())),
        }),
        "echo_16m": (20 // scale, {
            "local": loop(echo(local.echo)),
            "ray_backend": loop(echo(on_ray.echo)),
            "ray_actor": loop(echo(lambda p: ray.get(hand.echo.remote(p)))),
        }),
    }
    samples: dict[tuple[str, str], list[float]] = {}
    try:
        for name, (ops, columns) in cases.items():  # warm-up: every path once
            for run in columns.values():
                run(max(1, ops // 10))
        for _ in range(options.repetitions):
            for name, (ops, columns) in cases.items():
                for column, run in columns.items():
                    samples.setdefault((name, column), []).append(per_op(run, ops))
    finally:
        Local.close()
        OnRay.close()
        ray.kill(hand)
        ray.shutdown()
    columns = ["local", "ray_backend", "ray_actor"]
    print(f"median per operation over {options.repetitions} repetitions "
          f"(ops per sample: {', '.join(f'{n} {c[0]}' for n, c in cases.items())})")
    print(f"{'case':<10}" + "".join(f"{c:>14}" for c in columns) + f"{'backend/actor':>15}")
    for name in cases:
        medians = [statistics.median(samples[(name, c)]) for c in columns]
        cells = "".join(f"{_fmt(m):>14}" for m in medians)
        print(f"{name:<10}{cells}{medians[1] / medians[2]:>14.2f}x")


def _fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


if __name__ == "__main__":
    main()
