"""`untrusted=True`: nothing the child sends runs code in the parent, and what the parent
lends shows the child only a safe surface.

Used only by sessions in that mode (the default mode never imports this module):

* `Trust` (parent): the allow-list of globals its unpickler loads. A reviewed set of
  standard value types, numpy arrays, dtypes and scalars (numpy's reconstruct functions
  by exact name, `_reconstruct` only for a plain `ndarray`), the user's `trusted_types`,
  and the types of instances the parent itself sent by value in this session. Every
  other global (functions, builtins such as `exec`, `getattr` or `__import__`, other
  classes) is refused with `ExtraditeProtocolError`; `copyreg._reconstructor` is never
  loaded (protocol 5 picklers do not emit it).
* `UntrustedUnpickler`: a handle in a frame loads as an inert `Slot`, replaced by the
  real object only once the whole frame is loaded. So pickle opcodes that act on the
  object below them (BUILD's `__setstate__` or `__dict__` writes, APPEND, SETITEM, a
  REDUCE calling it) never reach a lent object or a proxy: they fail on the slot.
* `guarded_ops`: the parent serves the child's calls on lent objects only for public
  names, the data dunders (`DATA_DUNDERS`) and names the user allows per type
  (`lend_attributes=`); never frames, code, modules or other private names.
* `ChildTrust` (child): sends by value only what the parent will load; everything else
  becomes a handle, so an honest target keeps working (values become proxies).
"""

from __future__ import annotations

import _pickle
import sys
import types
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, Callable

    from ._codec import Codec
    from ._dispatch import Handler, Op
    from ._session import Session

from ._errors import ExtraditeProtocolError, UnsupportedInteractionError
from ._pickling import Unpickler
from ._wire import PID_HOME

_MARKER = ("extradite._codec", "_h")
_AS_IS = ("extradite._codec", "_as_is")

# -- the allow-list ---------------------------------------------------------------------------
_BUILTIN_VALUES = ("int", "float", "complex", "str", "bytes", "bytearray", "bool", "list", "tuple",
                   "dict", "set", "frozenset", "range", "slice", "Ellipsis", "NotImplemented")


def _standard_objects() -> list[Any]:
    """The reviewed standard value types: constructing one from any data runs no user code."""
    import collections
    import datetime
    import decimal
    import fractions
    import pathlib
    import uuid

    return [datetime.date, datetime.time, datetime.datetime, datetime.timedelta, datetime.timezone,
            decimal.Decimal, fractions.Fraction, uuid.UUID, collections.OrderedDict, collections.deque,
            collections.Counter, pathlib.PurePath, pathlib.PurePosixPath, pathlib.PureWindowsPath]


def _safe_factories() -> frozenset[Any]:
    """`defaultdict` default factories that build an empty value and nothing else."""
    import collections

    return frozenset({None, list, dict, set, frozenset, tuple, int, float, complex, str, bytes, bytearray,
                      bool, collections.OrderedDict, collections.deque, collections.Counter})


def _checked_defaultdict(factory: Any = None, *args: Any) -> Any:
    """`collections.defaultdict` as the unpickler builds it: only with a safe default factory."""
    import collections

    if factory not in _safe_factories():
        raise ExtraditeProtocolError(
            f"untrusted mode refused a defaultdict whose default_factory is {factory!r}: only builtin "
            "value types may be a factory (a factory runs here whenever a key is missing)")
    return collections.defaultdict(factory, *args)


# numpy, loaded by exact name; the child's numpy may be 1.x (numpy.core) or 2.x (numpy._core).
_NUMPY_NAMES = (("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"))


def _numpy_objects() -> dict[tuple[str, str], Any]:
    """The objects `_NUMPY_NAMES` stand for, from this process's numpy (imported now)."""
    import numpy

    reconstruct: Any = numpy.ndarray((0,)).__reduce__()[0]
    scalar: Any = numpy.float64(0).__reduce__()[0]
    frombuffer: Any = numpy.arange(2).__reduce_ex__(5)[0]
    ndarray = numpy.ndarray

    def checked_reconstruct(subtype: Any, *args: Any) -> Any:
        if subtype is not ndarray:  # a subclass's __array_finalize__ would run on the child's data
            raise ExtraditeProtocolError(f"untrusted mode rebuilds only numpy.ndarray arrays, not {subtype!r}")
        return reconstruct(subtype, *args)

    found: dict[tuple[str, str], Any] = {("numpy", "ndarray"): ndarray, ("numpy", "dtype"): numpy.dtype}
    for module in ("numpy.core", "numpy._core"):
        found[(f"{module}.multiarray", "_reconstruct")] = checked_reconstruct
        found[(f"{module}.multiarray", "scalar")] = scalar
        found[(f"{module}.numeric", "_frombuffer")] = frombuffer
    return found


