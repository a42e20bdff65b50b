"""A frame's body as the pickler's and the unpickler's file; big buffers go out of band.

    send:  pickler --write--> BodyWriter: small writes kept inline (`parts`), buffers of at
           least THRESHOLD bytes set aside (`big`, with their inline offsets) for `_shm`
    recv:  Frame.open() --> BytesIO over the body, or a BodyReader that splices the
           shared-memory chunks back in at their offsets --read/readinto--> unpickler
"""

from __future__ import annotations

import io
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

from ._shm import THRESHOLD, ArenaMaps
from ._wire import FLAG_SHM


class BodyWriter:
    """File object for a pickler: small writes are kept inline, big buffers set aside."""

    __slots__ = ("parts", "size", "big")

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.size = 0
        self.big: list[tuple[int, memoryview]] = []

    def write(self, data: Any) -> int:
        if type(data) is bytes:
            n = len(data)
            if n < THRESHOLD:
                self.parts.append(data)
                self.size += n
                return n
        view = memoryview(data).cast("B")
        n = view.nbytes
        if n >= THRESHOLD:
            self.big.append((self.size, view))
        else:
            self.parts.append(view)
            self.size += n
        return n


class BodyReader:
    """File object for an unpickler: the inline bytes with shared-memory chunks spliced in.

    A chunk written at inline offset `pos` (see `BodyWriter.write`) is read between
    `inline[:pos]` and `inline[pos:]`. The unpickler reads a frame's opcodes with a few
    small `read`s and a big bytes payload with one `readinto` of exactly its length, so
    both have a fast path; anything else (a pickle frame that went to shared memory,
    a read that spans a chunk boundary) takes the general `_take`.
    """

    __slots__ = ("_inline", "_segments", "_index", "_off", "_limit", "_chunk", "_chunk_off")

    def __init__(self, inline: bytes, segments: list[tuple[int, memoryview, int]]) -> None:
        self._inline = inline
        self._segments = segments
        self._index = -1
        self._off = 0          # read position in `inline`
        self._limit = 0        # where the pending chunk splices in (len(inline): none left)
        self._chunk: memoryview | None = None
        self._chunk_off = 0    # bytes of the pending chunk already read
        self._next_chunk()

    def _next_chunk(self) -> None:
        self._index += 1
        self._chunk_off = 0
        if self._index < len(self._segments):
            _, self._chunk, self._limit = self._segments[self._index]
        else:
            self._chunk, self._limit = None, len(self._inline)

    def read(self, size: int | None = -1) -> bytes:
        off = self._off
        if size is not None and size >= 0 and off + size <= self._limit:  # inside the inline run
            self._off = off + size
            return self._inline[off:off + size]
        out = bytearray()
        want = -1 if size is None or size < 0 else size
        while want:
            chunk = self._take(want)
            if not chunk:
                break
            out += chunk
            if want > 0:
                want -= len(chunk)
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        chunk = self._chunk
        if chunk is not None and self._off == self._limit and not self._chunk_off \
                and len(buffer) == len(chunk):  # exactly one whole chunk (a bytes payload)
            buffer[:] = chunk
            self._next_chunk()
            return len(chunk)
        dest = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(dest):
            part = self._take(len(dest) - filled)
            if not part:
                break
            dest[filled:filled + len(part)] = part
            filled += len(part)
        return filled

    def _take(self, want: int) -> bytes | memoryview:
        """Up to `want` bytes (all of the current run if -1) from the read position, consumed."""
        off = self._off
        if off < self._limit:
            end = self._limit if want < 0 else min(self._limit, off + want)
            self._off = end
            return self._inline[off:end]
        chunk = self._chunk
        if chunk is None:
            return b""
        start = self._chunk_off
        end = len(chunk) if want < 0 else min(len(chunk), start + want)
        self._chunk_off = end
        if end == len(chunk):
            self._next_chunk()
        return chunk[start:end]

    def readline(self, size: int | None = -1) -> bytes:
        out = bytearray()
        while True:
            chunk = self.read(1)
            out += chunk
            if not chunk or chunk == b"\n" or (size is not None and 0 <= size <= len(out)):
                return bytes(out)


class Frame:
    """One received frame; `open()` gives the unpickler's file, `done()` frees its arenas."""

    __slots__ = ("kind", "flags", "request_id", "chain", "body", "fds", "_segments", "_maps")

    def __init__(self, kind: int, flags: int, request_id: int, chain: int,
                 body: bytes | bytearray, fds: list[int], maps: ArenaMaps) -> None:
        self.kind = kind
        self.flags = flags
        self.request_id = request_id
        self.chain = chain
        self.body = body
        self.fds = fds
        self._segments: list[tuple[int, memoryview, int]] = []
        self._maps = maps

    def open(self) -> Any:
        if not self.flags & FLAG_SHM:
            return io.BytesIO(self.body)  # a bytes body is shared until written to: no copy
        segments, table_len = self._maps.parse(self.body, self.fds)
        self._segments = segments
        return BodyReader(bytes(memoryview(self.body)[table_len:]), segments)

    def done(self) -> None:
        if self._segments:
            self._maps.consumed(self._segments)
            self._segments = []

