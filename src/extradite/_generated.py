"""Runtime support for proxies written by `extradite-gen`.

A generated class (say `Counter(GeneratedProxy)`) holds typed methods whose
bodies call the `_xd_*` primitives below. It is never instantiated itself: on
first use it *binds* to a session, and the bound class

    Bound = GeneratedMeta("Counter", (Counter, <dynamic proxy class of the target>), ...)

becomes the proxy class of the target in that session. So typed generated
methods come first in the MRO, and every name the generator did not know falls
back to the dynamic proxy (members added since generation, instance attributes).

At bind time the import request carries the embedded fingerprint and the `kinds_checksum`
of the embedded member table; the child compares them with the live target's and replies
the class with its verdict. Both equal: the verdict is None and nothing else happens.
Different: the verdict is the live table and `signature_data`, and one
`ExtraditeStaleProxyWarning` names what changed (the digests of the live signatures against
the embedded ones): changed members use the dynamic path, removed members raise a clear
`AttributeError` when used. A verdict that does not read as such is a broken child: it is
stopped and the bind raises `ExtraditeProtocolError`.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
import os
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from . import _proxy
from ._api import ClassHandle, _session_for, close_collected
from ._errors import ExtraditeStaleProxyWarning
from ._members import checksum, is_member_table, kinds_checksum, load_signature_data
from ._proxy import (
    BoundMethod,
    PolicyIntrospection,
    RemoteClass,
    _check_calls,
    TIMEOUT_KEYWORD,
    _pop_policy,
    _root,
    refresh_members,
    release,
)
from ._options import SessionOptions
from ._targets import parse_target, protected_tree, refuse_loaded
from ._wire import EXTRA_AWAIT, OP_BATCH, OP_CALL_METHOD, OP_DELATTR, OP_GETATTR, OP_SETATTR

if TYPE_CHECKING:
    from ._restart import Restart
    from ._sandbox import Limits, Sandbox
    from ._session_handle import SessionHandle

__all__ = ["GeneratedProxy", "GeneratedMeta", "GeneratedModule", "MISSING", "ClassAttribute", "member_digests"]

_T = TypeVar("_T", bound="GeneratedProxy")
_V = TypeVar("_V")


class _Missing:
    """Stands for a default the generator could not write out; the runtime omits it."""

    _instance: ClassVar[_Missing | None] = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class ClassAttribute(Generic[_V]):
    """A class attribute of the target, read from the child on every access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, obj: object, owner: type[GeneratedProxy]) -> _V:
        return cast(_V, owner._xd_class_get(self._name))


NO_KWARGS: dict[str, Any] = {}  # shared by batch items without keywords (pickled once per frame)


def _batch_items(calls: Iterable[Any], npos: int | None,
                 kwnames: tuple[str, ...]) -> tuple[tuple[tuple[Any, ...], dict[str, Any]], ...]:
    """Typed batch items -> (args, kwargs) pairs in one pass.

    `npos is None`: the items already are (args, kwargs) pairs (checked). Otherwise
    the first `npos` values of an item go by position (all of them when -1) and
    the rest by the names in `kwnames`.
    """
    if npos is None:
        return tuple(_check_calls(calls))
    if not kwnames:
        return tuple([(item, NO_KWARGS) for item in calls])
    return tuple([(item[:npos], dict(zip(kwnames, item[npos:]))) for item in calls])


