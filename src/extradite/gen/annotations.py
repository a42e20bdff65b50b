"""Annotations as written: parse sources and stubs with libcst, resolve and rewrite names.

Data flow (all in the generator's process, which never imports a target):

    file path ──libcst──▶ ModuleScope (imports, classes, TypeVars, aliases; version-gated
                          blocks evaluated for the *target* interpreter)
    annotation node + scope ──Resolver──▶ text for the generated module, where
        names from the protected tree  → generated proxy class | local TypeVar |
                                          inlined alias | Any
        names from other modules       → `module.path` plus an import (TYPE_CHECKING only)
        builtins                        → the bare name (qualified only on a clash)

Stubs are found for the target's interpreter by the introspection child (a `.pyi`
beside the module or an installed `*-stubs` package) and, for the standard
library, in the typeshed copy that mypy ships (found on disk, mypy is not imported).
"""

from __future__ import annotations

import ast
import builtins
import re
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import libcst as cst

from .._targets import in_tree

__all__ = [
    "ModuleScope",
    "ClassDecl",
    "FunctionDecl",
    "ParamDecl",
    "Resolver",
    "TypeVarDecl",
    "find_typeshed",
    "load_scope",
    "literal_default",
]

_BUILTIN_NAMES = frozenset(dir(builtins))
_EMPTY_MODULE = cst.Module(body=[])


def code(node: cst.CSTNode) -> str:
    return _EMPTY_MODULE.code_for_node(node)


@dataclass(frozen=True)
class ParamDecl:
    name: str
    kind: str  # POSITIONAL_ONLY | POSITIONAL_OR_KEYWORD | VAR_POSITIONAL | KEYWORD_ONLY | VAR_KEYWORD
    annotation: cst.BaseExpression | None
    default: str | None  # None: required; "..."/literal text otherwise


@dataclass(frozen=True)
class FunctionDecl:
    name: str
    params: tuple[ParamDecl, ...]  # `self`/`cls` already removed where applicable
    returns: cst.BaseExpression | None
    decorators: frozenset[str]
    is_async: bool
    doc: str | None
    ignore: str | None = None  # a `# type: ignore[...]` comment the stub carries on this def


@dataclass
class ClassDecl:
    name: str
    bases: list[cst.BaseExpression] = field(default_factory=list)
    functions: dict[str, list[FunctionDecl]] = field(default_factory=dict)
    attributes: dict[str, cst.BaseExpression] = field(default_factory=dict)
    classes: dict[str, ClassDecl] = field(default_factory=dict)


@dataclass(frozen=True)
class TypeVarDecl:
    name: str
    kind: str  # TypeVar | ParamSpec | TypeVarTuple
    bound: cst.BaseExpression | None
    constraints: tuple[cst.BaseExpression, ...]
    variance: str  # in | co | contra


@dataclass
class ModuleScope:
    name: str
    path: str
    is_stub: bool
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # local -> (module, attr path or "")
    imported_modules: set[str] = field(default_factory=set)
    star_imports: list[str] = field(default_factory=list)
    classes: dict[str, ClassDecl] = field(default_factory=dict)
    typevars: dict[str, TypeVarDecl] = field(default_factory=dict)
    aliases: dict[str, cst.BaseExpression] = field(default_factory=dict)
    other_names: set[str] = field(default_factory=set)

    def find_class(self, qualname: str) -> ClassDecl | None:
        parts = qualname.split(".")
        found = self.classes.get(parts[0])
        for part in parts[1:]:
            if found is None:
                return None
            found = found.classes.get(part)
        return found


def literal_default(node: cst.BaseExpression | None) -> str | None:
    """Source text of a default that can be written out as is, else "..."."""
    if node is None:
        return None
    text = code(node)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return "..."
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        if isinstance(value, float) and value != value:
            return "..."
        return text
    return "..."


# --- parsing ---------------------------------------------------------------------------


