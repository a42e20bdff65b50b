"""Types standing in the child for the parent's classes (class handles of parent origin).

A parent class crosses as a handle (`PID_CLASS`); the child builds a real `type` for it,
so `isinstance`, `issubclass`, subclassing and the base checks of C extensions work. To
the code running in the child it must look like the parent's class and nothing else:

* `ParentClass` (the metaclass) hides the proxy machinery from attribute lookup, `dir()`,
  `vars()`, `__bases__`, `__mro__` and `mro()`: the `_xd_*` entries, the proxy bases
  (`ParentObject`, `RemoteObject`, ...), and names such as `__slots__`, `__getattr__`,
  `close` or `get_effective_policy` that the real class may not have. A hidden name is
  looked up on the real class, like any class attribute the member table does not name.
  The runtime reads past the metaclass (`_handles.class_dict`, `class_mro`).
* Instances: a handle of a parent object is a proxy (its slots name the session and the
  handle id). An instance made in the child with no call to the parent (`cls.__new__(cls)`,
  as C extensions such as pydantic-core build objects) has those slots unset: it is a plain
  object, its attributes live in its `__dict__`, and it crosses to the parent by value
  (`Codec._reduce_made_here`). The parent's code (methods, properties) never runs here.
"""

from __future__ import annotations

import types
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

from ._codec import _newobj
from ._handles import Borrowed, BorrowedMeta, class_dict, class_mro
from ._proxy import (
    PolicyIntrospection,
    ProxyFactory,
    RemoteClass,
    RemoteObject,
    _Attribute,
    _CallBatch,
    _Close,
    _members_namespace,
    _pop_policy,
    _root,
)
from ._policy import REFERENCE
from ._wire import EXTRA_RESULT_BY_REF, OP_CALL, OP_DELATTR, OP_GETATTR, OP_SETATTR

_get_session = RemoteObject.__dict__["_xd_session"].__get__


def made_here(obj: Any) -> bool:
    """True for an instance made in this process from a parent class handle (no handle id)."""
    try:
        _get_session(obj)
    except AttributeError:
        return True
    return False


def _made_here_error(obj: Any, name: str) -> AttributeError:
    """The error for `obj.name` on an object made here: the parent's code (an `_xd_` name is
    the proxy's way to it) cannot run on it."""
    what = type(obj).__qualname__
    if not name.startswith("_xd_") and name not in class_dict(_root(type(obj)))["_xd_members"]:
        return AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}")
    return AttributeError(
        f"this {what} was made in the child ({what}.__new__, as C extensions build objects), not by "
        f"the parent: here it is a plain object with its attributes in its __dict__, and the code of "
        f"{what} (methods, properties) runs only in the parent. Send the object to the parent "
        "(it goes by value) and use it there")


class _WithDict(RemoteObject):
    """Gives the instances a `__dict__` slot (its descriptor is `_INSTANCE_DICT`)."""


_INSTANCE_DICT = _WithDict.__dict__["__dict__"]
_WEAKREF = RemoteObject.__dict__["__weakref__"]


class _InstanceDict:
    """`obj.__dict__`: a handle's is the parent object's (by reference: writes reach it);
    an object made here has its own."""

    __slots__ = ()

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        if made_here(obj):
            return _INSTANCE_DICT.__get__(obj, owner)
        return obj._xd_session.call(OP_GETATTR, obj, name="__dict__", policy=REFERENCE)

    def __set__(self, obj: Any, value: Any) -> None:
        if made_here(obj):
            _INSTANCE_DICT.__set__(obj, value)
        else:
            obj._xd_session.call(OP_SETATTR, obj, name="__dict__", args=(value,))


