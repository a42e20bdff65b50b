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
the environment). An actor never raises to Ray (Ray would pickle the exception, whose
type may live in the protected tree): failures travel as error records.

Ray is imported only when a Ray-backed class is made (`import extradite` never does).
"""

from __future__ import annotations

import sys
import threading
import uuid
import weakref
from io import BytesIO
from typing import TYPE_CHECKING, Any

from ._codec import Codec, error_record, raise_record
from ._errors import ExtraditeClosedError, ExtraditeModuleLeakError, ExtraditeProcessError, \
    UnsupportedInteractionError
from ._policy import REFERENCE, PolicyConfig
from ._targets import loaded_tree
from ._wire import (
    EXTRA_AWAIT,
    EXTRA_RESULT_BY_REF,
    EXTRA_TARGET_HID,
    OP_BATCH,
    OP_CALL,
    OP_CALL_METHOD,
    OP_DELATTR,
    OP_GETATTR,
    OP_IMPORT,
    OP_SETATTR,
    OP_STATS,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._options import SessionOptions

__all__ = ["BACKENDS", "RAY_OPTIONS", "check_backend", "extradite_ray", "bind_generated", "RayHost",
           "RaySession"]

BACKENDS = ("local", "ray")
# What `ray_options` passes through to the instance actors' `.options()`.
RAY_OPTIONS = ("num_cpus", "num_gpus", "resources", "max_restarts", "runtime_env", "name", "namespace")
_INSTALL_HINT = "pip install 'extradite[ray]'"
_ROOT_HID = 1  # an actor lends its root object (class or instance) first, in every life
_CONNECTION = 16  # bytes of a connection id (a driver session's handle table in an actor)
_RESTART_WAIT = 60.0  # seconds a call waits for an actor that Ray is restarting


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


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"backend='ray' needs Ray, which is not installed here: {_INSTALL_HINT}") from exc
    return ray


# -- the actor ------------------------------------------------------------------------------
class _NoParentHandles:
    """The actor's proxy factory: a driver object never arrives by reference (the driver refuses to
    lend), so one that does is refused here too."""

    @staticmethod
    def make_class(*args: Any) -> Any:
        raise UnsupportedInteractionError(_LIMIT)

    make_instance = make_class


_LIMIT = ("a Ray actor cannot call back into the driver, so driver objects cannot cross by reference "
          "(callbacks, local classes, non-picklable values, transport_policy='reference' for arguments)")


class _BatchFailure(Exception):
    def __init__(self, index: int, error: BaseException) -> None:
        self.index = index
        self.error = error


def _envelope(op: int, args: tuple[Any, ...], kwargs: dict[str, Any], releases: list[Any]) -> tuple[Any, ...]:
    """The containers of a request, never lent (`_session._envelope`, loaded with the first call)."""
    from ._session import _envelope as envelope

    globals()["_envelope"] = envelope
    return envelope(op, args, kwargs, releases)


def _split(writer: Any) -> tuple[bytes, list[int], list[Any]]:
    """A `BodyWriter` as Ray arguments: inline bytes, and big buffers out of band with their positions."""
    from pickle import PickleBuffer

    inline = b"".join(writer.parts)
    return inline, [pos for pos, _ in writer.big], [PickleBuffer(view) for _, view in writer.big]


def _reader(inline: bytes, positions: list[int], buffers: list[Any]) -> Any:
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
    their own. The root object is handle `_ROOT_HID` of every connection. A request
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
            __import__(module)
            obj: Any = sys.modules[module]
            for part in qualname.split(".") if qualname else ():  # "": the module itself (import_isolated)
                obj = getattr(obj, part)
            if construct is not None:
                if not isinstance(obj, type):
                    raise TypeError(f"{module}:{qualname} is a {type(obj).__qualname__}, not a class; "
                                    "extradite() takes classes")
                _, args, kwargs = self._codec(b"", fresh=True).unpickler(_reader(*construct)).load()
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
            exports.export(root)  # _ROOT_HID; `hello` sends it, and its class first
        if not fresh:
            import secrets

            if isinstance(root, type):
                exports.export_class(root)  # _ROOT_HID, which the driver holds already
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

        `message`: the connection id (`_CONNECTION` bytes), then the request's inline bytes;
        big buffers come apart. The reply: the result's bytes alone when it has no big
        buffers, else ("ok", inline, positions, buffers), or ("error", error record).
        One argument and a bytes reply where possible: Ray's cost grows with their number.
        """
        try:
            if self._failure is not None:
                return ("error", self._failure)
            connection, inline = message[:_CONNECTION], message[_CONNECTION:]
            codec = self._codec(connection, fresh=False)
            releases, op, target, name, args, kwargs, policy, extra = \
                codec.unpickler(_reader(inline, positions or [], buffers or [])).load()
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
            else:
                envelope = (result,) if op == OP_BATCH else ()
            return self._reply(codec, result, policy, envelope)
        except _BatchFailure as failure:
            return ("error", error_record(failure.error, failure.index))
        except Exception as exc:
            return ("error", error_record(exc))

    def release(self, connection: bytes, releases: list[tuple[int, int]]) -> None:
        """Handle releases the driver sends on their own (`RaySession.flush_releases`)."""
        codec = self._codecs.get(connection)
        if codec is not None:
            for hid, count in releases:
                if hid != _ROOT_HID:
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
        return ("ok", *_split(writer))

    def _execute(self, codec: Codec, op: int, target: Any, name: str | None, args: tuple[Any, ...],
                 kwargs: dict[str, Any], extra: int) -> Any:
        if op == OP_CALL_METHOD:
            result = getattr(target, name)(*args, **kwargs)  # type: ignore[arg-type]
        elif op == OP_CALL:
            result = target(*args, **kwargs)
        elif op == OP_GETATTR:
            return getattr(target, name)  # type: ignore[arg-type]
        elif op == OP_SETATTR:
            setattr(target, name, args[0])  # type: ignore[arg-type]
            return None
        elif op == OP_DELATTR:
            delattr(target, name)  # type: ignore[arg-type]
            return None
        elif op == OP_BATCH:
            func = target if name is None else getattr(target, name)
            results = []
            for index, (item_args, item_kwargs) in enumerate(args):
                try:
                    value = func(*item_args, **item_kwargs)
                    if extra & EXTRA_AWAIT:
                        value = self._run_awaitable(value)
                except Exception as exc:
                    raise _BatchFailure(index, exc) from exc
                results.append(value)
            return results
        elif op == OP_STATS:
            return {"exports": len(codec.exports), "classes": len(codec.exports.classes)}
        elif op == OP_IMPORT:
            return self._import(codec, target, name, args)
        else:
            raise UnsupportedInteractionError(f"operation {op} is not served by a Ray actor")
        if extra & EXTRA_AWAIT:
            result = self._run_awaitable(result)
        return result

    def _import(self, codec: Codec, module: str, name: str | None, args: tuple[Any, ...]) -> tuple[Any, Any]:
        """The local child's OP_IMPORT (`_dispatch.op_import`): (the object, a generated proxy's verdict)."""
        from ._members import check_members

        if args and args[0] not in self._protected:
            self._protected = (*self._protected, args[0])
            for known in self._codecs.values():
                known.protected = self._protected
            codec.protected = self._protected
        __import__(module)
        obj: Any = sys.modules[module]
        for part in (name or "").split("."):
            if part:
                obj = getattr(obj, part)
        return (obj, check_members(obj, args[1], args[2]) if len(args) == 3 else None)

    def _run_awaitable(self, value: Any) -> Any:
        if not hasattr(value, "__await__"):
            return value
        import asyncio

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(value)


