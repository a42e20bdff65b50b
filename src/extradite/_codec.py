"""Turn messages into pickle streams and back, deciding value or handle per object.

Encoding uses one of two picklers:

* fast: only `reducer_override`, which the C pickler skips for None, bool, int,
  float, str, bytes, list, tuple, dict, set, frozenset and bytearray. So plain
  data costs nothing extra; every other object is checked (proxy? already lent?
  type rule? protected? defined in `__main__`?).
* general: adds `persistent_id`, called for every object, for reference mode and
  for type rules that match the builtin containers.

If the fast attempt fails because something is unpicklable, the message is
encoded again in careful mode, where every non-builtin object is first test-
pickled on its own and sent as a handle when that fails. Handles lent during a
failed attempt are rolled back.

Handles appear in the stream either as persistent ids or, from `reducer_override`,
as a call of the marker global `extradite._codec._h`; the unpickler's
`find_class` maps that marker to its own resolver, so both load the same way.
On the parent side `find_class` refuses every global from a protected tree.
"""

from __future__ import annotations

import _thread
import sys
from io import BytesIO
import types
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

    from ._pickling import FastPickler as _FastPickler
    from ._pickling import Unpickler as _Unpickler

from ._errors import (
    ExtraditeClosedError,
    ExtraditeError,
    ExtraditeModuleLeakError,
    ExtraditeProcessError,
    ExtraditeProtocolError,
    ExtraditeRemoteError,
    UnsupportedInteractionError,
    remote_error_class,
)
from ._handles import Borrowed, BorrowedMeta, ExportTable, ImportTable, class_dict, class_mro
from ._members import describe_type, is_member_table
from ._bodyfile import BodyWriter, Frame
from ._policy import REFERENCE, SCALAR_TYPES, VALUE, PolicyConfig
from ._targets import loaded_tree
from ._targets import tree_of as _tree_of
from ._wire import FLAG_SHM, PID_CLASS, PID_HOME, PID_OBJECT

PROTOCOL = 5  # also in _pickling, which loads _pickle with the first codec (import extradite stays cheap)


def _h(*pid: Any) -> Any:
    """Marker global for handles encoded by `reducer_override`; never called directly."""
    raise ExtraditeProtocolError("a handle was unpickled outside an extradite session")




def _newobj(cls: type, *args: Any) -> Any:
    """`cls.__new__(cls)`: a pickler writes NEWOBJ for a function of this name (copy calls it)."""
    return cls.__new__(cls, *args)


_newobj.__name__ = _newobj.__qualname__ = "__newobj__"


def _as_is(value: Any) -> Any:
    """Rebuilds a memoryview as the bytes (or bytearray, if writable) it viewed."""
    return value


def _reduce_memoryview(view: memoryview) -> tuple[Any, ...]:
    """Memoryviews cross by value as their contents; big ones through shared memory like bytes."""
    if view.c_contiguous:
        import _pickle

        return (_as_is, (_pickle.PickleBuffer(view),))
    return (_as_is, (view.tobytes(),))


# Bound methods always travel by handle (`len`, a builtin bound to a module, does not).
_BOUND_METHOD_TYPES = (types.MethodType, types.BuiltinMethodType, types.MethodWrapperType)
NoneType = type(None)


def _is_class_proxy(cls: type) -> bool:
    """A class proxy, or the per-call subclass `extradite()` returns (not a user subclass)."""
    namespace = class_dict(cls)  # not `cls.__dict__`: a child's class handle shows only the real class's names
    return "_xd_class_hid" in namespace or "_xd_api" in namespace


def _is_proxy(obj: Any) -> bool:
    """An instance or class proxy of some session (it travels home as a handle)."""
    return isinstance(obj, Borrowed) or (isinstance(obj, BorrowedMeta) and _is_class_proxy(obj))


def _mark_plain(value: Any, pickler: _FastPickler) -> None:
    """Containers inside a persistent id are protocol data, never values to lend."""
    if type(value) is tuple:
        pickler.envelope.add(id(value))
        pickler.keep.append(value)
        for item in value:
            _mark_plain(item, pickler)