def _numpy_importable() -> bool:
    if "numpy" in sys.modules:
        return True
    from importlib.util import find_spec

    try:
        return find_spec("numpy") is not None
    except (ImportError, ValueError):
        return False


def name_of(obj: Any) -> tuple[str, str]:
    return (str(getattr(obj, "__module__", None) or "builtins"), str(getattr(obj, "__qualname__", "")))


_NOT_SENT = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType,
             types.MethodWrapperType, types.WrapperDescriptorType, types.MethodDescriptorType)
_LAZY = object()  # an allow-list entry resolved on first use (numpy: imported only when an array comes)


class Trust:
    """The parent's side of one untrusted session: what its unpickler loads, what it lends."""

    __slots__ = ("names", "lend_attributes")

    def __init__(self, trusted_types: tuple[type, ...], lend_attributes: Mapping[type, frozenset[str]]) -> None:
        import builtins
        import collections

        names: dict[tuple[str, str], Any] = {("builtins", n): getattr(builtins, n) for n in _BUILTIN_VALUES}
        for obj in _standard_objects():
            names[name_of(obj)] = obj
        names[name_of(collections.defaultdict)] = _checked_defaultdict
        if _numpy_importable():
            names.update(dict.fromkeys(_NUMPY_NAMES, _LAZY))
        for cls in trusted_types:
            names[name_of(cls)] = cls
        self.names = names
        self.lend_attributes = lend_attributes

    def wire(self) -> tuple[tuple[str, str], ...]:
        """The names the child may send by value (it is told them when the session starts)."""
        return tuple(self.names)

    def load(self, module: str, name: str) -> Any:
        """`find_class` of the parent: an allow-listed object, never an import of the child's choosing."""
        found = self.names.get((module, name))
        if found is _LAZY:
            self.names.update(_numpy_objects())
            found = self.names[(module, name)]
        if found is None:
            raise ExtraditeProtocolError(
                f"untrusted mode refused to load {module}.{name}: the child sent a value that needs it, "
                "and only allow-listed value types are loaded from an untrusted child (a function or "
                "any other class could run code here). If it is a plain value type you trust, pass it "
                "in trusted_types=")
        return found

    def record_sent(self, obj: Any) -> None:
        """The parent sent `obj` by value: the child may send instances of its type back.

        Not for functions, classes, modules or any callable instance (a `functools.partial`, an
        `operator.attrgetter`): loading those would let the child choose what runs here.
        """
        cls = type(obj)
        if not issubclass(cls, _NOT_SENT) and not callable(obj):
            self.names.setdefault(name_of(cls), cls)


# -- loading handles ------------------------------------------------------------------------------
class Slot:
    """Stands in for a handle while a frame loads: no opcode can act on it (see the module docstring)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise ExtraditeProtocolError("a frame from the untrusted child tried to set an attribute of a handle")

    def __setstate__(self, state: Any) -> None:
        raise ExtraditeProtocolError("a frame from the untrusted child tried to set the state of a handle")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ExtraditeProtocolError("a frame from the untrusted child tried to call a handle while it loads")

    def __reduce__(self) -> Any:
        raise ExtraditeProtocolError("a handle slot of the untrusted mode escaped its frame")


class UntrustedUnpickler(Unpickler):
    """The parent's unpickler in untrusted mode (each codec makes a subclass with `codec` set)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _MARKER:
            return self._load_marker
        if (module, name) == _AS_IS:
            from ._codec import _as_is

            return _as_is
        self.codec.check_global(module, name)
        return self.codec.trust.load(module, name)

    def _load_marker(self, *pid: Any) -> Any:
        return self.persistent_load(pid)

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is not tuple or not pid:
            raise ExtraditeProtocolError(f"corrupt frame: a handle id is {type(pid).__name__}, not a tuple")
        if pid[0] == PID_HOME:
            value = self.codec.exports.get(pid[1])
        else:
            value = self.codec.load_pid(pid)
        slot = Slot(value)
        slots: list[Slot] | None = self.__dict__.get("slots")
        if slots is None:
            self.slots = slots = []
        slots.append(slot)
        return slot

    def load(self) -> Any:
        value = super().load()
        slots = self.__dict__.get("slots")
        if slots:
            value = _Filler(slots).fill(value)
        return value