def _strip(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Drop MISSING arguments: trailing positional ones and keyword ones."""
    end = len(args)
    while end and args[end - 1] is MISSING:
        end -= 1
    if end != len(args):
        args = args[:end]
    if kwargs and any(v is MISSING for v in kwargs.values()):
        kwargs = {k: v for k, v in kwargs.items() if v is not MISSING}
    return args, kwargs


class _Removed:
    """A member the generated proxy knows but the live target no longer has."""

    __slots__ = ("owner", "name")

    def __init__(self, owner: str, name: str) -> None:
        self.owner = owner
        self.name = name

    def __get__(self, obj: Any, owner: type) -> Any:
        raise AttributeError(
            f"{self.owner}.{self.name} no longer exists in the live target (it was removed after the "
            "proxy was generated); regenerate the proxy with extradite-gen")


class GeneratedMeta(RemoteClass):
    """Metaclass of generated proxies: binds to a session on first use."""

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> None:
        super().__init__(name, bases, namespace)
        target = namespace.get("__extradite_target__")
        if isinstance(target, str):
            _proxy.GENERATED[target] = functools.partial(_adopt, cls)
            # What every bind needs, worked out once: the import path and the expected member kinds.
            type.__setattr__(cls, "_xd_target", parse_target(target))
            kinds = {name: digest.partition(":")[0] for name, digest in
                     namespace.get("__extradite_members__", {}).items() if name != "__init__"}
            type.__setattr__(cls, "_xd_kinds_checksum", kinds_checksum(kinds))

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        bound = cls._xd_bound()
        return RemoteClass.__call__(bound, *args, **kwargs)

    if not TYPE_CHECKING:  # unknown class attributes: dynamic path (hidden from type checkers)
        def __getattr__(cls, name: str) -> Any:
            if name.startswith("_xd_") or name.startswith("__"):
                raise AttributeError(name)
            return getattr(cls._xd_bound(), name)


def _adopt(generated: type, dynamic: type) -> type:
    """The typed class for handles of `generated`'s target met in any session (no class handle)."""
    return GeneratedMeta(generated.__name__, (generated, dynamic), {
        "__slots__": (), "_xd_api": None, "__module__": generated.__module__,
        "__qualname__": generated.__qualname__})


def _bind(cls: type[_T], options: dict[str, Any], handle: SessionHandle | None = None) -> type[_T]:
    """Connect `cls` to a session (`handle`'s, else a new one) and build its bound class (see module docstring)."""
    target = cls.__extradite_target__
    module, qualname = cls._xd_target
    if handle is None:
        share_key = options.pop("share_key", None)
        checked = SessionOptions.from_user(share_key, **options)
        trees = checked.protect
        refuse_loaded(f"extradite({target!r})", (protected_tree(module), *trees), trees)  # before a child starts
        handle, _ = _session_for(share_key, checked, repr(target))
    handle.acquire()
    try:
        imported, verdict = handle.import_class(module, qualname, target, expect=(
            cls.__extradite_fingerprint__, cls._xd_kinds_checksum))
        root = _root(imported)
        namespace: dict[str, Any] = {"__slots__": (), "_xd_api": ClassHandle(handle, target),
                                     "__module__": cls.__module__, "__qualname__": cls.__qualname__}
        bound: type[_T] = GeneratedMeta(cls.__name__, (cls, root), namespace)  # type: ignore[assignment]
        if verdict is not None:  # stale (or forged): say what changed
            try:
                table, live_signatures = _read_verdict(verdict)
            except ValueError as exc:  # a broken or hostile child: it is stopped, as for a corrupt frame
                problem = ValueError(f"the child sent malformed signatures of {target}: {exc}")
                raise handle._describe_failure(problem) from None
            live_table = dict(table)
            if root.__dict__["_xd_members"] != live_table:  # a class this session imported before it changed
                refresh_members(root, table)
            _mark_stale(cls, root, bound, member_digests(live_table, live_signatures))
    except BaseException:
        handle.release_user()
        raise
    # From now on handles of generated targets come back typed (this class's own: here).
    handle.session.adopts_generated = True
    handle.session.codec.imports.classes[root.__dict__["_xd_class_hid"]] = bound
    weakref.finalize(bound, close_collected, namespace["_xd_api"])
    return bound


def _read_verdict(verdict: object) -> tuple[tuple[tuple[str, str], ...], list[tuple[str, Any]]]:
    """The live member table and signatures a child sends for a stale class (`check_members`),
    checked: the child may be broken or hostile (ValueError)."""
    if not (type(verdict) is tuple and len(verdict) == 2):
        raise ValueError(f"a {type(verdict).__name__} came where (member table, signatures) belongs")
    table, data = verdict
    if not is_member_table(table):
        raise ValueError("its member table does not have the expected types")
    return table, load_signature_data(data)


def _mark_stale(cls: type[GeneratedProxy], root: type, bound: type, live: dict[str, str]) -> None:
    """Warn once about what changed; removed members raise, changed ones use the dynamic path."""
    expected = cls.__extradite_members__
    diff = {
        "added": sorted(set(live) - set(expected)),
        "removed": sorted(set(expected) - set(live)),
        "changed": sorted(n for n in set(expected) & set(live) if expected[n] != live[n]),
    }
    if not any(diff.values()):
        return  # only the fingerprint differs (generated by an extradite that computed it otherwise)
    for name in diff["removed"]:
        type.__setattr__(bound, name, _Removed(cls.__qualname__, name))
    for name in diff["changed"]:
        dynamic = root.__dict__.get(name)
        if dynamic is not None:
            type.__setattr__(bound, name, dynamic)
    summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in diff.items() if v)
    warnings.warn(ExtraditeStaleProxyWarning(
        f"the generated proxy {cls.__module__}.{cls.__qualname__} no longer matches {cls.__extradite_target__} "
        f"({summary}); changed and new members use the dynamic path, removed ones raise. "
        "Regenerate with extradite-gen"), stacklevel=5)


