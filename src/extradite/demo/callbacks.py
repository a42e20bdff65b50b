"""A class that calls back into its caller and moves bytes both ways."""

from __future__ import annotations

import hashlib
from collections.abc import Callable


class EventBus:
    """Delivers published payloads to subscribed callbacks (which may live in the parent)."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[str, bytes], object]] = []
        self.delivered = 0

    def subscribe(self, callback: Callable[[str, bytes], object]) -> int:
        """Register `callback(topic, payload)`; returns the number of subscribers."""
        self._subscribers.append(callback)
        return len(self._subscribers)

    def publish(self, topic: str, payload: bytes) -> int:
        """Call every subscriber; returns how many were called."""
        for callback in self._subscribers:
            callback(topic, payload)
        self.delivered += len(self._subscribers)
        return len(self._subscribers)

    def transform(self, data: bytes, func: Callable[[bytes], bytes]) -> bytes:
        """Apply `func` (a callback) to `data` and return the result."""
        return func(data)

    def blob(self, size: int, fill: int = 0x61) -> bytes:
        """`size` bytes of `fill` (large sizes exercise the shared-memory path)."""
        return bytes([fill]) * size

    def reverse(self, data: bytes | bytearray | memoryview) -> bytes:
        return bytes(data)[::-1]

    @staticmethod
    def checksum(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()
