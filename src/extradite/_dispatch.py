"""Requests: each operation beside the handler that serves it, and which side may serve it.

A `Session` serving a request looks its op up in the table of its role and calls

    handler(session, target, name, args, kwargs, extra) -> result

with the request's fields (see `_wire`). The child serves every op. The parent serves
only what a callback needs: calls, attribute access and batches on objects it lent to
the child (the target travels as the parent's own handle id). Anything else a child asks
of the parent (an import, a configuration, ...) is answered with an
`ExtraditeProtocolError` naming the op and the role, and never run.
"""

from __future__ import annotations

import sys
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any, Callable

    from ._session import Session

    Handler = Callable[[Session, Any, str | None, tuple[Any, ...], dict[str, Any], int], Any]

from ._errors import ExtraditeProtocolError
from ._members import check_members, warm_up
from ._policy import PolicyConfig
from ._wire import (
    EXTRA_AWAIT,
    OP_BATCH,
    OP_CALL,
    OP_CALL_METHOD,
    OP_CONCURRENCY,
    OP_CONFIGURE,
    OP_DELATTR,
    OP_GETATTR,
    OP_IMPORT,
    OP_NEXT_CHUNK,
    OP_SETATTR,
    OP_STATS,
    OP_TRUST,
    OP_WARM_UP,
)

PARENT = "parent"
CHILD = "child"
_BOTH = (PARENT, CHILD)


class Op:
    """One operation: its handler, the roles that serve it and how its reply is encoded.

    `by_reference`: the result always travels by reference (an imported class must never
    be pickled by name: the parent would import it). `envelope(result)`: the containers
    that make up the result itself, never lent as handles whatever the policy.
    """

    __slots__ = ("name", "handler", "served_by", "by_reference", "envelope")

    def __init__(self, name: str, handler: Handler, served_by: tuple[str, ...],
                 by_reference: bool, envelope: Callable[[Any], tuple[Any, ...]] | None) -> None:
        self.name = name
        self.handler = handler
        self.served_by = served_by
        self.by_reference = by_reference
        self.envelope = envelope


TABLE: dict[int, Op] = {}


def _op(code: int, *, served_by: tuple[str, ...], by_reference: bool = False,
        envelope: Callable[[Any], tuple[Any, ...]] | None = None) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        TABLE[code] = Op(handler.__name__.upper(), handler, served_by, by_reference, envelope)
        return handler
    return register


class BatchFailure(Exception):
    """Item `index` of a batch raised `error` (the reply names the item)."""

    def __init__(self, index: int, error: BaseException) -> None:
        self.index = index
        self.error = error


@_op(OP_CALL, served_by=_BOTH)
def op_call(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
            kwargs: dict[str, Any], extra: int) -> Any:
    """target(*args, **kwargs)"""
    result = target(*args, **kwargs)
    return session.run_awaitable(result) if extra & EXTRA_AWAIT else result


@_op(OP_CALL_METHOD, served_by=_BOTH)
def op_call_method(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
                   kwargs: dict[str, Any], extra: int) -> Any:
    """getattr(target, name)(*args, **kwargs)"""
    result = getattr(target, name)(*args, **kwargs)  # type: ignore[arg-type]
    return session.run_awaitable(result) if extra & EXTRA_AWAIT else result


@_op(OP_GETATTR, served_by=_BOTH)
def op_getattr(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
               kwargs: dict[str, Any], extra: int) -> Any:
    """getattr(target, name)"""
    return getattr(target, name)  # type: ignore[arg-type]


@_op(OP_SETATTR, served_by=_BOTH)
def op_setattr(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
               kwargs: dict[str, Any], extra: int) -> None:
    """setattr(target, name, args[0])"""
    setattr(target, name, args[0])  # type: ignore[arg-type]


@_op(OP_DELATTR, served_by=_BOTH)
def op_delattr(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
               kwargs: dict[str, Any], extra: int) -> None:
    """delattr(target, name)"""
    delattr(target, name)  # type: ignore[arg-type]


@_op(OP_BATCH, served_by=_BOTH, envelope=lambda results: (results,))
def op_batch(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
             kwargs: dict[str, Any], extra: int) -> list[Any]:
    """[target(*a, **k) or getattr(target, name)(*a, **k) for (a, k) in args], up to the first error."""
    func = target if name is None else getattr(target, name)
    results = []
    for index, (item_args, item_kwargs) in enumerate(args):
        try:
            value = func(*item_args, **item_kwargs)
            if extra & EXTRA_AWAIT:
                value = session.run_awaitable(value)
        except Exception as exc:
            raise BatchFailure(index, exc) from exc
        results.append(value)
    return results


