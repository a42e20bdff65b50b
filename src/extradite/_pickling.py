"""The pickler and unpickler classes of `_codec`, apart so that `_pickle` loads with the first session.

`import extradite` must stay cheap, and `_pickle` with its `_compat_pickle` is a
noticeable part of an import: `Codec.__init__` imports this module.
The classes only forward to their codec: see `_codec` for what they decide.
"""

from __future__ import annotations

import _pickle
from io import BytesIO
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

    from ._codec import Codec
    from ._bodyfile import BodyWriter

PROTOCOL = 5
_MARKER = ("extradite._codec", "_h")  # the handle marker global: see `_codec._h`


class FastPickler(_pickle.Pickler):
    def __init__(self, file: BodyWriter, codec: Codec, call_policy: str | None,
                 method_policy: str | None, careful: bool) -> None:
        super().__init__(file, PROTOCOL)
        self.writer = file
        self.codec = codec
        self.call_policy = call_policy
        self.method_policy = method_policy
        self.careful = careful
        self.envelope: set[int] = set()
        self.keep: list[Any] = []   # pid tuples stay alive so their ids stay in `envelope`
        self.exported: list[int] = []
        self.new_classes: list[int] = []

    def reducer_override(self, obj: Any) -> Any:
        return self.codec.reduce(self, obj)


class RefPickler(FastPickler):
    def persistent_id(self, obj: Any) -> Any:
        return self.codec.persistent_id(self, obj)


class Unpickler(_pickle.Unpickler):
    """The restricted unpickler. Each codec makes a subclass carrying itself as `codec`,
    so creating one per frame runs no Python `__init__` (it is on every call's path)."""

    codec: Codec

    def persistent_load(self, pid: Any) -> Any:
        return self.codec.load_pid(pid)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _MARKER:
            return self.codec.load_marker
        self.codec.check_global(module, name)
        return super().find_class(module, name)


class _PlainUnpickler(_pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise ValueError(f"plain data names a global ({module}.{name})")


def dump_plain(value: Any) -> bytes:
    """Builtin scalars and tuples pickled apart from a message (see `Codec._class_pid`)."""
    return _pickle.dumps(value, PROTOCOL)


def load_plain(data: bytes) -> Any:
    """`dump_plain`'s value from another process, which may be hostile: no global is loaded."""
    try:
        return _PlainUnpickler(BytesIO(data)).load()
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"plain data does not unpickle: {exc!r}") from None
