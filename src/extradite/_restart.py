"""Supervised restart: when a session's child dies, the next call starts a fresh one and rebuilds what it can.

    child dies (crash, kill -9, killed after a deadline's grace period)
        -> the session breaks: the call in flight raises (never retried)
    next call on any proxy of the session (or one whose send found the child gone)
        -> `Session.call` sees `broken` and calls `Session.revive` (`_session_handle.SessionHandle._revive`):
           the budget, the backoff, a new child and `Session`, then `Rebuild.replay`:
              import     OP_IMPORT again                    class proxies, function and module targets
              getattr    OP_GETATTR on a rebuilt module     mod.func, mod.Cls of import_isolated()
              construct  the class called again with a      instances made from a class proxy with
                         copy of its by-value arguments     arguments that all travelled by value
           and moves each rebuilt remote id into the proxy the user holds (`transplant`)
        -> what was not rebuilt stays on the old session, whose error now says so
        -> a warning on the `extradite` logger, `Restart.on_restart`, `extradite_status().restarts`
        -> the call runs on the new session

Nothing here is on the call path of a session without `restart=`: the records are kept
only when it is given (`Session.rebuild`), and a live session never looks at them.
"""

from __future__ import annotations

import _pickle
import weakref
from io import BytesIO
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any, Callable

    from ._codec import Codec
    from ._errors import ExtraditeProcessError
    from ._status import ExtraditeStatus

    Hook = Callable[[ExtraditeStatus, ExtraditeProcessError], object]

from ._codec import _is_proxy, _reduce_memoryview
from ._policy import REFERENCE, SCALAR_TYPES

__all__ = ["Restart", "Rebuild", "Supervisor", "check_restart"]

LOGGER = "extradite"  # restarts are reported on this logger


class Restart:
    """Opt-in supervision of a session's child (`restart=Restart(...)`).

    When the child dies (a crash, a kill, a deadline's kill after the grace period), the
    next call starts a new child, imports the target again and rebuilds each live instance
    that was constructed from the proxy class with arguments sent by value (by calling the
    class again with a copy of them); everything else the old child held is lost. The call
    that was running when the child died still raises.

    `max_restarts` restarts are allowed within any `within_seconds`; one more and the session
    stays dead (ExtraditeProcessError naming this budget). `backoff`: seconds to wait before
    a restart, doubled for each restart already made within the window (counted from the
    child's death). `on_restart(status, cause)` is called after each restart with the new
    `ExtraditeStatus` and the `ExtraditeProcessError` that described the death; what it
    raises is logged, not propagated.
    """

    __slots__ = ("max_restarts", "within_seconds", "backoff", "on_restart")
    _fields = __slots__
    max_restarts: int
    within_seconds: float
    backoff: float
    on_restart: Hook | None

    def __init__(self, max_restarts: int = 3, within_seconds: float = 60.0, backoff: float = 0.0,
                 on_restart: Hook | None = None) -> None:
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int):
            raise TypeError(f"Restart(max_restarts=...) must be an int >= 1, not {max_restarts!r}")
        if max_restarts < 1:
            raise ValueError(f"Restart(max_restarts=...) must be at least 1, not {max_restarts}; "
                             "to never restart, leave restart=None")
        for name, value, zero in (("within_seconds", within_seconds, False), ("backoff", backoff, True)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Restart({name}=...) must be a number of seconds, not {value!r}")
            if not (value >= 0 if zero else value > 0) or value != value or value == float("inf"):
                bound = ">= 0" if zero else "> 0"
                raise ValueError(f"Restart({name}=...) must be a finite number of seconds {bound}, not {value!r}")
        if on_restart is not None and not callable(on_restart):
            raise TypeError(f"Restart(on_restart=...) must be a callable (status, cause) or None, "
                            f"not {on_restart!r}")
        object.__setattr__(self, "max_restarts", max_restarts)
        object.__setattr__(self, "within_seconds", float(within_seconds))
        object.__setattr__(self, "backoff", float(backoff))
        object.__setattr__(self, "on_restart", on_restart)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Restart is immutable; make a new one")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Restart is immutable; make a new one")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Restart:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        try:
            hook = hash(self.on_restart)
        except TypeError:  # an unhashable callable: equal only to itself anyway
            hook = id(self.on_restart)
        return hash(("Restart", self.max_restarts, self.within_seconds, self.backoff, hook))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Restart, self._values())

    def __repr__(self) -> str:
        return f"Restart({', '.join(f'{n}={getattr(self, n)!r}' for n in self._fields)})"

    def delay(self, recent: int) -> float:
        """Seconds to wait before a restart when `recent` restarts were made within the window."""
        return self.backoff * 2 ** recent if self.backoff else 0.0