class _Conditions:
    """Evaluates `sys.version_info`/`sys.platform` tests the way a type checker would."""

    def __init__(self, version: tuple[int, ...], platform: str) -> None:
        self.version = version
        self.platform = platform

    def check(self, test: cst.BaseExpression) -> bool | None:
        try:
            return self._eval(ast.parse(code(test), mode="eval").body)
        except _Unknown:
            return None

    def _eval(self, node: ast.expr) -> bool:
        if isinstance(node, ast.BoolOp):
            values = [self._eval(v) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not self._eval(node.operand)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left = self._value(node.left)
            right = self._value(node.comparators[0])
            op = node.ops[0]
            if isinstance(left, tuple) and isinstance(right, tuple):
                left = left[: len(right)]
            ops: dict[type[ast.cmpop], Callable[[Any, Any], object]] = {
                ast.GtE: lambda a, b: a >= b, ast.Gt: lambda a, b: a > b,
                ast.LtE: lambda a, b: a <= b, ast.Lt: lambda a, b: a < b,
                ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
            }
            for op_type, fn in ops.items():
                if isinstance(op, op_type):
                    return bool(fn(left, right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith":
            base = self._value(node.func.value)
            arg = self._value(node.args[0]) if node.args else None
            if isinstance(base, str) and isinstance(arg, str):
                return base.startswith(arg)
        raise _Unknown

    def _value(self, node: ast.expr) -> object:
        text = ast.unparse(node)
        if text == "sys.version_info":
            return self.version
        if text == "sys.platform":
            return self.platform
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "sys.version_info":
            index = ast.literal_eval(node.slice)
            if isinstance(index, int):
                return self.version[index]
        try:
            value = ast.literal_eval(node)
        except ValueError:
            raise _Unknown from None
        return value


class _Unknown(Exception):
    pass


def _decorator_name(dec: cst.Decorator) -> str:
    node = dec.decorator
    if isinstance(node, cst.Call):
        node = node.func
    return code(node)


def _docstring(body: cst.BaseSuite) -> str | None:
    if isinstance(body, cst.IndentedBlock) and body.body:
        first = body.body[0]
        if isinstance(first, cst.SimpleStatementLine) and first.body and isinstance(first.body[0], cst.Expr):
            value = first.body[0].value
            if isinstance(value, (cst.SimpleString, cst.ConcatenatedString)):
                evaluated = value.evaluated_value
                if isinstance(evaluated, str):
                    import inspect

                    return inspect.cleandoc(evaluated)
    return None


def _params(fn: cst.FunctionDef, drop_first: bool) -> tuple[ParamDecl, ...]:
    p = fn.params
    out: list[ParamDecl] = []
    for param in p.posonly_params:
        out.append(ParamDecl(param.name.value, "POSITIONAL_ONLY", _ann(param), literal_default(param.default)))
    for param in p.params:
        out.append(ParamDecl(param.name.value, "POSITIONAL_OR_KEYWORD", _ann(param), literal_default(param.default)))
    if isinstance(p.star_arg, cst.Param):
        out.append(ParamDecl(p.star_arg.name.value, "VAR_POSITIONAL", _ann(p.star_arg), None))
    for param in p.kwonly_params:
        out.append(ParamDecl(param.name.value, "KEYWORD_ONLY", _ann(param), literal_default(param.default)))
    if isinstance(p.star_kwarg, cst.Param):
        out.append(ParamDecl(p.star_kwarg.name.value, "VAR_KEYWORD", _ann(p.star_kwarg), None))
    if drop_first and out and out[0].kind in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD"):
        out = out[1:]
    # Old stub convention: a leading `__name` parameter is positional-only.
    fixed: list[ParamDecl] = []
    for decl in out:
        if (decl.kind == "POSITIONAL_OR_KEYWORD" and decl.name.startswith("__") and not decl.name.endswith("__")
                and all(f.kind == "POSITIONAL_ONLY" for f in fixed)):
            decl = ParamDecl(decl.name[2:], "POSITIONAL_ONLY", decl.annotation, decl.default)
        fixed.append(decl)
    return tuple(fixed)


def _ann(param: cst.Param) -> cst.BaseExpression | None:
    return param.annotation.annotation if param.annotation is not None else None


class _ScopeBuilder:
    def __init__(self, scope: ModuleScope, conditions: _Conditions) -> None:
        self.scope = scope
        self.conditions = conditions

    def statements(self, body: Sequence[cst.BaseStatement | cst.BaseSmallStatement]) -> Iterator[cst.CSTNode]:
        """Statements with version/platform `if` blocks flattened for the target interpreter."""
        for stmt in body:
            if isinstance(stmt, cst.If):
                yield from self._if(stmt)
            elif isinstance(stmt, cst.SimpleStatementLine):
                yield from stmt.body
            elif isinstance(stmt, cst.Try):
                yield from self.statements(stmt.body.body)
            else:
                yield stmt

    def _if(self, stmt: cst.If) -> Iterator[cst.CSTNode]:
        result = self.conditions.check(stmt.test)
        if code(stmt.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            result = True
        if result is None or result:
            yield from self.statements(stmt.body.body)
            if result is not None:
                return
        orelse = stmt.orelse
        if isinstance(orelse, cst.If):
            yield from self._if(orelse)
        elif isinstance(orelse, cst.Else):
            yield from self.statements(orelse.body.body)

    def module(self, tree: cst.Module) -> None:
        for stmt in self.statements(tree.body):
            self._module_statement(stmt)

    def _module_statement(self, stmt: cst.CSTNode) -> None:
        scope = self.scope
        if isinstance(stmt, cst.Import):
            for alias in stmt.names:
                dotted = code(alias.name)
                if alias.asname is not None:
                    scope.imports[code(alias.asname.name)] = (dotted, "")
                else:
                    top = dotted.split(".")[0]
                    scope.imports[top] = (top, "")
                scope.imported_modules.add(dotted)
        elif isinstance(stmt, cst.ImportFrom):
            module = self._from_module(stmt)
            if isinstance(stmt.names, cst.ImportStar):
                scope.star_imports.append(module)
            else:
                for alias in stmt.names:
                    name = code(alias.name)
                    local = code(alias.asname.name) if alias.asname is not None else name
                    scope.imports[local] = (module, name)
        elif isinstance(stmt, cst.ClassDef):
            scope.classes[stmt.name.value] = self.class_decl(stmt)
        elif isinstance(stmt, (cst.Assign, cst.AnnAssign)):
            self._assignment(stmt)
        elif isinstance(stmt, cst.FunctionDef):
            scope.other_names.add(stmt.name.value)

    def _from_module(self, stmt: cst.ImportFrom) -> str:
        module = code(stmt.module) if stmt.module is not None else ""
        dots = len(stmt.relative)
        if not dots:
            return module
        package = self.scope.name if self.scope.path.endswith(("__init__.py", "__init__.pyi")) else self.scope.name.rpartition(".")[0]
        for _ in range(dots - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{module}" if module else package

    def _assignment(self, stmt: cst.Assign | cst.AnnAssign) -> None:
        scope = self.scope
        if isinstance(stmt, cst.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0].target, cst.Name):
                return
            name = stmt.targets[0].target.value
            value: cst.BaseExpression | None = stmt.value
            annotation = None
        else:
            if not isinstance(stmt.target, cst.Name):
                return
            name = stmt.target.value
            value = stmt.value
            annotation = code(stmt.annotation.annotation)
        if value is None:
            scope.other_names.add(name)
            return
        if isinstance(value, cst.Call):
            func = code(value.func).rsplit(".", 1)[-1]
            if func in ("TypeVar", "ParamSpec", "TypeVarTuple"):
                scope.typevars[name] = _typevar(name, func, value)
                return
        if annotation is not None and annotation.rsplit(".", 1)[-1] == "TypeAlias":
            scope.aliases[name] = value
            return
        if annotation is None and isinstance(value, (cst.Subscript, cst.BinaryOperation, cst.Attribute)):
            scope.aliases[name] = value
            return
        scope.other_names.add(name)

    def class_decl(self, node: cst.ClassDef) -> ClassDecl:
        decl = ClassDecl(name=node.name.value, bases=[arg.value for arg in node.bases if arg.keyword is None])
        for stmt in self.statements(node.body.body):
            if isinstance(stmt, cst.FunctionDef):
                decorators = frozenset(_decorator_name(d) for d in stmt.decorators)
                is_static = any(d.rsplit(".", 1)[-1] == "staticmethod" for d in decorators)
                decl.functions.setdefault(stmt.name.value, []).append(FunctionDecl(
                    name=stmt.name.value,
                    params=_params(stmt, drop_first=not is_static),
                    returns=stmt.returns.annotation if stmt.returns is not None else None,
                    decorators=decorators,
                    is_async=stmt.asynchronous is not None,
                    doc=_docstring(stmt.body),
                    ignore=_ignore_comment(stmt),
                ))
            elif isinstance(stmt, cst.AnnAssign) and isinstance(stmt.target, cst.Name):
                decl.attributes[stmt.target.value] = stmt.annotation.annotation
            elif isinstance(stmt, cst.ClassDef):
                decl.classes[stmt.name.value] = self.class_decl(stmt)
        return decl


_IGNORE_RE = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?")


def _ignore_comment(fn: cst.FunctionDef) -> str | None:
    """The stub's `# type: ignore[...]` on this def, kept because the same overlap recurs in the proxy."""
    if not isinstance(fn.body, cst.SimpleStatementSuite):
        return None
    match = _IGNORE_RE.search(code(fn))
    return match.group(0) if match else None


def _typevar(name: str, kind: str, call: cst.Call) -> TypeVarDecl:
    bound = None
    constraints: list[cst.BaseExpression] = []
    variance = "in"
    for i, arg in enumerate(call.args):
        keyword = arg.keyword.value if arg.keyword is not None else None
        if keyword is None and i > 0:
            constraints.append(arg.value)
        elif keyword == "bound":
            bound = arg.value
        elif keyword == "covariant" and code(arg.value) == "True":
            variance = "co"
        elif keyword == "contravariant" and code(arg.value) == "True":
            variance = "contra"
    return TypeVarDecl(name=name, kind=kind, bound=bound, constraints=tuple(constraints), variance=variance)


@lru_cache(maxsize=None)
def _parse(path: str) -> cst.Module | None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        return cst.parse_module(text)
    except (OSError, UnicodeDecodeError, cst.ParserSyntaxError):
        return None


_SCOPES: dict[tuple[str, str, tuple[int, ...], str], ModuleScope | None] = {}


def load_scope(name: str, path: str, *, version: tuple[int, ...], platform: str) -> ModuleScope | None:
    """The scope of module `name` read from `path` (None when it cannot be parsed)."""
    key = (name, path, version, platform)
    if key in _SCOPES:
        return _SCOPES[key]
    tree = _parse(path)
    scope = None
    if tree is not None:
        scope = ModuleScope(name=name, path=path, is_stub=path.endswith(".pyi"))
        _ScopeBuilder(scope, _Conditions(version, platform)).module(tree)
    _SCOPES[key] = scope
    return scope


@lru_cache(maxsize=None)
def find_typeshed() -> str | None:
    """The `typeshed/stdlib` directory inside the installed mypy, found without importing it."""
    spec = importlib.util.find_spec("mypy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, "typeshed", "stdlib")
        if os.path.isdir(candidate):
            return candidate
    return None


def typeshed_stub(module: str) -> str | None:
    root = find_typeshed()
    if root is None:
        return None
    rel = module.replace(".", os.sep)
    for candidate in (os.path.join(root, rel + ".pyi"), os.path.join(root, rel, "__init__.pyi")):
        if os.path.exists(candidate):
            return candidate
    return None


@lru_cache(maxsize=None)
def is_module(name: str) -> bool:
    """Whether `name` names a module, judged from files only (typeshed, sys.path)."""
    if typeshed_stub(name) is not None:
        return True
    rel = name.replace(".", os.sep)
    for entry in sys.path:
        base = os.path.join(entry or ".", rel)
        for candidate in (base + ".py", base + ".pyi", os.path.join(base, "__init__.py"), os.path.join(base, "__init__.pyi")):
            if os.path.exists(candidate):
                return True
        top, _, rest = name.partition(".")
        stubs = os.path.join(entry or ".", top + "-stubs", rest.replace(".", os.sep))
        if rest and (os.path.exists(stubs + ".pyi") or os.path.exists(os.path.join(stubs, "__init__.pyi"))):
            return True
    return False


# --- resolution ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a resolved name stands for."""

    kind: str  # builtin | ref | any
    module: str = ""
    path: str = ""


_ANY = Target("any")
_LITERAL_FORMS = {("typing", "Literal"), ("typing_extensions", "Literal")}
_ANNOTATED_FORMS = {("typing", "Annotated"), ("typing_extensions", "Annotated")}
_WRAPPER_FORMS = {("typing", "ClassVar"), ("typing_extensions", "ClassVar"), ("typing", "Final"),
                  ("typing_extensions", "Final")}
_SELF_FORMS = {("typing", "Self"), ("typing_extensions", "Self")}


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
            return _ANY
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
        return _ANY

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


@dataclass(frozen=True)
class ProxyName:
    module: str  # generated module name
    name: str  # proxy class name


class Emitter:
    """Writes annotation text for one generated module and collects what it needs."""

    def __init__(self, resolver: Resolver, *, module: str, reserved: frozenset[str],
                 proxies: dict[tuple[str, str], ProxyName]) -> None:
        self.resolver = resolver
        self.module = module
        self.reserved = reserved
        self.proxies = proxies
        self.imports: dict[str, str] = {}  # module -> local alias ("" when imported plainly)
        self.typevars: dict[tuple[str, str], str] = {}  # (module, name) -> local name
        self.typevar_defs: dict[str, str] = {}  # local name -> definition source (`T = TypeVar(...)`)
        self._alias_stack: list[tuple[str, str]] = []
        self.typevar_texts: set[str] = set()  # every spelling of a type variable written so far
        # Type variables imported from elsewhere (a stub base's `_KT`) are only kept when they are the
        # proxy class's own parameters; we cannot substitute a base's arguments, and Any is never wrong.
        self.class_params: frozenset[str] | None = None

    # -- public entry points

    def cst_text(self, node: cst.BaseExpression | None, scope: ModuleScope | None) -> str | None:
        if node is None:
            return None
        return code(self._node(node, scope))

    def runtime_text(self, ann: dict[str, object] | None) -> str | None:
        if ann is None:
            return None
        text = ann.get("text")
        refs = ann.get("refs")
        if not isinstance(text, str) or not isinstance(refs, dict):
            return None
        try:
            node = cst.parse_expression(text)
        except cst.ParserSyntaxError:
            return self.any()
        return code(self._runtime_node(node, refs))

    def cst_returns_protected(self, node: cst.BaseExpression | None, scope: ModuleScope | None) -> bool:
        return node is not None and self._protected_top(node, lambda n: self._target_of(n, scope))

    def runtime_returns_protected(self, ann: dict[str, object] | None) -> bool:
        if ann is None or not isinstance(ann.get("text"), str) or not isinstance(ann.get("refs"), dict):
            return False
        try:
            node = cst.parse_expression(str(ann["text"]))
        except cst.ParserSyntaxError:
            return False
        refs = ann["refs"]
        assert isinstance(refs, dict)
        return self._protected_top(node, lambda n: self._runtime_target(n, refs))

    def any(self) -> str:
        return self.import_ref("typing", "Any")

    def import_ref(self, module: str, path: str) -> str:
        alias = self.imports.get(module)
        if alias is None:
            top = module.split(".")[0]
            alias = "_xd_" + module.replace(".", "_") if top in self.reserved else ""
            self.imports[module] = alias
        base = alias or module
        return f"{base}.{path}" if path else base

    # -- helpers

    def _protected_top(self, node: cst.BaseExpression, target_of: object) -> bool:
        assert callable(target_of)
        for item in _union_items(node):
            if isinstance(item, cst.Name) and item.value == "None":
                continue
            target = target_of(item)
            if isinstance(target, Target) and target.kind == "ref":
                if (target.module, target.path) in _SELF_FORMS or is_protected(target.module, self.resolver.roots):
                    return True
        return False

    def _target_of(self, node: cst.BaseExpression, scope: ModuleScope | None) -> Target | None:
        if isinstance(node, cst.Subscript):
            node = node.value
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
            parsed = _parse_string(node)
            return self._target_of(parsed, scope) if parsed is not None else None
        parts = _dotted(node)
        return self.resolver.resolve(parts, scope) if parts else None

    def _runtime_target(self, node: cst.BaseExpression, refs: dict[str, object]) -> Target | None:
        if isinstance(node, cst.Subscript):
            node = node.value
        parts = _dotted(node)
        if not parts:
            return None
        entry = refs.get(".".join(parts))
        if isinstance(entry, list) and len(entry) >= 2:
            return self.resolver.canonical(str(entry[0]), str(entry[1]))
        return None

    def _node(self, node: cst.BaseExpression, scope: ModuleScope | None) -> cst.BaseExpression:
        if isinstance(node, (cst.Name, cst.Attribute)):
            parts = _dotted(node)
            if parts is None:
                return cst.parse_expression(self.any())
            if parts == ["None"]:
                return node
            return cst.parse_expression(self._render_target(self.resolver.resolve(parts, scope)))
        if isinstance(node, cst.Subscript):
            head = _dotted(node.value)
            found = self.resolver.resolve(head, scope) if head else None
            key = (found.module, found.path) if found is not None else None
            if key in _ANNOTATED_FORMS:
                first = node.slice[0].slice
                assert isinstance(first, cst.Index)
                return self._node(first.value, scope)
            value = self._node(node.value, scope)
            if key in _LITERAL_FORMS:
                return node.with_changes(value=value)
            if code(value) == self.any():
                return value
            return node.with_changes(value=value, slice=[self._element(e, scope) for e in node.slice])
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
            parsed = _parse_string(node)
            return self._node(parsed, scope) if parsed is not None else cst.parse_expression(self.any())
        if isinstance(node, cst.BinaryOperation):
            return node.with_changes(left=self._node(node.left, scope), right=self._node(node.right, scope))
        if isinstance(node, cst.List):
            return node.with_changes(elements=[e.with_changes(value=self._node(e.value, scope)) for e in node.elements])
        if isinstance(node, cst.Tuple):
            return node.with_changes(elements=[e.with_changes(value=self._node(e.value, scope)) for e in node.elements])
        return node

    def _element(self, element: cst.SubscriptElement, scope: ModuleScope | None) -> cst.SubscriptElement:
        if isinstance(element.slice, cst.Index):
            return element.with_changes(slice=element.slice.with_changes(value=self._node(element.slice.value, scope)))
        return element

    def _runtime_node(self, node: cst.BaseExpression, refs: dict[str, object]) -> cst.BaseExpression:
        if isinstance(node, (cst.Name, cst.Attribute)):
            parts = _dotted(node)
            if parts is None:
                return cst.parse_expression(self.any())
            if parts == ["None"]:
                return node
            entry = refs.get(".".join(parts))
            if not isinstance(entry, list) or len(entry) < 2:
                return cst.parse_expression(self.any())
            module, path, extra = str(entry[0]), str(entry[1]), entry[2] if len(entry) > 2 else None
            if isinstance(extra, dict) and isinstance(extra.get("typevar"), dict) and is_protected(module, self.resolver.roots):
                return cst.parse_expression(self._runtime_typevar(module, extra["typevar"], refs))
            if module == "builtins":
                return cst.parse_expression(self._render_target(Target("builtin", "builtins", path)))
            return cst.parse_expression(self._render_target(self.resolver.canonical(module, path)))
        if isinstance(node, cst.Subscript):
            value = self._runtime_node(node.value, refs)
            if code(value).endswith(".Literal"):
                return node.with_changes(value=value)
            if code(value) == self.any():
                return value
            new_slice = []
            for element in node.slice:
                if isinstance(element.slice, cst.Index):
                    element = element.with_changes(slice=element.slice.with_changes(
                        value=self._runtime_node(element.slice.value, refs)))
                new_slice.append(element)
            return node.with_changes(value=value, slice=new_slice)
        if isinstance(node, cst.List):
            return node.with_changes(elements=[e.with_changes(value=self._runtime_node(e.value, refs)) for e in node.elements])
        return node

    def _render_target(self, target: Target) -> str:
        if target.kind == "any":
            return self.any()
        if target.kind == "builtin" or (target.module == "builtins" and target.path):
            head = target.path.split(".")[0]
            if head in self.reserved:
                return self.import_ref("builtins", target.path)
            return target.path
        module, path = target.module, target.path
        if (module, path) in _WRAPPER_FORMS:
            return self.import_ref(module, path)
        if is_protected(module, self.resolver.roots):
            return self._protected(module, path)
        if not path:
            return self.any()  # a module used as a type
        if "." not in path and path.startswith("_"):
            # Stub-private names are often type variables (`_queue._T`): the .py cannot import them
            # at run time, so they get a local definition like the protected tree's own.
            for scope in self.resolver.scopes_for(module):
                if path in scope.typevars:
                    local = self._typevar(module, scope.typevars[path], scope)
                    if self.class_params is not None and local not in self.class_params:
                        return self.any()
                    return local
        return self.import_ref(module, path)

    def _protected(self, module: str, path: str) -> str:
        proxy = self.proxies.get((module, path))
        if proxy is not None:
            if proxy.module == self.module:
                return proxy.name
            return self.import_ref(proxy.module, proxy.name)
        for scope in self.resolver.scopes_for(module):
            if path in scope.typevars:
                return self._typevar(module, scope.typevars[path], scope)
            if path in scope.aliases and (module, path) not in self._alias_stack and len(self._alias_stack) < 8:
                self._alias_stack.append((module, path))
                try:
                    inlined = code(self._node(scope.aliases[path], scope))
                finally:
                    self._alias_stack.pop()
                return f"({inlined})" if " | " in inlined else inlined
            if path.split(".")[0] in scope.classes:
                break
        return self.any()

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

    def _typevar(self, module: str, decl: TypeVarDecl, scope: ModuleScope) -> str:
        key = (module, decl.name)
        if key in self.typevars:
            return self.typevars[key]
        local = self._local_name(module, decl.name)
        args = [repr(local)]
        args.extend(repr(self.cst_text(c, scope)) for c in decl.constraints)
        if decl.bound is not None:
            args.append(f"bound={self.cst_text(decl.bound, scope)!r}")
        if decl.variance == "co":
            args.append("covariant=True")
        elif decl.variance == "contra":
            args.append("contravariant=True")
        factory = self.import_ref("typing", decl.kind)
        self.typevar_texts.add(local)
        self.typevar_defs[local] = f"{local} = {factory}({', '.join(args)})"
        return local

    def _runtime_typevar(self, module: str, info: dict[str, object], refs: dict[str, object]) -> str:
        name = str(info.get("name"))
        key = (module, name)
        if key in self.typevars:
            return self.typevars[key]
        local = self._local_name(module, name)
        args = [repr(local)]
        constraints = info.get("constraints")
        if isinstance(constraints, list):
            args.extend(repr(self.runtime_text({"text": c, "refs": refs})) for c in constraints)
        bound = info.get("bound")
        if isinstance(bound, str):
            args.append(f"bound={self.runtime_text({'text': bound, 'refs': refs})!r}")
        variance = info.get("variance")
        if variance == "co":
            args.append("covariant=True")
        elif variance == "contra":
            args.append("contravariant=True")
        factory = self.import_ref("typing", str(info.get("kind") or "TypeVar"))
        self.typevar_texts.add(local)
        self.typevar_defs[local] = f"{local} = {factory}({', '.join(args)})"
        return local


def _dotted(node: cst.BaseExpression) -> list[str] | None:
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, cst.Attribute):
        base = _dotted(node.value)
        return [*base, node.attr.value] if base is not None else None
    return None


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
