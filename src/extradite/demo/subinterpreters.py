"""Use `readline` from subinterpreters through extradite: `python -m extradite.demo.subinterpreters`.

    main interpreter (this module)
    ├── subinterpreter: `import readline`
    │     -> ImportError from the subinterpreter itself (single-phase native module)
    └── N subinterpreters at once, each with its own GIL, each driven by one thread:
          extradite("extradite.demo.native_dependency_workload:ReadlineWorkload")
            -> child process (a main interpreter, where readline loads)
               history, completer delimiters, a completer that calls back into the subinterpreter
          validate() the results inside the subinterpreter
          -> JSON report through a pipe -> validate() again here -> exit 0 only if all passed

On Python 3.14+ the subinterpreters come from `concurrent.futures.InterpreterPoolExecutor`
(isolated workers, one GIL each); on 3.13 from the private `_interpreters` module with
its "isolated" config (own GIL, no daemon threads, no fork). Older Pythons exit with 2.

The code that runs in a subinterpreter is source text (`_WORKER_SOURCE`), not a
function of this module: a pool pickles functions by reference, so the worker
would import `extradite.demo`, and extradite refuses a target whose module tree
is already imported (here `extradite.demo`). Reports come back through a pipe,
which works the same with both APIs.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

TARGET = "extradite.demo.native_dependency_workload:ReadlineWorkload"
WORDS = ["readline", "read_history_file", "redisplay", "replace_history_item",
         "set_completer", "get_completer_delims"]
PREFIX = "re"
_DELIMITER_MARKS = "!@#$%^&*"
_MIN_VERSION = (3, 13)


def make_job(index: int, path: Sequence[str], fd: int) -> dict[str, Any]:
    """What subinterpreter `index` is asked to do (plain data: it travels as JSON)."""
    return {
        "tag": f"subinterpreter-{index}",
        "entries": [f"print({index} * {k})" for k in range(1, 4 + index)],
        "delims": " \t\n" + _DELIMITER_MARKS[index % len(_DELIMITER_MARKS)],
        "words": WORDS,
        "prefix": PREFIX,
        "path": list(path),
        "fd": fd,
    }


def validate(job: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """Problems with one report (empty when every result is what readline should hold).

    Runs inside the subinterpreter and again in the main interpreter; it uses
    builtins only, because its source is sent to the subinterpreter.
    """
    if report.get("error"):
        return ["the workload raised:\n" + report["error"]]
    problems = []
    expected_completions = [word for word in job["words"] if word.startswith(job["prefix"])]
    checks = [
        ("history", report["history"], job["entries"]),
        ("history length", report["length"], len(job["entries"])),
        ("completer delimiters", report["delims"], job["delims"]),
        ("completions", report["completions"], expected_completions),
        # readline asks with state 0, 1, ... until the completer returns None
        ("completer callback states", report["callback_states"], list(range(len(expected_completions) + 1))),
        ("readline imported in the subinterpreter", report["readline_in_subinterpreter"], False),
    ]
    for what, got, wanted in checks:
        if got != wanted:
            problems.append(f"{what}: got {got!r}, expected {wanted!r}")
    if report["child_pid"] == report["pid"]:
        problems.append("the workload ran in the subinterpreter's own process, not in a child")
    return problems


_WORKER_BODY = '''
import json, os, sys, time, traceback

job = json.loads(JOB)
sys.path[:] = job["path"]
report = {"tag": job["tag"], "pid": os.getpid(), "started": time.monotonic()}
try:
    from extradite import extradite

    ReadlineWorkload = extradite("extradite.demo.native_dependency_workload:ReadlineWorkload")
    try:
        workload = ReadlineWorkload(job["tag"])
        history = workload.exercise_history(job["entries"], job["delims"])
        callback_states = []

        def completer(text, state):  # runs here, called from readline in the child
            callback_states.append(state)
            matches = [word for word in job["words"] if word.startswith(text)]
            return matches[state] if state < len(matches) else None

        completions = workload.complete(completer, job["prefix"])
        workload.close()
    finally:
        ReadlineWorkload.close()
    report.update(child_pid=history["pid"], backend=history["backend"], history=history["history"],
                  length=history["length"], delims=history["delims"], completions=completions,
                  callback_states=callback_states)
except BaseException:
    report["error"] = traceback.format_exc()
report["readline_in_subinterpreter"] = "readline" in sys.modules
report["finished"] = time.monotonic()
report["problems"] = validate(job, report)
os.write(job["fd"], json.dumps(report).encode())
'''

# validate() travels as source so both interpreters run the very same checks.
_WORKER_SOURCE = "from __future__ import annotations\n" + inspect.getsource(validate) + _WORKER_BODY


def _interpreter_error(exc: BaseException) -> str:
    """The subinterpreter's own error line, from whatever wrapper the API raised."""
    excinfo = getattr(exc, "excinfo", None)  # ExecutionFailed (3.14 and the backport)
    if excinfo is not None and getattr(excinfo, "formatted", None):
        return str(excinfo.formatted)
    return f"{type(exc).__name__}: {exc}"


