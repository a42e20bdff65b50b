"""The Ray actor of the Ray backend (`_ray`): one target object, served to each driver session.

An actor never raises to Ray (Ray would pickle the exception, whose type may live in the
protected tree): failures travel as error records.
"""

from __future__ import annotations

import sys
from io import BytesIO
from typing import Any

from ._codec import Codec, error_record
from ._dispatch import TABLE, BatchFailure, import_attribute
from ._errors import UnsupportedInteractionError
from ._policy import REFERENCE, PolicyConfig
from ._wire import (
    EXTRA_RESULT_BY_REF,
    EXTRA_TARGET_HID,
    OP_BATCH,
    OP_CALL,
    OP_CALL_METHOD,
    OP_DELATTR,
    OP_GETATTR,
    OP_IMPORT,
    OP_NEXT_CHUNK,
    OP_SETATTR,
    OP_STATS,
)

_LOCAL_OPS = frozenset((OP_CALL, OP_CALL_METHOD, OP_GETATTR, OP_SETATTR, OP_DELATTR, OP_BATCH, OP_NEXT_CHUNK))

__all__ = ["RayHost", "LIMIT", "ROOT_HID", "CONNECTION", "ray_arguments", "body_reader"]

ROOT_HID = 1  # an actor lends its root object (class or instance) first, in every life
CONNECTION = 16  # bytes of a connection id (a driver session's handle table in an actor)


class _NoParentHandles:
    """The actor's proxy factory: a driver object never arrives by reference (the driver refuses to
    lend), so one that does is refused here too."""

    @staticmethod
    def make_class(*args: Any) -> Any:
        raise UnsupportedInteractionError(LIMIT)

    make_instance = make_class


LIMIT = ("a Ray actor cannot call back into the driver, so driver objects cannot cross by reference "
          "(callbacks, local classes, non-picklable values, transport_policy='reference' for arguments)")


def ray_arguments(writer: Any) -> tuple[bytes, list[int], list[Any]]:
    """A `BodyWriter` as Ray arguments: inline bytes, and big buffers out of band with their positions."""
    from pickle import PickleBuffer

    inline = b"".join(writer.parts)
    return inline, [pos for pos, _ in writer.big], [PickleBuffer(view) for _, view in writer.big]


def body_reader(inline: bytes, positions: list[int], buffers: list[Any]) -> Any:
    if not buffers:
        return BytesIO(inline)
    from ._bodyfile import BodyReader

    return BodyReader(inline, [(0, memoryview(buf).cast("B"), pos) for pos, buf in zip(positions, buffers)])


