"""Module scopes: what a source file or stub declares, parsed with libcst (never imported).

    file path ──libcst──▶ ModuleScope: imports, classes (with their functions and
                          attributes), TypeVars and aliases; `sys.version_info` and
                          `sys.platform` blocks evaluated for the *target* interpreter

Annotations stay libcst expressions here; `resolve.py` says what their names stand
for and `emit.py` writes them for the generated module.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import libcst as cst

__all__ = [
    "ModuleScope",
    "ClassDecl",
    "FunctionDecl",
    "ParamDecl",
    "TypeVarDecl",
    "code",
    "load_scope",
    "literal_default",
]

_EMPTY_MODULE = cst.Module(body=[])


def code(node: cst.CSTNode) -> str:
    """The source text of a libcst node."""
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
    receiver: cst.BaseExpression | None = None  # the annotation of the dropped `self`/`cls`, if any


@dataclass
class ClassDecl:
    name: str
    bases: list[cst.BaseExpression] = field(default_factory=list)
    functions: dict[str, list[FunctionDecl]] = field(default_factory=dict)
    attributes: dict[str, cst.BaseExpression] = field(default_factory=dict)
    classes: dict[str, ClassDecl] = field(default_factory=dict)
    plain: bool = True  # no decorator, no metaclass or keyword: nothing makes a constructor for it


# Class decorators of stubs that change nothing about how instances are made.
_MARKERS = frozenset({"final", "deprecated", "type_check_only", "disjoint_base", "runtime_checkable"})


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
    functions: dict[str, list[FunctionDecl]] = field(default_factory=dict)  # module-level, overloads included
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


# What mypy infers for `self.x = <literal>` in `__init__` (None and containers need more context).
_LITERAL_TYPES = ((cst.Integer, "int"), (cst.Float, "float"), (cst.Imaginary, "complex"))


def _self_attributes(fn: cst.FunctionDef) -> dict[str, cst.BaseExpression]:
    """Instance attributes a method of a source class declares as mypy reads them: `self.x: T = ...`
    in any method, `self.x = <literal>` (bool, int, float, str, bytes) in `__init__`."""
    first = (fn.params.posonly_params or fn.params.params or (None,))[0]
    if first is None or any(_decorator_name(d).rsplit(".", 1)[-1] in ("staticmethod", "classmethod")
                            for d in fn.decorators):
        return {}
    receiver = first.name.value
    found: dict[str, cst.BaseExpression] = {}

    def attribute(target: cst.BaseExpression) -> str | None:
        if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == receiver:
            return target.attr.value
        return None

    class _Visitor(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return node is fn  # nested functions and classes have their own `self`

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            return False

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            name = attribute(node.target)
            if name is not None:
                found.setdefault(name, node.annotation.annotation)

        def visit_Assign(self, node: cst.Assign) -> None:
            if fn.name.value != "__init__" or len(node.targets) != 1:
                return
            name = attribute(node.targets[0].target)
            inferred = _literal_type(node.value)
            if name is not None and inferred is not None:
                found.setdefault(name, cst.Name(inferred))

    fn.visit(_Visitor())
    return found


def _literal_type(value: cst.BaseExpression) -> str | None:
    if isinstance(value, cst.Name) and value.value in ("True", "False"):
        return "bool"
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus):
        value = value.expression
    for kind, name in _LITERAL_TYPES:
        if isinstance(value, kind):
            return name
    if isinstance(value, (cst.SimpleString, cst.ConcatenatedString)):
        evaluated = value.evaluated_value
        return "bytes" if isinstance(evaluated, bytes) else "str" if isinstance(evaluated, str) else None
    return None


def _yields(fn: cst.FunctionDef) -> bool:
    """Whether `fn` is a generator: an `async def` with `yield` makes an async iterator, not a coroutine."""
    found = False

    class _Visitor(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return node is fn

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            return False

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def visit_Yield(self, node: cst.Yield) -> None:
            nonlocal found
            found = True

    fn.visit(_Visitor())
    return found


def _receiver(fn: cst.FunctionDef) -> cst.BaseExpression | None:
    first = (fn.params.posonly_params or fn.params.params or (None,))[0]
    return _ann(first) if first is not None else None


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
            scope.functions.setdefault(stmt.name.value, []).append(_function_decl(stmt, drop_first=False))

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
                scope.typevars[name] = _typevar_decl(name, func, value)
                return
        if annotation is not None and annotation.rsplit(".", 1)[-1] == "TypeAlias":
            scope.aliases[name] = value
            return
        if annotation is None and isinstance(value, (cst.Subscript, cst.BinaryOperation, cst.Attribute)):
            scope.aliases[name] = value
            return
        scope.other_names.add(name)

    def _aliased(self, decl: ClassDecl, value: cst.BaseExpression) -> list[FunctionDecl] | None:
        """The function a class-body name is bound to: one of the class's own, or of a class
        defined before it in the module (`Undefined._fail_with_undefined_error`)."""
        if isinstance(value, cst.Name):
            return decl.functions.get(value.value)
        if isinstance(value, cst.Attribute) and isinstance(value.value, cst.Name):
            owner = self.scope.classes.get(value.value.value)
            return owner.functions.get(value.attr.value) if owner is not None else None
        return None

    def class_decl(self, node: cst.ClassDef) -> ClassDecl:
        decl = ClassDecl(name=node.name.value, bases=[arg.value for arg in node.bases if arg.keyword is None],
                         plain=all(_decorator_name(d).rsplit(".", 1)[-1] in _MARKERS for d in node.decorators)
                         and all(arg.keyword is None for arg in node.bases))
        for stmt in self.statements(node.body.body):
            if isinstance(stmt, cst.FunctionDef):
                decorators = frozenset(_decorator_name(d) for d in stmt.decorators)
                is_static = any(d.rsplit(".", 1)[-1] == "staticmethod" for d in decorators)
                decl.functions.setdefault(stmt.name.value, []).append(
                    _function_decl(stmt, drop_first=not is_static))
            elif isinstance(stmt, cst.Assign) and self._aliased(decl, stmt.value) is not None:
                # `fatal = critical`, `__radd__ = __add__ = _fail`, `__str__ = Undefined._fail`:
                # the same function under more names.
                for target in stmt.targets:
                    if isinstance(target.target, cst.Name):
                        decl.functions[target.target.value] = self._aliased(decl, stmt.value) or []
            elif isinstance(stmt, cst.AnnAssign) and isinstance(stmt.target, cst.Name):
                decl.attributes[stmt.target.value] = stmt.annotation.annotation
            elif isinstance(stmt, cst.ClassDef):
                decl.classes[stmt.name.value] = self.class_decl(stmt)
        if not self.scope.is_stub:
            for stmt in self.statements(node.body.body):
                if isinstance(stmt, cst.FunctionDef):
                    for name, annotation in _self_attributes(stmt).items():
                        decl.attributes.setdefault(name, annotation)
        return decl


def _function_decl(stmt: cst.FunctionDef, *, drop_first: bool) -> FunctionDecl:
    return FunctionDecl(
        name=stmt.name.value,
        params=_params(stmt, drop_first=drop_first),
        returns=stmt.returns.annotation if stmt.returns is not None else None,
        decorators=frozenset(_decorator_name(d) for d in stmt.decorators),
        is_async=stmt.asynchronous is not None and not _yields(stmt),
        doc=_docstring(stmt.body),
        ignore=_ignore_comment(stmt),
        receiver=_receiver(stmt) if drop_first else None,
    )


_IGNORE_RE = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?")


def _ignore_comment(fn: cst.FunctionDef) -> str | None:
    """The stub's `# type: ignore[...]` on this def, kept because the same overlap recurs in the proxy."""
    if not isinstance(fn.body, cst.SimpleStatementSuite):
        return None
    match = _IGNORE_RE.search(code(fn))
    return match.group(0) if match else None


def _typevar_decl(name: str, kind: str, call: cst.Call) -> TypeVarDecl:
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
