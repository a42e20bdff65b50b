"""One proxy class's model: its constructor, methods, properties and attributes.

    raw class (JSON from introspect.py) ─┐
    Hierarchy (hierarchy.py)            ─┼─▶ Method, Property, ClassAttribute, InstanceAttribute
    SignatureMerge (signatures.py)      ─┘   (model.py), written by MethodWriter (forwarding.py)

What each kind of member makes of its declaration (overloads kept or dropped, a stub's
`__new__` that parameterises the class, `@contextmanager`, ClassVar and Final, inferred
reference policies) is decided here; build.py assembles the classes into modules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import libcst as cst

from .annotation import ScopeNames
from .emit import Emitter
from .forwarding import MethodWriter
from .hierarchy import Hierarchy, Place, decl_params
from .model import ClassAttribute, InstanceAttribute, Method, Property, Signature
from .resolve import Resolver
from .scope import ClassDecl, FunctionDecl, ModuleScope, code
from .signatures import DROP, JSON, SignatureMerge

__all__ = ["ClassBuilder", "doc_literal"]


def doc_literal(doc: str | None) -> str | None:
    """A docstring as the literal the templates print (backslashes and quotes escaped), None when empty."""
    if not doc:
        return None
    text = doc.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text = text[:-1] + '\\"'
    return f'"""{text}"""' if "\n" not in text else f'"""{text}\n"""'


class ClassBuilder:
    """The model of one proxy class; with an empty class, the builder of a module proxy's functions."""

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
        self.hierarchy = Hierarchy(resolver, self.decl, self.scope)
        self.sig = SignatureMerge(raw, emitter=emitter, resolver=resolver, hierarchy=self.hierarchy,
                                  proxy_name=proxy_name)
        self.writer = MethodWriter(emitter, proxy_name)
        self.inferred: dict[str, str] = {}
        self.new: Method | None = None  # the .pyi's constructor where the stub's `__new__` parameterises

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
                local = self.emitter.text(self.sig.runtime({"text": first, "refs": refs}))
                if local and local in self.emitter.typevars.values():
                    names.append(local)
        self.sig.class_typevars = names
        self.writer.class_typevars = names
        self.emitter.class_params = frozenset(names)
        return names

    def method(self, member: JSON) -> Method:
        name = member["name"]
        kind = member["kind"]
        decorator = kind if kind in ("classmethod", "staticmethod") else None
        first = {"classmethod": "cls", "staticmethod": None}.get(kind, "self")
        fns, _decl, scope = self.hierarchy.member_decl(name, member.get("owner"))
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
            kept = [f for f in overload_fns if self.sig.receiver(f, scope, first) != DROP]
            overload_fns = kept if len(kept) > 1 else overload_fns
            if len(kept) == 1:
                impl, overload_fns, rt = kept[0], [], None  # the stub's overload, not the runtime's defaults
        for fn in overload_fns:
            params = self.sig.params(fn, self.sig.self_bound(fn, scope), None)
            returns = self.sig.dunder_return(name, self.sig.returns(fn, self.sig.self_bound(fn, scope), None))
            params = self.sig.dunder_params(name, params, declared=True)
            overloads.append(self.writer.signature(params, returns, self.sig.first(fn, scope, first), fn.ignore))
            item = self.writer.batch_item(params)
            if item is not None:
                batch_shapes.append((item[0], item[1], returns))
            protected = protected or self.sig.returns_protected(fn, self.sig.self_bound(fn, scope), None)
        if overloads:
            any_t = self.emitter.any()
            ignore = overload_fns[0].ignore
            if any(".Unpack[" in o.params_py for o in overloads):
                ignore = "# type: ignore[misc]"  # mypy rejects `*args: Any` behind an unpacked TypeVarTuple
            sig = self.writer.implementation(any_t, first, ignore)
        else:
            params = self.sig.dunder_params(name, self.sig.params(impl, self.sig.self_bound(impl, scope), rt), declared=impl is not None)
            returns = self.sig.dunder_return(name, self.sig.returns(impl, self.sig.self_bound(impl, scope), rt))
            returns = self.sig.context_manager(impl, scope, returns)
            sig = self.writer.signature(params, returns, self.sig.first(impl, scope, first),
                                        impl.ignore if impl is not None and scope is not None and scope.is_stub else None)
            item = self.writer.batch_item(params)
            if item is not None:
                batch_shapes.append((item[0], item[1], returns))
            protected = self.sig.returns_protected(impl, self.sig.self_bound(impl, scope), rt)
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
        return Method(name=name, decorator=decorator, is_async=is_async, doc=doc_literal(doc),
                      overloads=tuple(overloads), signature=sig, body=body, batch=batch)

    def init(self) -> Method:
        raw_init = self.raw.get("init") or {}
        rt = raw_init.get("signature")
        fn = None
        scope = None
        for decl, decl_scope in self.hierarchy.chain():
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
            chain = self.hierarchy.chain()
            if chain and chain[0][1].is_stub and self.hierarchy.plain(chain):
                # A stub class with no constructor anywhere in its bases has object's: no arguments.
                found = self.resolver.find_class("builtins", "object")
                fns = found[0].functions.get("__init__", []) if found is not None else []
                if found is not None and fns:
                    fn, scope = fns[-1], Place(found[1], ScopeNames(self.resolver, found[1]))
        params = self.sig.params(fn, self.sig.self_bound(fn, scope), rt)
        sig = self.writer.signature(params, "None", self.sig.first(fn, scope, "self"))
        body = (f"self._xd_init({sig.args}, {sig.kwargs})",)
        return Method(name="__init__", decorator=None, is_async=False, doc=None, overloads=(),
                      signature=sig, body=body, batch=None)

    def _new(self, fns: list[FunctionDecl], scope: Place) -> Method | None:
        """The stub's `__new__` for the .pyi when it makes instances of other parameters than the
        class's own (`pairwise.__new__(cls, it: Iterable[_T]) -> pairwise[tuple[_T, _T]]`): mypy
        reads the type of `pairwise(...)` from it. The .py keeps the proxy's `__init__`."""
        if not self.sig.class_typevars:
            return None
        own = f"{self.proxy_name}[{', '.join(self.sig.class_typevars)}]"
        sigs = []
        for fn in fns:
            place = self.sig.self_bound(fn, scope)
            returns = self.sig.returns(fn, place, None)
            if returns == self.emitter.any():
                returns = own
            first = "cls"
            receiver = self.emitter.text(self.sig.written(fn.receiver, place)) if fn.receiver is not None else None
            if receiver and "Self" not in receiver and self.emitter.any() not in receiver:
                first = f"cls: {receiver}"  # `cls: type[array[int]]`: the overload mypy offers for it
            sigs.append(self.writer.signature(self.sig.params(fn, place, None), returns, first, fn.ignore))
        if all(sig.returns == own or "Self" in sig.returns for sig in sigs):
            return None  # the constructor makes what __init__ says it makes
        if len(sigs) == 1 and len(fns) == 1 and not any(d.rsplit(".", 1)[-1] == "overload" for d in fns[0].decorators):
            return Method(name="__new__", decorator=None, is_async=False, doc=None, overloads=(),
                          signature=sigs[0], body=(), batch=None)
        return Method(name="__new__", decorator=None, is_async=False, doc=None, overloads=tuple(sigs),
                      signature=self.writer.implementation(self.emitter.any(), "cls"), body=(), batch=None)

    def _init_overloaded(self, overloads: list[FunctionDecl], scope: Place | None) -> Method:
        sigs = tuple(self.writer.signature(self.sig.params(f, self.sig.self_bound(f, scope), None), "None",
                                           self.sig.first(f, scope, "self"), f.ignore) for f in overloads)
        any_t = self.emitter.any()
        ignore = "# type: ignore[misc]" if any(".Unpack[" in o.params_py for o in sigs) else None
        generic = self.writer.implementation("None", "self", ignore)
        return Method(name="__init__", decorator=None, is_async=False, doc=None, overloads=sigs,
                      signature=generic, body=("args[0]._xd_init(args[1:], kwargs)",), batch=None)

    def prop(self, member: JSON) -> Property:
        name = member["name"]
        fns, decl, scope = self.hierarchy.member_decl(name, member.get("owner"))
        annotation = None
        getter = next((f for f in fns if "property" in {d.rsplit(".", 1)[-1] for d in f.decorators}), None)
        if getter is None and fns:
            getter = fns[0]
        if getter is not None and getter.returns is not None:
            annotation = self.sig.written(getter.returns, self.sig.self_bound(getter, scope))
        elif decl is not None and name in decl.attributes and not _bare_wrapper(decl.attributes[name]):
            annotation = self.sig.written(_strip_wrappers(decl.attributes[name]), scope)
        elif member.get("value_type") is not None:
            annotation = self.sig.runtime(member["value_type"])
        if self.emitter.returns_protected(annotation):
            self.inferred[name] = "reference"
        text = self.emitter.text(annotation) or self.emitter.any()
        doc = member.get("doc") or (getter.doc if getter is not None else None)
        settable = member["kind"] == "property_rw"
        if settable and scope is not None and scope.is_stub and getter is not None and fns:
            # The stub says whether mypy lets one assign it (a read-only `buffer` of a covariant class).
            settable = any(d.endswith(".setter") for f in fns for d in f.decorators)
        return Property(name=name, type=text, doc=doc_literal(doc), settable=settable,
                        deletable=bool(member.get("deletable")),
                        getter=self.writer.returning(text, f'self._xd_get("{name}")'))

    def instance_attribute_decls(self, taken: frozenset[str]) -> dict[str, tuple[cst.BaseExpression, Place]]:
        """The public attributes the class bodies of the chain annotate without ClassVar (`width: int`,
        a dataclass field, a named tuple's field) that no member of the proxy already stands for."""
        out: dict[str, tuple[cst.BaseExpression, Place]] = {}
        for decl, place in self.hierarchy.chain():
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
        return [InstanceAttribute(name=name, type=self.emitter.text(self.sig.written(node, place)) or self.emitter.any())
                for name, (node, place) in decls.items()]

    def attribute(self, member: JSON) -> ClassAttribute:
        name = member["name"]
        _fns, decl, scope = self.hierarchy.member_decl(name, member.get("owner"))
        annotation = None
        if decl is not None and name in decl.attributes and not _bare_wrapper(decl.attributes[name]):
            annotation = self.sig.written(_strip_wrappers(decl.attributes[name]), scope)
        elif member.get("value_type") is not None:
            annotation = self.sig.runtime(member["value_type"])
        text = self.emitter.text(annotation) or self.emitter.any()
        if any(re.search(rf"\b{re.escape(v)}\b", text) for v in self.sig.class_typevars):
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
