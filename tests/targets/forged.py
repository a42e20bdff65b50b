"""Targets whose child forges the signature data a generated proxy checks when it binds.

Importing this module (in the child) replaces `extradite._members.signature_data`, as a
broken or hostile child could: each class says what its child sends instead.
"""

from __future__ import annotations

import marshal

import extradite._members as _members


def _forged(cls: type, raw: object = None) -> bytes:
    return getattr(cls, "FORGED", b"")


_members.signature_data = _forged


class Truncated:
    FORGED = b"[\x05\x00\x00\x00(\x02\x00\x00\x00u\x03\x00\x00\x00abc"


class HugeLength:
    FORGED = b"[\xff\xff\xff\x7f"


class UnknownCode:
    FORGED = b"[\x01\x00\x00\x00c"  # marshal's code object


class WrongShape:
    FORGED = marshal.dumps([("name", (1, 2, 3))], 2)


class NotBytes:
    FORGED = "a str where bytes belong"