# -- the driver side ------------------------------------------------------------------------------
class _DriverCodec(Codec):
    """The driver's codec: it lends nothing (see `_LIMIT`); the refusal names the object."""

    def _lend(self, pickler: Any, obj: Any) -> tuple[Any, ...]:
        what = obj.__qualname__ if isinstance(obj, type) else type(obj).__qualname__
        raise UnsupportedInteractionError(
            f"cannot send {what} {_describe(obj)} to a Ray actor: {_LIMIT}. Pass plain data or a "
            "module-level function (they travel by value), or run the target with the local backend")


def _describe(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__qualname__}>"
    return text if len(text) <= 80 else text[:77] + "..."


class RaySession:
    """The driver's side of one actor, with the interface proxies use of a `Session`.

    Calls are serialised (an actor serves one request at a time anyway): class
    descriptors then arrive in the order the actor sent them.
    """

    def __init__(self, actor: Any, *, name: str, config: PolicyConfig, trees: tuple[str, ...],
                 owned: bool) -> None:
        from ._proxy import ProxyFactory

        self.actor = actor
        self.name = name
        self.owned = owned      # created here: close() kills it (an attached named actor is left running)
        self.codec = _DriverCodec(self, ProxyFactory, is_child=False)
        self.codec.config = config
        self.protected = self.codec.protected = trees
        self.closed = False
        self.broken: BaseException | None = None
        self.adopts_generated = False
        self.rebuild = None  # no supervised restart here (Ray restarts actors itself): `_restart`
        # Constructs an instance in its own actor: spawn(class proxy, args, kwargs, policy). A class
        # session's serves its root; a module session's (`spawn_classes`) every class it lends.
        self.spawn: Any = None
        self.spawn_classes = False
        self.root: Any = None   # the root proxy (class or instance)
        self.connection = uuid.uuid4().bytes  # this session's handle table in the actor (_CONNECTION bytes)
        self._crashed = False   # a call saw the actor die: the next one waits for its restart
        self._lock = threading.RLock()

    def check_usable(self) -> None:
        if self.closed:
            raise ExtraditeClosedError(
                f"the Ray actor of {self.name} was closed; construct a new instance (or call extradite() again)")
        tree = loaded_tree(self.protected)
        if tree is not None:
            raise ExtraditeModuleLeakError(
                f"the protected module tree {tree!r} was imported in this interpreter after the "
                f"extradite session started; remove the import of {tree!r} (isolation is broken, "
                "so no more calls are made)")

    def hello(self) -> Any:
        """The actor's root object as a proxy (the first call of a session)."""
        self.root = self._decode(self._remote(self.actor.hello, self.connection))
        return self.root

    def call(self, op: int, target: Any, name: str | None = None, args: tuple[Any, ...] = (),
             kwargs: dict[str, Any] | None = None, policy: str | None = None, extra: int = 0,
             method_policy: str | None = None, defer: bool = False) -> Any:
        """One request served by the actor (the signature of `Session.call`)."""
        if defer:
            raise UnsupportedInteractionError("deferred calls are not offered by the Ray backend")
        self.check_usable()
        if kwargs is None:
            kwargs = {}
        if self.spawn is not None and op == OP_CALL and (
                target is self.root or (self.spawn_classes and isinstance(target, type))):
            return self.spawn(target, args, kwargs, policy)  # not under the lock: actors start in parallel
        with self._lock:
            home = self.codec.home_hid(target)
            if home is not None:
                target = home
                extra |= EXTRA_TARGET_HID
            imports = self.codec.imports
            # The root's proxy was collected (an explicit release ends the actor: `flush_releases`):
            # the actor keeps serving the handles it returned, as a local child does.
            releases = [r for r in imports.take_releases() if r[0] != _ROOT_HID] if imports.pending else []
            body = (releases, op, target, name, args, kwargs, policy or method_policy, extra)
            try:
                writer = self.codec.encode(body, _envelope(op, args, kwargs, releases),
                                           call_policy=policy, method_policy=method_policy)
            except BaseException:
                imports.pending.extendleft(reversed(releases))
                raise
            if writer.big:
                inline, positions, buffers = _split(writer)
                reply = self._remote(self.actor.serve, self.connection + inline, positions, buffers)
            else:
                reply = self._remote(self.actor.serve, b"".join([self.connection, *writer.parts]))
            return self._decode(reply)

    def encode_construction(self, args: tuple[Any, ...], kwargs: dict[str, Any],
                            policy: str | None) -> tuple[bytes, list[int], list[Any]]:
        """Constructor arguments for a new instance actor, encoded as a request is."""
        body: tuple[Any, ...] = ([], args, kwargs)
        return _split(self.codec.encode(body, (body[0], args, kwargs), call_policy=policy))

    def _remote(self, method: Any, *args: Any) -> Any:
        ray = _import_ray()
        if self._crashed:
            self._await_restart(ray)
        try:
            return ray.get(method.remote(*args))
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            self._crashed = True
            first = str(exc).strip().splitlines()
            raise ExtraditeProcessError(
                f"the Ray actor serving {self.name} died or became unreachable during this call "
                f"({first[0] if first else type(exc).__name__}); with ray_options max_restarts it is "
                "restarted with a new instance built from the same arguments, else construct a new one",
                returncode=None) from exc

    def _await_restart(self, ray: Any) -> None:
        """After a crash, wait until Ray has restarted the actor (or says it is dead for good).

        Ray refuses calls while an actor restarts; the next call should not fail for that.
        Only `ping` is retried: it is idempotent, whatever ran of it before.
        """
        import time

        deadline = time.monotonic() + _RESTART_WAIT
        while True:
            try:
                ray.get(self.actor.ping.remote())
                break
            except ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    break  # the call itself reports what Ray says
                time.sleep(0.05)
            except ray.exceptions.RayActorError:
                break
        self._crashed = False

    def _decode(self, reply: bytes | tuple[Any, ...]) -> Any:
        if isinstance(reply, bytes):
            reader: Any = BytesIO(reply)
        elif reply[0] == "error":
            raise_record(reply[1])
        else:
            reader = _reader(*reply[1:])
        try:
            body = self.codec.unpickler(reader).load()
        except (ExtraditeModuleLeakError, UnsupportedInteractionError):
            raise
        except Exception as exc:
            problem = UnsupportedInteractionError(
                f"a message from the other side could not be unpickled here: {exc!r}; if it needs a "
                "module this interpreter cannot import, ask for a proxy instead "
                "(__extradite_policy__='reference')")
            raise problem from exc
        return body[1]

    def flush_releases(self) -> None:
        """Send queued handle releases now; releasing an instance's own proxy ends its actor."""
        if self.closed:
            return
        with self._lock:
            releases = self.codec.imports.take_releases()
            if not releases:
                return
            if any(hid == _ROOT_HID for hid, _ in releases) and self.spawn is None and self.owned:
                self.close()
                return
            self.actor.release.remote(self.connection, releases)

    def stats(self) -> dict[str, Any]:
        """Handle-table sizes on both sides (tests, diagnostics)."""
        return {"parent": {"imports": len(self.codec.imports)}, "child": self.call(OP_STATS, None)}

    def close(self) -> None:
        """Kill the actor (when this driver created it); later calls raise `ExtraditeClosedError`."""
        if self.closed:
            return
        self.closed = True
        self.codec.exports.clear()
        try:
            if self.owned:
                _import_ray().kill(self.actor, no_restart=True)
            elif self.actor is not None:
                self.actor.bye.remote(self.connection)  # attached: the actor runs on, our handles go
        except Exception:  # already gone (Ray shut down, the actor died)
            pass
        self.actor = None


