"""Annotations in one form, whichever way they were found.

    written in a stub or source: libcst node + its ModuleScope ─────────┐
    runtime annotation object: text + reference table (introspect.py) ──┴─▶ Annotation
                                                                            (libcst node + Names)

An `Annotation` is a libcst expression and the `Names` that say what its dotted
names stand for. Names written in a scope are resolved in that scope; the text
the introspection child makes of a runtime object is built of qualified names
whose definitions it recorded beside the text. From here on the emitter
(emit.py) has one path for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import libcst as cst

from .resolve import ANY, Resolver, Target, is_protected
from .scope import ModuleScope, TypeVarDecl

__all__ = ["Annotation", "Names", "ScopeNames", "RuntimeNames", "SubstitutedNames", "Substitution", "TypeVarRef",
           "from_source", "from_runtime"]


@dataclass(frozen=True)
class TypeVarRef:
    """A type variable of the protected tree whose definition the names carry themselves."""

    module: str
    decl: TypeVarDecl
    names: Names  # for the bound and constraints of `decl`


class Names(Protocol):
    def lookup(self, parts: Sequence[str]) -> Target | TypeVarRef | Substitution:
        """What the dotted name `parts` stands for."""


@dataclass(frozen=True)
class Annotation:
    node: cst.BaseExpression
    names: Names


@dataclass(frozen=True)
class Substitution:
    """A base class's type variable replaced by the argument the subclass gives it (None: Any)."""

    annotation: Annotation | None


class SubstitutedNames:
    """Names of a base class's scope, with its type parameters bound to the subclass's arguments.

    `class Counter(dict[_T, int])` makes `dict`'s `_KT` stand for Counter's `_T` and `_VT` for
    `int` in every member Counter inherits from `dict`, as mypy reads them.
    """

    def __init__(self, inner: Names, mapping: dict[tuple[str, str], Annotation | None]) -> None:
        self.inner = inner
        self.mapping = mapping

    def lookup(self, parts: Sequence[str]) -> Target | TypeVarRef | Substitution:
        found = self.inner.lookup(parts)
        key = typevar_key(found)
        if key is not None and key in self.mapping:
            return Substitution(self.mapping[key])
        return found


def typevar_key(found: Target | TypeVarRef | Substitution) -> tuple[str, str] | None:
    """(module, name) of what a lookup found, the key type variables are bound by."""
    if isinstance(found, TypeVarRef):
        return (found.module, found.decl.name)
    if isinstance(found, Target) and found.kind == "ref":
        return (found.module, found.path)
    return None


class ScopeNames:
    """Names as written in a module scope (None: a scope that could not be read, every name is Any)."""

    def __init__(self, resolver: Resolver, scope: ModuleScope | None) -> None:
        self.resolver = resolver
        self.scope = scope

    def lookup(self, parts: Sequence[str]) -> Target | TypeVarRef | Substitution:
        return self.resolver.resolve(list(parts), self.scope)


class RuntimeNames:
    """Qualified names from the child's reference table: dotted text -> [module, qualname, extra]."""

    def __init__(self, resolver: Resolver, refs: dict[str, object]) -> None:
        self.resolver = resolver
        self.refs = refs

    def lookup(self, parts: Sequence[str]) -> Target | TypeVarRef | Substitution:
        entry = self.refs.get(".".join(parts))
        if not isinstance(entry, list) or len(entry) < 2:
            return ANY
        module, path = str(entry[0]), str(entry[1])
        extra = entry[2] if len(entry) > 2 else None
        if isinstance(extra, dict) and isinstance(extra.get("typevar"), dict) and is_protected(module, self.resolver.roots):
            # The runtime object is the definition: no scope of the protected tree needs to declare it.
            return TypeVarRef(module, self._typevar_decl(extra["typevar"]), self)
        if module == "builtins":
            return Target("builtin", "builtins", path)
        return self.resolver.canonical(module, path)

    @staticmethod
    def _typevar_decl(info: dict[str, object]) -> TypeVarDecl:
        bound = info.get("bound")
        constraints = info.get("constraints")
        variance = info.get("variance")
        return TypeVarDecl(
            name=str(info.get("name")),
            kind=str(info.get("kind") or "TypeVar"),
            bound=_parse_runtime(bound) if isinstance(bound, str) else None,
            constraints=tuple(_parse_runtime(c) for c in constraints) if isinstance(constraints, list) else (),
            variance=variance if variance in ("co", "contra") else "in",
        )


def from_source(node: cst.BaseExpression | None, scope: ModuleScope | None, resolver: Resolver) -> Annotation | None:
    """An annotation as written in `scope` (None when there is none)."""
    if node is None:
        return None
    return Annotation(node, ScopeNames(resolver, scope))


def from_runtime(data: object, resolver: Resolver) -> Annotation | None:
    """An annotation from the child's `{"text": ..., "refs": ...}` (None when there is none)."""
    if not isinstance(data, dict):
        return None
    text, refs = data.get("text"), data.get("refs")
    if not isinstance(text, str) or not isinstance(refs, dict):
        return None
    return Annotation(_parse_runtime(text), RuntimeNames(resolver, refs))


# Stands for runtime text that does not parse: `typing.Any`, Any whether or not the table lists it.
_UNREADABLE = cst.Attribute(value=cst.Name("typing"), attr=cst.Name("Any"))


def _parse_runtime(text: object) -> cst.BaseExpression:
    if not isinstance(text, str):
        return _UNREADABLE
    try:
        return cst.parse_expression(text)
    except cst.ParserSyntaxError:
        return _UNREADABLE