@_op(OP_NEXT_CHUNK, served_by=_BOTH, envelope=lambda result: (result, result[0]))
def op_next_chunk(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
                  kwargs: dict[str, Any], extra: int) -> tuple[list[Any], Any]:
    """Up to args[0] items of iterator `target` and why it stopped short (`_iteration.next_chunk`)."""
    from ._iteration import next_chunk

    return next_chunk(target, args[0] if len(args) == 1 else None)


def _verdict_envelope(result: tuple[Any, Any]) -> tuple[Any, ...]:
    verdict = result[1]
    if verdict is None:
        return (result,)
    return (result, verdict, verdict[0], *verdict[0])  # the live member table and its pairs


@_op(OP_IMPORT, served_by=(CHILD,), by_reference=True, envelope=_verdict_envelope)
def op_import(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
              kwargs: dict[str, Any], extra: int) -> tuple[Any, Any]:
    """Import module `target`; reply (its attribute `name`, the verdict of a generated proxy's check).

    args: (protected tree,), or for a generated proxy (protected tree, the fingerprint and the
    `kinds_checksum` it embeds): the verdict is None when the live class has both, else its
    member table and `signature_data`, with which the parent says what changed.
    """
    # The construction and first calls come right after an import, sooner than this
    # side's window (shrunk by the idle wait before it) would poll: poll them fully.
    session.channel.poll_next_wait_fully()
    if args and args[0] not in session.protected:
        session.protected = session.codec.protected = (*session.protected, args[0])
    obj = import_attribute(target, name)
    return (obj, check_members(obj, args[1], args[2]) if len(args) == 3 else None)


def import_attribute(module: str, name: str | None) -> Any:
    """`module`'s attribute `name` ("Outer.Inner"), the module itself when `name` is empty:
    what a target names, wherever it is served (here, a Ray actor)."""
    __import__(module)  # importlib.import_module without importing importlib (child start-up)
    obj: Any = sys.modules[module]
    for part in (name or "").split("."):
        if part:
            obj = getattr(obj, part)
    return obj


@_op(OP_CONFIGURE, served_by=(CHILD,))
def op_configure(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
                 kwargs: dict[str, Any], extra: int) -> None:
    """Install the policy configuration args = (default, type rules, protected trees)."""
    import types

    default, rules, protected = args
    # A builtin type without an importable name (types.FunctionType) arrives as
    # ("types", name): see `_session_handle._rule_for_wire`.
    rules = [(getattr(types, t[1]) if type(t) is tuple else t, p) for t, p in rules]
    session.codec.config = PolicyConfig(default, dict(rules))
    session.protected = session.codec.protected = tuple(protected)


@_op(OP_CONCURRENCY, served_by=(CHILD,))
def op_concurrency(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
                   kwargs: dict[str, Any], extra: int) -> None:
    """Serve later requests with concurrency args[0] (see `_concurrency`; never sent for "serial")."""
    from ._concurrency import install

    install(session, args[0])


@_op(OP_STATS, served_by=(CHILD,))
def op_stats(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
             kwargs: dict[str, Any], extra: int) -> dict[str, int]:
    """The sizes of the serving side's handle tables (tests, diagnostics)."""
    return session.stats()


@_op(OP_WARM_UP, served_by=(CHILD,))
def op_warm_up(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
               kwargs: dict[str, Any], extra: int) -> None:
    """Pay now what the first import would pay (`_members.warm_up`), if no request waits."""
    if not session.channel.frame_ready():
        warm_up()


@_op(OP_TRUST, served_by=(CHILD,))
def op_trust(session: Session, target: Any, name: str | None, args: tuple[Any, ...],
             kwargs: dict[str, Any], extra: int) -> None:
    """Untrusted mode: send by value only the globals named in args[0] (see `_untrusted`)."""
    from ._untrusted import trust_child

    trust_child(session.codec, args[0])


def ops_served_by(role: str) -> dict[int, Op]:
    """The ops a side of this role serves, by code."""
    return {code: op for code, op in TABLE.items() if role in op.served_by}


def refusal(code: Any, role: str) -> ExtraditeProtocolError:
    """The error a request for an op this role does not serve is answered with."""
    op = TABLE.get(code) if type(code) is int else None
    if op is None:
        return ExtraditeProtocolError(f"corrupt frame: unknown operation {code!r}")
    allowed = ", ".join(o.name for o in TABLE.values() if role in o.served_by)
    return ExtraditeProtocolError(
        f"the {role} does not serve {op.name} requests (it serves {allowed} only); "
        f"the other side asked it for one, which was refused and not run")


def not_lent(code: int, role: str) -> ExtraditeProtocolError:
    """The error for a request whose target is not an object this role lent."""
    op = TABLE[code]
    return ExtraditeProtocolError(
        f"the {role} serves {op.name} only on objects it lent to the other side; the request's "
        "target was not one of them, so it was refused and not run")
