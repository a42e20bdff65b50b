"""Build the interface model from the child's raw interface and the parsed annotations.

    raw interface (JSON from introspect.py) ─┐
    ModuleScope of sources/stubs (scope.py) ─┼─▶ ModuleModel per generated module
    options (policies) ──────────────────────┘

An annotation of either origin, written in a stub/source or a runtime object the
child described, becomes one `Annotation` (annotation.py); `Emitter` (emit.py)
writes it for the generated module, following names with `Resolver` (resolve.py).

Signature merge, per member: the runtime signature decides parameter kinds and
literal defaults when it names the same parameters as the stub/source; the
stub/source decides annotations (stubs first, as mypy would); runtime annotation
objects fill in what neither has; `*args: Any, **kwargs: Any` only when nothing
says anything. How each method is then written and forwarded: forwarding.py.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import libcst as cst

from .annotation import (Annotation, Names, ScopeNames, Substitution, SubstitutedNames, TypeVarRef, from_runtime,
                         from_source, typevar_key)
from .emit import Emitter, ProxyName, dotted, names_in
from .forwarding import MethodWriter, Param
from .locate import stub_source
from .model import ClassAttribute, InstanceAttribute, Method, ModuleModel, Property, ProxyClass, Signature
from .resolve import Resolver, Target
from .scope import ClassDecl, FunctionDecl, ModuleScope, code

__all__ = ["BuildOptions", "build_modules", "generated_module_name", "GenerationError"]

JSON = dict[str, Any]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_HELPERS = frozenset({"_xd_MISSING", "_xd_GeneratedProxy", "_XdClassAttribute"})
# Public names every generated class inherits from GeneratedProxy.
_PROXY_NAMES = frozenset({"close", "close_proxy_class", "extradite", "get_effective_policy",
                          "get_effective_policy_trace"})
_OBJECT_DUNDERS = {"__eq__", "__ne__"}
_FIXED_RETURNS = {"__repr__": "str", "__str__": "str", "__hash__": "int", "__bool__": "bool", "__len__": "int",
                  "__eq__": "bool", "__ne__": "bool", "__format__": "str", "__bytes__": "bytes",
                  "__int__": "int", "__float__": "float", "__index__": "int", "__complex__": "complex",
                  "__contains__": "bool"}


class GenerationError(Exception):
    """A target could not be generated; `kind` selects the exit code and message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class BuildOptions:
    policies: Mapping[str, Mapping[str, str]]  # class name -> method -> policy


def generated_module_name(module: str) -> str:
    """A top-level module name outside every target's package tree."""
    return module.replace(".", "_") + "_xdproxy"


def _doc_literal(doc: str | None) -> str | None:
    if not doc:
        return None
    text = doc.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text = text[:-1] + '\\"'
    return f'"""{text}"""' if "\n" not in text else f'"""{text}\n"""'


@dataclass(frozen=True)
class Place:
    """Where a declaration was found: its scope, and the names its annotations are read with."""

    scope: ModuleScope
    names: Names

    @property
    def is_stub(self) -> bool:
        return self.scope.is_stub


# Bases that add no members a proxy forwards, or that mypy models itself.
_SKIPPED_BASES = {("typing", "Generic"), ("typing", "Protocol"), ("typing_extensions", "Protocol"),
                  ("typing", "NamedTuple"), ("typing", "TypedDict")}


_DROP = "<an overload no instance of the class is offered>"
_GENERIC_BASES = {("typing", "Generic"), ("typing", "Protocol"), ("typing_extensions", "Protocol")}


class _SelfNames:
    """Names for the bare `Self` that stands for the proxy class."""

    def lookup(self, parts: Sequence[str]) -> Target | TypeVarRef | Substitution:
        return Target("ref", "typing", "Self")


_SELF = Annotation(cst.Name("Self"), _SelfNames())


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
        if isinstance(target, Target) and (target.module, target.path) in {
                ("typing", "Generic"), ("typing", "Protocol"), ("typing_extensions", "Protocol")}:
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