class _LowLevel:
    """Python 3.13: `_interpreters`, one isolated interpreter (own GIL) per job, one thread each."""

    def __init__(self) -> None:
        self.api: Any = importlib.import_module("_interpreters")

    def describe(self) -> str:
        config = self.api.new_config("isolated")
        return (f"_interpreters (3.13 low-level API), isolated config: gil={config.gil!r}, "
                f"daemon threads={config.allow_daemon_threads}, fork={config.allow_fork}")

    def run_one(self, source: str, shared: dict[str, Any]) -> str | None:
        """Run `source` in a fresh isolated interpreter; its error text, or None on success."""
        iid = self.api.create(self.api.new_config("isolated"))
        try:
            if shared:  # it refuses an empty mapping
                self.api.set___main___attrs(iid, shared)
            excinfo = self.api.exec(iid, source)
            return None if excinfo is None else str(excinfo.formatted)
        finally:
            self.api.destroy(iid)

    def run_many(self, source: str, shared: list[dict[str, Any]]) -> list[str | None]:
        errors: list[str | None] = [None] * len(shared)

        def run(index: int) -> None:
            try:
                errors[index] = self.run_one(source, shared[index])
            except Exception as exc:  # creating or destroying the interpreter failed
                errors[index] = _interpreter_error(exc)

        threads = [threading.Thread(target=run, args=(i,), name=f"subinterpreter-{i}") for i in range(len(shared))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return errors


class _Pool:
    """Python 3.14+: `InterpreterPoolExecutor` workers (isolated subinterpreters, own GIL each)."""

    def __init__(self, executor: Callable[..., Any]) -> None:
        self.executor = executor

    def describe(self) -> str:
        return "concurrent.futures.InterpreterPoolExecutor (isolated subinterpreters, one GIL each)"

    def run_one(self, source: str, shared: dict[str, Any]) -> str | None:
        return self.run_many(source, [shared])[0]

    def run_many(self, source: str, shared: list[dict[str, Any]]) -> list[str | None]:
        errors: list[str | None] = []
        with self.executor(max_workers=len(shared)) as pool:
            # exec is a builtin, so it pickles by name and imports nothing of ours
            futures = [pool.submit(exec, source, dict(values)) for values in shared]
            for future in futures:
                try:
                    future.result()
                    errors.append(None)
                except Exception as exc:
                    errors.append(_interpreter_error(exc))
        return errors


def pick_backend() -> _LowLevel | _Pool | None:
    """The subinterpreter API of this Python, or None when it has none we can use."""
    if sys.version_info < _MIN_VERSION:
        return None
    try:
        from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        pass
    else:
        return _Pool(InterpreterPoolExecutor)
    try:
        return _LowLevel()
    except ImportError:
        return None


def _read_report(fd: int) -> str:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks).decode()
        chunks.append(chunk)


