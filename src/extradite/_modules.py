"""Proxies of targets that are not classes: module attributes and whole modules.

    extradite("pkg.mod:func")  -> OP_IMPORT by reference -> the session's proxy of the object,
                                  re-classed into a subclass that carries the session use (close())
    import_isolated("pkg.mod") -> OP_IMPORT of the module by reference -> a module proxy:

        mod.name -> one OP_GETATTR by reference, then by what came back:
            a class          -> a proxy class sharing the module's child   } looked up once,
            a module         -> a module proxy (a missing submodule is      } then remembered
                                imported on first access, as `import` would)}
            a callable       -> its callable proxy (calls, .batch, policies)}
            a scalar         -> its value
            anything else    -> read again under the session's policy (a copy, or a handle when
                                the policy says so or the value's type is protected), every time

Lifetime: one `Lease` per `extradite()` or `import_isolated()` call holds its session use
(`_api.ClassHandle`). Every class this module makes for it (the module proxy's, each
function's, each class's) refers to the lease, so the child runs while anything taken
from the module is alive; `close()` on the module (or on anything it handed out) ends
the use at once.

A module proxy needs from its session only `call()` with OP_GETATTR, OP_SETATTR and
OP_DELATTR, and `import_object()` of its `SessionHandle`: another backend that serves
those can serve module proxies (`module_proxy` is the one entry point).
"""

from __future__ import annotations

import weakref

TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

    from ._api import ClassHandle

from ._errors import ExtraditeRemoteError
from ._handles import class_dict
from ._policy import REFERENCE
from ._proxy import BoundMethod, RemoteClass, RemoteObject, _root, release
from ._targets import in_tree, tree_of
from ._wire import OP_DELATTR, OP_GETATTR, OP_SETATTR

__all__ = ["Lease", "attribute_proxy", "module_proxy"]


class Lease:
    """Holds one session use while referenced; ends it when collected (see module docstring)."""

    __slots__ = ("api", "__weakref__")

    def __init__(self, api: ClassHandle) -> None:
        from ._api import close_collected

        self.api = api
        weakref.finalize(self, close_collected, api)


def _end_use(obj: Any) -> None:
    """`close()` of a function or object target: the target's own close(), if any, then the use ends."""
    api = type(obj).__dict__["_xd_api"]
    members = class_dict(_root(type(obj)))["_xd_members"]
    try:
        if "close" in members and not api.closed and not obj._xd_closed:
            BoundMethod(obj, "close")()
    finally:
        try:
            release(obj)
        finally:
            api.close()


class _CloseTarget:
    """`proxy.close()` of a function or object target (see `_end_use`)."""

    __slots__ = ()

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        return lambda: _end_use(obj)


def _adopt(obj: Any, lease: Lease, namespace: dict[str, Any]) -> Any:
    """Re-class `obj` (a proxy object) into a subclass of its proxy class that holds `lease`."""
    base = _root(type(obj))
    cls = RemoteClass(base.__name__, (base,), {
        "__slots__": (), "__module__": base.__module__, "__qualname__": base.__qualname__,
        "_xd_api": lease.api, "_xd_lease": lease, **namespace})
    object.__setattr__(obj, "__class__", cls)
    return obj


def attribute_proxy(api: ClassHandle, found: Any) -> Any:
    """What `extradite("pkg.mod:name")` returns for an attribute that is not a class.

    A proxy object whose `close()` ends `api`; a scalar (it came by value) is returned
    as it is, and `api` ends now: nothing in the child is left to use.
    """
    if not isinstance(found, RemoteObject):
        api.close()
        return found
    if _is_module(found):  # "pkg:sub" names a module: the same proxy as import_isolated("pkg.sub")
        return module_proxy(api, found, str(found._xd_session.call(OP_GETATTR, found, name="__name__")))
    return _adopt(found, Lease(api), {"close": _CloseTarget()})


def _is_module(found: Any) -> bool:
    root = _root(type(found))
    return bool(root.__module__ == "builtins" and root.__qualname__ == "module")


# -- modules ----------------------------------------------------------------------------------
class _ModuleState:
    """What one module proxy knows: its module's name, its lease and what it already looked up."""

    __slots__ = ("name", "lease", "remembered", "function_classes")

    def __init__(self, name: str, lease: Lease) -> None:
        self.name = name
        self.lease = lease
        self.remembered: dict[str, Any] = {}   # classes, submodules and callables by name
        self.function_classes: dict[type, type] = {}


