"""The Ray backend: the same proxies, each instance served by its own Ray actor.

    extradite(t, backend="ray")  -> class actor (`RayHost`, no CPU held): imports the
                                    target, sends the class by reference -> class proxy
                                    (classmethods, class attributes, the member table)
    ProxyClass(*args)            -> instance actor (`RayHost` with `ray_options`): imports the
                                    target and constructs the instance -> instance proxy
    proxy.method(x)              -> RaySession.call: the driver's Codec encodes the request
                                    -> actor.serve(inline, positions, buffers) -> the actor's
                                    Codec decodes, runs the op, encodes the result -> decoded here

Messages are the local child's: the same codec (pickle 5, policies, handles with one
proxy per remote object, the protected-tree refusal on both sides, error records);
Ray carries the bytes, big buffers out of band through its object store. Proxies are
`_proxy`'s, bound to a `RaySession` instead of a `Session`.

Limits, each an `UnsupportedInteractionError` naming it: the actor cannot call back
into the driver, so nothing of the driver travels by reference (callbacks, local
classes, `transport_policy='reference'` for arguments); `share_key`, `python=` and
`share_keepalive_seconds` are local-process options (Ray's `runtime_env` chooses
the environment).

Here: the options and the entry points. The actor is `_ray_actor`, the driver's
sessions and handles `_ray_driver`.

Ray is imported only when a Ray-backed class is made (`import extradite` never does).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from ._errors import ExtraditeProcessError, UnsupportedInteractionError
from ._ray_actor import RayHost
from ._ray_driver import RayClassHandle, RayModuleHandle, RaySession, import_ray
from ._wire import OP_IMPORT

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._options import SessionOptions

__all__ = ["BACKENDS", "RAY_OPTIONS", "check_backend", "extradite_ray", "bind_generated", "RayHost",
           "RaySession"]

BACKENDS = ("local", "ray")
# What `ray_options` passes through to the instance actors' `.options()`.
RAY_OPTIONS = ("num_cpus", "num_gpus", "resources", "max_restarts", "runtime_env", "name", "namespace")


# -- options ------------------------------------------------------------------------------
def _number(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"ray_options[{key!r}] must be a number >= 0, not {value!r}")


def check_backend(backend: object, ray_options: object) -> dict[str, Any] | None:
    """`backend` and `ray_options` validated: the Ray options as a new dict, or None for the local backend."""
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string ('local' or 'ray'), not {type(backend).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'local' (a child process, the default) or 'ray' (a Ray actor), "
                         f"not {backend!r}")
    if backend == "local":
        if ray_options is not None:
            raise ValueError("ray_options requires backend='ray'; pass backend='ray' or drop ray_options")
        return None
    if ray_options is None:
        return {}
    if not isinstance(ray_options, dict):
        raise TypeError(f"ray_options must be a dict such as {{'num_cpus': 1}}, not {type(ray_options).__name__}")
    options: dict[str, Any] = {}
    for key, value in ray_options.items():
        if key not in RAY_OPTIONS:
            raise ValueError(f"ray_options has an unknown key {key!r}; extradite passes through "
                             f"{', '.join(RAY_OPTIONS)}")
        if key in ("num_cpus", "num_gpus"):
            _number(key, value)
        elif key == "resources":
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise TypeError(f"ray_options['resources'] must be a dict of resource name -> amount, "
                                f"not {value!r}")
            for name, amount in value.items():
                _number(f"resources'][{name!r}", amount)
        elif key == "max_restarts":
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise ValueError(f"ray_options['max_restarts'] must be an int >= -1 (-1: restart forever), "
                                 f"not {value!r}")
        elif key == "runtime_env":
            if not isinstance(value, dict):
                raise TypeError(f"ray_options['runtime_env'] must be a dict (Ray's runtime_env), "
                                f"not {type(value).__name__}")
        elif not isinstance(value, str) or not value:
            raise TypeError(f"ray_options[{key!r}] must be a non-empty string, not {value!r}")
        options[key] = value
    if "namespace" in options and "name" not in options:
        raise ValueError("ray_options['namespace'] names where a named actor lives: give ray_options['name'] too")
    return options


def _refuse_local_options(share_key: object, keepalive: object, python: object, sandbox: object = None,
                          limits: object = None, requirements: object = None,
                          call_timeout: object = None, restart: object = None) -> None:
    environment = "choose the actor's environment with ray_options={'runtime_env': ...}"
    for given, what, instead in (
            (share_key, "share_key", "each instance has its own actor; pass its proxies to share it"),
            (keepalive, "share_keepalive_seconds", "an actor lives as long as its proxy"),
            (python, "python", environment),
            (requirements, "requirements", environment),
            (sandbox, "sandbox", "Ray places and isolates its workers itself"),
            (limits, "limits", "give the actor resources with ray_options={'num_cpus': ..., 'resources': ...}"),
            (call_timeout, "call_timeout", "Ray cancels actor calls only cooperatively; use the local backend "
                                           "for bounded calls"),
            (restart, "restart", "Ray restarts actors itself: ray_options={'max_restarts': ...}")):
        if given is not None:
            raise UnsupportedInteractionError(
                f"{what}= is an option of the local backend and cannot apply to a Ray actor: {instead}")



def import_isolated_ray(module: str, backend: object, ray_options: object, *, share_key: str | None,
                        transport_policy: str, transport_type_rules: Mapping[type, str] | None,
                        share_keepalive_seconds: float | None, python: object,
                        protect: tuple[str, ...] | list[str], sandbox: object = None, limits: object = None,
                        requirements: object = None, call_timeout: object = None, restart: object = None) -> Any:
    """`import_isolated(module, backend="ray", ...)`: a module proxy served by a Ray actor."""
    from ._targets import refuse_loaded
    from ._modules import module_proxy
    from ._options import SessionOptions
    from ._targets import parse_module, protected_tree

    name = parse_module(module)
    checked = check_backend(backend, ray_options)
    assert checked is not None, "import_isolated() takes this path only for backend='ray'"
    if "name" in checked:
        raise UnsupportedInteractionError(
            "ray_options['name'] names one actor, but a module's classes each get actors of their own: "
            "attach to a named actor with extradite('pkg.mod:Cls', backend='ray', ray_options={'name': ...})")
    _refuse_local_options(share_key, share_keepalive_seconds, python, sandbox, limits, requirements, call_timeout,
                          restart)
    options = SessionOptions.from_user(None, transport_policy=transport_policy,
                                       transport_type_rules=transport_type_rules, protect=protect)
    what = f"import_isolated({name!r})"
    refuse_loaded(what, (protected_tree(name), *options.protect), options.protect)
    import_ray()
    api = RayModuleHandle(name, options, checked)
    try:
        remote = api.open()
    except BaseException:
        api.close()
        raise
    return module_proxy(api, remote, name)  # type: ignore[arg-type]


def _close_quietly(api: RayClassHandle) -> None:
    try:
        api.close()
    except Exception:  # a finalizer must not take down whatever the collector interrupted
        pass


def _open(target: str, options: SessionOptions, ray_options: dict[str, Any]) -> tuple[RayClassHandle, Any]:
    from ._targets import refuse_loaded
    from ._targets import parse_target, protected_tree

    module, qualname = parse_target(target)
    refuse_loaded(f"extradite({target!r})", (protected_tree(module), *options.protect), options.protect)
    import_ray()
    api = RayClassHandle(target, module, qualname, options, ray_options)
    try:
        root = api.open_class()
    except BaseException:
        api.close()
        raise
    return api, root


def extradite_ray(target: str, backend: object, ray_options: object, *, share_key: str | None,
                  transport_policy: str, transport_type_rules: Mapping[type, str] | None,
                  share_keepalive_seconds: float | None, python: object,
                  protect: tuple[str, ...] | list[str], sandbox: object = None, limits: object = None,
                  requirements: object = None, call_timeout: object = None, restart: object = None) -> Any:
    """`extradite(target, backend="ray", ...)`: a proxy class whose instances each live in a Ray actor."""
    from ._options import SessionOptions
    from ._proxy import RemoteClass

    checked = check_backend(backend, ray_options)
    assert checked is not None, "extradite() takes this path only for backend='ray'"
    _refuse_local_options(share_key, share_keepalive_seconds, python, sandbox, limits, requirements, call_timeout,
                          restart)
    options = SessionOptions.from_user(None, transport_policy=transport_policy,
                                       transport_type_rules=transport_type_rules, protect=protect)
    api, root = _open(target, options, checked)
    cls = RemoteClass(root.__name__, (root,), {
        "__slots__": (), "_xd_api": api, "__module__": root.__module__, "__qualname__": root.__qualname__,
    })
    weakref.finalize(cls, _close_quietly, api)
    return cls


def bind_generated(cls: type, backend: object, ray_options: object, options: dict[str, Any]) -> Any:
    """`GeneratedProxy.extradite(backend="ray", ...)`: the generated class bound to Ray actors.

    The class actor checks the proxy as a local child does (OP_IMPORT with the fingerprint
    and kinds checksum): a stale proxy warns (`ExtraditeStaleProxyWarning`), its changed
    members use the dynamic path and removed ones raise, as with the local backend.
    """
    from ._generated import GeneratedMeta
    from ._options import SessionOptions

    checked = check_backend(backend, ray_options)
    assert checked is not None, "extradite() takes this path only for backend='ray'"
    _refuse_local_options(options.pop("share_key", None), options.pop("share_keepalive_seconds", None),
                          options.pop("python", None), options.pop("sandbox", None), options.pop("limits", None),
                          options.pop("requirements", None), options.pop("call_timeout", None),
                          options.pop("restart", None))
    options.pop("timeout_grace", None)
    target: str = cls.__extradite_target__  # type: ignore[attr-defined]
    api, root = _open(target, SessionOptions.from_user(None, **options), checked)
    api.adopts_generated = True
    namespace: dict[str, Any] = {"__slots__": (), "_xd_api": api, "__module__": cls.__module__,
                                 "__qualname__": cls.__qualname__}
    bound = GeneratedMeta(cls.__name__, (cls, root), namespace)
    session = api.session
    assert session is not None
    session.adopts_generated = True
    session.codec.imports.classes[root.__dict__["_xd_class_hid"]] = bound
    weakref.finalize(bound, _close_quietly, api)
    try:
        _check_generated(cls, root, bound, session, api)
    except BaseException:  # a malformed verdict, or the warning raised as an error: nothing stays bound
        api.close()
        raise
    return bound


def _check_generated(cls: Any, root: type, bound: type, session: RaySession, api: RayClassHandle) -> None:
    """The local bind's staleness check (`_generated._bind`), asked of the class actor."""
    from ._generated import _mark_stale, _read_verdict, member_digests
    from ._proxy import refresh_members

    reply = session.call(OP_IMPORT, api.module, name=api.qualname, args=(
        api.module, cls.__extradite_fingerprint__, cls._xd_kinds_checksum))
    verdict = reply[1] if type(reply) is tuple and len(reply) == 2 else reply
    if verdict is None:
        return
    try:
        table, live_signatures = _read_verdict(verdict)
    except ValueError as exc:  # a broken or hostile actor
        raise ExtraditeProcessError(f"the Ray actor sent malformed signatures of {api.target}: {exc}",
                                    returncode=None) from None
    live_table = dict(table)
    if root.__dict__["_xd_members"] != live_table:
        refresh_members(root, table)
    _mark_stale(cls, root, bound, member_digests(live_table, live_signatures))