class _ClassBuilder:
    def __init__(self, raw: JSON, *, emitter: Emitter, resolver: Resolver, proxy_name: str,
                 policies: Mapping[str, str], member_names: frozenset[str]) -> None:
        self.raw = raw
        self.emitter = emitter
        self.resolver = resolver
        self.proxy_name = proxy_name
        self.explicit_policies = policies
        self.member_names = member_names
        found = resolver.find_class(raw["class_module"], raw["class_qualname"]) or resolver.find_class(
            raw["module"], raw["qualname"])
        self.decl: ClassDecl | None = found[0] if found is not None else None
        self.scope: ModuleScope | None = found[1] if found is not None else None
        self.class_typevars: list[str] = []
        self._chain: list[tuple[ClassDecl, Place]] | None = None
        self.writer = MethodWriter(emitter, proxy_name)
        self.inferred: dict[str, str] = {}
        self.new: Method | None = None  # the .pyi's constructor where the stub's `__new__` parameterises

    # -- annotations, from either origin

    def _written(self, node: cst.BaseExpression | None, place: Place | None) -> Annotation | None:
        if node is None:
            return None
        if place is None:
            return from_source(node, None, self.resolver)
        return Annotation(node, place.names)

    def _runtime(self, data: object) -> Annotation | None:
        return from_runtime(data, self.resolver)

    # -- declarations

    def _class_chain(self) -> list[tuple[ClassDecl, Place]]:
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
            found = self._base(base, place)
            if found is not None:
                sequences.append(self._linearize(found[0], found[1], depth + 1))
        sequences.append([s[0] for s in sequences] if sequences else [])
        return [(decl, place), *_c3_merge(sequences)]

    def _base(self, base: cst.BaseExpression, place: Place, depth: int = 0) -> tuple[ClassDecl, Place] | None:
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
                    return self._base(alias, Place(scope, ScopeNames(self.resolver, scope)), depth + 1)
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

    def _unbound(self, decl: ClassDecl, scope: ModuleScope) -> Place:
        """A class outside the declared chain: its type parameters mean nothing here, so Any."""
        names = ScopeNames(self.resolver, scope)
        params = decl_params(decl, names, self.resolver)
        return Place(scope, SubstitutedNames(names, {key: None for key in params}) if params else names)

    def member_decl(self, name: str, owner: Sequence[str] | None) -> tuple[list[FunctionDecl], ClassDecl | None, Place | None]:
        """The member as the stubs of the class being generated declare it (what mypy reads),
        else as the runtime class that defines it declares it."""
        candidates = list(self._class_chain())
        if owner is not None:
            found = self.resolver.find_class(owner[0], owner[1])
            if found is not None:
                candidates.append((found[0], self._unbound(*found)))
        for decl, place in candidates:
            if name in decl.functions or name in decl.attributes:
                return decl.functions.get(name, []), decl, place
        return [], None, None

    def _for(self, fn: FunctionDecl | None, place: Place | None) -> Place | None:
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

    def _first(self, fn: FunctionDecl | None, place: Place | None, first: str | None) -> str | None:
        receiver = self._receiver(fn, place, first)
        return first if receiver == _DROP else receiver

    def _receiver(self, fn: FunctionDecl | None, place: Place | None, first: str | None) -> str | None:
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
        text = self.emitter.text(self._written(node, self._for(fn, place)))
        if not text or text == self.emitter.any() or "Self" in text:
            return first
        return f"{first}: {text}"

    def _first_of_base(self, node: cst.Subscript, found: tuple[ClassDecl, ModuleScope], place: Place,
                       first: str) -> str | None:
        """`self: MutableMapping[_KT, _T | None]` on a base's method, said of the proxy class: with
        the base's parameters bound to what the class gives them, either the proxy class with the
        annotation's arguments (`self: UserDict[_KT, _T | None]`), or _DROP when a fixed argument
        cannot match (Counter's values are `int`, never `_T | None`): mypy offers that overload
        to no instance, and the proxy leaves it out."""
        decl, scope = found
        if not isinstance(place.names, SubstitutedNames):
            return first
        if not any(d is decl for d, _p in self._class_chain()):
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
                    return _DROP
        if not self.class_typevars or all(own.get(t, t) == t for t in self.class_typevars):
            return first
        return f"{first}: {self.proxy_name}[{', '.join(own.get(t, t) for t in self.class_typevars)}]"

    # -- type parameters

    def type_params(self) -> list[str]:
        names: list[str] = []
        if self.decl is not None and self.scope is not None:
            for module, name in decl_params(self.decl, ScopeNames(self.resolver, self.scope), self.resolver):
                text = self.emitter.typevar(module, name)
                if text != self.emitter.any() and text not in names:
                    names.append(text)
        else:
            for param in self.raw.get("type_params", []):
                refs = param["refs"]
                first = next(iter(refs), None)
                if first is None:
                    continue
                local = self.emitter.text(self._runtime({"text": first, "refs": refs}))
                if local and local in self.emitter.typevars.values():
                    names.append(local)
        self.class_typevars = names
        self.writer.class_typevars = names
        self.emitter.class_params = frozenset(names)
        return names

    # -- signatures

    def _params(self, fn: FunctionDecl | None, scope: Place | None, rt: JSON | None) -> list[Param]:
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
            annotation = self._written(param.annotation, scope)
            rt_param = rt_by_name.get(param.name)
            if annotation is None and rt_param is not None:
                annotation = self._runtime(rt_param.get("annotation"))
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
        text = self.emitter.text(self._runtime(p.get("annotation"))) or self.emitter.any()
        default = p.get("default")
        if default is None:
            return Param(p["name"], p["kind"], text, None, None)
        if "literal" in default:
            return Param(p["name"], p["kind"], text, default["literal"], default["literal"])
        return Param(p["name"], p["kind"], text, "...", "_xd_MISSING")

    def _return_annotation(self, fn: FunctionDecl | None, scope: Place | None,
                           rt: JSON | None) -> Annotation | None:
        if fn is not None and fn.returns is not None:
            return self._written(fn.returns, scope)
        return self._runtime(rt.get("return")) if rt is not None else None

    def _returns(self, fn: FunctionDecl | None, scope: Place | None, rt: JSON | None) -> str:
        return self.emitter.text(self._return_annotation(fn, scope, rt)) or self.emitter.any()

    def _returns_protected(self, fn: FunctionDecl | None, scope: Place | None, rt: JSON | None) -> bool:
        return self.emitter.returns_protected(self._return_annotation(fn, scope, rt))

    # -- members

    def method(self, member: JSON) -> Method:
        name = member["name"]
        kind = member["kind"]
        decorator = kind if kind in ("classmethod", "staticmethod") else None
        first = {"classmethod": "cls", "staticmethod": None}.get(kind, "self")
        fns, _decl, scope = self.member_decl(name, member.get("owner"))
        overload_fns = [f for f in fns if any(d.rsplit(".", 1)[-1] == "overload" for d in f.decorators)]
        impl_fns = [f for f in fns if f not in overload_fns]
        impl = impl_fns[-1] if impl_fns else None
        rt = member.get("signature")
        is_async = kind == "async_method" or bool(impl is not None and impl.is_async and scope is not None and not scope.is_stub)
        if impl is None and not overload_fns and fns == [] and scope is None:
            impl = None
        overloads: list[Signature] = []
        batch_shapes: list[tuple[str, str, str]] = []
        protected = False
        if overload_fns:
            kept = [f for f in overload_fns if self._receiver(f, scope, first) != _DROP]
            overload_fns = kept if len(kept) > 1 else overload_fns
            if len(kept) == 1:
                impl, overload_fns, rt = kept[0], [], None  # the stub's overload, not the runtime's defaults
        for fn in overload_fns:
            params = self._params(fn, self._for(fn, scope), None)
            returns = self._dunder_return(name, self._returns(fn, self._for(fn, scope), None))
            params = self._dunder_params(name, params, declared=True)
            overloads.append(self.writer.signature(params, returns, self._first(fn, scope, first), fn.ignore))
            item = self.writer.batch_item(params)
            if item is not None:
                batch_shapes.append((item[0], item[1], returns))
            protected = protected or self._returns_protected(fn, self._for(fn, scope), None)
        if overloads:
            any_t = self.emitter.any()
            ignore = overload_fns[0].ignore
            if any(".Unpack[" in o.params_py for o in overloads):
                ignore = "# type: ignore[misc]"  # mypy rejects `*args: Any` behind an unpacked TypeVarTuple
            sig = self.writer.implementation(any_t, first, ignore)
        else:
            params = self._dunder_params(name, self._params(impl, self._for(impl, scope), rt), declared=impl is not None)
            returns = self._dunder_return(name, self._returns(impl, self._for(impl, scope), rt))
            returns = self._context_manager(impl, scope, returns)
            sig = self.writer.signature(params, returns, self._first(impl, scope, first),
                                        impl.ignore if impl is not None and scope is not None and scope.is_stub else None)
            item = self.writer.batch_item(params)
            if item is not None:
                batch_shapes.append((item[0], item[1], returns))
            protected = self._returns_protected(impl, self._for(impl, scope), rt)
        if protected:
            self.inferred[name] = "reference"
        doc = member.get("doc") or (impl.doc if impl is not None else None) or (overload_fns[0].doc if overload_fns else None)
        if name.startswith("__"):
            doc = None
        body = self.writer.body(name, kind, sig, is_async)
        batch = None
        batch_name = f"{name}_batch"
        if not name.startswith("__") and batch_name not in self.member_names:
            batch = self.writer.batch(name, kind, batch_name, batch_shapes, overloaded=bool(overloads),
                                is_async=is_async)
        return Method(name=name, decorator=decorator, is_async=is_async, doc=_doc_literal(doc),
                      overloads=tuple(overloads), signature=sig, body=body, batch=batch)

    def _context_manager(self, fn: FunctionDecl | None, scope: Place | None, returns: str) -> str:
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
        yielded = self.emitter.text(self._written(first.value, self._for(fn, scope))) or self.emitter.any()
        return f"{self.emitter.import_ref('contextlib', kind)}[{yielded}]"

    def _dunder_params(self, name: str, params: list[Param], *, declared: bool) -> list[Param]:
        loose = (self.emitter.any(), "object")
        # `(*args: Any, **kwargs: Any)` accepts whatever object's does: a compatible override.
        variadic = [p.kind for p in params] == ["VAR_POSITIONAL", "VAR_KEYWORD"] and all(p.annotation in loose for p in params)
        if name in _OBJECT_DUNDERS and not (declared and variadic) and (
                not declared or any(p.annotation not in loose for p in params[:1]) or len(params) != 1):
            # A narrower `other` than object's would be an incompatible override in the proxy.
            return [Param("other", "POSITIONAL_ONLY", self.emitter.builtin("object"), None, None)]
        return params

    def _dunder_return(self, name: str, returns: str) -> str:
        fixed = _FIXED_RETURNS.get(name)
        if fixed is not None and returns == self.emitter.any():
            return self.emitter.builtin(fixed)
        if name in ("__eq__", "__ne__", "__hash__", "__repr__", "__str__") and not returns.endswith((".Never", ".NoReturn")):
            return self.emitter.builtin(_FIXED_RETURNS[name])  # Never (always raises) is a compatible override
        return returns

    def init(self) -> Method:
        raw_init = self.raw.get("init") or {}
        rt = raw_init.get("signature")
        fn = None
        scope = None
        for decl, decl_scope in self._class_chain():
            # `object` too: a class whose stubs declare no constructor takes no arguments for mypy.
            fns = decl.functions.get("__init__") or decl.functions.get("__new__")
            if not fns:
                continue
            impls = [f for f in fns if not any(d.rsplit(".", 1)[-1] == "overload" for d in f.decorators)]
            overloads = [f for f in fns if f not in impls]
            if "__init__" not in decl.functions and (decl_scope.is_stub or not impls):
                self.new = self._new(overloads or impls[-1:], decl_scope)
            if overloads and (decl_scope.is_stub or not impls):
                return self._init_overloaded(overloads, decl_scope)
            fn, scope = impls[-1], decl_scope
            break
        else:
            chain = self._class_chain()
            if chain and chain[0][1].is_stub and self._plain(chain):
                # A stub class with no constructor anywhere in its bases has object's: no arguments.
                found = self.resolver.find_class("builtins", "object")
                fns = found[0].functions.get("__init__", []) if found is not None else []
                if found is not None and fns:
                    fn, scope = fns[-1], Place(found[1], ScopeNames(self.resolver, found[1]))
        params = self._params(fn, self._for(fn, scope), rt)
        sig = self.writer.signature(params, "None", self._first(fn, scope, "self"))
        body = (f"self._xd_init({sig.args}, {sig.kwargs})",)
        return Method(name="__init__", decorator=None, is_async=False, doc=None, overloads=(),
                      signature=sig, body=body, batch=None)

    def _plain(self, chain: list[tuple[ClassDecl, Place]]) -> bool:
        """Whether every class of the chain is a plain class whose bases are all known (no named
        tuple, typed dict, dataclass or metaclass that makes a constructor mypy knows of)."""
        for decl, place in chain:
            if not decl.plain:
                return False
            for base in decl.bases:
                parts = dotted(base.value if isinstance(base, cst.Subscript) else base)
                target = place.names.lookup(parts) if parts else None
                generic = isinstance(target, Target) and (target.module, target.path) in _GENERIC_BASES
                if not generic and self._base(base, place) is None:
                    return False
        return True

    def _new(self, fns: list[FunctionDecl], scope: Place) -> Method | None:
        """The stub's `__new__` for the .pyi when it makes instances of other parameters than the
        class's own (`pairwise.__new__(cls, it: Iterable[_T]) -> pairwise[tuple[_T, _T]]`): mypy
        reads the type of `pairwise(...)` from it. The .py keeps the proxy's `__init__`."""
        if not self.class_typevars:
            return None
        own = f"{self.proxy_name}[{', '.join(self.class_typevars)}]"
        sigs = []
        for fn in fns:
            place = self._for(fn, scope)
            returns = self._returns(fn, place, None)
            if returns == self.emitter.any():
                returns = own
            first = "cls"
            receiver = self.emitter.text(self._written(fn.receiver, place)) if fn.receiver is not None else None
            if receiver and "Self" not in receiver and self.emitter.any() not in receiver:
                first = f"cls: {receiver}"  # `cls: type[array[int]]`: the overload mypy offers for it
            sigs.append(self.writer.signature(self._params(fn, place, None), returns, first, fn.ignore))
        if all(sig.returns == own or "Self" in sig.returns for sig in sigs):
            return None  # the constructor makes what __init__ says it makes
        if len(sigs) == 1 and len(fns) == 1 and not any(d.rsplit(".", 1)[-1] == "overload" for d in fns[0].decorators):
            return Method(name="__new__", decorator=None, is_async=False, doc=None, overloads=(),
                          signature=sigs[0], body=(), batch=None)
        return Method(name="__new__", decorator=None, is_async=False, doc=None, overloads=tuple(sigs),
                      signature=self.writer.implementation(self.emitter.any(), "cls"), body=(), batch=None)

    def _init_overloaded(self, overloads: list[FunctionDecl], scope: Place | None) -> Method:
        sigs = tuple(self.writer.signature(self._params(f, self._for(f, scope), None), "None",
                                           self._first(f, scope, "self"), f.ignore) for f in overloads)
        any_t = self.emitter.any()
        ignore = "# type: ignore[misc]" if any(".Unpack[" in o.params_py for o in sigs) else None
        generic = self.writer.implementation("None", "self", ignore)
        return Method(name="__init__", decorator=None, is_async=False, doc=None, overloads=sigs,
                      signature=generic, body=("args[0]._xd_init(args[1:], kwargs)",), batch=None)

    def prop(self, member: JSON) -> Property:
        name = member["name"]
        fns, decl, scope = self.member_decl(name, member.get("owner"))
        annotation = None
        getter = next((f for f in fns if "property" in {d.rsplit(".", 1)[-1] for d in f.decorators}), None)
        if getter is None and fns:
            getter = fns[0]
        if getter is not None and getter.returns is not None:
            annotation = self._written(getter.returns, self._for(getter, scope))
        elif decl is not None and name in decl.attributes and not _bare_wrapper(decl.attributes[name]):
            annotation = self._written(_strip_wrappers(decl.attributes[name]), scope)
        elif member.get("value_type") is not None:
            annotation = self._runtime(member["value_type"])
        if self.emitter.returns_protected(annotation):
            self.inferred[name] = "reference"
        text = self.emitter.text(annotation) or self.emitter.any()
        doc = member.get("doc") or (getter.doc if getter is not None else None)
        settable = member["kind"] == "property_rw"
        if settable and scope is not None and scope.is_stub and getter is not None and fns:
            # The stub says whether mypy lets one assign it (a read-only `buffer` of a covariant class).
            settable = any(d.endswith(".setter") for f in fns for d in f.decorators)
        return Property(name=name, type=text, doc=_doc_literal(doc), settable=settable,
                        deletable=bool(member.get("deletable")),
                        getter=self.writer.returning(text, f'self._xd_get("{name}")'))

    def instance_attribute_decls(self, taken: frozenset[str]) -> dict[str, tuple[cst.BaseExpression, Place]]:
        """The public attributes the class bodies of the chain annotate without ClassVar (`width: int`,
        a dataclass field, a named tuple's field) that no member of the proxy already stands for."""
        out: dict[str, tuple[cst.BaseExpression, Place]] = {}
        for decl, place in self._class_chain():
            if place.scope.name == "builtins" and decl.name == "object":
                continue
            for name, node in decl.attributes.items():
                if name.startswith("_") or name in taken or name in out:
                    continue
                head = code(node.value if isinstance(node, cst.Subscript) else node).rsplit(".", 1)[-1]
                if head not in ("ClassVar", "Final", "TypeAlias"):
                    out[name] = (node, place)
        return {name: out[name] for name in sorted(out)}

    def instance_attributes(self, decls: Mapping[str, tuple[cst.BaseExpression, Place]]) -> list[InstanceAttribute]:
        return [InstanceAttribute(name=name, type=self.emitter.text(self._written(node, place)) or self.emitter.any())
                for name, (node, place) in decls.items()]

    def attribute(self, member: JSON) -> ClassAttribute:
        name = member["name"]
        _fns, decl, scope = self.member_decl(name, member.get("owner"))
        annotation = None
        if decl is not None and name in decl.attributes and not _bare_wrapper(decl.attributes[name]):
            annotation = self._written(_strip_wrappers(decl.attributes[name]), scope)
        elif member.get("value_type") is not None:
            annotation = self._runtime(member["value_type"])
        text = self.emitter.text(annotation) or self.emitter.any()
        if any(re.search(rf"\b{re.escape(v)}\b", text) for v in self.class_typevars):
            text = self.emitter.any()  # a ClassVar cannot mention the class's type variables
        return ClassAttribute(name=name, type=text, type_py=f"_XdClassAttribute[{text}]")


