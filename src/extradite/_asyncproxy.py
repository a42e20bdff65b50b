"""Awaitable forms of proxies: `aio(proxy)` views and `extradite_async()` classes.

    await aio(proxy).attr            read an attribute or property
    await aio(proxy).method(x)       call a method
    await aio(proxy)["__repr__"]()   any member by name (dunders object itself has, too)
    await aio(ProxyClass)(x)         construct; `aio(ProxyClass).name` reaches class members
    await aio_setattr(proxy, n, v)   write an attribute

    AsyncCls = extradite_async("pkg.mod:Cls")   every member a coroutine:
    obj = await AsyncCls.create(x)              construction
    await obj.method(x); await obj.prop         (results come back as ordinary proxies)

All of them go through `_aio.aio_call`: the event loop is never blocked, no thread is used.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

from ._aio import aio_call
from ._handles import class_dict
from ._proxy import BoundMethod, RemoteClass, RemoteObject, _root, _session
from ._wire import EXTRA_AWAIT, EXTRA_RESULT_BY_REF, OP_CALL, OP_GETATTR, OP_SETATTR


def _extra(target: Any, name: str) -> int:
    """EXTRA_AWAIT for an `async def` member of the target (its coroutine runs in the child)."""
    owner = target if isinstance(target, type) else type(target)
    try:
        members = class_dict(_root(owner)).get("_xd_members") or {}
    except Exception:
        return 0
    return EXTRA_AWAIT if members.get(name) == "async_method" else 0


def _check_proxy(value: Any, what: str) -> Any:
    if not isinstance(value, (RemoteObject, RemoteClass)):
        raise TypeError(f"{what} takes an extradite proxy (object or class), not {type(value).__qualname__}")
    return _root(value) if isinstance(value, RemoteClass) else value


class AsyncMember:
    """`aio(proxy).name`: awaited, the attribute's value; called, the method's call as a coroutine."""

    __slots__ = ("_target", "_name")

    def __init__(self, target: Any, name: str) -> None:
        self._target = target
        self._name = name

    def __await__(self) -> Any:
        return aio_call(_session(self._target), OP_GETATTR, self._target, name=self._name).__await__()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = self._target
        return BoundMethod(target, self._name, _extra(target, self._name)).aio(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<extradite awaitable member {self._name} of {self._target!r}>"


class AsyncView:
    """`aio(proxy)`: the proxy's members as awaitables (see the module docstring)."""

    __slots__ = ("_xd_target", "_xd_class")

    def __init__(self, proxy: Any) -> None:
        object.__setattr__(self, "_xd_target", _check_proxy(proxy, "aio()"))
        object.__setattr__(self, "_xd_class", proxy if isinstance(proxy, RemoteClass) else None)

    def __getattr__(self, name: str) -> AsyncMember:
        if name.startswith("_xd_"):
            raise AttributeError(name)
        return AsyncMember(self._xd_target, name)

    def __getitem__(self, name: str) -> AsyncMember:
        """`aio(proxy)["__len__"]`: the member `name`, whatever it is called (`__repr__` included)."""
        if not isinstance(name, str):
            raise TypeError(f"aio(proxy)[name] takes a member name (a str), not {type(name).__qualname__}")
        return AsyncMember(self._xd_target, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"write through `await aio_setattr(proxy, {name!r}, value)`: an assignment cannot be awaited")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Construct (a class proxy) or call (a callable proxy)."""
        if self._xd_class is not None:
            return _construct(self._xd_class, args, kwargs)
        return BoundMethod(self._xd_target, None).aio(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<extradite awaitable view of {self._xd_target!r}>"


def aio(proxy: Any) -> AsyncView:
    """The awaitable view of an extradite proxy object or class (see the module docstring)."""
    return AsyncView(proxy)


async def aio_setattr(proxy: Any, name: str, value: Any) -> None:
    """`setattr(proxy, name, value)` as a coroutine."""
    target = _check_proxy(proxy, "aio_setattr()")
    await aio_call(_session(target), OP_SETATTR, target, name=name, args=(value,))


async def _construct(cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    api = cls.__dict__.get("_xd_api")
    if api is not None:
        api.check_open()
    from ._proxy import _pop_policy

    root = _root(cls)
    policy = _pop_policy(kwargs) if kwargs else None
    instance = await aio_call(_session(root), OP_CALL, root, args=args, kwargs=kwargs, policy=policy,
                              extra=EXTRA_RESULT_BY_REF)
    if type(instance) is not cls and cls is not root:  # as `RemoteClass.__call__`
        try:
            object.__setattr__(instance, "__class__", cls)
        except TypeError:
            pass
    return instance


# -- extradite_async ----------------------------------------------------------------
class AsyncProxy:
    """Base of the classes `extradite_async()` returns: an instance wraps one proxy object.

    `sync_proxy` is that proxy (for sync use, or `aio(obj.sync_proxy)`); `sync_class`, on
    the class, the proxy class behind it.
    """

    __slots__ = ("sync_proxy",)
    sync_class: Any

    def __init__(self, sync_proxy: Any) -> None:
        self.sync_proxy = sync_proxy

    @classmethod
    async def create(cls, *args: Any, **kwargs: Any) -> Any:
        """Construct the remote object (a coroutine): `obj = await AsyncCls.create(...)`."""
        return cls(await _construct(cls.sync_class, args, kwargs))

    def __repr__(self) -> str:
        return f"<async {self.sync_proxy!r}>"


class _AsyncClose:
    """`AsyncCls.close()` ends the class handle; `await obj.close()` calls the target's close
    (or, when it has none, releases the object)."""

    __slots__ = ("remote",)

    def __init__(self, remote: bool) -> None:
        self.remote = remote

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return owner.sync_class.close  # type: ignore[attr-defined]
        if self.remote:
            return BoundMethod(obj.sync_proxy, "close").aio

        async def release_it() -> None:
            from ._proxy import release

            release(obj.sync_proxy)
        return release_it


def _method(name: str, extra: int) -> Any:
    async def method(self: AsyncProxy, *args: Any, **kwargs: Any) -> Any:
        return await BoundMethod(self.sync_proxy, name, extra).aio(*args, **kwargs)
    method.__name__ = method.__qualname__ = name
    return method


def _class_method(name: str) -> Any:
    async def method(cls: Any, *args: Any, **kwargs: Any) -> Any:
        return await BoundMethod(_root(cls.sync_class), name).aio(*args, **kwargs)
    method.__name__ = method.__qualname__ = name
    return classmethod(method)


def _property(name: str) -> property:
    def read(self: AsyncProxy) -> Any:
        target = self.sync_proxy
        return aio_call(target._xd_session, OP_GETATTR, target, name=name)
    return property(read, doc=f"`await obj.{name}`: the remote attribute's value")


_OWN = frozenset({"create", "sync_proxy", "sync_class", "close"})


def async_class(sync_class: Any) -> type:
    """The `extradite_async` class of a proxy class: every member of the target as a coroutine."""
    root = _root(sync_class)
    namespace: dict[str, Any] = {"__slots__": (), "sync_class": sync_class,
                                 "__module__": root.__module__, "__qualname__": f"Async{root.__qualname__}"}
    members: dict[str, str] = class_dict(root).get("_xd_members") or {}
    for name, kind in members.items():
        if name in _OWN or (name.startswith("__") and name.endswith("__")) or kind == "unhashable":
            continue
        if kind in ("method", "async_method"):
            namespace[name] = _method(name, EXTRA_AWAIT if kind == "async_method" else 0)
        elif kind in ("classmethod", "staticmethod"):
            namespace[name] = _class_method(name)
        else:
            namespace[name] = _property(name)
    namespace["close"] = _AsyncClose(remote="close" in members)
    return type(f"Async{root.__name__}", (AsyncProxy,), namespace)