class _Filler:
    """Replaces the slots of a loaded frame by their objects, in the containers that hold them."""

    def __init__(self, slots: list[Slot]) -> None:
        self.wanted = {id(slot) for slot in slots}
        self.found: set[int] = set()
        self.memo: dict[int, Any] = {}

    def fill(self, value: Any) -> Any:
        try:
            value = self.visit(value)
        except RecursionError:
            raise ExtraditeProtocolError("corrupt frame: a value from the untrusted child is nested too deeply") from None
        if self.found != self.wanted:
            raise ExtraditeProtocolError(
                "untrusted mode refused a frame with a handle inside a value it does not look into "
                "(handles may travel in builtin and collections containers only)")
        return value

    def visit(self, obj: Any) -> Any:
        cls = type(obj)
        if cls is Slot:
            self.found.add(id(obj))
            return obj.value
        if cls in _SCALARS:
            return obj
        key = id(obj)
        if key in self.memo:
            return self.memo[key]
        visit = self.visit
        if cls is tuple or cls is frozenset:
            self.memo[key] = obj
            items = [visit(item) for item in obj]
            if any(a is not b for a, b in zip(items, obj)):
                obj = self.memo[key] = cls(items)
        elif cls is list:
            self.memo[key] = obj
            for index, item in enumerate(obj):
                new = visit(item)
                if new is not item:
                    obj[index] = new
        elif isinstance(obj, dict) and cls in _DICTS:
            self.memo[key] = obj
            pairs = [(visit(k), visit(v)) for k, v in obj.items()]
            if any(a[0] is not k or a[1] is not v for a, (k, v) in zip(pairs, obj.items())):
                obj.clear()
                for k, v in pairs:
                    obj[k] = v
        elif cls in _SEQUENCES:  # set, deque: rebuilt in place (a deque keeps its maxlen)
            self.memo[key] = obj
            items = [visit(item) for item in obj]
            if any(a is not b for a, b in zip(items, obj)):
                obj.clear()
                getattr(obj, "update" if cls is set else "extend")(items)
        return obj


def _container_types() -> tuple[frozenset[type], frozenset[type]]:
    import collections

    return (frozenset({dict, collections.OrderedDict, collections.defaultdict, collections.Counter}),
            frozenset({set, collections.deque}))


_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray})
_DICTS, _SEQUENCES = _container_types()


# -- the surface of lent objects -----------------------------------------------------------------
DATA_DUNDERS = frozenset({
    "__call__", "__len__", "__length_hint__", "__iter__", "__next__", "__reversed__", "__contains__",
    "__getitem__", "__setitem__", "__delitem__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__hash__", "__bool__", "__repr__", "__str__", "__format__", "__bytes__", "__int__", "__float__",
    "__complex__", "__index__", "__round__", "__abs__", "__neg__", "__pos__", "__invert__",
    "__add__", "__sub__", "__mul__", "__matmul__", "__truediv__", "__floordiv__", "__mod__", "__divmod__",
    "__pow__", "__lshift__", "__rshift__", "__and__", "__xor__", "__or__",
    "__radd__", "__rsub__", "__rmul__", "__rmatmul__", "__rtruediv__", "__rfloordiv__", "__rmod__",
    "__rdivmod__", "__rpow__", "__rlshift__", "__rrshift__", "__rand__", "__rxor__", "__ror__",
    "__enter__", "__exit__", "__name__", "__qualname__", "__doc__",
})

# Public names of builtin types that reach an interpreter's insides (frames, code, globals).
_INSIDES = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "gi_suspended", "cr_frame", "cr_code", "cr_await", "cr_origin",
    "ag_frame", "ag_code", "ag_await", "f_globals", "f_locals", "f_builtins", "f_back", "f_code",
    "f_trace", "tb_frame", "tb_next", "func_globals", "func_code", "func_closure", "im_self", "im_func",
})
_INSIDE_TYPES = (types.FrameType, types.CodeType, types.TracebackType, types.ModuleType,
                 types.CellType)