def module_proxy(api: ClassHandle, remote: Any, name: str, lease: Lease | None = None) -> Any:
    """The module proxy of `remote` (the proxy of module `name`); `lease` when it is a submodule's."""
    state = _ModuleState(name, lease if lease is not None else Lease(api))
    return _adopt(remote, state.lease, {
        "_xd_module": state, "__getattr__": _module_getattr, "__setattr__": _module_setattr,
        "__delattr__": _module_delattr, "__repr__": _module_repr, "__str__": _module_repr,
        "close": _CloseModule()})


def _state(proxy: Any) -> _ModuleState:
    return type(proxy).__dict__["_xd_module"]  # type: ignore[no-any-return]


def _module_repr(self: Any) -> str:
    state = _state(self)
    handle = state.lease.api.handle
    place = getattr(handle, "place", None)  # another backend's (`_ray.RayModuleHandle`)
    where = place() if place is not None else f"child pid {handle.process.pid}"
    if state.lease.api.closed or not handle.running:
        where += ", closed"
    return f"<extradite module {state.name!r} ({where})>"


class _CloseModule:
    """`mod.close()`: the session use of the `import_isolated()` call ends (its submodules' too)."""

    __slots__ = ()

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        return _state(obj).lease.api.close


def _module_setattr(self: Any, name: str, value: Any) -> None:
    if name.startswith("_xd_"):
        object.__setattr__(self, name, value)
        return
    _state(self).remembered.pop(name, None)
    self._xd_session.call(OP_SETATTR, self, name=name, args=(value,))


def _module_delattr(self: Any, name: str) -> None:
    _state(self).remembered.pop(name, None)
    self._xd_session.call(OP_DELATTR, self, name=name)


def _module_getattr(self: Any, name: str) -> Any:
    if name.startswith("_xd_"):
        raise AttributeError(name)
    state = _state(self)
    found = state.remembered.get(name)
    if found is not None and not (isinstance(found, RemoteObject) and found._xd_closed):
        return found
    state.lease.api.check_open()
    session = self._xd_session
    try:
        found = session.call(OP_GETATTR, self, name=name, policy=REFERENCE)
    except AttributeError:
        found = _import_submodule(state, name)
        if found is None:
            raise
    rebuild = getattr(session, "rebuild", None)  # supervised: a restart looks it up again (`_restart`)
    if rebuild is not None:
        rebuild.looked_up(found, self, name)
    if isinstance(found, RemoteClass):
        found = RemoteClass(found.__name__, (found,), {
            "__slots__": (), "_xd_api": state.lease.api, "_xd_lease": state.lease,
            "__module__": found.__module__, "__qualname__": found.__qualname__})
    elif not isinstance(found, RemoteObject):
        return found  # a scalar: it came by value
    else:
        root = _root(type(found))
        if _is_module(found):
            if "_xd_module" not in type(found).__dict__:
                real_name = session.call(OP_GETATTR, found, name="__name__")
                found = module_proxy(state.lease.api, found, str(real_name), state.lease)
        elif "__call__" in class_dict(root)["_xd_members"]:
            if "_xd_lease" not in type(found).__dict__:
                cls = state.function_classes.get(root)
                if cls is None:
                    cls = state.function_classes[root] = type(_adopt(found, state.lease, {}))
                else:
                    object.__setattr__(found, "__class__", cls)
        else:
            config = session.codec.config
            if (config.default == REFERENCE and not config.rules) or tree_of(root.__module__, session.protected):
                return found  # a handle is what the policy asks for, or all there can be
            return session.call(OP_GETATTR, self, name=name)
    state.remembered[name] = found
    return found


def _import_submodule(state: _ModuleState, name: str) -> Any:
    """The submodule `name` of the module, imported in the child now; None when there is none."""
    if name.startswith("__") or not name.isidentifier():
        return None
    full = f"{state.name}.{name}"
    handle = state.lease.api.handle
    try:
        return handle.import_object(full, "", f"import_isolated({state.name!r}).{name}",
                                    protect=in_tree(full, handle.trees))
    except ImportError as exc:
        if isinstance(exc, ExtraditeRemoteError) and f"No module named '{full}'" in exc.remote_message:
            return None
        raise
