"""Dynamic proxies: local classes and objects that forward everything over a session.

A remote class arrives once, with its member table, and becomes a real local
class (`RemoteClass` metaclass) whose members are descriptors that each make one
round trip. A remote object becomes an instance of the proxy class of its type,
so `isinstance(proxy, ProxyClass)`, `issubclass` and subclassing work, and the
same remote object is always the same proxy object (identity per session).

    ProxyFactory.make_class(session, hid, descriptor, bases) -> proxy class
    ProxyFactory.make_instance(session, cls, hid)           -> proxy object

Names a proxy keeps for itself start with `_xd_`; everything else belongs to the
remote object.
"""

from __future__ import annotations

import types
from _weakref import ref as _weakref  # weakref.ref itself, without the weakref module (child start-up)
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

from ._errors import ExtraditeClosedError, ExtraditeError, UnsupportedInteractionError
from ._handles import Borrowed, BorrowedMeta, class_dict, class_mro
from ._iteration import PREFETCHED
from ._policy import REFERENCE, check_policy
from ._wire import (
    EXTRA_AWAIT,
    EXTRA_RESULT_BY_REF,
    OP_BATCH,
    OP_CALL,
    OP_CALL_METHOD,
    OP_DELATTR,
    OP_GETATTR,
    OP_SETATTR,
)

POLICY_KEYWORD = "__extradite_policy__"
TIMEOUT_KEYWORD = "__extradite_timeout__"  # `_deadline`


def _pop_policy(kwargs: dict[str, Any]) -> str | None:
    policy = kwargs.pop(POLICY_KEYWORD, None)
    if policy is not None:
        check_policy(policy, POLICY_KEYWORD)
    return policy  # type: ignore[no-any-return]


def _check_calls(calls: Iterable[Any]) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    out = []
    for index, item in enumerate(calls):
        try:
            args, kwargs = item
            out.append((tuple(args), dict(kwargs)))
        except (TypeError, ValueError):
            raise TypeError(
                f"batch item {index} must be an (args, kwargs) pair such as ([1], {{}}), not {item!r}") from None
    return out


class PolicyIntrospection:
    """`get_effective_policy(_trace)` for dynamic and generated proxy classes and instances."""

    __slots__ = ()

    @classmethod
    def _xd_policy_session(cls) -> Any:
        return class_dict(_root(cls))["_xd_class_session"]

    @classmethod
    def get_effective_policy(cls, value: Any, call_policy: str | None = None, method: str | None = None) -> str:
        """The policy (`'value'` or `'reference'`) that `value` would travel with."""
        return str(cls.get_effective_policy_trace(value, call_policy, method)["effective_policy"])

    @classmethod
    def get_effective_policy_trace(cls, value: Any, call_policy: str | None = None,
                                   method: str | None = None) -> dict[str, Any]:
        """The decision for `value` as the original reports it (README, "Transport policies").

        Keys: `effective_policy`, `source` and `matched_type` (the matching rule's type, or None).

        `source` is `call_override`, `method_default` (`method` names a generated proxy's method
        with a default), `type_rule` or `session_default`.
        """
        policies = getattr(cls, "__extradite_method_policies__", None) or {}
        method_policy = policies.get(method) if method else None
        return cls._xd_policy_session().codec.config.trace(  # type: ignore[no-any-return]
            value, call_policy, method_policy)


class RemoteObject(Borrowed, PolicyIntrospection):
    """Base of every instance proxy."""

    __slots__ = ("_xd_session", "_xd_hid", "_xd_closed", "__weakref__")

    _xd_session: Any
    _xd_hid: int
    _xd_closed: bool
    # Per-method policy defaults (generated proxies override it). Defined here so that the
    # lookup on every call finds it in the class instead of going through __getattr__.
    __extradite_method_policies__: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_xd_"):
            raise AttributeError(name)
        policy = REFERENCE if name == "__dict__" else None
        return self._xd_session.call(OP_GETATTR, self, name=name, policy=policy)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_xd_"):
            object.__setattr__(self, name, value)
        else:
            self._xd_session.call(OP_SETATTR, self, name=name, args=(value,))

    def __delattr__(self, name: str) -> None:
        self._xd_session.call(OP_DELATTR, self, name=name)

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise UnsupportedInteractionError(
            f"an extradite proxy ({type(self).__qualname__}) cannot be pickled or copied; "
            "pass it to a call on its own session instead, or fetch a copy of the value with a "
            "method that returns plain data")

    def __dir__(self) -> Iterable[str]:
        return self._xd_session.call(OP_CALL_METHOD, self, name="__dir__")  # type: ignore[no-any-return]

