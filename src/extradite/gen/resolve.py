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
from dataclasses import dataclass

from .._targets import in_tree
from .locate import is_module, typeshed_stub
from .scope import ClassDecl, FunctionDecl, ModuleScope, load_scope

__all__ = ["Target", "ANY", "Resolver", "is_protected",
           "LITERAL_FORMS", "ANNOTATED_FORMS", "WRAPPER_FORMS", "SELF_FORMS"]

_BUILTIN_NAMES = frozenset(dir(builtins))


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

    def find_function(self, module: str, name: str, depth: int = 0) -> tuple[list[FunctionDecl], ModuleScope] | None:
        """The declarations (overloads included) of module-level function `name`, stubs first."""
        if depth > 8:
            return None
        for scope in self.scopes_for(module):
            if name in scope.functions:
                return scope.functions[name], scope
            if name in scope.imports:
                src_module, src_name = scope.imports[name]
                if src_name and "." not in src_name:
                    inner = self.find_function(src_module, src_name, depth + 1)
                    if inner is not None:
                        return inner
            for star in scope.star_imports:
                inner = self.find_function(star, name, depth + 1)
                if inner is not None:
                    return inner
        return None

    def find_class(self, module: str, qualname: str, depth: int = 0) -> tuple[ClassDecl, ModuleScope] | None:
        if depth > 8:
            return None
        for scope in self.scopes_for(module):
            found = scope.find_class(qualname)
            if found is not None:
                return found, scope
            head, _, rest = qualname.partition(".")
            if head in scope.imports:
                src_module, src_name = scope.imports[head]
                if src_name:
                    inner = self.find_class(src_module, src_name + ("." + rest if rest else ""), depth + 1)
                    if inner is not None:
                        return inner
            for star in scope.star_imports:
                inner = self.find_class(star, qualname, depth + 1)
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
