"""The child's stderr in the parent: forwarded line by line in linear time, memory bounded.

    child fd 2 --pipe--> watch thread (`_process`) --chunks--> LineSplitter --lines-->
        this process's sys.stderr (one write per chunk) and the last lines (for death errors)

A line is held until its newline so that it reaches sys.stderr whole, not interleaved
with this process's own writes. A line longer than LINE_CAP bytes is cut: its first
LINE_CAP bytes are forwarded with CUT_MARK, the rest up to the next newline is
dropped. Every byte is looked at once and copied at most once, whatever the line
lengths, so output without newlines costs no more than output with them.
"""

from __future__ import annotations

import sys
from collections import deque

LINE_CAP = 64 * 1024          # bytes of one line forwarded; the rest of a longer line is dropped
TAIL_LINES = 40               # lines kept for death errors
TAIL_LINE_CAP = 2000          # characters kept of each of them
CUT_MARK = "...[extradite: line cut at {cap} bytes]"


class LineSplitter:
    """Bytes in, complete lines out; a line longer than `cap` comes out cut (see module docstring).

    `copied` counts the bytes this splitter copied into its buffer: with a cap it stays
    below the input's size whatever the line lengths (tests read it).
    """

    __slots__ = ("cap", "copied", "_pending", "_skipping")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.copied = 0
        self._pending = bytearray()
        self._skipping = False  # inside a line that was cut: drop until its newline

    def feed(self, chunk: bytes) -> list[tuple[bytes, bool]]:
        """The lines `chunk` completes, without their newline, each with whether it was cut."""
        lines: list[tuple[bytes, bool]] = []
        pending = self._pending
        start, size = 0, len(chunk)
        while start < size:
            newline = chunk.find(b"\n", start)
            if self._skipping:
                if newline < 0:
                    break
                self._skipping = False
                start = newline + 1
                continue
            end = size if newline < 0 else newline
            room = self.cap - len(pending)
            if end - start > room:  # the line outgrows the cap: out with its head, drop the rest
                pending += chunk[start:start + room]
                self.copied += room
                lines.append((bytes(pending), True))
                pending.clear()
                self._skipping = True
                start += room
                continue
            if newline < 0:
                pending += chunk[start:]
                self.copied += size - start
                break
            if pending:
                pending += chunk[start:newline]
                self.copied += newline - start
                lines.append((bytes(pending), False))
                pending.clear()
            else:
                lines.append((chunk[start:newline], False))
            start = newline + 1
        return lines

    def flush(self) -> bytes | None:
        """What is left of an unfinished line (at end of input), or None."""
        if not self._pending:
            return None
        rest = bytes(self._pending)
        self._pending.clear()
        return rest


class StderrForwarder:
    """Writes the child's stderr lines to this process's sys.stderr and keeps the last ones."""

    def __init__(self) -> None:
        self.splitter = LineSplitter(LINE_CAP)
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def feed(self, chunk: bytes) -> None:
        self._write([self._text(raw, cut) for raw, cut in self.splitter.feed(chunk)])

    def finish(self) -> None:
        rest = self.splitter.flush()
        if rest is not None:
            self._write([self._text(rest, False)])

    def _text(self, raw: bytes, cut: bool) -> str:
        line = raw.decode("utf-8", "replace")
        mark = CUT_MARK.format(cap=self.splitter.cap) if cut else ""
        self.tail.append(line + mark if len(line) <= TAIL_LINE_CAP else line[:TAIL_LINE_CAP] + "..." + mark)
        return line + mark

    @staticmethod
    def _write(lines: list[str]) -> None:
        stream = sys.stderr
        if not lines or stream is None:
            return
        try:
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass
