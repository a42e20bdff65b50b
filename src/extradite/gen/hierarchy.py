"""A target class and its bases as its stubs declare them: where mypy reads the class's members.

    ClassDecl of the target (scope.py) ─▶ each base found through the names of its own module
                                       ─▶ C3 order, each base's type parameters bound to what
                                          the subclass gives them (a `Place`: scope + names)
    member_decl(name)                  ─▶ the first declaration of `name` in that order

One chain answers several questions of the builder (where a member is declared, which
constructor applies, whether a `self:` annotation names a base, which attributes instances
carry), so it is computed once per class, here, apart from what is made of the answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from .annotation import Annotation, Names, ScopeNames, SubstitutedNames, typevar_key
from .emit import dotted, names_in
from .resolve import Resolver, Target
from .scope import ClassDecl, FunctionDecl, ModuleScope

__all__ = ["Place", "Hierarchy", "decl_params"]


@dataclass(frozen=True)
class Place:
    """Where a declaration was found: its scope, and the names its annotations are read with."""

    scope: ModuleScope
    names: Names

    @property
    def is_stub(self) -> bool:
        return self.scope.is_stub


# Bases whose subscript declares the class's type parameters.
_GENERIC_BASES = {("typing", "Generic"), ("typing", "Protocol"), ("typing_extensions", "Protocol")}
# Bases that add no members a proxy forwards, or that mypy models itself.
_SKIPPED_BASES = _GENERIC_BASES | {("typing", "NamedTuple"), ("typing", "TypedDict")}


def decl_params(decl: ClassDecl, names: Names, resolver: Resolver) -> list[tuple[str, str]]:
    """The type parameters of a class declaration, as (module, name) keys, in mypy's order:
    those of `Generic[...]`/`Protocol[...]` when a base names them, else every type variable
    in the bases in order of appearance."""
    found: list[tuple[str, str]] = []
    generic: list[tuple[str, str]] | None = None
    for base in decl.bases:
        if not isinstance(base, cst.Subscript):
            continue
        keys: list[tuple[str, str]] = []
        for item in names_in(base.slice):
            key = typevar_key(names.lookup(item))
            if key is not None and resolver.is_typevar(key) and key not in keys:
                keys.append(key)
        head = dotted(base.value)
        target = names.lookup(head) if head else None
        if isinstance(target, Target) and (target.module, target.path) in _GENERIC_BASES:
            generic = keys
        found.extend(k for k in keys if k not in found)
    return generic if generic is not None else found


def _c3_merge(sequences: list[list[tuple[ClassDecl, Place]]]) -> list[tuple[ClassDecl, Place]]:
    """C3 linearisation by declaration identity; an inconsistent hierarchy falls back to order of appearance."""
    seqs = [list(s) for s in sequences if s]
    out: list[tuple[ClassDecl, Place]] = []
    while seqs:
        for seq in seqs:
            head = seq[0]
            if not any(head[0] is other[0] for rest in seqs for other in rest[1:]):
                break
        else:
            for seq in seqs:
                for item in seq:
                    if not any(item[0] is o[0] for o in out):
                        out.append(item)
            return out
        out.append(head)
        seqs = [[i for i in s if i[0] is not head[0]] for s in seqs]
        seqs = [s for s in seqs if s]
    return out


class Hierarchy:
    """The declared chain of one class: empty when no stub or source declares the class."""

    def __init__(self, resolver: Resolver, decl: ClassDecl | None, scope: ModuleScope | None) -> None:
        self.resolver = resolver
        self.decl = decl
        self.scope = scope
        self._chain: list[tuple[ClassDecl, Place]] | None = None

    def chain(self) -> list[tuple[ClassDecl, Place]]:
        """The target's class declaration and its bases in method resolution order, as declared
        in the stubs (builtin bases included), each with its type parameters bound to what the
        subclass gives them."""
        if self._chain is None:
            self._chain = []
            if self.decl is not None and self.scope is not None:
                self._chain = self._linearize(self.decl, Place(self.scope, ScopeNames(self.resolver, self.scope)), 0)
        return self._chain

    def _linearize(self, decl: ClassDecl, place: Place, depth: int) -> list[tuple[ClassDecl, Place]]:
        if depth > 16:
            return [(decl, place)]
        sequences: list[list[tuple[ClassDecl, Place]]] = []
        for base in decl.bases:
            found = self.base(base, place)
            if found is not None:
                sequences.append(self._linearize(found[0], found[1], depth + 1))
        sequences.append([s[0] for s in sequences] if sequences else [])
        return [(decl, place), *_c3_merge(sequences)]

    def base(self, base: cst.BaseExpression, place: Place, depth: int = 0) -> tuple[ClassDecl, Place] | None:
        """A base class expression's declaration, its type parameters bound to the arguments."""
        node = base.value if isinstance(base, cst.Subscript) else base
        parts = dotted(node)
        if not parts:
            return None
        target = place.names.lookup(parts)
        if not isinstance(target, Target) or target.kind == "any":
            return None
        if (target.module, target.path) in _SKIPPED_BASES:
            return None
        found = self.resolver.find_class(target.module, target.path)
        if found is None:
            # `class RawConfigParser(_Parser)` where `_Parser: TypeAlias = MutableMapping[str, SectionProxy]`
            if isinstance(base, cst.Subscript) or depth > 4:
                return None
            for scope in self.resolver.scopes_for(target.module):
                alias = scope.aliases.get(target.path)
                if alias is not None:
                    return self.base(alias, Place(scope, ScopeNames(self.resolver, scope)), depth + 1)
            return None
        decl, scope = found
        names = ScopeNames(self.resolver, scope)
        params = decl_params(decl, names, self.resolver)
        if not params:
            return decl, Place(scope, names)
        args: list[Annotation | None] = []
        if isinstance(base, cst.Subscript):
            for element in base.slice:
                value = element.slice.value if isinstance(element.slice, cst.Index) else None
                args.append(Annotation(value, place.names) if value is not None else None)
        mapping = {key: (args[i] if i < len(args) else None) for i, key in enumerate(params)}
        return decl, Place(scope, SubstitutedNames(names, mapping))

    def unbound(self, decl: ClassDecl, scope: ModuleScope) -> Place:
        """A class outside the declared chain: its type parameters mean nothing here, so Any."""
        names = ScopeNames(self.resolver, scope)
        params = decl_params(decl, names, self.resolver)
        return Place(scope, SubstitutedNames(names, {key: None for key in params}) if params else names)

    def member_decl(self, name: str, owner: Sequence[str] | None) -> tuple[list[FunctionDecl], ClassDecl | None, Place | None]:
        """The member as the stubs of the class being generated declare it (what mypy reads),
        else as the runtime class that defines it declares it."""
        candidates = list(self.chain())
        if owner is not None:
            found = self.resolver.find_class(owner[0], owner[1])
            if found is not None:
                candidates.append((found[0], self.unbound(*found)))
        for decl, place in candidates:
            if name in decl.functions or name in decl.attributes:
                return decl.functions.get(name, []), decl, place
        return [], None, None

    def plain(self, chain: list[tuple[ClassDecl, Place]]) -> bool:
        """Whether every class of the chain is a plain class whose bases are all known (no named
        tuple, typed dict, dataclass or metaclass that makes a constructor mypy knows of)."""
        for decl, place in chain:
            if not decl.plain:
                return False
            for base in decl.bases:
                parts = dotted(base.value if isinstance(base, cst.Subscript) else base)
                target = place.names.lookup(parts) if parts else None
                generic = isinstance(target, Target) and (target.module, target.path) in _GENERIC_BASES
                if not generic and self.base(base, place) is None:
                    return False
        return True