class RemoteIterator(RemoteObject):
    """Base of the proxies of the other side's builtin iterators: they read ahead (`_iteration`).

    `_xd_chunks` (set on first use) is the buffer of items fetched and not yet taken.
    """

    __slots__ = ("_xd_chunks",)

    _xd_chunks: Any

    def __iter__(self) -> RemoteIterator:
        return self  # a builtin iterator is its own iterator: no round trip

    def __next__(self) -> Any:
        try:
            chunks = self._xd_chunks
        except AttributeError:
            chunks = self._xd_use_chunk(None)
        items = chunks.items
        if items:
            return items.pop()
        return chunks.refill(self)

    def __length_hint__(self) -> int:
        from ._iteration import remote_length_hint

        try:
            chunks = self._xd_chunks
        except AttributeError:
            chunks = None
        return remote_length_hint(self, chunks)

    def _xd_use_chunk(self, chunk: int | None) -> Any:
        """Read `chunk` items per round trip from now on (None: start small and grow)."""
        from ._iteration import FIRST_CHUNK, Chunks

        try:
            chunks = self._xd_chunks
        except AttributeError:
            chunks = Chunks(FIRST_CHUNK, grow=True)
            object.__setattr__(self, "_xd_chunks", chunks)
        if chunk is not None:
            chunks.chunk, chunks.grow = chunk, False
        return chunks


_ITERATOR_OWN = ("__iter__", "__next__", "__length_hint__")  # RemoteIterator's, not forwarded


def _root(cls: type) -> Any:
    """The class proxy that carries the handle (an API subclass or user subclass defers to it).

    It reads namespaces past the metaclass: a child's class handle hides its own (`_parent_types`).
    """
    for klass in class_mro(cls):
        if "_xd_class_hid" in class_dict(klass):
            return klass
    raise UnsupportedInteractionError(f"{cls.__qualname__} is not an extradite proxy class")