def check_restart(value: object) -> Restart | None:
    """`restart=` takes a Restart(...) or None."""
    if value is not None and not isinstance(value, Restart):
        raise TypeError(f"restart= must be a Restart(...) or None, not {value!r} "
                        "(e.g. restart=Restart(max_restarts=3, within_seconds=60))")
    return value


# -- what a restart replays -------------------------------------------------------------------
_IMPORT = "import"
_GETATTR = "getattr"
_CONSTRUCT = "construct"


class _ByReference(Exception):
    """A constructor argument would travel as a handle: the instance cannot be replayed."""


class _Snapshot(_pickle.Pickler):
    """Pickles constructor arguments, refusing (`_ByReference`) whatever the codec would lend."""

    codec: Codec
    call_policy: str | None
    method_policy = None  # what `Codec._must_lend` reads of a pickler
    careful = False

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if cls in SCALAR_TYPES:
            return NotImplemented
        if _is_proxy(obj):
            raise _ByReference
        if cls is memoryview:
            return _reduce_memoryview(obj)
        codec = self.codec
        if codec.config.resolve(obj, self.call_policy, None)[0] == REFERENCE or codec._must_lend(self, obj):  # type: ignore[arg-type]
            raise _ByReference
        return NotImplemented

    def persistent_id(self, obj: Any) -> None:  # the builtin containers too: the session's rules
        if type(obj) not in SCALAR_TYPES and self.codec.config.resolve(obj, self.call_policy, None)[0] == REFERENCE:
            raise _ByReference
        return None


def snapshot(codec: Codec, args: tuple[Any, ...], kwargs: dict[str, Any], policy: str | None) -> bytes | None:
    """A pickled copy of constructor arguments that all travel by value; None if one does not.

    Asks the codec the same questions it asks when it encodes (`Codec._must_lend`, the
    session's rules): an argument that went as a handle (a proxy, a `__main__` object,
    a closure, one the child holds, a type rule's reference) would not be the same after
    a restart, so such an instance is not rebuilt.
    """
    buffer = BytesIO()
    pickler = _Snapshot(buffer, 5)
    pickler.codec, pickler.call_policy = codec, policy
    try:
        pickler.dump((args, kwargs))
    except Exception:  # a handle, or something that does not pickle at all: it went as a handle
        return None
    return buffer.getvalue()