def _bare_wrapper(node: cst.BaseExpression) -> bool:
    """`x: Final = 0`: the type is the value's, not written."""
    return code(node).rsplit(".", 1)[-1] in ("ClassVar", "Final")


def _strip_wrappers(node: cst.BaseExpression) -> cst.BaseExpression:
    """`ClassVar[T]`/`Final[T]` -> `T` (the proxy adds its own wrapper)."""
    if isinstance(node, cst.Subscript) and code(node.value).rsplit(".", 1)[-1] in ("ClassVar", "Final"):
        first = node.slice[0].slice
        if isinstance(first, cst.Index):
            return first.value
    return node


def build_modules(results: list[JSON], *, python: Sequence[int], platform: str,
                  options: BuildOptions) -> list[ModuleModel]:
    """One model per generated module, in target-module order."""
    function_records = [r for r in results if r.get("kind") == "functions"]
    results = [r for r in results if r.get("kind") != "functions"]
    roots = frozenset(r["protected_tree"] for r in results + function_records)
    files: dict[str, dict[str, str | None]] = {}
    for r in results + function_records:
        files.update(r["files"])
    resolver = Resolver(roots=roots, files=files, version=tuple(python[:2]), platform=platform)
    proxies: dict[tuple[str, str], ProxyName] = {}
    by_module: dict[str, list[JSON]] = {}
    unique: dict[str, JSON] = {}
    for r in results:  # a class of a module target may be named as a target of its own too
        unique.setdefault(r["target"], r)
    results = list(unique.values())
    for r in results:
        gen = generated_module_name(r["module"])
        proxy = ProxyName(gen, r["qualname"].replace(".", "_"))
        proxies[(r["module"], r["qualname"])] = proxy
        proxies[(r["class_module"], r["class_qualname"])] = proxy
        by_module.setdefault(r["module"], []).append(r)
    known_classes = {r["qualname"].replace(".", "_") for r in results}
    class_params: set[tuple[str, str]] = set()
    for r in results:
        found = resolver.find_class(r["class_module"], r["class_qualname"]) or resolver.find_class(r["module"], r["qualname"])
        if found is not None:
            class_params.update(decl_params(found[0], ScopeNames(resolver, found[1]), resolver))
    for class_name, methods in options.policies.items():
        if class_name not in known_classes:
            raise GenerationError("bad_policy", f"--policy names class {class_name!r}, which is not a target "
                                  f"(targets: {', '.join(sorted(known_classes))})")
        del methods
    functions_by_module: dict[str, list[JSON]] = {}
    for r in function_records:
        functions_by_module.setdefault(r["module"], []).append(r)
    models = []
    for module in sorted(set(by_module) | set(functions_by_module)):
        models.append(_build_module(module, sorted(by_module.get(module, []), key=lambda r: r["qualname"]),
                                    resolver=resolver, proxies=proxies, options=options,
                                    function_records=functions_by_module.get(module, []),
                                    class_params=frozenset(class_params)))
    return models


