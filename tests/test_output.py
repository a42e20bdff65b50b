"""The child's stderr reaches this process's stderr line by line, in linear time and bounded
memory (a line over the cap is cut, saying so); its prints reach this process's stdout."""

from __future__ import annotations

from typing import Any

import pytest

from extradite import ExtraditeProcessError, extradite
from extradite._api import session_of
from extradite._output import CUT_MARK, LINE_CAP, TAIL_LINE_CAP, TAIL_LINES, LineSplitter


def _forwarded(Busy: Any, capfd: pytest.CaptureFixture[str], size: int, newline_every: int = 0) -> tuple[str, int]:
    """Have the child write `size` bytes to stderr; what this process's stderr got and the bytes
    its splitter copied."""
    busy = Busy()
    process = session_of(Busy).process
    copied_before = process.stderr.splitter.copied
    assert busy.write_stderr(size, newline_every) == size
    Busy.close()  # the watch thread has forwarded everything once the child is gone
    return capfd.readouterr().err, process.stderr.splitter.copied - copied_before


@pytest.mark.parametrize("megabytes", [10, 40])
def test_stderr_without_newlines_is_cut_and_linear(Busy: Any, capfd: pytest.CaptureFixture[str],
                                                   megabytes: int) -> None:
    err, copied = _forwarded(Busy, capfd, megabytes * 1024 * 1024)
    mark = CUT_MARK.format(cap=LINE_CAP)
    assert "x" * LINE_CAP + mark in err
    assert "x" * (LINE_CAP + 1) not in err
    assert "lineage: stderr done" in err
    # Linear work: a splitter never copies more than the cap of a line it cuts, however long
    # the line (the old one copied the whole pending line again for every chunk).
    assert copied <= LINE_CAP + 64


def test_many_lines_arrive_whole_and_in_order(Busy: Any, capfd: pytest.CaptureFixture[str]) -> None:
    err, copied = _forwarded(Busy, capfd, 8 * 1024 * 1024, newline_every=100)
    lines = err.split("\n")
    body = [line for line in lines if line.startswith("x")]
    assert len(body) == 8 * 1024 * 1024 // 100 + 1
    assert all(len(line) == 99 for line in body[:-1])
    assert copied < 8 * 1024 * 1024  # only a line split across two reads is copied


def test_death_error_keeps_a_bounded_tail(Busy: Any, capfd: pytest.CaptureFixture[str]) -> None:
    busy = Busy()
    busy.write_stderr(3 * 1024 * 1024, newline_every=10_000)
    with pytest.raises(ExtraditeProcessError) as info:
        busy.exit_hard(4)
    tail = session_of(Busy).process.tail
    assert len(tail) <= TAIL_LINES
    assert all(len(line) <= TAIL_LINE_CAP + 3 + len(CUT_MARK) + 10 for line in tail)
    assert "lineage: stderr done" in str(info.value)
    capfd.readouterr()


def test_prints_reach_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    Busy = extradite("targets.lineage:Busy")  # started here: it inherits the captured stdout
    try:
        Busy().say("hello from the child")
    finally:
        Busy.close()  # the child's stdout is flushed when it exits
    assert "hello from the child" in capfd.readouterr().out


@pytest.mark.parametrize("chunking", [1, 7, 4096])
def test_splitter_cuts_long_lines_and_keeps_short_ones(chunking: int) -> None:
    splitter = LineSplitter(10)
    data = b"short\n" + b"y" * 25 + b"\nexactly10!\n" + b"tail"
    lines: list[tuple[bytes, bool]] = []
    for start in range(0, len(data), chunking):
        lines += splitter.feed(data[start:start + chunking])
    assert lines == [(b"short", False), (b"y" * 10, True), (b"exactly10!", False)]
    assert splitter.flush() == b"tail"
    assert splitter.flush() is None
