"""A workload on `readline`, a native extension that refuses to load in subinterpreters.

`readline` keeps process-global C state (GNU readline's history list and
completer) and is single-phase initialised, so CPython 3.12+ raises
`ImportError: module readline does not support loading in subinterpreters`
when a subinterpreter imports it. Extradited, it runs in a child process's main
interpreter, where it loads normally; every method here returns plain data a
caller can check.

Imported only in child interpreters (a proxy never imports it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypedDict

import readline


class HistoryReport(TypedDict):
    """What `ReadlineWorkload.exercise_history` read back from readline."""

    tag: str
    pid: int
    backend: str
    history: list[str]
    length: int
    delims: str


class ReadlineWorkload:
    """Drives readline's history and completer APIs and reports what readline holds."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    @staticmethod
    def backend() -> str:
        """'readline' (GNU) or 'editline' (libedit)."""
        name = getattr(readline, "backend", None)  # 3.13+
        if name is not None:
            return str(name)
        return "editline" if "libedit" in (readline.__doc__ or "") else "readline"

    def exercise_history(self, entries: Sequence[str], delims: str) -> HistoryReport:
        """Replace the history with `entries` and set the completer delimiters to `delims`.

        Reads both back through readline (history items are 1-based) and restores
        the previous delimiters, so the report shows what readline actually stored.
        """
        previous = readline.get_completer_delims()
        readline.clear_history()
        for entry in entries:
            readline.add_history(entry)
        length = readline.get_current_history_length()
        history = [readline.get_history_item(index) for index in range(1, length + 1)]
        readline.set_completer_delims(delims)
        try:
            stored = readline.get_completer_delims()
        finally:
            readline.set_completer_delims(previous)
        return {"tag": self.tag, "pid": os.getpid(), "backend": self.backend(),
                "history": history, "length": length, "delims": stored}

    def complete(self, completer: Callable[[str, int], str | None], text: str, limit: int = 100) -> list[str]:
        """Install `completer` as readline's completer and collect its candidates for `text`.

        Asks readline for the installed completer and calls it with state 0, 1, ...
        until it returns None, as readline does on Tab. When `completer` lives in
        the caller's process, each call is a callback across the channel.
        """
        previous = readline.get_completer()
        readline.set_completer(completer)
        try:
            installed = readline.get_completer()
            if installed is None:
                raise RuntimeError("readline.get_completer() returned None after set_completer()")
            candidates: list[str] = []
            for state in range(limit):
                candidate = installed(text, state)
                if candidate is None:
                    break
                candidates.append(candidate)
            return candidates
        finally:
            readline.set_completer(previous)