# Names a generated module proxy defines besides the target's functions.
_MODULE_HELPERS = ("extradite_bind", "extradite_close", "_xd_module", "_xd_GeneratedModule")


def _module_functions(records: Sequence[JSON], raws: list[JSON]) -> list[JSON]:
    """The functions of `records` (a module's and single ones), each once, by name."""
    found: dict[str, JSON] = {}
    for record in records:
        for function in record["functions"]:
            found.setdefault(function["name"], function)
    clashes = sorted(set(found) & ({r["qualname"].replace(".", "_") for r in raws} | set(_MODULE_HELPERS)))
    if clashes:
        raise GenerationError("target", f"{records[0]['module']}: function name(s) {', '.join(clashes)} clash with "
                              "a generated class or helper of the module proxy; generate the classes one by one "
                              "as 'pkg.mod:Name' targets instead")
    return [found[name] for name in sorted(found)]


def _function(builder: _ClassBuilder, module: str, raw: JSON, names: frozenset[str]) -> Method:
    """One module-level function: typed, forwarding through the module's `GeneratedModule` in one round trip."""
    name = raw["name"]
    found = builder.resolver.find_function(module, name)
    fns, scope = (found[0], found[1]) if found is not None else ([], None)
    place = Place(scope, ScopeNames(builder.resolver, scope)) if scope is not None else None
    overload_fns = [f for f in fns if any(d.rsplit(".", 1)[-1] == "overload" for d in f.decorators)]
    impls = [f for f in fns if f not in overload_fns]
    impl = impls[-1] if impls else None
    rt = raw.get("signature")
    writer = builder.writer
    overloads: list[Signature] = []
    shapes: list[tuple[str, str, str]] = []
    for fn in overload_fns:
        params = builder._params(fn, place, None)
        returns = builder._returns(fn, place, None)
        overloads.append(writer.signature(params, returns, None, fn.ignore))
        item = writer.batch_item(params)
        if item is not None:
            shapes.append((item[0], item[1], returns))
    if overloads:
        sig = writer.implementation(builder.emitter.any(), None, overload_fns[0].ignore)
    else:
        params = builder._params(impl, place, rt)
        sig = writer.signature(params, builder._returns(impl, place, rt), None,
                               impl.ignore if impl is not None and place is not None and place.is_stub else None)
        item = writer.batch_item(params)
        if item is not None:
            shapes.append((item[0], item[1], sig.returns))
    call = f'_xd_module.call("{name}", {sig.args}, {sig.kwargs})'
    if sig.returns == "None":
        body: tuple[str, ...] = (call,)
    elif sig.returns.endswith((".NoReturn", ".Never")):
        body = (call, 'raise AssertionError("unreachable: the target declares that this never returns")')
    else:
        body = writer.returning(sig.returns, call)
    batch = None
    if f"{name}_batch" not in names:
        made = writer.batch(name, "function", f"{name}_batch", shapes, overloaded=bool(overloads), is_async=False)
        batch = dataclasses.replace(made, body=tuple(line.replace("self._xd_batch(", "_xd_module.batch(")
                                                    for line in made.body))
    doc = raw.get("doc") or (impl.doc if impl is not None else None)
    return Method(name=name, decorator=None, is_async=False, doc=_doc_literal(doc), overloads=tuple(overloads),
                  signature=sig, body=body, batch=batch)