def _check_name(session: Session, target: Any, name: Any, op: str, *, setting: bool = False) -> str:
    """`name` if the child may use it on `target` (see the module docstring), else the refusal raised."""
    if type(name) is not str:
        raise ExtraditeProtocolError(f"corrupt frame: a {op} request names {type(name).__name__}, not a str")
    if (name[:1] != "_" and name not in _INSIDES) or (not setting and name in DATA_DUNDERS):
        return name
    allowed = session.codec.trust.lend_attributes
    if allowed:  # an instance of a listed type, or a listed class itself
        for klass in (*type(target).__mro__, *(target.__mro__ if isinstance(target, type) else ())):
            if name in allowed.get(klass, ()):
                return name
    raise UnsupportedInteractionError(
        f"untrusted mode does not lend {name!r} of a {type(target).__qualname__} to the child ({op} "
        "refused): a lent object shows only public names and the data dunders. To allow it, pass "
        f"lend_attributes={{{type(target).__qualname__}: ({name!r},)}}")


def _checked_result(value: Any, name: str) -> Any:
    if isinstance(value, _INSIDE_TYPES) or (type(value) is dict and "__builtins__" in value):
        raise UnsupportedInteractionError(
            f"untrusted mode does not lend {name!r}: it is a {type(value).__name__} (modules, frames, code, "
            "cells and globals are never lent to an untrusted child)")
    return value


def guarded_ops(ops: dict[int, Op]) -> dict[int, Op]:
    """The parent's ops (`_dispatch`), each checking the name it is asked for first."""
    from ._dispatch import Op
    from ._wire import OP_BATCH, OP_CALL, OP_CALL_METHOD, OP_DELATTR, OP_GETATTR, OP_NEXT_CHUNK, OP_SETATTR

    def call(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
             kwargs: dict[str, Any], extra: int) -> Any:
        return _checked_result(plain[OP_CALL](session, target, name, args, kwargs, extra), "its call's result")

    def call_method(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
                    kwargs: dict[str, Any], extra: int) -> Any:
        name = _check_name(session, target, name, "CALL_METHOD")
        return _checked_result(plain[OP_CALL_METHOD](session, target, name, args, kwargs, extra), name)

    def getattr_(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
                 kwargs: dict[str, Any], extra: int) -> Any:
        name = _check_name(session, target, name, "GETATTR")
        return _checked_result(plain[OP_GETATTR](session, target, name, args, kwargs, extra), name)

    def setattr_(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
                 kwargs: dict[str, Any], extra: int) -> Any:
        name = _check_name(session, target, name, "SETATTR", setting=True)
        return plain[OP_SETATTR](session, target, name, args, kwargs, extra)

    def delattr_(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
                 kwargs: dict[str, Any], extra: int) -> Any:
        name = _check_name(session, target, name, "DELATTR", setting=True)
        return plain[OP_DELATTR](session, target, name, args, kwargs, extra)

    def batch(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
              kwargs: dict[str, Any], extra: int) -> Any:
        if name is not None:
            name = _check_name(session, target, name, "BATCH")
        return [_checked_result(v, "a batch result")
                for v in plain[OP_BATCH](session, target, name, args, kwargs, extra)]

    def next_chunk(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
                   kwargs: dict[str, Any], extra: int) -> Any:
        _check_name(session, target, "__next__", "NEXT_CHUNK")  # what `next(target)` would use
        items, end = plain[OP_NEXT_CHUNK](session, target, name, args, kwargs, extra)
        return [_checked_result(v, "an item") for v in items], end

    plain: dict[int, Handler] = {code: op.handler for code, op in ops.items()}
    guards: dict[int, Callable[..., Any]] = {OP_CALL: call, OP_CALL_METHOD: call_method, OP_GETATTR: getattr_,
                                             OP_SETATTR: setattr_, OP_DELATTR: delattr_, OP_BATCH: batch,
                                             OP_NEXT_CHUNK: next_chunk}
    guarded = {}
    for code, op in ops.items():
        guard = guards.get(code)
        if guard is None:
            raise AssertionError(f"the parent serves {op.name}, which untrusted mode has no guard for")
        guarded[code] = Op(op.name, guard, op.served_by, op.by_reference, op.envelope)
    return guarded


# -- the parent's codec in untrusted mode ------------------------------------------------------
def trust_parent(codec: Codec, trust: Trust) -> None:
    """Switch the parent's codec to untrusted mode (before the first frame)."""
    codec.trust = trust
    codec.unpickler = type("_UntrustedUnpickler", (UntrustedUnpickler,), {"codec": codec})
    default = codec.reduce

    def reduce(pickler: Any, obj: Any) -> Any:
        result = default(pickler, obj)
        if result is NotImplemented and not isinstance(obj, type):
            trust.record_sent(obj)
        return result

    codec.reduce = reduce  # type: ignore[method-assign]


