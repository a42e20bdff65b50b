"""A target that sends raw requests to the parent through its own session, as a broken or
hostile child could: the parent serves only calls and attribute access on what it lent."""

from __future__ import annotations

from typing import Any

from extradite import _wire


class Asker:
    def ask(self, lent: Any, op: str, target: Any, name: str | None = None, args: tuple[Any, ...] = ()) -> str:
        """Send `op` (a `_wire` name) through the session `lent`, a proxy of a parent object,
        belongs to; what came back, or the error it raised, as text."""
        session = lent._xd_session
        try:
            result = session.call(getattr(_wire, op), lent if target == "lent" else target, name=name, args=args)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return f"served: {result!r}"