def run_workloads(backend: _LowLevel | _Pool, count: int) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """Run the workload in `count` subinterpreters at once; their reports and the problems found here."""
    pipes = [os.pipe() for _ in range(count)]
    jobs = [make_job(index + 1, sys.path, write) for index, (_read, write) in enumerate(pipes)]
    try:
        errors = backend.run_many(_WORKER_SOURCE, [{"JOB": json.dumps(job)} for job in jobs])
    finally:
        for _read, write in pipes:
            os.close(write)
    reports: list[dict[str, Any]] = []
    problems: list[list[str]] = []
    for job, (read, _write), error in zip(jobs, pipes, errors):
        try:
            text = _read_report(read)
        finally:
            os.close(read)
        if error is not None or not text:
            reports.append({"tag": job["tag"]})
            problems.append([f"the subinterpreter failed: {error or 'it sent no report'}"])
            continue
        report = json.loads(text)
        reports.append(report)
        found = validate(job, report)
        if report["problems"] != found:
            found.append(f"the subinterpreter's own checks disagree: {report['problems']!r}")
        problems.append(found)
    return reports, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m extradite.demo.subinterpreters",
        description="readline fails to import in a subinterpreter, and works from several through extradite")
    parser.add_argument("--workers", type=int, default=3, help="subinterpreters to run at once (default 3)")
    options = parser.parse_args(argv)
    if options.workers < 1:
        parser.error(f"--workers must be >= 1, not {options.workers}")

    version = ".".join(map(str, sys.version_info[:3]))
    backend = pick_backend()
    if backend is None:
        print(f"This demonstration needs Python 3.13 or newer (subinterpreters with their own GIL: "
              f"_interpreters on 3.13, InterpreterPoolExecutor on 3.14+); this is Python {version} "
              f"({sys.executable}). Run it as: python3.13 -m extradite.demo.subinterpreters",
              file=sys.stderr)
        return 2

    print(f"extradite: readline from subinterpreters on Python {version}")
    print(f"subinterpreters: {backend.describe()}")
    print()
    print("1. import readline directly inside a subinterpreter")
    error = backend.run_one("import readline", {})
    if error is None:
        print("   readline loaded: this Python allows it in subinterpreters, so this half does not apply")
    else:
        print(f"   failed, as expected: {error}")
    print()

    count = options.workers
    print(f"2. the same readline workload through extradite, from {count} subinterpreters at once")
    started = time.monotonic()
    reports, problems = run_workloads(backend, count)
    wall = time.monotonic() - started
    for report, found in zip(reports, problems):
        if found:
            print(f"   {report['tag']}: FAILED")
            for problem in found:
                print("     - " + problem.replace("\n", "\n       "))
            continue
        print(f"   {report['tag']}: readline ran in child pid {report['child_pid']} "
              f"(this process is pid {report['pid']}), {report['finished'] - report['started']:.2f} s")
        print(f"     {'history read back':<22}{report['history']}")
        print(f"     {'completer delimiters':<22}{report['delims']!r}")
        print(f"     {'completions of ' + repr(PREFIX):<22}{report['completions']} "
              f"({len(report['callback_states'])} callbacks into the subinterpreter)")
    passed = sum(1 for found in problems if not found)
    timed = [r for r, found in zip(reports, problems) if not found]
    overlap = len(timed) > 1 and max(r["started"] for r in timed) < min(r["finished"] for r in timed)
    print()
    print(f"   {passed} of {count} subinterpreters validated (in the subinterpreter and again here); "
          + ("readline never loaded in any of them; " if passed == count else "")
          + f"{wall:.2f} s in all" + ("; their runs overlapped" if overlap else ""))
    print()
    print("OK" if passed == count else "FAILED")
    return 0 if passed == count else 1


if __name__ == "__main__":
    sys.exit(main())
