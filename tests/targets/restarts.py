"""A target whose construction cannot be repeated: a restart cannot rebuild its instances."""

from __future__ import annotations


class ClaimsFile:
    def __init__(self, path: str) -> None:
        with open(path, "x"):  # a second construction finds the file: FileExistsError
            pass
        self.path = path

    def where(self) -> str:
        return self.path