class Codec:
    """Encoder and decoder for one session side.

    `session` is the owning `Session` (typed loosely to keep imports pointing down);
    `factory` builds proxies: `factory.make_class(session, hid, descriptor, bases)`
    and `factory.make_instance(session, cls, hid)`.
    """

    def __init__(self, session: Any, factory: Any, *, is_child: bool) -> None:
        self.session = session
        self.factory = factory
        self.is_child = is_child
        self.exports = ExportTable()
        self.imports = ImportTable()
        self.config = PolicyConfig()
        self.protected: tuple[str, ...] = ()
        self.trust: Any = None  # untrusted mode (`_untrusted`): the parent's allow-list and lend rules
        from . import _pickling

        self._pickling = _pickling
        self._picklers = (_pickling.FastPickler, _pickling.RefPickler)
        self._fast: _FastPickler | None = None  # reused by `_encode_fast`
        self.unpickler: type[_Unpickler] = type("_Unpickler", (_pickling.Unpickler,), {"codec": self})

    def home_hid(self, obj: Any) -> int | None:
        """The handle id of `obj` when it is a proxy of this session's other side (it goes home).

        A call on a proxy sends this int instead of pickling the proxy (`EXTRA_TARGET_HID`);
        a closed proxy or one of another session raises as it would when pickled.
        """
        if isinstance(obj, Borrowed) and obj._xd_session is self.session and not obj._xd_closed:
            return obj._xd_hid  # the usual target of a call
        pid = self._borrowed_pid(obj) if _is_proxy(obj) else None
        return pid[1] if pid is not None else None

    # -- encoding --------------------------------------------------------------------
    def encode(self, body: tuple[Any, ...], envelope: tuple[Any, ...] = (), *,
               call_policy: str | None = None, method_policy: str | None = None) -> BodyWriter:
        """Pickle `body`; objects in `envelope` (containers of the message itself) never become handles."""
        general = self.config.needs_persistent_id or REFERENCE in (call_policy, method_policy)
        try:
            return self._encode(body, envelope, call_policy, method_policy, general, careful=False)
        except ExtraditeError:
            raise
        except Exception:  # something refused pickling (any error a __reduce__ may raise): go careful
            return self._encode(body, envelope, call_policy, method_policy, general, careful=True)

    def _encode(self, body: tuple[Any, ...], envelope: tuple[Any, ...], call_policy: str | None,
                method_policy: str | None, general: bool, *, careful: bool) -> BodyWriter:
        if not general and not careful:
            return self._encode_fast(body, call_policy, method_policy)
        writer = BodyWriter()
        pickler = self._picklers[general](writer, self, call_policy, method_policy, careful)
        if general:
            ids = pickler.envelope
            ids.add(id(body))
            for container in envelope:
                ids.add(id(container))
            for release in body[0]:  # (hid, count) pairs of the releases riding on this frame
                ids.add(id(release))
        try:
            pickler.dump(body)
        except BaseException:
            self._roll_back(pickler)
            raise
        return writer

    def _roll_back(self, pickler: _FastPickler) -> None:
        """A failed encode sent nothing: undo the handles and classes it lent."""
        for hid in pickler.exported:
            self.exports.release(hid, 1)
        for hid in pickler.new_classes:
            self.exports.unexport_class(hid)

    def _encode_fast(self, body: tuple[Any, ...], call_policy: str | None,
                     method_policy: str | None) -> BodyWriter:
        """The common case, with one pickler (and its writer) reused for every message.

        Callers hold the channel's send lock and send the writer's contents before the
        next encode, so one pickler per codec is enough; its memo is cleared after every
        message (no object outlives its frame, and no frame refers back to another).
        """
        pickler = self._fast
        if pickler is None:
            pickler = self._fast = self._picklers[0](BodyWriter(), self, call_policy, method_policy, False)
        else:
            pickler.call_policy = call_policy
            pickler.method_policy = method_policy
            pickler.exported.clear()
            pickler.new_classes.clear()
        writer = pickler.writer
        writer.parts = []
        writer.size = 0
        writer.big = []
        try:
            pickler.dump(body)
        except BaseException:
            self._fast = None  # its internal state may be half-way through a frame
            self._roll_back(pickler)
            raise
        finally:
            pickler.clear_memo()
        return writer

    def _borrowed_pid(self, obj: Any) -> tuple[int, int] | None:
        """A proxy going back to its owner; None for an object made here from a class proxy."""
        if isinstance(obj, Borrowed):
            try:
                session, hid = obj._xd_session, obj._xd_hid
            except AttributeError:  # `cls.__new__(cls)` here, not a handle: see `_reduce_made_here`
                return None
        else:
            namespace = next(n for n in map(class_dict, class_mro(obj)) if "_xd_class_hid" in n)
            session, hid = namespace["_xd_class_session"], namespace["_xd_class_hid"]
        if session is not self.session:
            if session.broken is not None and getattr(session, "rebuild", None) is not None:
                raise session.broken.with_traceback(None)  # a proxy a restart did not rebuild (`_restart`)
            raise UnsupportedInteractionError(
                f"{obj!r} belongs to another extradite session; objects from two different "
                "sessions cannot be mixed (use one share_key for classes that must exchange objects)")
        if isinstance(obj, Borrowed) and obj._xd_closed:
            raise ExtraditeClosedError(  # the original's phrase first: users match on it
                f"Unknown or released remote object id {hid}: this {type(obj).__qualname__} proxy was "
                "closed (released); it cannot be used or sent any more")
        return (PID_HOME, hid)

    def _reduce_made_here(self, pickler: _FastPickler, obj: Any) -> Any:
        """An instance of the other side's class made here without a call there.

        C extensions build objects so (pydantic-core: `cls.__new__(cls)`, then it sets
        `__dict__`): the object is plain data here and travels by value, rebuilt over
        there as `cls.__new__(cls)` of the real class with this `__dict__` as its state,
        as pickle rebuilds an object. The class is the receiver's own, so nothing is
        imported there. An instance of a subclass defined here is this side's object: lent.
        """
        cls = type(obj)
        if "_xd_class_hid" not in class_dict(cls):
            return (_h, self._lend(pickler, obj))
        try:
            state = object.__getattribute__(obj, "__dict__")
        except AttributeError:  # a class proxy without instance dicts (the parent's)
            state = None
        return (_newobj, (cls,), state or None)

    def _class_pid(self, pickler: _FastPickler, cls: type) -> tuple[int, Any]:
        hid, first = self.exports.export_class(cls)
        if not first:
            return (hid, None)
        pickler.new_classes.append(hid)
        bases = tuple(self._class_pid(pickler, base) for base in cls.__bases__ if base is not object)
        # The plain part goes pre-pickled, as one bytes object: the pickler would call
        # persistent_id for each of its many names, kinds and tuples.
        plain = self._pickling.dump_plain((
            getattr(cls, "__module__", "builtins") or "builtins",
            cls.__qualname__,
            repr(cls),
            tuple(describe_type(cls).items()),
            isinstance(cls, type) and issubclass(cls, BaseException),
        ))
        return (hid, (plain, bases))

    def _lend(self, pickler: _FastPickler, obj: Any) -> tuple[Any, ...]:
        """Persistent id lending `obj` (or its class) to the other side."""
        if isinstance(obj, type):
            return (PID_CLASS, *self._class_pid(pickler, obj))
        hid, _ = self.exports.export(obj)
        pickler.exported.append(hid)
        return (PID_OBJECT, hid, self._class_pid(pickler, type(obj)))

    def _must_lend(self, pickler: _FastPickler, obj: Any) -> bool:
        """Checks for a non-scalar object that would otherwise be pickled by value.

        A call's explicit `value` policy (its keyword, else its method's default, merged as the
        serving side merges them) wins over what crossed before: an object the other side
        holds, or an instance of a class it holds, is copied when it can be.
        """
        if self.exports.lookup(obj) is not None and (pickler.call_policy or pickler.method_policy) != VALUE:
            return True  # the other side already holds it: keep identity
        cls = type(obj)
        if self.is_child:
            module = obj.__module__ if isinstance(obj, (type, types.FunctionType)) else cls.__module__
            tree = _tree_of(module or "", self.protected) if isinstance(module, str) else None
            if tree is not None:
                # An object that cannot be pickled at all (a closure, an instance of a
                # function-local class, one holding a lock) travels as a handle, which
                # never imports anything in the parent. One that could be copied is
                # refused: a copy would need the protected tree on the parent side.
                import _pickle

                try:
                    _pickle.dumps(obj, PROTOCOL)
                except Exception:
                    return True
                what = obj.__qualname__ if isinstance(obj, type) else cls.__qualname__
                raise UnsupportedInteractionError(
                    f"cannot send a {module}.{what} by value: it belongs to the protected module "
                    f"tree {tree!r}, which must never be imported by the parent; call with "
                    "__extradite_policy__='reference' (or transport_policy='reference') to get a proxy")
        else:
            module = obj.__module__ if isinstance(obj, (type, types.FunctionType)) else cls.__module__
            if module == "__main__":
                return True  # the child cannot import the parent's __main__
        if isinstance(obj, (type, types.FunctionType)) and "<locals>" in obj.__qualname__:
            return True
        if isinstance(obj, _BOUND_METHOD_TYPES) and not isinstance(obj.__self__, (types.ModuleType, NoneType)):
            return True  # a copy would bind to a copy of its object: calls must reach the original
        if not isinstance(obj, type) and ("<locals>" in cls.__qualname__ or (
                cls.__module__ != "builtins" and self.exports.lookup(cls) is not None
                and (pickler.call_policy or pickler.method_policy) != VALUE)):
            # Its class would travel as a handle (its state would be pickled against a
            # class proxy, which cannot hold it): lend the instance too. Builtin types
            # (function, ...) pickle their instances by name, never through the class.
            return True
        if pickler.careful:
            import _pickle

            try:
                _pickle.dumps(obj, PROTOCOL)
            except Exception:
                return True
        return False

    def reduce(self, pickler: _FastPickler, obj: Any) -> Any:
        """`reducer_override`: objects the C pickler does not handle by itself."""
        if _is_proxy(obj):
            pid = self._borrowed_pid(obj)
            return (_h, pid) if pid is not None else self._reduce_made_here(pickler, obj)
        cls = type(obj)
        if cls in SCALAR_TYPES or obj is _h or obj is _as_is:  # _h: the handle marker of this very stream
            return NotImplemented
        if cls is memoryview and REFERENCE not in (pickler.call_policy, pickler.method_policy):
            return _reduce_memoryview(obj)
        policy, _, _ = self.config.resolve(obj, pickler.call_policy, pickler.method_policy)
        if policy == REFERENCE or self._must_lend(pickler, obj):
            return (_h, self._lend(pickler, obj))
        return NotImplemented

    def persistent_id(self, pickler: _FastPickler, obj: Any) -> Any:
        """`persistent_id` of the general pickler: policy for builtin containers too."""
        cls = type(obj)
        if cls in SCALAR_TYPES or id(obj) in pickler.envelope:
            return None
        if _is_proxy(obj):
            return self._borrowed_pid(obj)  # None for an object made here: `reduce` sends it
        policy, _, _ = self.config.resolve(obj, pickler.call_policy, pickler.method_policy)
        if policy == REFERENCE:
            pid = self._lend(pickler, obj)
            _mark_plain(pid, pickler)
            return pid
        return None

    # -- decoding --------------------------------------------------------------------
    def decode(self, frame: Frame) -> Any:
        """Unpickle a frame's body and free its shared memory."""
        if not frame.flags & FLAG_SHM:
            return self.unpickler(BytesIO(frame.body)).load()
        try:
            return self.unpickler(frame.open()).load()
        finally:
            frame.done()

    def check_global(self, module: str, name: str) -> None:
        if self.is_child:
            return
        tree = _tree_of(module, self.protected) or _tree_of(module, protected_everywhere())
        if tree is not None:
            raise ExtraditeModuleLeakError(
                f"the child sent a value that needs {module}.{name} from the protected module tree "
                f"{tree!r}; unpickling it would import that tree here. Ask for a proxy instead "
                "(__extradite_policy__='reference' or transport_policy='reference')")

    def load_marker(self, *pid: Any) -> Any:
        return self.load_pid(pid)

    def load_pid(self, pid: Any) -> Any:
        tag = pid[0]
        if tag == PID_HOME:
            return self.exports.get(pid[1])
        if tag == PID_OBJECT:
            hid = pid[1]
            proxy = self.imports.receipt(hid)
            cls = self._load_class(pid[2])
            if proxy is None:
                proxy = self.factory.make_instance(self.session, cls, hid)
            return proxy
        if tag == PID_CLASS:
            return self._load_class(pid[1:])
        raise ExtraditeProtocolError(f"corrupt frame: unknown handle tag {tag!r}")

    def _load_class(self, class_pid: Any) -> Any:
        hid, descriptor = class_pid
        known = self.imports.classes.get(hid)
        if known is not None:
            return known
        if descriptor is None:
            raise ExtraditeProtocolError(f"corrupt frame: class handle {hid} arrived without its descriptor")
        try:
            plain, base_pids = descriptor
            module, qualname, repr_text, members, is_exception = self._read_descriptor(plain)
        except (TypeError, ValueError) as exc:
            raise ExtraditeProtocolError(f"corrupt frame: the descriptor of class handle {hid} is malformed "
                                         f"({exc})") from None
        bases = tuple(self._load_class(base) for base in base_pids)
        cls = self.factory.make_class(self.session, hid, (module, qualname, repr_text, members, base_pids,
                                                          is_exception), bases)
        self.imports.classes[hid] = cls
        return cls

    def _read_descriptor(self, plain: bytes) -> tuple[str, str, str, tuple[tuple[str, str], ...], bool]:
        """The plain part of a class descriptor (see `_class_pid`), checked: the sender may be hostile."""
        if type(plain) is not bytes:
            raise TypeError(f"{type(plain).__name__}, not bytes")
        module, qualname, repr_text, members, is_exception = self._pickling.load_plain(plain)
        if not (all(type(v) is str for v in (module, qualname, repr_text)) and type(is_exception) is bool
                and is_member_table(members)):
            raise ValueError("its fields do not have the expected types")
        return module, qualname, repr_text, members, is_exception


