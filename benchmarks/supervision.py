"""Deadlines and restarts: how long after a deadline the caller gets its error, and how long
after a child's death the next call returns from a restarted child.

Regimes (each the median [min - max] over the repetitions, in milliseconds):

    timeout_interrupt  a call sleeping in Python, bounded by call_timeout: the time from the
                       deadline's expiry to the raised ExtraditeTimeoutError (the child's
                       call is interrupted and answers; the same child goes on)
    timeout_killed     a call that ignores the interrupt (SIGINT blocked, like C code holding
                       the GIL): the time from expiry to the raised error, minus timeout_grace
                       (the child is killed after the grace period)
    restart_first_call kill -9 of an idle child with restart=Restart(...): the time from the
                       kill to the return of the next call, which starts a new child, imports
                       the target again and rebuilds two instances (split below into the
                       parent noticing the death and the restart plus the call)
    fresh_first_call   for scale: extradite() of the same target plus construction and a call
                       in a new session (a cold start)

Calls are made with `call_timeout`; each sample uses its own session where a sample ends one.
It reports; it never asserts a time.

    python benchmarks/supervision.py [--quick] [--repetitions N] [--json-output FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's root: the target is the deadline tests' own
if (HERE.parent / "src").is_dir():
    sys.path.insert(0, str(HERE.parent / "src"))

from extradite import ExtraditeTimeoutError, Restart, extradite, extradite_status  # noqa: E402

# A call that sleeps (answers an interrupt), one that never returns to the interpreter
# (ignores it), and state set by the constructor.
TARGET = "tests.targets.slowpoke:Slowpoke"
TIMEOUT = 0.2   # call_timeout of the timed calls (s)
GRACE = 0.2     # timeout_grace of the killed case (s)


def _timeout_interrupt(Slowpoke: Any) -> float:
    slowpoke = Slowpoke(1)
    start = time.perf_counter()
    try:
        slowpoke.sleep(3600)
    except ExtraditeTimeoutError:
        took = time.perf_counter() - start
    else:
        raise AssertionError("the bounded call returned")
    assert slowpoke.add(1) == 2  # the same child goes on
    return took - TIMEOUT


def _timeout_killed() -> float:
    Slowpoke = extradite(TARGET, call_timeout=TIMEOUT, timeout_grace=GRACE)
    try:
        slowpoke = Slowpoke(1)
        start = time.perf_counter()
        try:
            slowpoke.deaf()
        except ExtraditeTimeoutError:
            took = time.perf_counter() - start
        else:
            raise AssertionError("the bounded call returned")
        return took - TIMEOUT - GRACE
    finally:
        Slowpoke.close()


def _restart_first_call(Slowpoke: Any, slowpokes: list[Any]) -> tuple[float, float]:
    """(kill -> next call returned, of which kill -> the parent saw the child die)."""
    pid = extradite_status(Slowpoke).pid
    start = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    while extradite_status(Slowpoke).alive:
        time.sleep(0.0002)
    noticed = time.perf_counter()
    assert slowpokes[0].add(0) == 1
    done = time.perf_counter()
    assert slowpokes[1].add(0) == 2 and extradite_status(Slowpoke).pid != pid
    return done - start, noticed - start


def _fresh_first_call() -> float:
    start = time.perf_counter()
    Slowpoke = extradite(TARGET, call_timeout=TIMEOUT)
    try:
        assert Slowpoke(1).add(0) == 1
        return time.perf_counter() - start
    finally:
        Slowpoke.close()


def _cell(samples: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--repetitions", type=int, default=None, help="samples per cell (default 15, quick 2)")
    parser.add_argument("--json-output", type=Path, default=None, help="write every sample as JSON")
    args = parser.parse_args(argv)
    repetitions = args.repetitions or (2 if args.quick else 15)
    logging.getLogger("extradite").addHandler(logging.NullHandler())  # each restart's warning: not here
    results: dict[str, list[float]] = {}

    def record(case: str, seconds: float) -> None:
        results.setdefault(case, []).append(seconds * 1000)

    Bounded = extradite(TARGET, call_timeout=TIMEOUT)
    Supervised = extradite(TARGET, call_timeout=TIMEOUT,
                           restart=Restart(max_restarts=repetitions + 1, within_seconds=3600))
    try:
        slowpokes = [Supervised(1), Supervised(2)]
        _timeout_interrupt(Bounded)  # warm-up
        for _ in range(repetitions):
            record("timeout_interrupt", _timeout_interrupt(Bounded))
            record("timeout_killed", _timeout_killed())
            total, noticed = _restart_first_call(Supervised, slowpokes)
            record("restart_first_call", total)
            record("restart_noticed", noticed)
            record("restart_after_notice", total - noticed)
            record("fresh_first_call", _fresh_first_call())
    finally:
        Bounded.close()
        Supervised.close()

    cases = {case: _cell(samples) for case, samples in results.items()}
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"# {os.cpu_count()} CPUs (load average {' '.join(load)}), Python {sys.version.split()[0]}, "
          f"{repetitions} repetitions, call_timeout {TIMEOUT} s, timeout_grace {GRACE} s")
    print(f"{'case':<22}{'median':>12}{'min - max':>24}")
    for case, cell in cases.items():
        print(f"{case:<22}{cell['median']:>9.2f} ms{cell['min']:>11.2f} - {cell['max']:.2f} ms")
    if args.json_output is not None:
        args.json_output.write_text(json.dumps({
            "meta": {"repetitions": repetitions, "call_timeout": TIMEOUT, "timeout_grace": GRACE,
                     "python": sys.version.split()[0], "unit": "ms"},
            "cases": cases}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
