"""One member's parameters and return type, merged from its declaration and its runtime signature.

    FunctionDecl of the stub/source, at its `Place` ─┐
    runtime signature (JSON from introspect.py)    ─┼─▶ list[Param] and a return type's text,
    the class's type variables and proxy name      ─┘    for MethodWriter (forwarding.py)

The merge rules (see build.py) and the ways mypy reads a receiver annotation (`self: _T`,
`self: dict[str, _VT]`, `cls: type[array[int]]`) are kept here, apart from what each kind
of member makes of a signature (classes.py), so a method, a constructor and a module
function merge theirs the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import libcst as cst

from .annotation import (Annotation, ScopeNames, Substitution, SubstitutedNames, TypeVarRef, from_runtime, from_source,
                         typevar_key)
from .emit import Emitter, dotted
from .forwarding import Param
from .hierarchy import Hierarchy, Place, decl_params
from .resolve import Resolver, Target
from .scope import ClassDecl, FunctionDecl, ModuleScope, code

__all__ = ["JSON", "DROP", "SignatureMerge"]

JSON = dict[str, Any]  # a record of the introspection child's output

_OBJECT_DUNDERS = {"__eq__", "__ne__"}
_FIXED_RETURNS = {"__repr__": "str", "__str__": "str", "__hash__": "int", "__bool__": "bool", "__len__": "int",
                  "__eq__": "bool", "__ne__": "bool", "__format__": "str", "__bytes__": "bytes",
                  "__int__": "int", "__float__": "float", "__index__": "int", "__complex__": "complex",
                  "__contains__": "bool"}

# What `receiver` says of an overload whose `self:` annotation no instance of the proxy matches.
DROP = "<an overload no instance of the class is offered>"


class _SelfNames:
    """Names for the bare `Self` that stands for the proxy class."""

    def lookup(self, parts: Sequence[str]) -> Target | TypeVarRef | Substitution:
        return Target("ref", "typing", "Self")


_SELF = Annotation(cst.Name("Self"), _SelfNames())


class SignatureMerge:
    """The signatures of one proxy class's members (of a module proxy's functions when the class is empty)."""

    def __init__(self, raw: JSON, *, emitter: Emitter, resolver: Resolver, hierarchy: Hierarchy,
                 proxy_name: str) -> None:
        self.raw = raw
        self.emitter = emitter
        self.resolver = resolver
        self.hierarchy = hierarchy
        self.proxy_name = proxy_name
        self.class_typevars: list[str] = []  # set by `ClassBuilder.type_params`, before any member

    def written(self, node: cst.BaseExpression | None, place: Place | None) -> Annotation | None:
        """An annotation a stub or source writes, read with the names of the place it stands in."""
        if node is None:
            return None
        if place is None:
            return from_source(node, None, self.resolver)
        return Annotation(node, place.names)

    def runtime(self, data: object) -> Annotation | None:
        """An annotation object the introspection child described."""
        return from_runtime(data, self.resolver)

    def self_bound(self, fn: FunctionDecl | None, place: Place | None) -> Place | None:
        """`place` with a type variable that annotates `self` (`def clone(self: _T) -> _T`) or
        `cls` (`cls: type[_T]`) bound to the proxy class, as mypy binds it to the instance's class."""
        if fn is None or place is None or fn.receiver is None:
            return place
        node = fn.receiver
        if isinstance(node, cst.Subscript) and code(node.value).rsplit(".", 1)[-1] == "type" and node.slice:
            inner = node.slice[0].slice
            node = inner.value if isinstance(inner, cst.Index) else node
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
            try:
                node = cst.parse_expression(str(node.evaluated_value))
            except (cst.ParserSyntaxError, TypeError):
                return place
        parts = dotted(node)
        key = typevar_key(place.names.lookup(parts)) if parts else None
        if key is None or not self.resolver.is_typevar(key):
            return place
        return Place(place.scope, SubstitutedNames(place.names, {key: _SELF}))

    def first(self, fn: FunctionDecl | None, place: Place | None, first: str | None) -> str | None:
        receiver = self.receiver(fn, place, first)
        return first if receiver == DROP else receiver

    def receiver(self, fn: FunctionDecl | None, place: Place | None, first: str | None) -> str | None:
        """`self`, or `self: dict[str, _VT]` where the stub annotates it: mypy then offers that
        overload only to instances that match, and so does the proxy's."""
        if first is None or fn is None or fn.receiver is None or place is None:
            return first
        node = fn.receiver
        if fn.name == "__new__":  # `cls: type[array[int]]` becomes the `self` of the proxy's __init__
            if not (isinstance(node, cst.Subscript) and code(node.value).rsplit(".", 1)[-1] == "type"):
                return first
            inner = node.slice[0].slice
            if not isinstance(inner, cst.Index):
                return first
            node = inner.value
        head = dotted(node.value if isinstance(node, cst.Subscript) else node)
        target = place.names.lookup(head) if head else None
        if not isinstance(target, Target) or target.kind != "ref":
            return first
        own = (target.module, target.path) in {(self.raw["module"], self.raw["qualname"]),
                                               (self.raw["class_module"], self.raw["class_qualname"])}
        found = None if own else self.resolver.find_class(target.module, target.path)
        protocol = found is not None and any(code(b.value if isinstance(b, cst.Subscript) else b).rsplit(".", 1)[-1]
                                             == "Protocol" for b in found[0].bases)
        if found is not None and not protocol and fn.name not in ("__new__", "__init__") and isinstance(node, cst.Subscript):
            return self._first_of_base(node, found, place, first)
        # Only the proxy class itself or a protocol: a proxy is no nominal subclass of anything else.
        if not (own or protocol):
            return first
        text = self.emitter.text(self.written(node, self.self_bound(fn, place)))
        if not text or text == self.emitter.any() or "Self" in text:
            return first
        return f"{first}: {text}"

    def _first_of_base(self, node: cst.Subscript, found: tuple[ClassDecl, ModuleScope], place: Place,
                       first: str) -> str | None:
        """`self: MutableMapping[_KT, _T | None]` on a base's method, said of the proxy class: with
        the base's parameters bound to what the class gives them, either the proxy class with the
        annotation's arguments (`self: UserDict[_KT, _T | None]`), or DROP when a fixed argument
        cannot match (Counter's values are `int`, never `_T | None`): mypy offers that overload
        to no instance, and the proxy leaves it out."""
        decl, scope = found
        if not isinstance(place.names, SubstitutedNames):
            return first
        if not any(d is decl for d, _p in self.hierarchy.chain()):
            return first
        params = decl_params(decl, ScopeNames(self.resolver, scope), self.resolver)
        args = [e.slice.value for e in node.slice if isinstance(e.slice, cst.Index)]
        if len(args) != len(params):
            return first
        any_t = self.emitter.any()
        own: dict[str, str] = {}
        for key, arg in zip(params, args):
            wanted = self.emitter.text(Annotation(arg, place.names)) or any_t
            given = self.emitter.text(place.names.mapping.get(key)) or any_t
            if given in self.class_typevars:
                if own.setdefault(given, wanted) != wanted:
                    return first
            elif wanted != given and given != any_t and wanted != any_t:
                bare = wanted in self.emitter.typevar_texts and wanted not in self.class_typevars
                if not bare:
                    return DROP
        if not self.class_typevars or all(own.get(t, t) == t for t in self.class_typevars):
            return first
        return f"{first}: {self.proxy_name}[{', '.join(own.get(t, t) for t in self.class_typevars)}]"

    def params(self, fn: FunctionDecl | None, scope: Place | None, rt: JSON | None) -> list[Param]:
        any_t = self.emitter.any()
        rt_params: list[JSON] = list(rt["params"]) if rt else []
        rt_by_name = {p["name"]: p for p in rt_params}
        if fn is None:
            if rt is None:
                return [Param("args", "VAR_POSITIONAL", any_t, None, None), Param("kwargs", "VAR_KEYWORD", any_t, None, None)]
            return [self._rt_param(p) for p in rt_params]
        decl_names = [p.name for p in fn.params]
        rt_names = [p["name"] for p in rt_params]
        use_rt = rt is not None and decl_names == rt_names
        out: list[Param] = []
        for param in fn.params:
            annotation = self.written(param.annotation, scope)
            rt_param = rt_by_name.get(param.name)
            if annotation is None and rt_param is not None:
                annotation = self.runtime(rt_param.get("annotation"))
            text = self.emitter.text(annotation) or any_t
            if use_rt and rt_param is not None:
                kind = rt_param["kind"]
                default = rt_param.get("default")
                if scope is not None and scope.is_stub and param.default is not None:
                    # The stub's spelling wins (`report: bool = ...` where the runtime has 0).
                    default = {"missing": True} if param.default == "..." else {"literal": param.default}
                if default is None:
                    d_pyi = d_py = None
                elif "literal" in default:
                    d_pyi = d_py = default["literal"]
                else:
                    d_pyi, d_py = "...", "_xd_MISSING"
            else:
                kind = param.kind
                if param.default is None:
                    d_pyi = d_py = None
                elif param.default == "...":
                    d_pyi, d_py = "...", "_xd_MISSING"
                else:
                    d_pyi = d_py = param.default
            out.append(Param(param.name, kind, text, d_pyi, d_py))
        return out

    def _rt_param(self, p: JSON) -> Param:
        text = self.emitter.text(self.runtime(p.get("annotation"))) or self.emitter.any()
        default = p.get("default")
        if default is None:
            return Param(p["name"], p["kind"], text, None, None)
        if "literal" in default:
            return Param(p["name"], p["kind"], text, default["literal"], default["literal"])
        return Param(p["name"], p["kind"], text, "...", "_xd_MISSING")

    def _return_annotation(self, fn: FunctionDecl | None, scope: Place | None,
                           rt: JSON | None) -> Annotation | None:
        if fn is not None and fn.returns is not None:
            return self.written(fn.returns, scope)
        return self.runtime(rt.get("return")) if rt is not None else None

    def returns(self, fn: FunctionDecl | None, scope: Place | None, rt: JSON | None) -> str:
        return self.emitter.text(self._return_annotation(fn, scope, rt)) or self.emitter.any()

    def returns_protected(self, fn: FunctionDecl | None, scope: Place | None, rt: JSON | None) -> bool:
        return self.emitter.returns_protected(self._return_annotation(fn, scope, rt))

    def context_manager(self, fn: FunctionDecl | None, scope: Place | None, returns: str) -> str:
        """`@contextmanager def resolve(...) -> Iterator[None]` is, for mypy, a function returning
        `_GeneratorContextManager[None]`: what `with proxy.resolve(...)` needs to type-check."""
        if fn is None or scope is None or scope.is_stub or fn.returns is None:
            return returns
        wrapper = {"contextmanager": "_GeneratorContextManager",
                   "asynccontextmanager": "_AsyncGeneratorContextManager"}
        kind = next((wrapper[d.rsplit(".", 1)[-1]] for d in sorted(fn.decorators) if d.rsplit(".", 1)[-1] in wrapper), None)
        node = fn.returns
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
            try:
                node = cst.parse_expression(str(node.evaluated_value))
            except (cst.ParserSyntaxError, TypeError):
                return returns
        if kind is None or not isinstance(node, cst.Subscript) or not node.slice:
            return returns
        head = code(node.value).rsplit(".", 1)[-1]
        first = node.slice[0].slice
        if head not in ("Iterator", "Generator", "AsyncIterator", "AsyncGenerator") or not isinstance(first, cst.Index):
            return returns
        yielded = self.emitter.text(self.written(first.value, self.self_bound(fn, scope))) or self.emitter.any()
        return f"{self.emitter.import_ref('contextlib', kind)}[{yielded}]"

    def dunder_params(self, name: str, params: list[Param], *, declared: bool) -> list[Param]:
        loose = (self.emitter.any(), "object")
        # `(*args: Any, **kwargs: Any)` accepts whatever object's does: a compatible override.
        variadic = [p.kind for p in params] == ["VAR_POSITIONAL", "VAR_KEYWORD"] and all(p.annotation in loose for p in params)
        if name in _OBJECT_DUNDERS and not (declared and variadic) and (
                not declared or any(p.annotation not in loose for p in params[:1]) or len(params) != 1):
            # A narrower `other` than object's would be an incompatible override in the proxy.
            return [Param("other", "POSITIONAL_ONLY", self.emitter.builtin("object"), None, None)]
        return params

    def dunder_return(self, name: str, returns: str) -> str:
        fixed = _FIXED_RETURNS.get(name)
        if fixed is not None and returns == self.emitter.any():
            return self.emitter.builtin(fixed)
        if name in ("__eq__", "__ne__", "__hash__", "__repr__", "__str__") and not returns.endswith((".Never", ".NoReturn")):
            return self.emitter.builtin(_FIXED_RETURNS[name])  # Never (always raises) is a compatible override
        return returns
