"""The driver's side of the Ray backend (`_ray`): sessions bound to actors, and the class and
module handles that make them."""

from __future__ import annotations

import sys
import threading
import uuid
import weakref
from io import BytesIO
from typing import TYPE_CHECKING, Any

from ._codec import Codec, raise_record
from ._errors import ExtraditeClosedError, ExtraditeModuleLeakError, ExtraditeProcessError, \
    UnsupportedInteractionError
from ._policy import PolicyConfig
from ._ray_actor import LIMIT, ROOT_HID, RayHost, body_reader, ray_arguments
from ._targets import loaded_tree
from ._wire import EXTRA_TARGET_HID, OP_CALL, OP_IMPORT, OP_STATS

if TYPE_CHECKING:
    from ._options import SessionOptions

__all__ = ["RaySession", "RayClassHandle", "RayModuleHandle", "import_ray"]

INSTALL_HINT = "pip install 'extradite[ray]'"
_RESTART_WAIT = 60.0  # seconds a call waits for an actor that Ray is restarting


def request_envelope(op: int, args: tuple[Any, ...], kwargs: dict[str, Any],
                     releases: list[Any]) -> tuple[Any, ...]:
    """The containers of a request, never lent (`_session._envelope`, loaded with the first call)."""
    from ._session import _envelope as loaded

    globals()["request_envelope"] = loaded
    return loaded(op, args, kwargs, releases)


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"backend='ray' needs Ray, which is not installed here: {INSTALL_HINT}") from exc
    return ray


_actor_classes: dict[int, Any] = {}


def _actor_class(ray: Any) -> Any:
    """`ray.remote(RayHost)`, made once."""
    made = _actor_classes.get(0)
    if made is None:
        made = _actor_classes[0] = ray.remote(RayHost)
    return made


class _DriverCodec(Codec):
    """The driver's codec: it lends nothing (see `LIMIT`); the refusal names the object."""

    def _lend(self, pickler: Any, obj: Any) -> tuple[Any, ...]:
        what = obj.__qualname__ if isinstance(obj, type) else type(obj).__qualname__
        raise UnsupportedInteractionError(
            f"cannot send {what} {_describe(obj)} to a Ray actor: {LIMIT}. Pass plain data or a "
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

    reads_ahead = True  # the actor serves OP_NEXT_CHUNK: builtin iterators' proxies prefetch (`_iteration`)

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
        self.connection = uuid.uuid4().bytes  # this session's handle table in the actor (`_ray_actor.CONNECTION` bytes)
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
            releases = [r for r in imports.take_releases() if r[0] != ROOT_HID] if imports.pending else []
            body = (releases, op, target, name, args, kwargs, policy or method_policy, extra)
            try:
                writer = self.codec.encode(body, request_envelope(op, args, kwargs, releases),
                                           call_policy=policy, method_policy=method_policy)
            except BaseException:
                imports.pending.extendleft(reversed(releases))
                raise
            if writer.big:
                inline, positions, buffers = ray_arguments(writer)
                reply = self._remote(self.actor.serve, self.connection + inline, positions, buffers)
            else:
                reply = self._remote(self.actor.serve, b"".join([self.connection, *writer.parts]))
            return self._decode(reply)

    def encode_construction(self, args: tuple[Any, ...], kwargs: dict[str, Any],
                            policy: str | None) -> tuple[bytes, list[int], list[Any]]:
        """Constructor arguments for a new instance actor, encoded as a request is."""
        body: tuple[Any, ...] = ([], args, kwargs)
        return ray_arguments(self.codec.encode(body, (body[0], args, kwargs), call_policy=policy))

    def _remote(self, method: Any, *args: Any) -> Any:
        ray = import_ray()
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
            reader = body_reader(*reply[1:])
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
            if any(hid == ROOT_HID for hid, _ in releases) and self.spawn is None and self.owned:
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
                import_ray().kill(self.actor, no_restart=True)
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
        self.rebuild = None  # no supervised restart here (Ray restarts actors itself): `_restart`
        self.instances: weakref.WeakSet[RaySession] = weakref.WeakSet()
        self.session: RaySession | None = None
        self.named: RaySession | None = None  # the instance of ray_options' named actor, once made or attached
        self.handle = self  # `_api.session_of` reads `.handle`
        from ._codec import protect

        for tree in self.trees if self._owns_trees else ():
            protect(tree)

    def _policy_wire(self) -> tuple[str, list[Any]]:
        from ._session_handle import _rule_for_wire

        config = self.options.config
        return (config.default, [(_rule_for_wire(t), p) for t, p in config.rules])

    def _start(self, actor_options: dict[str, Any], construct: Any, *, label: str,
               attach: Any = None) -> RaySession:
        ray = import_ray()
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
        ray = import_ray()
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
        from ._targets import refuse_loaded
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