def _build_module(module: str, raws: list[JSON], *, resolver: Resolver,
                  proxies: dict[tuple[str, str], ProxyName], options: BuildOptions,
                  function_records: Sequence[JSON] = (),
                  class_params: frozenset[tuple[str, str]] = frozenset()) -> ModuleModel:
    name = generated_module_name(module)
    function_raws = _module_functions(function_records, raws) if function_records else []
    reserved: set[str] = set(_HELPERS)
    if function_records:
        reserved.update(_MODULE_HELPERS)
        reserved.update(f["name"] + suffix for f in function_raws for suffix in ("", "_batch"))
    for raw in raws:
        reserved.add(raw["qualname"].replace(".", "_"))
        for m in raw["members"]:
            reserved.add(m["name"])
            reserved.add(m["name"] + "_batch")
    members = frozenset(m["name"] + suffix for raw in raws for m in raw["members"] for suffix in ("", "_batch"))
    members |= frozenset(f["name"] + suffix for f in function_raws for suffix in ("", "_batch"))
    emitter = Emitter(resolver, module=name, reserved=frozenset(reserved), proxies=proxies, members=members,
                      class_params=class_params)
    builders: dict[str, _ClassBuilder] = {}
    attribute_decls: dict[str, dict[str, tuple[cst.BaseExpression, Place]]] = {}
    for raw in raws:
        proxy_name = raw["qualname"].replace(".", "_")
        member_names = frozenset(m["name"] for m in raw["members"])
        builders[proxy_name] = _ClassBuilder(raw, emitter=emitter, resolver=resolver, proxy_name=proxy_name,
                                             policies=dict(options.policies.get(proxy_name, {})),
                                             member_names=member_names)
        taken = member_names | {m + "_batch" for m in member_names} | _PROXY_NAMES
        attribute_decls[proxy_name] = builders[proxy_name].instance_attribute_decls(taken)
    # An attribute's name shadows a class or module of the same name in its class body, as a
    # method's does: annotations there use the aliases the emitter makes for those.
    attribute_names = {n for decls in attribute_decls.values() for n in decls}
    emitter.reserved = emitter.reserved | attribute_names
    emitter.members = emitter.members | attribute_names
    typing_name = emitter.import_ref("typing", "")
    classes = []
    uses_attr = False
    for raw in raws:
        proxy_name = raw["qualname"].replace(".", "_")
        member_names = frozenset(m["name"] for m in raw["members"])
        explicit = dict(options.policies.get(proxy_name, {}))
        for method_name, policy in explicit.items():
            if method_name not in member_names:
                raise GenerationError("bad_policy", f"--policy {proxy_name}.{method_name}: {raw['target']} has no "
                                      f"public member {method_name!r}")
            if policy not in ("value", "reference"):
                raise GenerationError("bad_policy", f"--policy {proxy_name}.{method_name}={policy}: the policy "
                                      "must be 'value' or 'reference'")
        builder = builders[proxy_name]
        params = builder.type_params()
        bases = "_xd_GeneratedProxy" + (f", {typing_name}.Generic[{', '.join(params)}]" if params else "")
        methods, props, attrs = [], [], []
        unhashable = False
        for member in raw["members"]:
            kind = member["kind"]
            if kind in ("method", "async_method", "classmethod", "staticmethod"):
                if member["name"] in ("__init__", "__new__"):
                    continue
                methods.append(builder.method(member))
            elif kind in ("property", "property_rw"):
                props.append(builder.prop(member))
            elif kind == "attribute" and not member["name"].startswith("__"):
                attrs.append(builder.attribute(member))
            elif kind == "unhashable":
                unhashable = True
        init = builder.init()
        instance_attributes = builder.instance_attributes(attribute_decls[proxy_name])
        policies = {**builder.inferred, **explicit}
        uses_attr = uses_attr or bool(attrs)
        classes.append(ProxyClass(
            name=proxy_name,
            target=raw["target"],
            fingerprint=raw["fingerprint"],
            bases=bases,
            doc=_doc_literal(raw.get("doc")),
            digests=tuple(sorted(raw["digests"].items())),
            policies=tuple(sorted(policies.items())),
            init=init,
            new=builder.new,
            instance_attributes=tuple(instance_attributes),
            methods=tuple(methods),
            properties=tuple(props),
            attributes=tuple(attrs),
            unhashable=unhashable,
        ))
    functions: list[Method] = []
    if function_records:
        builder = _ClassBuilder({"module": module, "qualname": "", "class_module": module, "class_qualname": ""},
                                emitter=emitter, resolver=resolver, proxy_name="", policies={},
                                member_names=frozenset())
        names = frozenset(f["name"] for f in function_raws) | frozenset(c.name for c in classes)
        functions = [_function(builder, module, f, names) for f in function_raws]
    whole = [r for r in function_records if r.get("whole_module")]
    runtime_imports, typing_imports = _imports(emitter.imports)
    return ModuleModel(
        name=name,
        targets=tuple((r["target"], "") for r in function_records)
        + tuple((c.target, c.fingerprint) for c in classes),
        functions=tuple(functions),
        module_target=module if function_records else None,
        module_doc=_doc_literal(whole[0].get("doc")) if whole else None,
        runtime_imports=runtime_imports,
        typing_imports=typing_imports,
        typevars=tuple(emitter.typevar_defs[k] for k in emitter.typevar_defs),
        classes=tuple(classes),
        typing_module=typing_name,
        uses_class_attribute=uses_attr,
        stubs=stub_source(),
        unresolved=tuple(sorted(emitter.unresolved)),
        class_aliases=tuple(f"{alias} = {target}" for alias, target in sorted(emitter.class_aliases.items())),
    )


def _imports(imports: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    runtime: list[str] = []
    typing_only: list[str] = []
    for module in sorted(imports):
        alias = imports[module]
        line = f"import {module}" + (f" as {alias}" if alias else "")
        (runtime if module == "typing" else typing_only).append(line)
    return tuple(runtime), tuple(typing_only)
