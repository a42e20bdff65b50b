"""Name resolution: what a name written in a module scope stands for.

    dotted name + ModuleScope ──Resolver──▶ Target
        a class, type variable or alias of some module → ("ref", module, path), with
            submodules shifted out of the path and re-exports followed
        a builtin                                       → ("builtin", "builtins", name)
        anything unknown                                → ("any")

One Resolver serves a whole run: it finds the scopes of a module (stubs first, as
mypy reads them, then the source) and parses each file once.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .._targets import in_tree
from .locate import is_module, typeshed_stub
from .scope import ClassDecl, FunctionDecl, ModuleScope, load_scope

__all__ = ["Target", "ANY", "Resolver", "is_protected",
           "LITERAL_FORMS", "ANNOTATED_FORMS", "WRAPPER_FORMS", "SELF_FORMS"]

_BUILTIN_NAMES = frozenset(dir(builtins))
_D = TypeVar("_D")  # a declaration: a class's, or a function's overloads


@dataclass(frozen=True)
class Target:
    """What a resolved name stands for."""

    kind: str  # builtin | ref | any
    module: str = ""
    path: str = ""


ANY = Target("any")
# Special forms the emitter treats by meaning, whichever module spells them.
LITERAL_FORMS = {("typing", "Literal"), ("typing_extensions", "Literal")}  # arguments are values, not names
ANNOTATED_FORMS = {("typing", "Annotated"), ("typing_extensions", "Annotated")}  # only the first argument is a type
WRAPPER_FORMS = {("typing", "ClassVar"), ("typing_extensions", "ClassVar"), ("typing", "Final"),
                 ("typing_extensions", "Final")}  # imported even where the name is shadowed
SELF_FORMS = {("typing", "Self"), ("typing_extensions", "Self")}  # the proxy class itself


def is_protected(module: str, roots: frozenset[str]) -> bool:
    """Whether `module` is in a target's protected tree (the runtime's rule, `extradite._targets`)."""
    return in_tree(module, roots)


class Resolver:
    """Finds scopes for modules and follows names to their definitions (shared by a run)."""

    def __init__(self, *, roots: frozenset[str], files: dict[str, dict[str, str | None]],
                 version: tuple[int, ...], platform: str) -> None:
        self.roots = roots
        self.files = files
        self.version = version
        self.platform = platform

    def scopes_for(self, module: str) -> list[ModuleScope]:
        """Stub scopes first, then the source scope."""
        paths: list[str] = []
        info = self.files.get(module, {})
        for key in ("stub",):
            path = info.get(key)
            if path:
                paths.append(path)
        shed = typeshed_stub(module)
        if shed:
            paths.append(shed)
        source = info.get("source")
        if source:
            paths.append(source)
        scopes = []
        for path in paths:
            scope = load_scope(module, path, version=self.version, platform=self.platform)
            if scope is not None:
                scopes.append(scope)
        return scopes

    def is_typevar(self, key: tuple[str, str]) -> bool:
        """Whether (module, name) is a type variable some scope of `module` defines."""
        return any(key[1] in scope.typevars for scope in self.scopes_for(key[0]))

    def find_function(self, module: str, name: str) -> tuple[list[FunctionDecl], ModuleScope] | None:
        """The declarations (overloads included) of module-level function `name`, stubs first."""
        return self._declared(module, name, lambda scope, local: scope.functions.get(local), 0)

    def find_class(self, module: str, qualname: str) -> tuple[ClassDecl, ModuleScope] | None:
        """The declaration of class `qualname` ("Outer.Inner"), stubs first."""
        return self._declared(module, qualname, ModuleScope.find_class, 0)

    def _declared(self, module: str, qualname: str, lookup: Callable[[ModuleScope, str], _D | None],
                  depth: int) -> tuple[_D, ModuleScope] | None:
        """What `lookup` finds for `qualname` in a scope of `module`, or in the module a scope
        imports its head from (by name or with `*`), following re-exports."""
        if depth > 8:
            return None
        for scope in self.scopes_for(module):
            found = lookup(scope, qualname)
            if found is not None:
                return found, scope
            head, _, rest = qualname.partition(".")
            if head in scope.imports:
                src_module, src_name = scope.imports[head]
                if src_name:  # `from m import name` (`import m` names a module)
                    inner = self._declared(src_module, src_name + ("." + rest if rest else ""), lookup, depth + 1)
                    if inner is not None:
                        return inner
            for star in scope.star_imports:
                inner = self._declared(star, qualname, lookup, depth + 1)
                if inner is not None:
                    return inner
        return None

    def resolve(self, parts: list[str], scope: ModuleScope | None, depth: int = 0) -> Target:
        """Follow a dotted name as written in `scope` to its definition."""
        if scope is None or depth > 12:
            return ANY
        head = parts[0]
        rest = parts[1:]
        if head in scope.classes or head in scope.typevars or head in scope.aliases or head in scope.other_names:
            return self.canonical(scope.name, ".".join(parts), depth)
        if head in scope.imports:
            module, attr = scope.imports[head]
            if not attr:
                # `import a.b.c` binds `a`; prefer the longest imported module prefix.
                dotted = parts
                for i in range(len(dotted), 0, -1):
                    candidate = ".".join(dotted[:i])
                    if candidate in scope.imported_modules or (i == 1 and candidate == head):
                        real = module if i == 1 else candidate
                        return self.canonical(real, ".".join(dotted[i:]), depth)
                return self.canonical(module, ".".join(rest), depth)
            return self.canonical(module, ".".join([attr, *rest]), depth)
        for star in scope.star_imports:
            for star_scope in self.scopes_for(star):
                if self._defines(star_scope, head):
                    return self.resolve(parts, star_scope, depth + 1)
        if head in _BUILTIN_NAMES:
            return Target("builtin", "builtins", ".".join(parts))
        return ANY

    @staticmethod
    def _defines(scope: ModuleScope, name: str) -> bool:
        return (name in scope.classes or name in scope.typevars or name in scope.aliases
                or name in scope.imports or name in scope.other_names)

    def canonical(self, module: str, path: str, depth: int = 0) -> Target:
        """Shift submodules out of `path` and follow re-exports inside the protected tree."""
        if not path:
            return Target("ref", module, "")
        head, _, rest = path.partition(".")
        if is_module(f"{module}.{head}") or (is_protected(module, self.roots) and f"{module}.{head}" in self.files):
            return self.canonical(f"{module}.{head}", rest, depth + 1)
        if depth < 12:
            for scope in self.scopes_for(module) if is_protected(module, self.roots) or module.startswith("_") else []:
                if head in scope.classes or head in scope.typevars or head in scope.aliases:
                    return Target("ref", module, path)
                if head in scope.imports:
                    return self.resolve(path.split("."), scope, depth + 1)
                for star in scope.star_imports:
                    for star_scope in self.scopes_for(star):
                        if self._defines(star_scope, head):
                            return self.resolve(path.split("."), star_scope, depth + 1)
        return Target("ref", module, path)