# -- the child's side -----------------------------------------------------------------------------
class ChildTrust:
    """What the child sends by value to a parent in untrusted mode: only what the parent loads."""

    def __init__(self, names: Iterable[tuple[str, str]]) -> None:
        self.names = {(str(m), str(n)) for m, n in names}
        self.numpy = ("numpy", "ndarray") in self.names
        self.factories = _safe_factories()
        self.leaves = _leaf_checks()

    def allows(self, obj: Any, deep: bool) -> bool:
        """Whether `obj` goes by value: allow-listed, and (`deep`) so is everything it pickles into."""
        cls = type(obj)
        if cls in _DICTS or cls in _SEQUENCES:
            return cls.__module__ == "builtins" or getattr(obj, "default_factory", None) in self.factories
        if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
            return name_of(obj) in self.names
        leaf = self.leaves.get(cls)
        if leaf is not None:  # a standard type whose pickle is known: no test pickle
            return leaf(obj)
        if name_of(cls) not in self.names and not (self.numpy and _numpy_value(obj)):
            return False
        return not deep or self._pickles_clean(obj)

    def _pickles_clean(self, obj: Any) -> bool:
        """Pickling `obj` on its own meets only allowed objects (a datetime with a ZoneInfo does not)."""
        from io import BytesIO

        pickler = _CheckingPickler(BytesIO(), 5, buffer_callback=_out_of_band)
        pickler.trust = self
        try:
            pickler.dump(obj)
        except Exception:
            return False
        return True

    def record(self, obj: Any) -> None:
        """A class in a value the parent sent: its instances may go back by value (as `Trust.record_sent`)."""
        if isinstance(obj, type):
            key = name_of(obj)
            if key not in self.names and not issubclass(obj, _NOT_SENT) and "__call__" not in dir(obj):
                self.names.add(key)


def _leaf_checks() -> dict[type, Callable[[Any], bool]]:
    """The standard types whose pickles name only themselves and builtin values (a datetime or a
    time also its `tzinfo`, which must be a plain `timezone`)."""
    import datetime
    import decimal
    import fractions
    import pathlib
    import uuid

    def always(obj: Any) -> bool:
        return True

    def plain_zone(obj: Any) -> bool:
        return obj.tzinfo is None or type(obj.tzinfo) is datetime.timezone

    checks: dict[type, Callable[[Any], bool]] = dict.fromkeys(
        (datetime.date, datetime.timedelta, datetime.timezone, decimal.Decimal, fractions.Fraction, uuid.UUID,
         pathlib.PurePosixPath, pathlib.PureWindowsPath), always)
    checks[datetime.datetime] = checks[datetime.time] = plain_zone
    return checks


def _out_of_band(buffer: Any) -> bool:
    return False  # the test pickle copies no big buffer


def _numpy_value(obj: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and (type(obj) is numpy.ndarray or isinstance(obj, (numpy.dtype, numpy.generic)))


class _CheckingPickler(_pickle.Pickler):
    trust: ChildTrust

    def reducer_override(self, obj: Any) -> Any:
        from ._codec import _is_proxy

        if type(obj) in _SCALARS or (not _is_proxy(obj) and self.trust.allows(obj, deep=False)):
            return NotImplemented
        raise TypeError("not allowed")  # a handle in here would be out of the parent's reach (`_Filler`)


def trust_child(codec: Codec, names: Iterable[tuple[str, str]]) -> None:
    """Switch the child's codec to untrusted mode: what the parent will not load goes as a handle."""
    from ._codec import _as_is, _h, _is_proxy, _newobj
    from ._policy import SCALAR_TYPES

    trust = ChildTrust(names)
    default = codec.reduce

    def reduce(pickler: Any, obj: Any) -> Any:
        if type(obj) in SCALAR_TYPES or obj is _h or obj is _as_is:
            return NotImplemented
        if not _is_proxy(obj) and not trust.allows(obj, deep=True):
            return (_h, codec._lend(pickler, obj))
        result = default(pickler, obj)
        if result is not NotImplemented and result[0] is _newobj:
            return (_h, codec._lend(pickler, obj))  # a parent class's instance made here: its code is the parent's
        return result

    codec.reduce = reduce  # type: ignore[method-assign]
    base = codec.unpickler

    def find_class(self: Any, module: str, name: str) -> Any:
        found = base.find_class(self, module, name)
        trust.record(found)
        return found

    codec.unpickler = type("_Unpickler", (base,), {"find_class": find_class})