class RayClassHandle:
    """What `extradite(..., backend="ray")` returned: the class actor and the instance actors it made."""

    def __init__(self, target: str, module: str, qualname: str, options: SessionOptions,
                 ray_options: dict[str, Any], trees: tuple[str, ...] | None = None) -> None:
        """`trees`: a module's class (`RayModuleHandle`) protects the module's trees, which its owner holds."""
        self.target = target
        self.module = module
        self.qualname = qualname
        self.options = options
        self.ray_options = ray_options
        self._owns_trees = trees is None
        self.trees = (module, *options.protect) if trees is None else trees
        self.closed = False
        self.adopts_generated = False
        self.instances: weakref.WeakSet[RaySession] = weakref.WeakSet()
        self.session: RaySession | None = None
        self.named: RaySession | None = None  # the instance of ray_options' named actor, once made or attached
        self.handle = self  # `_api.session_of` reads `.handle`
        from ._codec import protect

        for tree in self.trees if self._owns_trees else ():
            protect(tree)

    def _policy_wire(self) -> tuple[str, list[Any]]:
        from ._api import _rule_for_wire

        config = self.options.config
        return (config.default, [(_rule_for_wire(t), p) for t, p in config.rules])

    def _start(self, actor_options: dict[str, Any], construct: Any, *, label: str,
               attach: Any = None) -> RaySession:
        ray = _import_ray()
        actor_class = _actor_class(ray)
        if attach is not None:
            actor, owned = attach, False
        else:
            actor = actor_class.options(**actor_options).remote(
                self.module, self.qualname, list(sys.path), self._policy_wire(), self.trees, construct)
            owned = True
        session = RaySession(actor, name=label, config=self.options.config, trees=self.trees, owned=owned)
        session.adopts_generated = self.adopts_generated
        try:
            session.hello()
        except BaseException:
            session.close()
            raise
        return session

    def open_class(self) -> Any:
        """Start the class actor: no CPU held, the instances' environment (it imports the target too)."""
        options: dict[str, Any] = {"num_cpus": 0}
        for key in ("runtime_env", "max_restarts"):
            if key in self.ray_options:
                options[key] = self.ray_options[key]
        session = self.session = self._start(options, None, label=f"the class {self.target!r}")
        from ._proxy import RemoteClass

        root = session.root
        if not isinstance(root, RemoteClass):
            kind = type(root).__qualname__
            self.close()
            raise TypeError(f"extradite({self.target!r}): {self.qualname!r} is a {kind}, not a class; "
                            "extradite() takes classes")
        session.spawn = self.spawn
        return root

    def spawn(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], policy: str | None) -> Any:
        return self.construct(args, kwargs, policy)

    def construct(self, args: tuple[Any, ...], kwargs: dict[str, Any], policy: str | None) -> Any:
        """A new instance in its own actor, or the running named actor's (ray_options name)."""
        self.check_open()
        ray = _import_ray()
        options = dict(self.ray_options)
        name, namespace = options.get("name"), options.get("namespace")
        label = f"an instance of {self.target!r}" + (f" (actor {name!r})" if name else "")
        attach = None
        if name is not None:
            known = self.named
            if known is not None and not known.closed:
                return known.root  # the same remote object: the same proxy
            try:
                attach = ray.get_actor(name, namespace=namespace)
            except ValueError:  # no such actor yet: made here, with that name
                attach = None
        encoder = RaySession(None, name=label, config=self.options.config, trees=self.trees, owned=False)
        construct = None if attach is not None else encoder.encode_construction(args, kwargs, policy)
        session = self._start(options, construct, label=label, attach=attach)
        self.instances.add(session)
        if name is not None:
            self.named = session
        return session.root

    def check_open(self) -> None:
        if self.closed:
            raise ExtraditeClosedError(
                f"the proxy class for {self.target!r} was closed; call extradite({self.target!r}, "
                "backend='ray') again")

    def close(self) -> None:
        """Kill the class actor and every instance actor made from it."""
        if self.closed:
            return
        self.closed = True
        for session in [*self.instances, self.session]:
            if session is not None:
                session.close()
        from ._codec import unprotect

        for tree in self.trees if self._owns_trees else ():
            unprotect(tree)


