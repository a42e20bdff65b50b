"""Objects that misbehave while being pickled or unpickled (importable on both sides, not protected)."""

from __future__ import annotations

import os
from typing import Any


def explode(stage: str) -> Any:
    raise RuntimeError(f"exploded while unpickling ({stage})")


class ExplodesOnUnpickle:
    def __reduce__(self) -> Any:
        return (explode, ("unpickle",))


class ExitsOnUnpickle:
    def __reduce__(self) -> Any:
        return (os._exit, (9,))


class ExplodesOnPickle:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle me")


class ExitsOnPickle:
    def __reduce__(self) -> Any:
        os._exit(8)