# -- protected trees of every session in this process ------------------------------------
leaked_tree = loaded_tree  # the after-start check before every call (`Session.call`)
_PROTECTED: dict[str, int] = {}


def protected_everywhere() -> tuple[str, ...]:
    return tuple(_PROTECTED)


def protect(tree: str) -> None:
    _PROTECTED[tree] = _PROTECTED.get(tree, 0) + 1


def unprotect(tree: str) -> None:
    left = _PROTECTED.get(tree, 0) - 1
    if left > 0:
        _PROTECTED[tree] = left
    else:
        _PROTECTED.pop(tree, None)


# -- errors across the channel -----------------------------------------------------------
_LOCAL_KINDS: dict[str, type[ExtraditeError]] = {
    "protocol": ExtraditeProtocolError,
    "closed": ExtraditeClosedError,
    "leak": ExtraditeModuleLeakError,
    "unsupported": UnsupportedInteractionError,
}


class RemoteTraceback(Exception):
    """Carries the other side's traceback text as the `__cause__` of a remote error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n" + self.text.rstrip()


def _scalar_args(args: tuple[Any, ...]) -> bool:
    return all(type(a) in SCALAR_TYPES or (type(a) is tuple and _scalar_args(a)) for a in args)


def _builtin_base(cls: type) -> str | None:
    if issubclass(cls, BaseExceptionGroup):
        return None  # a group cannot be rebuilt from scalar args: its members travel apart
    for klass in cls.__mro__:
        if klass.__module__ == "builtins" and issubclass(klass, Exception) and klass is not Exception:
            return klass.__name__
    return None


_MAX_GROUP_MEMBERS = 1000  # sub-exceptions of one group that travel (the rest are in its traceback text)


def error_record(exc: BaseException, batch_index: int | None = None) -> tuple[Any, ...]:
    """A plain-data description of `exc` that any side can raise again.

    (kind, type_id, message, traceback text, builtin base name, scalar args, batch index),
    plus, for an exception group, the records of its sub-exceptions.
    """
    if isinstance(exc, ExtraditeRemoteError):  # passing through (a callback's error, say)
        kind, message = "remote", exc.remote_message
        type_id = (exc.remote_type_module, exc.remote_type_qualname, exc.remote_type_name)
    else:
        kind = "remote"
        for name, local in _LOCAL_KINDS.items():
            if isinstance(exc, local) and not isinstance(exc, ExtraditeProcessError):
                kind = name
        cls = type(exc)
        type_id = (str(getattr(cls, "__module__", None) or "builtins"), cls.__qualname__, cls.__name__)
        try:
            message = str(exc)
        except Exception as inner:  # a broken __str__ must not lose the error
            message = f"<str() failed: {inner!r}>"
    if isinstance(exc, (StopIteration, StopAsyncIteration)):
        tb_text = ""
    else:
        import traceback  # lazily: only failing calls pay for it

        try:
            tb_text = "".join(traceback.format_exception(exc))
        except Exception as inner:
            tb_text = f"<the traceback could not be formatted: {inner!r}>"
    args = exc.args if _scalar_args(exc.args) else ()
    record: tuple[Any, ...] = (kind, type_id, message, tb_text, _builtin_base(type(exc)), args, batch_index)
    members = getattr(exc, "exceptions", None)
    if isinstance(exc, BaseExceptionGroup) and type(members) is tuple:
        record += (tuple(error_record(member) for member in members[:_MAX_GROUP_MEMBERS]
                         if isinstance(member, BaseException)),)
    return record


_RECORD_KINDS = frozenset(("remote", *_LOCAL_KINDS))


def check_record(record: Any, depth: int = 0) -> None:
    """Refuse an error record of the wrong shape (TypeError/ValueError saying what is wrong).

    The other side may be hostile: `raise_record` must only ever see what `error_record` makes.
    """
    if type(record) is not tuple or len(record) not in (7, 8):
        raise TypeError(f"an error record is a 7- or 8-tuple, not {_shape(record)}")
    kind, type_id, message, tb_text, builtin_name, args, batch_index = record[:7]
    if kind not in _RECORD_KINDS:
        raise ValueError(f"unknown error kind {kind!r}")
    if type(type_id) is not tuple or len(type_id) != 3 or not all(type(v) is str for v in type_id):
        raise TypeError(f"an error's type is 3 str, not {_shape(type_id)}")
    if type(message) is not str or type(tb_text) is not str:
        raise TypeError("an error's message and traceback must be str")
    if builtin_name is not None and type(builtin_name) is not str:
        raise TypeError(f"an error's builtin base must be a str or None, not {_shape(builtin_name)}")
    if type(args) is not tuple or not _scalar_args(args):
        raise TypeError("an error's args must be a tuple of scalars")
    if batch_index is not None and type(batch_index) is not int:
        raise TypeError("an error's batch index must be an int or None")
    if len(record) == 8:
        members = record[7]
        if type(members) is not tuple or len(members) > _MAX_GROUP_MEMBERS or depth > 32:
            raise TypeError("an exception group's members must be a bounded tuple of error records")
        for member in members:
            check_record(member, depth + 1)


def check_request(body: tuple[Any, ...]) -> None:
    """Refuse a request body of the wrong shape (see `_wire`): TypeError saying what is wrong."""
    if len(body) != 8:
        raise TypeError(f"a request body has 8 items, not {len(body)}")
    _, op, _, name, args, kwargs, policy, extra = body
    if type(op) is not int or type(extra) is not int:
        raise TypeError("a request's op and flags must be ints")
    if name is not None and type(name) is not str:
        raise TypeError(f"a request's name must be a str or None, not {_shape(name)}")
    if type(args) is not tuple or type(kwargs) is not dict or not all(type(k) is str for k in kwargs):
        raise TypeError("a request's args must be a tuple and its kwargs a dict with str keys")
    if policy is not None and type(policy) is not str:
        raise TypeError(f"a request's policy must be a str or None, not {_shape(policy)}")


def _shape(value: Any) -> str:
    cls = type(value)
    return f"a {cls.__name__} of {len(value)}" if cls is tuple else f"a {cls.__name__}"


def raise_record(record: tuple[Any, ...]) -> None:
    """Raise what `error_record` described; `type_id` is the original's (module, qualname, name)."""
    exc = build_error(record)
    cause = exc.__cause__
    if cause is not None:
        raise exc from cause
    raise exc


