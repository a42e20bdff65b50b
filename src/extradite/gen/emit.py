"""Annotation text for one generated module, and the imports and TypeVars that text needs.

    Annotation (annotation.py) ──Emitter──▶ text, where a name of
        the protected tree    → generated proxy class | local TypeVar | inlined alias
                                | typeshed protocol (`module.path`, as another module's) | Any
        another module        → `module.path`, plus an import (under TYPE_CHECKING in the .py)
        builtins              → the bare name (qualified only where a generated name shadows it)

Nothing from the protected tree is ever imported by a generated module at run time: a
class there is its proxy, a protocol of typeshed's (structural, imported only under
TYPE_CHECKING) or Any; a type variable gets a local definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from .annotation import Annotation, Names, ScopeNames, SubstitutedNames, Substitution, TypeVarRef, typevar_key
from .resolve import ANNOTATED_FORMS, LITERAL_FORMS, SELF_FORMS, WRAPPER_FORMS, Resolver, Target, is_protected
from .locate import find_typeshed
from .scope import ClassDecl, ModuleScope, TypeVarDecl, code

__all__ = ["Emitter", "ProxyName", "dotted", "names_in"]

PROTOCOL_FORMS = {("typing", "Protocol"), ("typing_extensions", "Protocol")}


@dataclass(frozen=True)
class ProxyName:
    module: str  # generated module name
    name: str  # proxy class name


class Emitter:
    """Writes annotation text for one generated module and collects what it needs."""

    def __init__(self, resolver: Resolver, *, module: str, reserved: frozenset[str],
                 proxies: dict[tuple[str, str], ProxyName], members: frozenset[str] = frozenset(),
                 class_params: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.resolver = resolver
        self.generic_params = class_params  # (module, name) of every generated class's type parameters
        self.members = members  # member names of the module's proxy classes
        self.unresolved: set[str] = set()  # classes of the protected tree written as Any (no proxy)
        self.class_aliases: dict[str, str] = {}  # `_xd_cls_date` -> `date`, for names a member shadows
        self.module = module
        self.reserved = reserved
        self.proxies = proxies
        self.imports: dict[str, str] = {}  # module -> local alias ("" when imported plainly)
        self.typevars: dict[tuple[str, str], str] = {}  # (module, name) -> local name
        self.typevar_defs: dict[str, str] = {}  # local name -> definition source (`T = TypeVar(...)`)
        self._alias_stack: list[tuple[str, str]] = []
        self.typevar_texts: set[str] = set()  # every spelling of a type variable written so far
        self.class_params: frozenset[str] | None = None  # the current proxy class's own type parameters

    # -- public entry points

    def text(self, annotation: Annotation | None) -> str | None:
        """The annotation as the generated module writes it (None when there is none)."""
        if annotation is None:
            return None
        return code(self._node(annotation.node, annotation.names))

    def returns_protected(self, annotation: Annotation | None) -> bool:
        """Whether the annotation (or a member of its union) is a class of the protected tree."""
        return annotation is not None and self._protected_top(annotation.node, annotation.names)

    def any(self) -> str:
        return self.import_ref("typing", "Any")

    def typevar(self, module: str, name: str) -> str:
        """The local name of the type variable `name` of `module` (Any when it is not one)."""
        for scope in self.resolver.scopes_for(module):
            if name in scope.typevars:
                return self._typevar(module, scope.typevars[name], ScopeNames(self.resolver, scope))
        return self.any()

    def builtin(self, name: str) -> str:
        """A builtin's name, qualified where a generated name shadows it."""
        return self._render_target(Target("builtin", "builtins", name))

    def import_ref(self, module: str, path: str) -> str:
        alias = self.imports.get(module)
        if alias is None:
            top = module.split(".")[0]
            alias = "_xd_" + module.replace(".", "_") if top in self.reserved else ""
            self.imports[module] = alias
        base = alias or module
        return f"{base}.{path}" if path else base

    # -- helpers

    def _protected_top(self, node: cst.BaseExpression, names: Names) -> bool:
        for item in _union_items(node):
            if isinstance(item, cst.Name) and item.value == "None":
                continue
            target = self._target_of(item, names)
            if isinstance(target, TypeVarRef):
                return True  # only type variables of the protected tree are looked up this way
            if isinstance(target, Target) and target.kind == "ref":
                if (target.module, target.path) in SELF_FORMS or is_protected(target.module, self.resolver.roots):
                    return True
        return False

    def _target_of(self, node: cst.BaseExpression, names: Names) -> Target | TypeVarRef | None:
        if isinstance(node, cst.Subscript):
            node = node.value
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
            parsed = _parse_string(node)
            return self._target_of(parsed, names) if parsed is not None else None
        parts = dotted(node)
        found = names.lookup(parts) if parts else None
        if isinstance(found, Substitution):
            sub = found.annotation
            return self._target_of(sub.node, sub.names) if sub is not None else None
        return found

    def _node(self, node: cst.BaseExpression, names: Names) -> cst.BaseExpression:
        if isinstance(node, (cst.Name, cst.Attribute)):
            parts = dotted(node)
            if parts is None:
                return cst.parse_expression(self.any())
            if parts == ["None"]:
                return node
            return cst.parse_expression(self._name(parts, names))
        if isinstance(node, cst.Subscript):
            head = dotted(node.value)
            found = names.lookup(head) if head else None
            if isinstance(found, Substitution):
                return cst.parse_expression(self.any())
            generic_alias = self._generic_alias(found, node, names)
            if generic_alias is not None:
                return generic_alias
            key = (found.module, found.path) if isinstance(found, Target) else None
            if key in ANNOTATED_FORMS:
                first = node.slice[0].slice
                assert isinstance(first, cst.Index)
                return self._node(first.value, names)
            value = self._node(node.value, names)
            if key in LITERAL_FORMS:
                return node.with_changes(value=value)
            if code(value) == self.any():
                return value
            return node.with_changes(value=value, slice=[self._element(e, names) for e in node.slice])
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
            parsed = _parse_string(node)
            return self._node(parsed, names) if parsed is not None else cst.parse_expression(self.any())
        if isinstance(node, cst.BinaryOperation):
            return node.with_changes(left=self._node(node.left, names), right=self._node(node.right, names))
        if isinstance(node, (cst.List, cst.Tuple)):
            return node.with_changes(elements=[e.with_changes(value=self._node(e.value, names)) for e in node.elements])
        return node

    def _generic_alias(self, found: object, node: cst.Subscript, names: Names) -> cst.BaseExpression | None:
        """`_Predicate[int]` where the protected tree's `_Predicate = Callable[[_T], object]`:
        the alias is inlined with its type variables bound to the arguments (`Callable[[int], object]`)."""
        if not isinstance(found, Target) or found.kind != "ref" or not is_protected(found.module, self.resolver.roots):
            return None
        key = (found.module, found.path)
        if key in self.proxies or key in self._alias_stack or len(self._alias_stack) >= 8:
            return None
        for scope in self.resolver.scopes_for(found.module):
            alias = scope.aliases.get(found.path)
            if alias is None:
                if found.path in scope.classes:
                    return None
                continue
            alias_names = ScopeNames(self.resolver, scope)
            params: list[tuple[str, str]] = []
            for parts in names_in(alias):
                param = typevar_key(alias_names.lookup(parts))
                if param is not None and param not in params and self.resolver.is_typevar(param):
                    params.append(param)
            args = [Annotation(e.slice.value, names) for e in node.slice if isinstance(e.slice, cst.Index)]
            mapping: dict[tuple[str, str], Annotation | None] = {
                param: (args[i] if i < len(args) else None) for i, param in enumerate(params)}
            self._alias_stack.append(key)
            try:
                return self._node(alias, SubstitutedNames(alias_names, mapping))
            finally:
                self._alias_stack.pop()
        return None

    def _element(self, element: cst.SubscriptElement, names: Names) -> cst.SubscriptElement:
        if isinstance(element.slice, cst.Index):
            return element.with_changes(slice=element.slice.with_changes(value=self._node(element.slice.value, names)))
        return element

    def _name(self, parts: list[str], names: Names) -> str:
        found = names.lookup(parts)
        if isinstance(found, Substitution):
            sub = found.annotation
            return code(self._node(sub.node, sub.names)) if sub is not None else self.any()
        if isinstance(found, TypeVarRef):
            return self._typevar(found.module, found.decl, found.names)
        return self._render_target(found)

    def _render_target(self, target: Target) -> str:
        if target.kind == "any":
            return self.any()
        if target.kind == "builtin" or (target.module == "builtins" and target.path):
            head = target.path.split(".")[0]
            if head.startswith("_") and "." not in target.path:  # a type variable of the builtins stub
                local = self.typevar("builtins", target.path)
                if local != self.any():
                    return local
            if head in self.reserved:
                return self.import_ref("builtins", target.path)
            return target.path
        module, path = target.module, target.path
        if (module, path) in WRAPPER_FORMS:
            return self.import_ref(module, path)
        if is_protected(module, self.resolver.roots):
            return self._protected(module, path)
        if not path:
            return self.any()  # a module used as a type
        if "." not in path:
            # A type variable (`_queue._T`, `_typeshed.SupportsRichComparisonT`) gets a local
            # definition like the protected tree's own: the proxy class can be generic in it.
            for scope in self.resolver.scopes_for(module):
                if path in scope.typevars:
                    return self._typevar(module, scope.typevars[path], ScopeNames(self.resolver, scope))
        return self.import_ref(module, path)

    def _protected(self, module: str, path: str) -> str:
        proxy = self.proxies.get((module, path))
        if proxy is not None:
            if proxy.module == self.module:
                if proxy.name in self.members:
                    # Inside a class body a method of that name would shadow the class.
                    self.class_aliases[f"_xd_cls_{proxy.name}"] = proxy.name
                    return f"_xd_cls_{proxy.name}"
                return proxy.name
            return self.import_ref(proxy.module, proxy.name)
        scopes = self.resolver.scopes_for(module)
        if not scopes and path and "." not in path and path[0].isupper():
            # A module the target never imported (`jinja2.ext` under TYPE_CHECKING): its files are
            # unknown until the closure introspects the name, which says whether it is a class.
            self.unresolved.add(f"{module}:{path}")
        for scope in scopes:
            if path in scope.typevars:
                return self._typevar(module, scope.typevars[path], ScopeNames(self.resolver, scope))
            if path in scope.aliases and (module, path) not in self._alias_stack and len(self._alias_stack) < 8:
                self._alias_stack.append((module, path))
                try:
                    inlined = code(self._node(scope.aliases[path], ScopeNames(self.resolver, scope)))
                finally:
                    self._alias_stack.pop()
                return f"({inlined})" if " | " in inlined else inlined
            decl = scope.find_class(path)
            if decl is not None and scope.path.startswith(find_typeshed()) and self._is_protocol(decl, scope):
                # A protocol of the standard library's stubs types by structure, and typeshed is
                # where mypy finds it in any environment: named as the stub names it (never imported
                # at run time), a proxy or a parent object that has its members satisfies it.
                return self.import_ref(module, path)
            if path.split(".")[0] in scope.classes:
                self.unresolved.add(f"{module}:{path}")
                break
        return self.any()

    def _is_protocol(self, decl: ClassDecl, scope: ModuleScope) -> bool:
        names = ScopeNames(self.resolver, scope)
        for base in decl.bases:
            parts = dotted(base.value if isinstance(base, cst.Subscript) else base)
            found = names.lookup(parts) if parts else None
            if isinstance(found, Target) and (found.module, found.path) in PROTOCOL_FORMS:
                return True
        return False

    def _local_name(self, module: str, name: str) -> str:
        key = (module, name)
        if key in self.typevars:
            return self.typevars[key]
        local = name
        taken = set(self.typevars.values()) | self.reserved
        counter = 2
        while local in taken:
            local = f"{name}_{counter}"
            counter += 1
        self.typevars[key] = local
        return local

    def _typevar(self, module: str, decl: TypeVarDecl, names: Names) -> str:
        """The local name of a type variable, defined once in the generated module."""
        key = (module, decl.name)
        if key in self.typevars:
            return self.typevars[key]
        local = self._local_name(module, decl.name)
        args = [repr(local)]
        args.extend(repr(self.text(Annotation(c, names))) for c in decl.constraints)
        if decl.bound is not None:
            bound = self.text(Annotation(decl.bound, names))
            # A bound of the protected tree names its proxy, as the stub names the class; one
            # without a proxy would be Any, which bounds nothing. A proxy class's own parameter
            # stays unbounded: proxies do not inherit from one another, so `Sentinel[Self]` in a
            # proxy of a subclass would break the proxy of the bound.
            protected = self._protected_top(decl.bound, names)
            if bound is not None and not (protected and (self.any() in bound or key in self.generic_params)):
                args.append(f"bound={bound!r}")
        if decl.variance == "co":
            args.append("covariant=True")
        elif decl.variance == "contra":
            args.append("contravariant=True")
        factory = self.import_ref("typing", decl.kind)
        self.typevar_texts.add(local)
        self.typevar_defs[local] = f"{local} = {factory}({', '.join(args)})"
        return local