class Rebuild:
    """How to get each proxy of a session back from a new child, in the order they were made.

    One per supervised `SessionHandle`, shared by its successive sessions. Entries go when
    their proxy is collected.
    """

    def __init__(self) -> None:
        import itertools

        self._records: dict[int, tuple[Any, ...]] = {}  # key -> (weakref to the proxy, kind, ...)
        self._keys = itertools.count()  # next() is atomic: proxies are made on many threads

    def _add(self, obj: Any, *record: Any) -> None:
        key = next(self._keys)
        records = self._records

        def gone(ref: Any, key: int = key) -> None:
            records.pop(key, None)

        self._records[key] = (weakref.ref(obj, gone), *record)

    def imported(self, obj: Any, module: str, qualname: str, args: tuple[Any, ...]) -> None:
        """`obj` (a class proxy or a proxy object) came from OP_IMPORT of `module`:`qualname`."""
        if _is_rebuildable(obj):
            self._add(obj, _IMPORT, module, qualname, args)

    def looked_up(self, obj: Any, owner: Any, name: str) -> None:
        """`obj` is attribute `name` of the module proxy `owner`, read by reference."""
        if _is_rebuildable(obj):
            self._add(obj, _GETATTR, weakref.ref(owner), name)

    def constructed(self, obj: Any, root: type, args: tuple[Any, ...], kwargs: dict[str, Any],
                    policy: str | None) -> None:
        """`obj` was made by calling the class proxy `root`; kept only if its arguments went by value."""
        from ._proxy import RemoteObject

        if not isinstance(obj, RemoteObject):
            return
        data = snapshot(obj._xd_session.codec, args, kwargs, policy)
        if data is not None:
            self._add(obj, _CONSTRUCT, root, data, policy)

    def replay(self, old: Any, new: Any) -> tuple[int, list[str]]:
        """Rebuild every live recorded proxy of session `old` in session `new`.

        Returns how many were rebuilt and, for each that could not be, why. A record whose
        owner (a module proxy, a class) was not rebuilt is not either. Raises only when `new`
        itself broke (its child died too): the caller gives the restart up.
        """
        from ._errors import ExtraditeError
        from ._proxy import RemoteObject
        from ._wire import EXTRA_RESULT_BY_REF, OP_CALL, OP_GETATTR, OP_IMPORT

        rebuilt = 0
        failures: list[str] = []
        for ref, kind, *record in list(self._records.values()):
            obj = ref()
            if obj is None or _session_of(obj) is not old or (isinstance(obj, RemoteObject) and obj._xd_closed):
                continue
            if kind == _IMPORT:
                module, qualname, args = record
                what = f"{module}:{qualname}" if qualname else module
                request: tuple[Any, ...] = (OP_IMPORT, module, {"name": qualname, "args": args})
            elif kind == _GETATTR:
                owner_ref, name = record
                owner = owner_ref()
                if owner is None or _session_of(owner) is not new:
                    continue  # its module was not rebuilt: lost with it
                what = f"attribute {name!r}"
                request = (OP_GETATTR, owner, {"name": name, "policy": REFERENCE})
            else:
                root, data, policy = record
                if _session_of(root) is not new:
                    continue  # its class was not rebuilt
                args, kwargs = _pickle.loads(data)
                what = f"an instance of {root.__qualname__}"
                request = (OP_CALL, root, {"args": args, "kwargs": kwargs, "policy": policy,
                                           "extra": EXTRA_RESULT_BY_REF})
            op, target, fields = request
            try:
                fresh = new.call(op, target, **fields)
            except Exception as exc:  # the target itself failed (its import, its constructor)
                if isinstance(exc, ExtraditeError) and new.broken is not None:
                    raise
                kind_name = getattr(exc, "remote_type_name", None) or type(exc).__name__
                failures.append(f"{what}: {kind_name}: {getattr(exc, 'remote_message', exc)}")
                continue
            if kind == _IMPORT:
                fresh = fresh[0]  # (object, verdict)
            if not transplant(obj, fresh, old, new):
                failures.append(f"{what}: the new child returned a {type(fresh).__name__}")
                continue
            rebuilt += 1
        return rebuilt, failures


def _is_rebuildable(obj: Any) -> bool:
    from ._proxy import RemoteClass, RemoteObject

    return isinstance(obj, (RemoteObject, RemoteClass))


def _session_of(obj: Any) -> Any:
    from ._handles import class_dict
    from ._proxy import RemoteClass, _root

    if isinstance(obj, RemoteClass):
        return class_dict(_root(obj))["_xd_class_session"]
    return obj._xd_session


def transplant(old_obj: Any, fresh: Any, old: Any, new: Any) -> bool:
    """Make the proxy `old_obj` (of session `old`) stand for `fresh`, its rebuilt twin in `new`.

    The user keeps the object they hold: it takes `fresh`'s remote id and session, and
    `new`'s tables point at it (so the same remote object still comes back as this proxy).
    `fresh` is dropped; its finalizer sees that its id was taken over and releases nothing.
    """
    from ._handles import class_dict
    from ._proxy import RemoteClass, RemoteObject, _root, _set_hid, _set_session
    from _weakref import ref as make_ref

    if isinstance(old_obj, RemoteClass):
        if not isinstance(fresh, RemoteClass):
            return False
        root = _root(old_obj)
        old_hid = class_dict(root)["_xd_class_hid"]
        new_hid = class_dict(_root(fresh))["_xd_class_hid"]
        # a generated proxy's bound class stands for the target in its session: it still does
        new.codec.imports.classes[new_hid] = old.codec.imports.classes.get(old_hid, root)
        type.__setattr__(root, "_xd_class_session", new)
        type.__setattr__(root, "_xd_class_hid", new_hid)
        return True
    if not isinstance(fresh, RemoteObject) or not isinstance(old_obj, RemoteObject):
        return False
    hid = fresh._xd_hid
    imports = new.codec.imports

    def forget(ref: Any, hid: int = hid, imports: Any = imports) -> None:
        imports.forget(hid, ref)

    _set_session(old_obj, new)
    _set_hid(old_obj, hid)
    imports.bind(hid, make_ref(old_obj, forget))
    return True