def build_error(record: tuple[Any, ...]) -> BaseException:
    """The exception `error_record` described (with the remote traceback as its cause)."""
    kind, type_id, message, tb_text, builtin_name, args, batch_index = record[:7]
    where = f" (batch item {batch_index})" if batch_index is not None else ""
    local = _LOCAL_KINDS.get(kind)
    if local is not None:
        return local(message + where)
    cls = remote_error_class(builtin_name)
    try:
        exc = cls.__new__(cls, *args)
    except Exception:
        args = ()
        exc = cls.__new__(cls)
    base = cls.__bases__[1] if cls is not ExtraditeRemoteError else None
    if base is not None:
        try:
            base.__init__(exc, *args)  # type: ignore[misc]
        except Exception:
            pass
    module, qualname, name = type_id
    ExtraditeRemoteError.__init__(exc, name, message + where, tb_text,
                                  remote_type_module=module, remote_type_qualname=qualname)
    exc.args = tuple(args) if args else (message + where,)
    exc.batch_index = batch_index  # type: ignore[attr-defined]
    if len(record) == 8:  # an exception group: its members, each a remote error of its own
        exc.exceptions = tuple(build_error(member) for member in record[7])  # type: ignore[attr-defined]
    if tb_text:
        exc.__cause__ = RemoteTraceback(tb_text)
    return exc