class RemoteClass(BorrowedMeta):
    """Metaclass of class proxies: construction, class attributes and repr go remote."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if "_xd_class_hid" not in cls.__dict__ and "_xd_api" not in cls.__dict__:
            return super().__call__(*args, **kwargs)  # a local subclass made in this process
        api = cls.__dict__.get("_xd_api")
        if api is not None:
            api.check_open()
        root = _root(cls)
        if kwargs and TIMEOUT_KEYWORD in kwargs:  # bounded: the same construction inside a deadline
            from ._deadline import call_with_timeout

            return call_with_timeout(root._xd_class_session, kwargs.pop(TIMEOUT_KEYWORD), cls, *args, **kwargs)
        policy = _pop_policy(kwargs) if kwargs else None
        instance = root._xd_class_session.call(OP_CALL, root, args=args, kwargs=kwargs, policy=policy,
                                               extra=EXTRA_RESULT_BY_REF)
        rebuild = root._xd_class_session.rebuild  # supervised: remember how to make it again (`_restart`)
        if rebuild is not None:
            rebuild.constructed(instance, root, args, kwargs, policy)
        if type(instance) is not cls and cls is not root:
            # A new object comes back as the session's class of its type (the root, or a generated
            # proxy bound to the session): it is made an instance of the class that was called.
            try:
                object.__setattr__(instance, "__class__", cls)
            except TypeError:  # layouts differ: a generated proxy from before GeneratedProxy had slots
                pass
        return instance

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("_xd_") or name.startswith("__extradite"):
            raise AttributeError(name)
        root = _root(cls)
        return root._xd_class_session.call(OP_GETATTR, root, name=name)

    def __setattr__(cls, name: str, value: Any) -> None:
        if name.startswith("_xd_") or "_xd_class_hid" not in cls.__dict__:
            super().__setattr__(name, value)
        else:
            cls._xd_class_session.call(OP_SETATTR, cls, name=name, args=(value,))

    def __delattr__(cls, name: str) -> None:
        if name.startswith("_xd_") or "_xd_class_hid" not in cls.__dict__:
            super().__delattr__(name)
        else:
            cls._xd_class_session.call(OP_DELATTR, cls, name=name)

    def __repr__(cls) -> str:
        for klass in cls.__mro__:
            text = klass.__dict__.get("_xd_repr")
            if text is not None:
                return f"<extradite proxy of {text[1:-1]}>" if "_xd_api" in cls.__dict__ else str(text)
        return super().__repr__()

    def __reduce_ex__(cls, protocol: Any) -> Any:
        raise UnsupportedInteractionError(
            f"an extradite proxy class ({cls.__qualname__}) cannot be pickled; pass it to a call "
            "on its own session instead")


# -- member descriptors -------------------------------------------------------------------
class BoundMethod:
    """`proxy.name`: calling it is one round trip; `.batch(calls)` runs many in one."""

    __slots__ = ("_target", "_name", "_extra")

    def __init__(self, target: Any, name: str | None, extra: int = 0) -> None:
        self._target = target
        self._name = name
        self._extra = extra

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target, name = self._target, self._name
        if kwargs and TIMEOUT_KEYWORD in kwargs:  # bounded: the same call inside a deadline
            from ._deadline import call_with_timeout

            return call_with_timeout(_session(target), kwargs.pop(TIMEOUT_KEYWORD), self, *args, **kwargs)
        policy = _pop_policy(kwargs) if kwargs else None
        if isinstance(target, RemoteObject) and name is not None:  # an instance's method: `_session`
            # `_method_policy` inlined; read through the instance: cheaper than through the class,
            # whose metaclass has a Python __getattr__ (and, in the child, hides the name)
            policies = target.__extradite_method_policies__
            return target._xd_session.call(OP_CALL_METHOD, target, name=name, args=args, kwargs=kwargs,
                                           policy=policy, extra=self._extra,
                                           method_policy=policies.get(name) if policies else None)
        return _session(target).call(OP_CALL if name is None else OP_CALL_METHOD, target, name=name, args=args,
                                     kwargs=kwargs, policy=policy, extra=self._extra,
                                     method_policy=_method_policy(target, name))

    def batch(self, calls: Iterable[Any], call_policy: str | None = None,
              call_timeout: float | None = None) -> list[Any]:
        """Run `fn(*args, **kwargs)` for each `(args, kwargs)` in one round trip, in order.

        Stops at the first exception, which names the failing item (`batch_index`).
        `call_timeout` bounds the whole batch (see `_deadline`).
        """
        if call_timeout is not None:
            from ._deadline import call_with_timeout

            return call_with_timeout(_session(self._target), call_timeout,  # type: ignore[no-any-return]
                                     self.batch, calls, call_policy)
        if call_policy is not None:
            check_policy(call_policy, "call_policy")
        target = self._target
        return _session(target).call(  # type: ignore[no-any-return]
            OP_BATCH, target, name=self._name, args=tuple(_check_calls(calls)), policy=call_policy,
            extra=self._extra, method_policy=_method_policy(target, self._name))

    def aio(self, *args: Any, **kwargs: Any) -> Any:
        """`await proxy.method.aio(...)`: the same call as a coroutine on the running event loop.

        The loop is never blocked and no thread is used (see `_aio`); cancelling the awaiting
        task interrupts the call in the child.
        """
        from ._aio import aio_call

        target, name = self._target, self._name
        seconds = kwargs.pop(TIMEOUT_KEYWORD) if kwargs and TIMEOUT_KEYWORD in kwargs else None
        policy = _pop_policy(kwargs) if kwargs else None
        return aio_call(_session(target), OP_CALL if name is None else OP_CALL_METHOD, target, name=name,
                        args=args, kwargs=kwargs, policy=policy, extra=self._extra,
                        method_policy=_method_policy(target, name), timeout=seconds)

    def aio_batch(self, calls: Iterable[Any], call_policy: str | None = None,
                  call_timeout: float | None = None) -> Any:
        """`await proxy.method.aio_batch(calls)`: `batch` as a coroutine (see `aio`)."""
        from ._aio import aio_call

        if call_policy is not None:
            check_policy(call_policy, "call_policy")
        target = self._target
        return aio_call(_session(target), OP_BATCH, target, name=self._name, args=tuple(_check_calls(calls)),
                        policy=call_policy, extra=self._extra, method_policy=_method_policy(target, self._name),
                        timeout=call_timeout)

    def __repr__(self) -> str:
        return f"<extradite bound method {self._name or '__call__'} of {self._target!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to the owner of its target (a callback, say), it arrives as the owner's
        # own bound method; the target travels as a handle, so other sessions refuse it.
        return (getattr, (self._target, self._name or "__call__"))


def _session(target: Any) -> Any:
    """The session of an instance proxy or a class proxy."""
    if isinstance(target, RemoteObject):
        return target._xd_session
    return class_dict(_root(target))["_xd_class_session"]


def _method_policy(target: Any, name: str | None) -> str | None:
    if name is None:  # a callable's own call: no method, no default
        return None
    # looked up on the type: an instance lookup of a missing name would be a round trip
    owner = target if isinstance(target, type) else type(target)
    policies = getattr(owner, "__extradite_method_policies__", None)
    if policies:
        return policies.get(name)  # type: ignore[no-any-return]
    return None


class BoundAsyncMethod(BoundMethod):
    """An async remote method: calling it gives its awaited call (`aio`), read by the event loop."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.aio(*args, **kwargs)


