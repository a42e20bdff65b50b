"""Write generated files atomically, or compare them with what is on disk (`--check`)."""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["OutputError", "write_files", "stale_diff", "stub_change"]


class OutputError(Exception):
    """The output directory cannot be created or written."""


def write_files(directory: Path, files: Mapping[str, str]) -> list[str]:
    """Write each file whose text differs; return the names written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {str(directory)!r}: {exc.strerror or exc}") from exc
    written = []
    for name in sorted(files):
        path = directory / name
        text = files[name]
        try:
            if path.exists() and path.read_text(encoding="utf-8") == text:
                continue
            # A reader never sees half a file: write beside it, then rename over it.
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                    handle.write(text)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from exc
        written.append(name)
    return written


def stale_diff(directory: Path, files: Mapping[str, str]) -> str:
    """A unified diff from what is on disk to what would be generated ("" when fresh)."""
    chunks: list[str] = []
    for name in sorted(files):
        path = directory / name
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = ""
        except OSError as exc:
            raise OutputError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
        if old != files[name]:
            chunks.extend(difflib.unified_diff(
                old.splitlines(keepends=True), files[name].splitlines(keepends=True),
                fromfile=str(path) if old else "/dev/null", tofile=str(path)))
    return "".join(chunks)


_STUBS_RE = re.compile(r"^# stubs: (.*)$", re.MULTILINE)


def stub_change(directory: Path, files: Mapping[str, str]) -> str | None:
    """A note when the files on disk were made from other stubs than the new ones, else None.

    A stale diff then may come from the stub version, not from a changed target.
    """
    for name in sorted(files):
        try:
            old = (directory / name).read_text(encoding="utf-8")
        except OSError:
            continue
        before, after = _STUBS_RE.search(old), _STUBS_RE.search(files[name])
        was = before.group(1) if before else "stubs not recorded"
        now = after.group(1) if after else "stubs not recorded"
        if was != now:
            return (f"{directory / name} was generated from {was}, this environment has {now}: the difference "
                    "may come from the stub version rather than a changed target")
    return None
