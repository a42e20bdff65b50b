"""The reply body of a plain scalar (FLAG_SCALAR): one tag byte, then the value's bytes.

A call's reply is most often a small scalar. As a pickle, the receiver would need
a restricted unpickler to read it (the other side may be untrusted), and creating
one costs more than the rest of decoding. This format has nothing to execute, so
either side reads it as it is:

    b"N"  None        b"T"  True          b"F"  False
    b"i"  int: signed little-endian two's complement, at least one byte
    b"f"  float: IEEE 754 binary64, little-endian
    b"s"  str: UTF-8 (lone surrogates pass through)
    b"b"  bytes: as they are

`encode` takes exactly the types of `_session._plain` (no subclasses); anything
else in a body is a corrupt frame.
"""

from __future__ import annotations

import _struct as struct  # `struct` imports this and nothing more: one module less per child

from ._errors import ExtraditeProtocolError

TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

_DOUBLE = struct.Struct("<d")
_FIXED = {ord("N"): None, ord("T"): True, ord("F"): False}
_INT, _STR, _BYTES, _FLOAT = ord("i"), ord("s"), ord("b"), ord("f")
_from_bytes = int.from_bytes


def encode(value: Any) -> bytes:
    """The body of `value`, one of None, bool, int, float, str, bytes (exact types)."""
    kind = type(value)
    data: bytes
    if kind is int:
        data = value.to_bytes((value.bit_length() + 8) >> 3, "little", signed=True)
        return b"i" + data
    if kind is str:
        data = value.encode("utf-8", "surrogatepass")
        return b"s" + data
    if value is None:
        return b"N"
    if kind is bool:
        return b"T" if value else b"F"
    if kind is float:
        return b"f" + _DOUBLE.pack(value)
    if kind is bytes:
        data = value
        return b"b" + data
    raise TypeError(f"not a plain scalar: {kind.__qualname__}")


def decode(body: bytes | bytearray) -> object:
    """The value of a body made by `encode`; anything else raises ExtraditeProtocolError."""
    tag = body[0] if body else -1
    if tag == _INT and len(body) > 1:
        return _from_bytes(body[1:], "little", signed=True)
    if tag == _STR:
        try:
            return body[1:].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            pass
    elif tag == _BYTES:
        return bytes(body[1:])
    elif tag == _FLOAT and len(body) == 9:
        return _DOUBLE.unpack_from(body, 1)[0]
    elif len(body) == 1 and tag in _FIXED:
        return _FIXED[tag]
    raise ExtraditeProtocolError(
        f"corrupt frame: a scalar reply of {len(body)} bytes starting {bytes(body[:8])!r} is not "
        "one extradite writes; both sides must run the same extradite")