class RayHost:
    """The Ray actor (wrapped by `ray.remote` on first use): one target object, one handle table per driver.

    Constructed with the target, the driver's `sys.path` (appended: the worker's own
    paths win), the policy configuration, the protected trees and, for an instance,
    the encoded constructor arguments. Ray replays exactly this when it restarts the
    actor, so a restarted actor holds a fresh instance.

    Each driver session (`RaySession`) is a connection with its own codec, so two
    drivers attached to one named actor each get class descriptors and handle ids of
    their own. The root object is handle `ROOT_HID` of every connection. A request
    of a connection this actor does not know comes from before a restart: its codec is
    made with the root already lent and other ids where no earlier life can have put them.
    """

    def __init__(self, module: str, qualname: str, paths: list[str], policy: tuple[str, list[Any]],
                 protect: tuple[str, ...], construct: tuple[bytes, list[int], list[Any]] | None) -> None:
        self.adopts_generated = False
        self._protected = tuple(dict.fromkeys((module, *protect)))
        self._config = PolicyConfig()
        self._codecs: dict[bytes, Codec] = {}
        self._loop: Any = None
        self._failure: tuple[Any, ...] | None = None
        self._root: Any = None
        try:
            for path in paths:
                if path not in sys.path:
                    sys.path.append(path)
            default, rules = policy
            self._config = PolicyConfig(default, dict(rules))
            obj = import_attribute(module, qualname)  # "": the module itself (import_isolated)
            if construct is not None:
                if not isinstance(obj, type):
                    raise TypeError(f"{module}:{qualname} is a {type(obj).__qualname__}, not a class; "
                                    "extradite() takes classes")
                _, args, kwargs = self._codec(b"", fresh=True).unpickler(body_reader(*construct)).load()
                obj = obj(*args, **kwargs)
            self._root = obj
        except Exception as exc:  # raised at the first call, as a remote error (see the module docstring)
            self._failure = error_record(exc)

    def _codec(self, connection: bytes, *, fresh: bool) -> Codec:
        codec = self._codecs.get(connection)
        if codec is not None:
            return codec
        codec = Codec(self, _NoParentHandles, is_child=True)
        codec.config = self._config
        codec.protected = self._protected
        root, exports = self._root, codec.exports
        if root is not None and not isinstance(root, type):
            exports.export(root)  # ROOT_HID; `hello` sends it, and its class first
        if not fresh:
            import secrets

            if isinstance(root, type):
                exports.export_class(root)  # ROOT_HID, which the driver holds already
            exports._next = secrets.randbits(48) << 8
        if connection:
            self._codecs[connection] = codec
        return codec

    def hello(self, connection: bytes) -> bytes | tuple[Any, ...]:
        """A new connection: the root object by reference (its class descriptor rides along)."""
        if self._failure is not None:
            return ("error", self._failure)
        self._codecs.pop(connection, None)
        return self._reply(self._codec(connection, fresh=True), self._root, REFERENCE, ())

    def serve(self, message: bytes, positions: list[int] | None = None,
              buffers: list[Any] | None = None) -> bytes | tuple[Any, ...]:
        """One request, as a local child's session serves it; never raises.

        `message`: the connection id (`CONNECTION` bytes), then the request's inline bytes;
        big buffers come apart. The reply: the result's bytes alone when it has no big
        buffers, else ("ok", inline, positions, buffers), or ("error", error record).
        One argument and a bytes reply where possible: Ray's cost grows with their number.
        """
        try:
            if self._failure is not None:
                return ("error", self._failure)
            connection, inline = message[:CONNECTION], message[CONNECTION:]
            codec = self._codec(connection, fresh=False)
            releases, op, target, name, args, kwargs, policy, extra = \
                codec.unpickler(body_reader(inline, positions or [], buffers or [])).load()
            exports = codec.exports
            for hid, count in releases:
                exports.release(hid, count)
            if extra & EXTRA_TARGET_HID:
                target = exports.get(target)
            result = self._execute(codec, op, target, name, args, kwargs, extra)
            if extra & EXTRA_RESULT_BY_REF or op == OP_IMPORT:
                policy = REFERENCE
            if op == OP_IMPORT:
                from ._dispatch import _verdict_envelope

                envelope = _verdict_envelope(result)
            elif op == OP_NEXT_CHUNK:  # (items, end) and the item list travel as containers
                envelope = (result, result[0])
            else:
                envelope = (result,) if op == OP_BATCH else ()
            return self._reply(codec, result, policy, envelope)
        except BatchFailure as failure:
            return ("error", error_record(failure.error, failure.index))
        except Exception as exc:
            return ("error", error_record(exc))

    def release(self, connection: bytes, releases: list[tuple[int, int]]) -> None:
        """Handle releases the driver sends on their own (`RaySession.flush_releases`)."""
        codec = self._codecs.get(connection)
        if codec is not None:
            for hid, count in releases:
                if hid != ROOT_HID:
                    codec.exports.release(hid, count)

    def ping(self) -> None:
        """Nothing: the driver waits for a restarting actor with it (idempotent, so retried)."""

    def bye(self, connection: bytes) -> None:
        """A driver session detached: its handles go."""
        self._codecs.pop(connection, None)

    def _reply(self, codec: Codec, result: Any, policy: str | None,
               envelope: tuple[Any, ...]) -> bytes | tuple[Any, ...]:
        releases: list[Any] = []
        try:
            writer = codec.encode((releases, result), (releases, *envelope), call_policy=policy)
        except Exception as exc:
            return ("error", error_record(exc))
        if not writer.big:
            return b"".join(writer.parts)
        return ("ok", *ray_arguments(writer))

    def _execute(self, codec: Codec, op: int, target: Any, name: str | None, args: tuple[Any, ...],
                 kwargs: dict[str, Any], extra: int) -> Any:
        if op in _LOCAL_OPS:  # the local child's handlers: of a session they use only `run_awaitable`
            return TABLE[op].handler(self, target, name, args, kwargs, extra)  # type: ignore[arg-type]
        if op == OP_STATS:
            return {"exports": len(codec.exports), "classes": len(codec.exports.classes)}
        if op == OP_IMPORT:
            return self._import(codec, target, name, args)
        raise UnsupportedInteractionError(f"operation {op} is not served by a Ray actor")

    def _import(self, codec: Codec, module: str, name: str | None, args: tuple[Any, ...]) -> tuple[Any, Any]:
        """The local child's OP_IMPORT (`_dispatch.op_import`): (the object, a generated proxy's verdict)."""
        from ._members import check_members

        if args and args[0] not in self._protected:
            self._protected = (*self._protected, args[0])
            for known in self._codecs.values():
                known.protected = self._protected
            codec.protected = self._protected
        obj = import_attribute(module, name)
        return (obj, check_members(obj, args[1], args[2]) if len(args) == 3 else None)

    def run_awaitable(self, value: Any) -> Any:
        if not hasattr(value, "__await__"):
            return value
        import asyncio

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(value)