class _Method:
    __slots__ = ("name", "is_async")

    def __init__(self, name: str, is_async: bool = False) -> None:
        self.name = name
        self.is_async = is_async

    def bind(self, target: Any) -> BoundMethod:
        if self.is_async:
            return BoundAsyncMethod(target, self.name, EXTRA_AWAIT)
        return BoundMethod(target, self.name)

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:  # `ProxyClass.method(instance, ...)`
            return lambda target, *args, **kwargs: self.bind(target)(*args, **kwargs)
        if self.is_async:
            return BoundAsyncMethod(obj, self.name, EXTRA_AWAIT)
        return BoundMethod(obj, self.name)  # `bind`, inlined: every method call passes here


class _ClassMethod(_Method):
    """classmethods and staticmethods: always called on the remote class."""

    __slots__ = ()

    def __get__(self, obj: Any, owner: type) -> Any:
        return self.bind(_root(owner))


class _CallBatch:
    """`callable_proxy.batch(calls)`: many calls of a callable handle in one round trip.

    Offered by every proxy whose remote type is callable (callbacks included) and
    has no `batch` member of its own.
    """

    __slots__ = ()

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        return BoundMethod(obj, None).batch


class _Attribute:
    """Properties and class attributes: a read, write or delete is one round trip."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            root = _root(owner)
            return class_dict(root)["_xd_class_session"].call(OP_GETATTR, root, name=self.name)
        return obj._xd_session.call(OP_GETATTR, obj, name=self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        obj._xd_session.call(OP_SETATTR, obj, name=self.name, args=(value,))

    def __delete__(self, obj: Any) -> None:
        obj._xd_session.call(OP_DELATTR, obj, name=self.name)


class _Close:
    """`Class.close()` ends the class handle; `instance.close()` releases the instance.

    When the target itself defines `close`, the instance form calls it instead.
    """

    __slots__ = ("remote",)

    def __init__(self, remote: bool) -> None:
        self.remote = remote

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return lambda: close_class(owner)
        if self.remote:
            return BoundMethod(obj, "close")
        return lambda: release(obj)


_RESULT_BY_REF_DUNDERS = frozenset({"__iter__", "__aiter__"})
_ASYNC_DUNDERS = frozenset({"__aenter__", "__aexit__", "__anext__"})


def _dunder(name: str) -> Any:
    extra = EXTRA_RESULT_BY_REF if name in _RESULT_BY_REF_DUNDERS else 0
    if name in _ASYNC_DUNDERS:
        def async_forward(self: Any, *args: Any) -> Any:
            return BoundAsyncMethod(self, name, EXTRA_AWAIT)(*args)
        async_forward.__name__ = name
        return async_forward
    if name == "__call__":
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return BoundMethod(self, None)(*args, **kwargs)
        return call
    if name in ("__repr__", "__str__"):
        def text(self: Any) -> str:
            try:
                return self._xd_session.call(OP_CALL_METHOD, self, name=name)  # type: ignore[no-any-return]
            except ExtraditeError as exc:
                # A released handle is a use-after-release error, like any other use; a proxy
                # whose session ended or broke still prints, so tracebacks can show it.
                if self._xd_closed or (name == "__str__" and not isinstance(exc, ExtraditeClosedError)):
                    raise
                state = "closed" if self._xd_session.closed else "unreachable"
                return f"<extradite proxy of {type(self).__qualname__} ({state})>"
        text.__name__ = name
        return text

    def forward(self: Any, *args: Any) -> Any:
        return self._xd_session.call(OP_CALL_METHOD, self, name=name, args=args, extra=extra)
    forward.__name__ = name
    return forward


def _member(name: str, kind: str) -> Any:
    if kind == "unhashable":
        return None
    if name.startswith("__") and name.endswith("__"):
        return _dunder(name)
    if kind in ("method", "async_method"):
        return _Method(name, kind == "async_method")
    if kind in ("classmethod", "staticmethod"):
        return _ClassMethod(name)
    return _Attribute(name)


def _members_namespace(members: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The entries of a class proxy's namespace that come from its member table."""
    namespace = {name: _member(name, kind) for name, kind in members}
    namespace["close"] = _Close(remote="close" in namespace)
    if "__call__" in namespace and "batch" not in namespace:
        namespace["batch"] = _CallBatch()
    return namespace


