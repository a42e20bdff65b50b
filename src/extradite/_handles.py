"""Handle tables: objects lent to the other side, and proxies for objects borrowed from it.

Reference counting across the channel counts *sends*, not proxies: the owner adds
one to an entry every time it encodes the object; the borrower counts how many
times it decoded that handle and, when its proxy dies, releases exactly that many.
So a release that crosses a new send of the same object never frees it early, and
ids are never reused (a stale id is always an error, never another object).

Releases are queued and ride on the next outgoing frame instead of costing a
round trip each.
"""

from __future__ import annotations

import _thread
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from collections import deque
    from typing import Any
else:  # the same class without `collections` and what it imports (a child's start-up)
    from _collections import deque

from ._errors import ExtraditeProtocolError


class ExportTable:
    """Objects this side owns and the other side holds handles to."""

    def __init__(self) -> None:
        self._entries: dict[int, list[Any]] = {}   # hid -> [obj, count]
        self._by_identity: dict[int, int] = {}     # id(obj) -> hid
        self._next = 1
        self._lock = _thread.allocate_lock()
        self.classes: set[int] = set()             # class hids: kept for the whole session

    def export(self, obj: object) -> tuple[int, bool]:
        """Count one more send of `obj`; return its handle id and whether it is new."""
        with self._lock:
            hid = self._by_identity.get(id(obj))
            if hid is not None:
                self._entries[hid][1] += 1
                return hid, False
            hid = self._next
            self._next += 1
            self._entries[hid] = [obj, 1]
            self._by_identity[id(obj)] = hid
            return hid, True

    def export_class(self, cls: type) -> tuple[int, bool]:
        """The permanent handle id of a class and whether this is its first send.

        Classes are never released during a session: the other side keeps their
        descriptors, and a class's identity must not change while instances live.
        """
        with self._lock:
            hid = self._by_identity.get(id(cls))
            if hid is not None:
                return hid, False
            hid = self._next
            self._next += 1
            self._entries[hid] = [cls, 1]
            self._by_identity[id(cls)] = hid
            self.classes.add(hid)
            return hid, True

    def unexport_class(self, hid: int) -> None:
        """Undo `export_class` of a first send that never left (the encode failed)."""
        with self._lock:
            entry = self._entries.pop(hid, None)
            if entry is not None:
                self._by_identity.pop(id(entry[0]), None)
                self.classes.discard(hid)

    def lookup(self, obj: object) -> int | None:
        """The handle id of `obj` if the other side currently holds one."""
        return self._by_identity.get(id(obj))

    def get(self, hid: int) -> Any:
        entry = self._entries.get(hid)
        if entry is None:
            raise ExtraditeProtocolError(
                f"Unknown or released remote object id {hid}: the object it named is gone from this session; "
                "do not use a proxy after close(), and do not keep raw handle ids")
        return entry[0]

    def release(self, hid: int, count: int) -> None:
        with self._lock:
            entry = self._entries.get(hid)
            if entry is None or hid in self.classes:
                return
            entry[1] -= count
            if entry[1] <= 0:
                del self._entries[hid]
                self._by_identity.pop(id(entry[0]), None)

    def __len__(self) -> int:
        """Number of lent objects, classes not counted."""
        return len(self._entries) - len(self.classes)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_identity.clear()
            self.classes.clear()


class ImportTable:
    """Proxies for the other side's objects: one live proxy per handle id."""

    def __init__(self) -> None:
        self._proxies: dict[int, Any] = {}       # hid -> weakref to proxy
        self._counts: dict[int, int] = {}        # hid -> receipts not yet released
        self.classes: dict[int, Any] = {}        # class hid -> class proxy (kept for the session)
        self.pending: deque[tuple[int, int]] = deque()
        self._lock = _thread.allocate_lock()

    def receipt(self, hid: int) -> Any:
        """Count one decode of `hid`; return its live proxy or None."""
        with self._lock:
            self._counts[hid] = self._counts.get(hid, 0) + 1
            ref = self._proxies.get(hid)
        return ref() if ref is not None else None

    def bind(self, hid: int, ref: Any) -> None:
        self._proxies[hid] = ref

    def forget(self, hid: int, ref: Any = None) -> None:
        """The proxy for `hid` is gone: queue the release of every receipt so far."""
        with self._lock:
            current = self._proxies.get(hid)
            if ref is not None and current is not None and current is not ref:
                return  # a newer proxy took over this id; it carries the counts
            self._proxies.pop(hid, None)
            count = self._counts.pop(hid, 0)
        if count:
            self.pending.append((hid, count))

    def take_releases(self) -> list[tuple[int, int]]:
        pending = self.pending
        out: list[tuple[int, int]] = []
        while pending:
            out.append(pending.popleft())
        return out

    def __len__(self) -> int:
        return len(self._counts)


class Borrowed:
    """Marker base of instance proxies (defined here so the codec can spot them)."""

    __slots__ = ()

    _xd_session: Any
    _xd_hid: int
    _xd_closed: bool


class BorrowedMeta(type):
    """Marker metaclass of class proxies."""


# A class's own namespace and MRO, read past any metaclass: the types standing in the child
# for the parent's classes (`_parent_types`) show other code only the real class's names.
class_dict: Any = type.__dict__["__dict__"].__get__
class_mro: Any = type.__dict__["__mro__"].__get__
