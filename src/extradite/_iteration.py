"""Iterating a remote iterator a chunk of items per round trip instead of one item each.

    parent                                        child (or whichever side owns the iterator)
    next(it): buffer empty -> OP_NEXT_CHUNK(n) -> next(iterator) up to n times
              buffer <- (items, end)          <- (items, None | True | error record)
    next(it): buffer not empty -> an item, no round trip

`end` says why the chunk stopped short of `n` items: None (it did not: more may come),
True (StopIteration) or the pickled error record of the exception the iterator raised
after the last item, which is raised when the consumer reaches that position.

Which iterators prefetch:

* automatically, the proxies of the other side's builtin iterators over lists, tuples,
  dicts (keys, values, items, also reversed), sets and frozensets, ranges, str, bytes and
  bytearrays, by their exact types (`PREFETCHED`): reading them has no side effect, so
  reading ahead changes nothing but when the container is read (a change made to a list
  or a dict during the loop shows only in items not fetched yet). Chunks start small
  and grow (`FIRST_CHUNK` to `MAX_CHUNK`), so a loop that stops early pays little;
* any remote iterable or iterator the user wraps: `iterate(proxy, chunk=500)`. There the
  remote iterator runs up to `chunk` items ahead of the consumer, side effects included.

Generators and every other iterator are never read ahead unless wrapped: each `next` is
one round trip. A chunk also ends once its items hold about `CHUNK_BYTES` (by
`sys.getsizeof`), so a list of big buffers is not pulled into memory all at once.
Items travel as any result does: by the session's transport policy.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

from ._errors import ExtraditeProtocolError
from ._wire import OP_CALL_METHOD, OP_NEXT_CHUNK

# Builtin iterator types (module "builtins") whose proxies prefetch; 3.11 to 3.13 names.
PREFETCHED = frozenset({
    "list_iterator", "list_reverseiterator", "tuple_iterator",
    "dict_keyiterator", "dict_valueiterator", "dict_itemiterator",
    "dict_reversekeyiterator", "dict_reversevalueiterator", "dict_reverseitemiterator",
    "set_iterator", "range_iterator", "longrange_iterator",
    "str_iterator", "str_ascii_iterator", "bytes_iterator", "bytearray_iterator",
})
FIRST_CHUNK = 16
MAX_CHUNK = 1024
GROWTH = 4
CHUNK_BYTES = 1 << 20


# -- the serving side ----------------------------------------------------------------------
def next_chunk(iterator: Any, count: Any) -> tuple[list[Any], Any]:
    """Up to `count` items of `iterator` and why it stopped short (see the module docstring)."""
    if type(count) is not int or count < 1:
        raise TypeError(f"a chunk's item count must be an int >= 1, not {count!r}")
    from sys import getsizeof

    from ._codec import error_record
    from ._pickling import dump_plain

    items: list[Any] = []
    append = items.append
    size = 0
    try:
        for _ in range(count):
            item = next(iterator)
            append(item)
            try:
                size += getsizeof(item)
            except Exception:  # a broken __sizeof__ is not the iterator's error
                pass
            if size >= CHUNK_BYTES:
                break
    except StopIteration:
        return items, True
    except Exception as exc:
        return items, dump_plain(error_record(exc))
    return items, None


# -- the consuming side --------------------------------------------------------------------
class Chunks:
    """A remote iterator read a chunk at a time: `take()` is the next item.

    The buffer holds the fetched items in reverse order (`pop()` from the end is the
    cheapest take); `end` is the current chunk's reason to stop (None, True or a pickled
    error record), acted on once the buffer is empty.
    """

    __slots__ = ("items", "end", "chunk", "grow")

    def __init__(self, chunk: int, grow: bool) -> None:
        self.items: list[Any] = []
        self.end: Any = None
        self.chunk = chunk
        self.grow = grow

    def refill(self, source: Any) -> Any:
        """The buffer is empty: the next item of `source` from a new chunk, or the end raised.

        `source` (the iterator's proxy) is passed, not kept: a proxy holding its own buffer
        would otherwise be in a reference cycle, released only by the cyclic collector.
        """
        end = self.end
        if end is True:
            raise StopIteration
        if end is not None:  # the error after the last item: raised once, then reading resumes
            self.end = None
            _raise_error(end)
        reply = source._xd_session.call(OP_NEXT_CHUNK, source, args=(self.chunk,))
        if type(reply) is not tuple or len(reply) != 2 or type(reply[0]) is not list \
                or not (reply[1] is None or reply[1] is True or type(reply[1]) is bytes):
            raise ExtraditeProtocolError(
                "corrupt frame: a chunk of a remote iterator is not (list of items, end); the "
                "other side does not speak this protocol")
        items, end = reply
        if self.grow and self.chunk < MAX_CHUNK:
            self.chunk = min(MAX_CHUNK, self.chunk * GROWTH)
        self.end = end
        if not items:
            if end is None:  # a chunk of nothing that is not the end: it would ask forever
                raise ExtraditeProtocolError("corrupt frame: an empty chunk of a remote iterator without its end")
            return self.refill(source)
        items.reverse()
        item = items.pop()
        self.items = items
        return item

    def buffered(self) -> int:
        return len(self.items)


def _raise_error(data: bytes) -> None:
    from ._codec import check_record, raise_record
    from ._pickling import load_plain

    try:
        record = load_plain(data)
        check_record(record)
    except (TypeError, ValueError) as exc:
        raise ExtraditeProtocolError(f"corrupt frame: a remote iterator's error is malformed ({exc})") from None
    raise_record(record)


class ChunkedIterator:
    """What `iterate()` returns: a local iterator over a remote one, `chunk` items per round trip."""

    __slots__ = ("_source", "_chunks", "__weakref__")

    def __init__(self, source: Any, chunk: int) -> None:
        self._source = source
        self._chunks = Chunks(chunk, grow=False)

    def __iter__(self) -> ChunkedIterator:
        return self

    def __next__(self) -> Any:
        chunks = self._chunks
        items = chunks.items
        if items:
            return items.pop()
        return chunks.refill(self._source)

    def __repr__(self) -> str:
        return f"<extradite chunked iterator ({self._chunks.chunk} per round trip) over {self._source!r}>"


def remote_length_hint(proxy: Any, chunks: Chunks | None) -> int:
    """`operator.length_hint` of a prefetching proxy: its buffer plus what the remote side reports."""
    buffered = chunks.buffered() if chunks is not None else 0
    if chunks is not None and chunks.end is True:
        return buffered
    hint = proxy._xd_session.call(OP_CALL_METHOD, proxy, name="__length_hint__")
    return buffered + (hint if type(hint) is int and hint > 0 else 0)


def iterate(proxy: Any, chunk: int = 500) -> Any:
    """Iterate the remote iterable or iterator behind `proxy`, `chunk` items per round trip.

    `for row in iterate(cursor):` is `for row in cursor:` with one round trip per `chunk`
    items instead of one per item. The remote iterator is read ahead of the loop: up to
    `chunk` items are pulled at a time, so its side effects (a generator's code, a
    cursor's fetches) run before the consumer reaches the items. An exception the remote
    iterator raises is raised at the item where it happened, after the items before it.
    Items travel by the session's transport policy, as any result does. A proxy of a
    session whose other side serves no chunks is iterated one item per round trip.
    """
    from ._proxy import RemoteIterator, RemoteObject

    if type(chunk) is not int or chunk < 1:
        raise TypeError(f"iterate() needs chunk= as an int >= 1 (items per round trip), not {chunk!r}")
    if not isinstance(proxy, RemoteObject):
        raise TypeError(
            f"iterate() takes a proxy of a remote iterable or iterator, not a {type(proxy).__qualname__}; "
            "a local object needs no iterate(): loop over it directly")
    cls = type(proxy)
    if not getattr(proxy._xd_session, "reads_ahead", False):  # its other side serves no chunks
        return iter(proxy)
    if hasattr(cls, "__iter__"):
        source = iter(proxy)  # what a for loop over the proxy would iterate (one round trip)
    elif "__next__" in getattr(cls, "_xd_members", ()):
        source = proxy
    else:
        raise TypeError(f"iterate(): the remote {cls.__qualname__} is not iterable (it has no __iter__)")
    if isinstance(source, RemoteIterator):  # a builtin iterator: it prefetches by itself
        source._xd_use_chunk(chunk)
        return source
    return ChunkedIterator(source, chunk)