def refresh_members(cls: type, members: tuple[tuple[str, str], ...]) -> None:
    """Give a class proxy built from an expected member table (a generated proxy's) the live one."""
    current = _members_namespace(cls.__dict__["_xd_members"].items())
    live = _members_namespace(members)
    for name in current.keys() - live.keys():
        type.__delattr__(cls, name)
    for name, entry in live.items():
        type.__setattr__(cls, name, entry)
    type.__setattr__(cls, "_xd_members", dict(members))


# Generated proxy classes by target ("module:qualname"), registered by `_generated`:
# in a session bound by a generated proxy, a handle whose type has one comes back
# as an instance of that typed class.
GENERATED: dict[str, Callable[[type], type]] = {}


class ProxyFactory:
    """Builds proxies for the codec (see module docstring)."""

    @staticmethod
    def make_class(session: Any, hid: int, descriptor: tuple[Any, ...], bases: tuple[type, ...]) -> type:
        module, qualname, repr_text, members, _base_pids, _is_exception = descriptor
        namespace: dict[str, Any] = {
            "__slots__": (),
            "__module__": module,
            "__qualname__": qualname,
            "__doc__": None,
            "_xd_class_session": session,
            "_xd_class_hid": hid,
            "_xd_repr": repr_text,
            "_xd_members": dict(members),
            "__class_getitem__": classmethod(types.GenericAlias),
        }
        namespace.update(_members_namespace(members))
        proxy_bases = tuple(b for b in bases if isinstance(b, RemoteClass)) or (RemoteObject,)
        if module == "builtins" and qualname in PREFETCHED and getattr(session, "reads_ahead", False):
            # a builtin iterator: it reads ahead (when its owner serves chunks)
            for name in _ITERATOR_OWN:
                namespace.pop(name, None)
            proxy_bases = (RemoteIterator,)
        try:
            cls = RemoteClass(qualname.rpartition(".")[2], proxy_bases, namespace)
        except TypeError:  # an MRO the proxies cannot reproduce: keep the members, drop the bases
            cls = RemoteClass(qualname.rpartition(".")[2], (RemoteObject,), namespace)
        # only in sessions that generated proxies use: the dynamic API keeps its own members
        adopt = GENERATED.get(f"{module}:{qualname}") if session.adopts_generated else None
        return adopt(cls) if adopt is not None else cls

    @staticmethod
    def make_instance(session: Any, cls: type, hid: int) -> Any:
        obj: Any = object.__new__(cls)
        _set_session(obj, session)
        _set_hid(obj, hid)
        _set_closed(obj, False)
        imports = session.codec.imports
        def forget(ref: Any, hid: int = hid, imports: Any = imports) -> None:
            imports.forget(hid, ref)

        ref = _weakref(obj, forget)
        imports.bind(hid, ref)
        return obj


_set_session = RemoteObject.__dict__["_xd_session"].__set__
_set_hid = RemoteObject.__dict__["_xd_hid"].__set__
_set_closed = RemoteObject.__dict__["_xd_closed"].__set__


def release(proxy: Any) -> None:
    """Release the remote object behind `proxy` now; any later use of the proxy is an error.

    A call, an attribute or `repr` then raises `ExtraditeClosedError` (an `ExtraditeProtocolError`)
    saying "Unknown or released remote object id". Idempotent. (Proxies are also released
    when garbage-collected.)
    """
    if not isinstance(proxy, RemoteObject):
        raise TypeError(f"release() takes an extradite proxy object, not {type(proxy).__qualname__}")
    if proxy._xd_closed:
        return
    _set_closed(proxy, True)
    session = proxy._xd_session
    session.codec.imports.forget(proxy._xd_hid)
    session.flush_releases()


def close_class(cls: type) -> None:
    """`Class.close()`: end this class handle (and its session, when it is the last user)."""
    api = cls.__dict__.get("_xd_api")
    if api is None:
        raise UnsupportedInteractionError(
            f"{cls.__qualname__} was not returned by extradite(); close the class that was")
    api.close()