class Supervisor:
    """The restart budget, the backoff and the reports of one supervised `SessionHandle`."""

    def __init__(self, policy: Restart) -> None:
        import threading
        from collections import deque

        self.policy = policy
        self.lock = threading.RLock()  # one restart at a time; close() waits for it
        self.restarting = False  # set while the lock's holder restarts (a re-entrant call must not)
        self._times: deque[float] = deque()  # when each restart within the window began
        self._died_at: float | None = None

    def died(self, session: Any, process: Any) -> None:
        """The child of `session` ended (watch thread): the backoff counts from now, and an idle
        session is marked dead at once, so that its next call restarts it instead of sending
        a request nobody reads. (How it died, with its last stderr lines, is worked out by
        that call: this thread still has them to read.)"""
        import time

        from ._errors import ExtraditeProcessError

        self._died_at = time.monotonic()
        error = ExtraditeProcessError(f"the extradite child process (pid {process.pid}) serving {session.name} died")
        error._xd_provisional = True  # type: ignore[attr-defined]
        session.break_if_idle(error)

    def admit(self, old: Any, label: str, cause: BaseException | None) -> None:
        """Allow one more restart of session `old`, after the backoff; past the budget the
        session stays dead and this raises the error its every call raises from now on."""
        import time

        from ._errors import ExtraditeProcessError

        policy = self.policy
        now = time.monotonic()
        while self._times and now - self._times[0] >= policy.within_seconds:
            self._times.popleft()
        if len(self._times) >= policy.max_restarts:
            error = ExtraditeProcessError(
                f"the extradite child serving {label} died and is not restarted again: "
                f"restart=Restart(max_restarts={policy.max_restarts}, within_seconds={policy.within_seconds:g}) "
                f"allows {policy.max_restarts} restart(s) within {policy.within_seconds:g} s and they were used. "
                "The session stays dead; find out why the child dies (the cause below), or create a new proxy "
                f"class. How it died: {cause}", returncode=getattr(cause, "returncode", None),
                stderr_tail=getattr(cause, "stderr_tail", ""))
            error.__cause__ = cause
            old.broken = error
            old.revive = None
            raise error
        delay = policy.delay(len(self._times))
        if delay:
            died = self._died_at if self._died_at is not None else now
            remaining = delay - (now - died)
            if remaining > 0:
                time.sleep(remaining)
        self._times.append(time.monotonic())

    @staticmethod
    def lost_error(label: str, pid: int, cause: BaseException | None) -> BaseException:
        """What a proxy the restart did not rebuild raises from now on."""
        from ._errors import ExtraditeProcessError

        error = ExtraditeProcessError(
            f"this remote object died with the extradite child process (pid {pid}) serving {label} and was "
            "not rebuilt when the child was restarted: a restart rebuilds the targets, their module "
            "attributes and the instances constructed from a proxy class with arguments sent by value, "
            "not objects returned by other calls or built from handles. Create it again",
            returncode=getattr(cause, "returncode", None), stderr_tail=getattr(cause, "stderr_tail", ""))
        error.__cause__ = cause
        return error

    def report(self, handle: Any, cause: BaseException | None, old_pid: int, rebuilt: int,
               failures: list[str]) -> None:
        """A warning on the `extradite` logger, then the `on_restart` hook (whose errors are logged)."""
        import logging

        logger = logging.getLogger(LOGGER)
        policy = self.policy
        how = str(cause).split("\n", 1)[0] if cause is not None else "it ended"
        text = (f"restarted the extradite child serving {handle.label}: pid {old_pid} died ({how}); the new "
                f"child is pid {handle.process.pid} (restart {handle.restarts}; at most {policy.max_restarts} "
                f"within {policy.within_seconds:g} s); rebuilt {rebuilt} object(s)")
        if failures:
            text += f"; could not rebuild {len(failures)}: " + "; ".join(failures)
        logger.warning(text)
        hook = policy.on_restart
        if hook is None:
            return
        from ._status import extradite_status_of

        try:
            hook(extradite_status_of(handle), cause)  # type: ignore[arg-type]
        except Exception:
            logger.exception("the on_restart hook of the extradite session %s raised", handle.label)
