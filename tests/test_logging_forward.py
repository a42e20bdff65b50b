"""The child's `logging` records reach this process's handlers, under their own logger names,
filtered by this process's levels; `forward_logging=False` leaves them in the child."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from extradite import extradite
from extradite._api import session_of

from conftest import python_env

LOGGER = "targets.logs"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[logging.LogRecord]:
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.records


@pytest.fixture
def collect() -> Iterator[Callable[[int], Collect]]:
    """`configure(level)`: this process's root logger at `level` with a collecting handler."""
    root = logging.getLogger()
    saved = root.level
    handlers: list[Collect] = []
    # Loggers other tests or libraries (Ray) set lower would lower what the child must send:
    # each test here starts from its own configuration alone.
    others = {logger: logger.level for logger in logging.Logger.manager.loggerDict.values()
              if isinstance(logger, logging.Logger) and logger.level}
    for logger in others:
        logger.setLevel(logging.NOTSET)

    def configure(level: int) -> Collect:
        root.setLevel(level)
        handler = Collect()
        root.addHandler(handler)
        handlers.append(handler)
        return handler

    yield configure
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(saved)
    for logger, level in others.items():
        logger.setLevel(level)


def _ours(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [record for record in records if record.name == LOGGER]


def test_every_level_reaches_a_parent_handler(collect: Callable[[int], Collect]) -> None:
    handler = collect(logging.DEBUG)
    Logs = extradite("targets.logs:Logs")
    try:
        logs = Logs()
        pid = logs.pid()
        levels = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
        for level in levels:
            logs.emit(level, "at %s: %d", logging.getLevelName(level), level)
        records = _ours(handler.wait_for(len(levels)))
    finally:
        Logs.close()
    assert [r.levelno for r in records] == levels
    assert [r.getMessage() for r in records] == [f"at {logging.getLevelName(lv)}: {lv}" for lv in levels]
    assert all(r.process == pid and getattr(r, "extradite_pid") == pid for r in records)
    assert all(r.funcName == "emit" and r.pathname.endswith("logs.py") for r in records)
    assert all(getattr(r, "order_id") == 17 for r in records)  # a plain `extra=` field comes along


def test_exception_text_arrives(collect: Callable[[int], Collect]) -> None:
    handler = collect(logging.INFO)
    Logs = extradite("targets.logs:Logs")
    try:
        Logs().fail()
        records = _ours(handler.wait_for(1))
    finally:
        Logs.close()
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR and record.getMessage() == "could not divide"
    assert record.exc_text is not None and "ZeroDivisionError: division by zero" in record.exc_text
    assert "ZeroDivisionError" in logging.Formatter().format(record)


def test_parent_levels_decide(collect: Callable[[int], Collect]) -> None:
    handler = collect(logging.WARNING)
    logging.getLogger(LOGGER).setLevel(logging.ERROR)  # a logger set above the root: it wins
    Logs = extradite("targets.logs:Logs")
    try:
        logs = Logs()
        assert logs.root_level() == logging.WARNING  # the child does not even make INFO records
        for level in (logging.INFO, logging.WARNING, logging.ERROR):
            logs.emit(level, "level %d", level)
        records = _ours(handler.wait_for(1))
        time.sleep(0.3)  # nothing else comes
    finally:
        logging.getLogger(LOGGER).setLevel(logging.NOTSET)
        Logs.close()
    assert [r.levelno for r in _ours(handler.records)] == [logging.ERROR]
    assert records


@pytest.mark.parametrize("rules", [None, {types.FunctionType: "reference"}], ids=["default", "functions_by_reference"])
def test_a_level_lowered_after_start_reaches_the_child(collect: Callable[[int], Collect],
                                                       rules: dict[type, str] | None) -> None:
    handler = collect(logging.WARNING)
    Logs = extradite("targets.logs:Logs", transport_type_rules=rules)
    try:
        logs = Logs()
        logs.emit(logging.DEBUG, "lost: the parent wants warnings")
        logging.getLogger().setLevel(logging.DEBUG)  # as a late logging.basicConfig(level=DEBUG) does
        deadline = time.monotonic() + 10
        while logs.root_level() != logging.DEBUG and time.monotonic() < deadline:
            time.sleep(0.05)
        logs.emit(logging.DEBUG, "found")
        records = _ours(handler.wait_for(1))
    finally:
        Logs.close()
    assert [r.getMessage() for r in records] == ["found"]


def test_opt_out_leaves_records_in_the_child(collect: Callable[[int], Collect],
                                             capfd: pytest.CaptureFixture[str]) -> None:
    handler = collect(logging.DEBUG)
    Logs = extradite("targets.logs:Logs", forward_logging=False)
    try:
        logs = Logs()
        logs.emit(logging.INFO, "stays in the child")
        logs.emit(logging.WARNING, "printed by the child's last resort")
        session_of(Logs)
    finally:
        Logs.close()
    assert _ours(handler.records) == []
    assert "printed by the child's last resort" in capfd.readouterr().err


def test_forward_logging_is_checked_and_part_of_a_shared_session() -> None:
    from extradite import ExtraditeSessionConflictError

    with pytest.raises(TypeError, match="forward_logging must be True or False"):
        extradite("targets.logs:Logs", forward_logging="no")  # type: ignore[arg-type]
    Logs = extradite("targets.logs:Logs", share_key="logs-optout", forward_logging=False)
    try:
        with pytest.raises(ExtraditeSessionConflictError, match="forward_logging"):
            extradite("targets.logs:Logs", share_key="logs-optout")
    finally:
        Logs.close()


def test_scenario_basic_config_debug(tmp_path: Path) -> None:
    """SCENARIOS.md 12: the parent's basicConfig(level=DEBUG) shows the target's INFO record."""
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent("""
        import logging
        from extradite import extradite
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s|%(name)s|%(process)d|%(message)s")
        Logs = extradite("targets.logs:Logs")
        logs = Logs()
        print(logs.pid(), flush=True)
        logs.emit(logging.INFO, "hello from %s", "the child")
        Logs.close()
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=python_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])
    assert f"INFO|targets.logs|{pid}|hello from the child" in done.stderr.splitlines()