class RayModuleHandle:
    """What `import_isolated(..., backend="ray")` returned: the module actor and the classes' instance actors.

    The module actor (no CPU held) serves the module, its submodules, functions and
    values, and the class proxies' class side. Constructing a class of the module starts
    an instance actor, as a class of `extradite(..., backend="ray")` does (one
    `RayClassHandle` per class, made at its first construction, found by the class's
    `__module__` and `__qualname__`). `_modules.module_proxy` needs of this only what
    its docstring lists.
    """

    def __init__(self, name: str, options: SessionOptions, ray_options: dict[str, Any]) -> None:
        from ._codec import protect
        from ._targets import protected_tree

        self.target = name
        self.options = options
        self.ray_options = ray_options
        self.trees: tuple[str, ...] = tuple(dict.fromkeys((protected_tree(name), *options.protect)))
        self.closed = False
        self.handle = self  # `_api.session_of` and `_modules` read `.handle`
        self.session: RaySession | None = None
        self.classes: dict[int, tuple[Any, RayClassHandle]] = {}
        self._lock = threading.Lock()
        for tree in self.trees:
            protect(tree)

    def open(self) -> Any:
        """Start the module actor; the module's proxy object."""
        self.session = self._module_class()._start(self._actor_options(), None, label=f"the module {self.target!r}")
        self.session.spawn = self.spawn
        self.session.spawn_classes = True
        return self.session.root

    def _actor_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": 0}
        for key in ("runtime_env", "max_restarts"):
            if key in self.ray_options:
                options[key] = self.ray_options[key]
        return options

    def _module_class(self) -> RayClassHandle:
        return RayClassHandle(repr(self.target), self.target, "", self.options, self.ray_options, trees=self.trees)

    def spawn(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], policy: str | None) -> Any:
        """`mod.Cls(...)`: a new instance in its own actor."""
        self.check_open()
        with self._lock:
            known = self.classes.get(id(target))
            if known is None:
                module, qualname = target.__module__, target.__qualname__
                handle = RayClassHandle(f"{module}:{qualname}", module, qualname, self.options, self.ray_options,
                                        trees=self.trees)
                known = self.classes[id(target)] = (target, handle)  # the class held: its id stays its own
        return known[1].construct(args, kwargs, policy)

    def import_object(self, module: str, qualname: str, what: str, *, protect: bool = True) -> Any:
        """`module`'s attribute `qualname` (the module itself when empty), imported in the module actor."""
        from ._api import refuse_loaded
        from ._codec import protect as protect_tree
        from ._targets import in_tree, protected_tree

        self.check_open()
        session = self.session
        assert session is not None
        tree = protected_tree(module)
        if protect:
            refuse_loaded(what, (tree, *self.options.protect), self.options.protect)
            if not in_tree(tree, self.trees):
                protect_tree(tree)
                self.trees = session.protected = session.codec.protected = (*self.trees, tree)
        found, _ = session.call(OP_IMPORT, module, name=qualname, args=(tree,) if protect else ())
        return found

    @property
    def running(self) -> bool:
        return not self.closed

    def place(self) -> str:
        """Where the module runs, for its proxy's repr."""
        return "a Ray actor"

    def check_open(self) -> None:
        if self.closed:
            raise ExtraditeClosedError(
                f"the module {self.target!r} was closed; call import_isolated({self.target!r}, backend='ray') again")

    def close(self) -> None:
        """Kill the module actor and every instance actor made from its classes."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            classes = [handle for _, handle in self.classes.values()]
            self.classes.clear()
        for handle in classes:
            handle.close()
        if self.session is not None:
            self.session.close()
        from ._codec import unprotect

        for tree in self.trees:
            unprotect(tree)


def import_isolated_ray(module: str, backend: object, ray_options: object, *, share_key: str | None,
                        transport_policy: str, transport_type_rules: Mapping[type, str] | None,
                        share_keepalive_seconds: float | None, python: object,
                        protect: tuple[str, ...] | list[str], sandbox: object = None, limits: object = None,
                        requirements: object = None, call_timeout: object = None, restart: object = None) -> Any:
    """`import_isolated(module, backend="ray", ...)`: a module proxy served by a Ray actor."""
    from ._api import refuse_loaded
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
    _import_ray()
    api = RayModuleHandle(name, options, checked)
    try:
        remote = api.open()
    except BaseException:
        api.close()
        raise
    return module_proxy(api, remote, name)  # type: ignore[arg-type]


_actor_classes: dict[int, Any] = {}


def _actor_class(ray: Any) -> Any:
    """`ray.remote(RayHost)`, made once."""
    made = _actor_classes.get(0)
    if made is None:
        made = _actor_classes[0] = ray.remote(RayHost)
    return made


def _close_quietly(api: RayClassHandle) -> None:
    try:
        api.close()
    except Exception:  # a finalizer must not take down whatever the collector interrupted
        pass


def _open(target: str, options: SessionOptions, ray_options: dict[str, Any]) -> tuple[RayClassHandle, Any]:
    from ._api import refuse_loaded
    from ._targets import parse_target, protected_tree

    module, qualname = parse_target(target)
    refuse_loaded(f"extradite({target!r})", (protected_tree(module), *options.protect), options.protect)
    _import_ray()
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