class ParentObject(_WithDict):
    """Base of the child's instances of a parent class: handles, or plain objects made here."""

    __slots__ = ()
    __dict__ = _InstanceDict()

    def __getattr__(self, name: str) -> Any:
        if made_here(self):
            raise _made_here_error(self, name)
        return RemoteObject.__getattr__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_xd_") or made_here(self):
            object.__setattr__(self, name, value)
        else:
            self._xd_session.call(OP_SETATTR, self, name=name, args=(value,))

    def __delattr__(self, name: str) -> None:
        if made_here(self):
            object.__delattr__(self, name)
        else:
            self._xd_session.call(OP_DELATTR, self, name=name)

    def __dir__(self) -> Any:
        return object.__dir__(self) if made_here(self) else RemoteObject.__dir__(self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        if made_here(self):  # copy.copy() and the like: a plain object's state
            return (_newobj, (type(self),), _INSTANCE_DICT.__get__(self) or None)
        return RemoteObject.__reduce_ex__(self, protocol)


class _ParentAttribute(_Attribute):
    """A class attribute or property of a parent class; on an object made here, its `__dict__`.

    Such an object reads a plain class attribute (a default) from the class, as Python would;
    a property's code is the parent's and cannot run on it.
    """

    __slots__ = ("is_property",)

    def __init__(self, name: str, is_property: bool) -> None:
        super().__init__(name)
        self.is_property = is_property

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is not None and made_here(obj):
            namespace = _INSTANCE_DICT.__get__(obj)
            if self.name in namespace:
                return namespace[self.name]
            if self.is_property:
                raise _made_here_error(obj, "_xd_session")
            obj = None
        return _Attribute.__get__(self, obj, owner)

    def __set__(self, obj: Any, value: Any) -> None:
        if made_here(obj):
            _INSTANCE_DICT.__get__(obj)[self.name] = value
        else:
            _Attribute.__set__(self, obj, value)

    def __delete__(self, obj: Any) -> None:
        if not made_here(obj):
            _Attribute.__delete__(self, obj)
        else:
            try:
                del _INSTANCE_DICT.__get__(obj)[self.name]
            except KeyError:
                raise AttributeError(self.name) from None


def _text(forward: Any) -> Any:
    """`__repr__`/`__str__`: the parent's text for a handle, object's for an object made here."""
    def text(self: Any) -> str:
        if made_here(self):
            return object.__repr__(self)
        return forward(self)  # type: ignore[no-any-return]
    text.__name__ = forward.__name__
    return text


# -- what the metaclass hides ---------------------------------------------------------------
_MACHINERY = frozenset({ParentObject, _WithDict, RemoteObject, Borrowed, PolicyIntrospection})

# Names the classes made here have whatever the real class is like (their values are this
# class's own); every other name of the machinery is hidden unless a real class defines it.
_OWN = frozenset({"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "__annotations__"})


def _is_machinery_entry(name: str, value: Any) -> bool:
    """An entry of a class handle's namespace that is the proxy's, not the real class's.

    `close` is the proxy's unless the real class has one (the entry calls it on instances).
    """
    return name.startswith("_xd_") or (type(value) is _Close and not value.remote) or type(value) is _CallBatch


def _hides(cls: type, name: str) -> bool:
    """`name` resolves on `cls` to the machinery (a proxy base, a metaclass, an `_xd_` entry).

    Any `close` entry counts: it serves instances, `cls.close` is the real class's function.
    """
    for klass in class_mro(cls):
        namespace = class_dict(klass)
        if name in namespace:
            value = namespace[name]
            return klass in _MACHINERY or _is_machinery_entry(name, value) or type(value) is _Close
    return True  # found on no class: a metaclass attribute (`RemoteClass.__getattr__`, ...)


def _visible_namespace(cls: type) -> types.MappingProxyType[str, Any]:
    namespace = {name: value for name, value in class_dict(cls).items() if not _is_machinery_entry(name, value)}
    if ParentObject in type.__getattribute__(cls, "__bases__"):  # a plain class's own slots
        namespace.setdefault("__dict__", ParentObject.__dict__["__dict__"])
        namespace.setdefault("__weakref__", _WEAKREF)
    return types.MappingProxyType(namespace)


def _visible_mro(cls: type) -> tuple[type, ...]:
    return tuple(klass for klass in class_mro(cls) if klass not in _MACHINERY)


def _visible_bases(cls: type) -> tuple[type, ...]:
    return tuple(base for base in type.__getattribute__(cls, "__bases__") if base not in _MACHINERY) or (object,)


class ParentClass(RemoteClass):
    """Metaclass of the child's class handles: a real type showing only the real class's names.

    Class attribute reads of these classes run this Python `__getattribute__`; the call
    path reads the class's namespace directly and never comes here. `dir()` needs nothing
    of its own: `type.__dir__` reads `__dict__` and `__bases__` through `__getattribute__`.
    """

    def __getattribute__(cls, name: str) -> Any:
        if name in _MASKED:
            if name == "__dict__":
                return _visible_namespace(cls)
            if name == "__bases__":
                return _visible_bases(cls)
            if name == "__base__":
                return _visible_bases(cls)[0]
            if name == "__mro__":
                return _visible_mro(cls)
            if name == "mro":  # a lookup, not the interpreter's: it calls the metaclass's own `mro`
                return lambda: list(_visible_mro(cls))
            if _hides(cls, name):
                raise AttributeError(f"type object {type.__getattribute__(cls, '__name__')!r} has no "
                                     f"attribute {name!r}")  # `__getattr__` asks the real class
        return type.__getattribute__(cls, name)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("_xd_") or name.startswith("__extradite"):
            raise AttributeError(f"type object {type.__getattribute__(cls, '__name__')!r} has no attribute "
                                 f"{name!r}")
        root = _root(cls)
        return class_dict(root)["_xd_class_session"].call(OP_GETATTR, root, name=name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        namespace = class_dict(cls)
        if "_xd_class_hid" not in namespace:
            return type.__call__(cls, *args, **kwargs)  # a subclass defined here: a local object
        policy = _pop_policy(kwargs) if kwargs else None
        return namespace["_xd_class_session"].call(OP_CALL, cls, args=args, kwargs=kwargs, policy=policy, extra=EXTRA_RESULT_BY_REF)

    def __setattr__(cls, name: str, value: Any) -> None:
        namespace = class_dict(cls)
        if name.startswith("_xd_") or "_xd_class_hid" not in namespace:
            type.__setattr__(cls, name, value)
        else:
            namespace["_xd_class_session"].call(OP_SETATTR, cls, name=name, args=(value,))

    def __delattr__(cls, name: str) -> None:
        namespace = class_dict(cls)
        if name.startswith("_xd_") or "_xd_class_hid" not in namespace:
            type.__delattr__(cls, name)
        else:
            namespace["_xd_class_session"].call(OP_DELATTR, cls, name=name)

    def __repr__(cls) -> str:
        for klass in class_mro(cls):
            text = class_dict(klass).get("_xd_repr")
            if text is not None:
                return str(text)
        return type.__repr__(cls)


_MASKED = frozenset(
    name
    for namespace in (*map(vars, _MACHINERY), vars(ParentClass), vars(RemoteClass), vars(BorrowedMeta),
                      {"_xd_class_session": 0, "_xd_class_hid": 0, "_xd_repr": 0, "_xd_members": 0,
                       "close": 0, "batch": 0, "__class_getitem__": 0})
    for name in namespace
    if name not in _OWN and not hasattr(type, name)
) | {"__dict__", "__bases__", "__base__", "__mro__", "mro"}


class ParentTypes(ProxyFactory):
    """The child's proxy factory: class handles of the parent are `ParentClass` types."""

    @staticmethod
    def make_class(session: Any, hid: int, descriptor: tuple[Any, ...], bases: tuple[type, ...]) -> type:
        module, qualname, repr_text, members, _base_pids, _is_exception = descriptor
        namespace = _members_namespace(members)
        for name, kind in members:  # objects made here read their own __dict__
            if type(namespace.get(name)) is _Attribute:
                namespace[name] = _ParentAttribute(name, kind != "attribute")
        for name in ("__repr__", "__str__"):
            if name in namespace:
                namespace[name] = _text(namespace[name])
        namespace.update({
            "__module__": module,
            "__qualname__": qualname,
            "__doc__": None,
            "_xd_class_session": session,
            "_xd_class_hid": hid,
            "_xd_repr": repr_text,
            "_xd_members": dict(members),
        })
        name = qualname.rpartition(".")[2]
        proxy_bases = tuple(b for b in bases if isinstance(b, ParentClass)) or (ParentObject,)
        try:
            return ParentClass(name, proxy_bases, namespace)
        except TypeError:  # an MRO the proxies cannot reproduce: keep the members, drop the bases
            return ParentClass(name, (ParentObject,), namespace)