def dotted(node: cst.BaseExpression) -> list[str] | None:
    """`a.b.c` -> ["a", "b", "c"]; None for anything but a (dotted) name."""
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return [*base, node.attr.value] if base is not None else None
    return None


def names_in(node: cst.CSTNode | Sequence[cst.CSTNode]) -> list[list[str]]:
    """Every (dotted) name written in `node`, outermost first."""
    out: list[list[str]] = []

    class _Collect(cst.CSTVisitor):
        def visit_Name(self, name: cst.Name) -> bool:
            out.append([name.value])
            return False

        def visit_Attribute(self, attribute: cst.Attribute) -> bool:
            parts = dotted(attribute)
            if parts:
                out.append(parts)
            return False

    for item in node if isinstance(node, Sequence) else [node]:
        item.visit(_Collect())
    return out


def _parse_string(node: cst.SimpleString | cst.ConcatenatedString) -> cst.BaseExpression | None:
    value = node.evaluated_value
    if not isinstance(value, str):
        return None
    try:
        return cst.parse_expression(value.strip())
    except cst.ParserSyntaxError:
        return None


def _union_items(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The members of `A | B` or `Optional[A]`/`Union[A, B]` (by spelling), else [node]."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
        return [*_union_items(node.left), *_union_items(node.right)]
    if isinstance(node, cst.Subscript):
        name = code(node.value).rsplit(".", 1)[-1]
        if name in ("Optional", "Union"):
            items: list[cst.BaseExpression] = []
            for element in node.slice:
                if isinstance(element.slice, cst.Index):
                    items.extend(_union_items(element.slice.value))
            return items
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        parsed = _parse_string(node)
        return _union_items(parsed) if parsed is not None else [node]
    return [node]