def member_digests(table: Mapping[str, str], live_signatures: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Name -> "kind:digest" for each member of a member table, and "__init__" -> "init:digest".

    `table` is `describe_type(cls)` (or its copy in a class descriptor), `live_signatures`
    is `signatures(cls)`. Generated proxies embed the result; the digests are of the
    signature texts below, which stay as they are so that embedded digests stay valid.
    """
    signed = dict(live_signatures)
    digests = {name: f"{kind}:{checksum(_signature_text(signed.get(name, '')).encode())}"
               for name, kind in table.items()}
    init = signed.get("__init__", "")
    if init != "":
        digests["__init__"] = "init:" + checksum(_signature_text(init).encode())
    return digests


def _signature_text(signature: tuple[Any, ...] | str) -> str:
    if isinstance(signature, str):
        return signature
    if len(signature) == 2:  # a property
        return f"set={signature[0]},del={signature[1]}"
    names, pos, args, kw, flags, defaults, kwdefaults = signature
    return "|".join([",".join(names), f"pos={pos},args={args},kw={kw},flags={flags}", ",".join(defaults),
                     ",".join(f"{k}={v}" for k, v in kwdefaults)])


class _GeneratedClose:
    """`Proxy.close()` ends the class's binding; `proxy.close()` releases the instance."""

    def __get__(self, obj: object, owner: type) -> Callable[[], None]:
        if obj is None:
            return owner.close_proxy_class  # type: ignore[attr-defined, no-any-return]
        return lambda: release(obj)


class GeneratedProxy(PolicyIntrospection, metaclass=GeneratedMeta):
    """Base class of generated proxies."""

    # No instance dict: a generated instance has the layout of every proxy of its target,
    # so construction can give it the class that was called (see `RemoteClass.__call__`).
    __slots__ = ()
    __extradite_target__: ClassVar[str]
    __extradite_fingerprint__: ClassVar[str]
    __extradite_members__: ClassVar[Mapping[str, str]]
    _xd_target: ClassVar[tuple[str, str]]   # set by GeneratedMeta from __extradite_target__
    _xd_kinds_checksum: ClassVar[str]       # and `_members.kinds_checksum` of __extradite_members__' kinds
    __extradite_method_policies__: ClassVar[Mapping[str, str]] = {}

    if TYPE_CHECKING:
        _xd_session: Any

    close = _GeneratedClose()

    # -- binding ---------------------------------------------------------------------
    @classmethod
    def extradite(cls: type[_T], *, share_key: str | None = None, transport_policy: str = "value",
                  transport_type_rules: Mapping[type, str] | None = None,
                  share_keepalive_seconds: float | None = None, python: str | os.PathLike[str] | None = None,
                  protect: tuple[str, ...] | list[str] = (), sandbox: Sandbox | None = None,
                  limits: Limits | None = None, forward_logging: bool = True,
                  requirements: Iterable[str] | None = None, call_timeout: float | None = None,
                  timeout_grace: float = 1.0, restart: Restart | None = None, concurrency: str = "serial", backend: str = "local",
                  ray_options: Mapping[str, Any] | None = None, untrusted: bool = False,
                  trusted_types: Iterable[type] = (), lend_attributes: Mapping[type, Iterable[str]] | None = None,
                  max_frame_bytes: int | None = None) -> type[_T]:
        """A copy of this proxy class bound to its own session with these options (like `extradite()`)."""
        if backend != "local" or ray_options is not None:
            from ._api import _local_only, _refuse_concurrency_on_ray
            from ._ray import bind_generated

            _local_only(untrusted, trusted_types, lend_attributes, max_frame_bytes)
            _refuse_concurrency_on_ray(concurrency)

            return bind_generated(cls, backend, ray_options, {  # type: ignore[no-any-return]
                "share_key": share_key, "transport_policy": transport_policy,
                "transport_type_rules": transport_type_rules,
                "share_keepalive_seconds": share_keepalive_seconds, "python": python, "protect": protect,
                "sandbox": sandbox, "limits": limits, "requirements": requirements, "restart": restart})
        return _bind(cls, {"share_key": share_key, "transport_policy": transport_policy,
                           "transport_type_rules": transport_type_rules,
                           "share_keepalive_seconds": share_keepalive_seconds, "python": python,
                           "protect": protect, "sandbox": sandbox, "limits": limits,
                           "forward_logging": forward_logging, "requirements": requirements,
                           "call_timeout": call_timeout, "timeout_grace": timeout_grace,
                           "untrusted": untrusted, "trusted_types": trusted_types,
                           "lend_attributes": lend_attributes, "max_frame_bytes": max_frame_bytes, "restart": restart,
                           "concurrency": concurrency})

    @classmethod
    def _xd_bound(cls: type[_T]) -> type[_T]:
        if "_xd_api" in cls.__dict__:
            return cls
        bound: type[_T] | None = cls.__dict__.get("_xd_default")
        if bound is None or bound.__dict__["_xd_api"].closed:
            home: GeneratedModule | None = cls.__dict__.get("_xd_home")  # a class of a generated module proxy
            bound = home.bind_class(cls) if home is not None else _bind(cls, {})
            type.__setattr__(cls, "_xd_default", bound)
        return bound

    # -- instance primitives ---------------------------------------------------------
    def _xd_init(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Construction happens in the metaclass; generated `__init__` bodies only type-check."""

    def _xd_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        policy = None
        if kwargs or (args and args[-1] is MISSING):  # else nothing to strip (the usual call)
            args, kwargs = _strip(args, kwargs)
            if TIMEOUT_KEYWORD in kwargs:
                from ._deadline import call_with_timeout

                return call_with_timeout(self._xd_session, kwargs.pop(TIMEOUT_KEYWORD),
                                         self._xd_call, name, args, kwargs)
            policy = _pop_policy(kwargs) if kwargs else None
        return self._xd_session.call(OP_CALL_METHOD, self, name=name, args=args, kwargs=kwargs, policy=policy,
                                     method_policy=self.__extradite_method_policies__.get(name))

    async def _xd_call_async(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        args, kwargs = _strip(args, kwargs)
        return await BoundMethod(self, name, EXTRA_AWAIT).aio(*args, **kwargs)

    def _xd_batch(self, name: str, calls: Iterable[Any], npos: int | None = None,
                  kwnames: tuple[str, ...] = ()) -> list[Any]:
        return self._xd_session.call(  # type: ignore[no-any-return]
            OP_BATCH, self, name=name, args=_batch_items(calls, npos, kwnames),
            method_policy=self.__extradite_method_policies__.get(name))

    async def _xd_batch_async(self, name: str, calls: Iterable[Any], npos: int | None = None,
                              kwnames: tuple[str, ...] = ()) -> list[Any]:
        from ._aio import aio_call

        items = _batch_items(calls, npos, kwnames)
        return await aio_call(self._xd_session, OP_BATCH, self, name=name,  # type: ignore[no-any-return]
                              args=items, extra=EXTRA_AWAIT,
                              method_policy=self.__extradite_method_policies__.get(name))

    def _xd_get(self, name: str) -> Any:
        return self._xd_session.call(OP_GETATTR, self, name=name)

    def _xd_set(self, name: str, value: Any) -> None:
        self._xd_session.call(OP_SETATTR, self, name=name, args=(value,))

    def _xd_del(self, name: str) -> None:
        self._xd_session.call(OP_DELATTR, self, name=name)

    # -- class primitives ------------------------------------------------------------
    @classmethod
    def _xd_class_call(cls, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        args, kwargs = _strip(args, kwargs)
        return BoundMethod(cls._xd_bound(), name)(*args, **kwargs)  # the bound class carries method policies

    @classmethod
    def _xd_class_batch(cls, name: str, calls: Iterable[Any], npos: int | None = None,
                        kwnames: tuple[str, ...] = ()) -> list[Any]:
        bound = cls._xd_bound()
        root = _root(bound)
        return root.__dict__["_xd_class_session"].call(  # type: ignore[no-any-return]
            OP_BATCH, bound, name=name, args=_batch_items(calls, npos, kwnames),
            method_policy=cls.__extradite_method_policies__.get(name))

    @classmethod
    async def _xd_class_batch_async(cls, name: str, calls: Iterable[Any], npos: int | None = None,
                                    kwnames: tuple[str, ...] = ()) -> list[Any]:
        bound = cls._xd_bound()
        from ._aio import aio_call

        items = _batch_items(calls, npos, kwnames)
        return await aio_call(_root(bound).__dict__["_xd_class_session"], OP_BATCH,  # type: ignore[no-any-return]
                              bound, name=name, args=items, extra=EXTRA_AWAIT,
                              method_policy=cls.__extradite_method_policies__.get(name))

    @classmethod
    def _xd_class_get(cls, name: str) -> Any:
        root = _root(cls._xd_bound())
        return root.__dict__["_xd_class_session"].call(OP_GETATTR, root, name=name)

    # -- policies and lifecycle (same as dynamic proxies) ----------------------------
    @classmethod
    def _xd_policy_session(cls) -> Any:
        return _root(cls._xd_bound()).__dict__["_xd_class_session"]

    @classmethod
    def close_proxy_class(cls) -> None:
        """End this class's session binding (the default one for an unbound generated class)."""
        bound = cls.__dict__.get("_xd_default") if "_xd_api" not in cls.__dict__ else cls
        api = bound.__dict__["_xd_api"] if bound is not None else None
        if api is not None:  # None: a class adopted for handles, it owns no session
            api.close()



class GeneratedModule:
    """The session of a module proxy written by `extradite-gen pkg.mod` (or `pkg.mod:func`).

    Importing the generated module starts nothing: the first call of one of its functions
    (or first use of one of its classes) runs `import_isolated(name, **options)`, and that
    one child serves every function and class of the generated module. Each function is
    looked up once per binding and then called in one round trip. `bind(**options)` binds
    now with `import_isolated()`'s options (ending an earlier binding); `close()` ends the
    binding, and the next use binds again.
    """

    __slots__ = ("name", "classes", "_options", "_proxy", "_functions")

    def __init__(self, name: str, classes: tuple[type[GeneratedProxy], ...] = ()) -> None:
        self.name = name
        self.classes = classes
        self._options: dict[str, Any] = {}
        self._proxy: Any = None
        self._functions: dict[str, Any] = {}
        for cls in classes:
            type.__setattr__(cls, "_xd_home", self)

    def module(self) -> Any:
        """The module proxy (`import_isolated`) this generated module is bound to, binding it now if needed."""
        proxy = self._proxy
        if proxy is None or type(proxy).__dict__["_xd_api"].closed:
            from ._api import import_isolated

            proxy = self._proxy = import_isolated(self.name, **self._options)
            self._functions = {}
        return proxy

    def bind(self, **options: Any) -> None:
        """End the current binding and bind now with these `import_isolated()` options."""
        self.close()
        self._options = dict(options)
        try:
            self.module()
        except BaseException:
            self._options = {}
            raise

    def close(self) -> None:
        """End the binding (the module's and its classes' default ones); the next use binds again."""
        proxy, self._proxy, self._functions = self._proxy, None, {}
        for cls in self.classes:
            cls.close_proxy_class()
        if proxy is not None:
            proxy.close()

    def bind_class(self, cls: type[_T]) -> type[_T]:
        """`cls` (one of this module's generated classes) bound to the module's session."""
        return _bind(cls, {}, type(self.module()).__dict__["_xd_api"].handle)

    def _function(self, name: str) -> Any:
        fn = self._functions.get(name)
        if fn is None or fn._xd_closed:
            fn = self._functions[name] = getattr(self.module(), name)
        return fn

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call the module's function `name` in the child (MISSING arguments are left out)."""
        fn = self._functions.get(name)
        if fn is None or fn._xd_closed:
            fn = self._function(name)
        if kwargs or (args and args[-1] is MISSING):
            args, kwargs = _strip(args, kwargs)
        return fn(*args, **kwargs)

    def batch(self, name: str, calls: Iterable[Any], npos: int | None = None,
              kwnames: tuple[str, ...] = ()) -> list[Any]:
        """Call the module's function `name` once per item of `calls` in one round trip."""
        return self._function(name).batch(_batch_items(calls, npos, kwnames))  # type: ignore[no-any-return]


_P = TypeVar("_P", bound="GeneratedProxy")


class AsyncGeneratedProxy(Generic[_P]):
    """Base class of the async variant `extradite-gen` writes beside each proxy (`AsyncCounter`).

    An instance wraps one instance of the sync proxy (`sync_proxy`); every member is a
    coroutine awaited on the running event loop (see `_aio`: no thread per call), and
    `await AsyncCounter.create(...)` constructs. A target member named like one of this
    class's own (`create`, `sync_proxy`, `sync_class`, `close_proxy_class`) is reached
    through `sync_proxy`.
    """

    __slots__ = ("sync_proxy",)
    sync_class: ClassVar[type[Any]]

    def __init__(self, sync_proxy: _P) -> None:
        self.sync_proxy = sync_proxy

    def __repr__(self) -> str:
        return f"<async {self.sync_proxy!r}>"

    @classmethod
    def close_proxy_class(cls) -> None:
        """End the binding of the sync proxy class (as `Counter.close_proxy_class()`)."""
        cls.sync_class.close_proxy_class()

    @classmethod
    async def _xd_construct(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from ._asyncproxy import _construct

        args, kwargs = _strip(args, kwargs)
        return await _construct(cls.sync_class._xd_bound(), args, kwargs)

    async def _xd_acall(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                        awaited: bool = False) -> Any:
        args, kwargs = _strip(args, kwargs)
        proxy = self.sync_proxy
        return await BoundMethod(proxy, name, EXTRA_AWAIT if awaited else 0).aio(*args, **kwargs)

    @classmethod
    async def _xd_aclass_call(cls, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                              awaited: bool = False) -> Any:
        args, kwargs = _strip(args, kwargs)
        bound = cls.sync_class._xd_bound()
        return await BoundMethod(bound, name, EXTRA_AWAIT if awaited else 0).aio(*args, **kwargs)

    def _xd_aget(self, name: str) -> Any:
        from ._aio import aio_call

        proxy = self.sync_proxy
        return aio_call(proxy._xd_session, OP_GETATTR, proxy, name=name)

    async def _xd_abatch(self, name: str, calls: Iterable[Any], npos: int | None = None,
                         kwnames: tuple[str, ...] = (), awaited: bool = False) -> list[Any]:
        from ._aio import aio_call

        proxy = self.sync_proxy
        return await aio_call(proxy._xd_session, OP_BATCH, proxy, name=name,  # type: ignore[no-any-return]
                              args=_batch_items(calls, npos, kwnames), extra=EXTRA_AWAIT if awaited else 0,
                              method_policy=proxy.__extradite_method_policies__.get(name))

    async def _xd_abatch_awaited(self, name: str, calls: Iterable[Any], npos: int | None = None,
                                 kwnames: tuple[str, ...] = ()) -> list[Any]:
        """`_xd_abatch` of an `async def` method: each item's coroutine is awaited in the child."""
        return await self._xd_abatch(name, calls, npos, kwnames, True)

    @classmethod
    async def _xd_aclass_batch_awaited(cls, name: str, calls: Iterable[Any], npos: int | None = None,
                                       kwnames: tuple[str, ...] = ()) -> list[Any]:
        return await cls._xd_aclass_batch(name, calls, npos, kwnames, True)

    @classmethod
    async def _xd_aclass_batch(cls, name: str, calls: Iterable[Any], npos: int | None = None,
                               kwnames: tuple[str, ...] = (), awaited: bool = False) -> list[Any]:
        from ._aio import aio_call

        bound = cls.sync_class._xd_bound()
        return await aio_call(_root(bound).__dict__["_xd_class_session"], OP_BATCH,  # type: ignore[no-any-return]
                              bound, name=name, args=_batch_items(calls, npos, kwnames),
                              extra=EXTRA_AWAIT if awaited else 0,
                              method_policy=cls.sync_class.__extradite_method_policies__.get(name))
