"""Build the interface model from the child's raw interface and the parsed annotations.

    raw interface (JSON from introspect.py) ─┐
    ModuleScope of sources/stubs (scope.py) ─┼─▶ ModuleModel per generated module
    options (policies) ──────────────────────┘

An annotation of either origin, written in a stub/source or a runtime object the
child described, becomes one `Annotation` (annotation.py); `Emitter` (emit.py)
writes it for the generated module, following names with `Resolver` (resolve.py).
Each target class is built by `ClassBuilder` (classes.py) over its declared bases
(hierarchy.py); this module assembles the classes and a module target's functions
into modules and checks the names they may not share.

Signature merge, per member (signatures.py): the runtime signature decides parameter
kinds and literal defaults when it names the same parameters as the stub/source; the
stub/source decides annotations (stubs first, as mypy would); runtime annotation
objects fill in what neither has; `*args: Any, **kwargs: Any` only when nothing
says anything. How each method is then written and forwarded: forwarding.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import libcst as cst

from .annotation import ScopeNames
from .classes import ClassBuilder, doc_literal
from .emit import Emitter, ProxyName
from .hierarchy import Place, decl_params
from .locate import stub_source
from .model import Method, ModuleModel, ProxyClass, Signature
from .resolve import Resolver
from .signatures import JSON

__all__ = ["BuildOptions", "build_modules", "generated_module_name", "GenerationError"]

_HELPERS = frozenset({"_xd_MISSING", "_xd_GeneratedProxy", "_XdClassAttribute"})
# Public names every generated class inherits from GeneratedProxy.
_PROXY_NAMES = frozenset({"close", "close_proxy_class", "extradite", "get_effective_policy",
                          "get_effective_policy_trace"})


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


def _function(builder: ClassBuilder, module: str, raw: JSON, names: frozenset[str]) -> Method:
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
        params = builder.sig.params(fn, place, None)
        returns = builder.sig.returns(fn, place, None)
        overloads.append(writer.signature(params, returns, None, fn.ignore))
        item = writer.batch_item(params)
        if item is not None:
            shapes.append((item[0], item[1], returns))
    if overloads:
        sig = writer.implementation(builder.emitter.any(), None, overload_fns[0].ignore)
    else:
        params = builder.sig.params(impl, place, rt)
        sig = writer.signature(params, builder.sig.returns(impl, place, rt), None,
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
    return Method(name=name, decorator=None, is_async=False, doc=doc_literal(doc), overloads=tuple(overloads),
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
    builders: dict[str, ClassBuilder] = {}
    attribute_decls: dict[str, dict[str, tuple[cst.BaseExpression, Place]]] = {}
    for raw in raws:
        proxy_name = raw["qualname"].replace(".", "_")
        member_names = frozenset(m["name"] for m in raw["members"])
        builders[proxy_name] = ClassBuilder(raw, emitter=emitter, resolver=resolver, proxy_name=proxy_name,
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
            doc=doc_literal(raw.get("doc")),
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
        builder = ClassBuilder({"module": module, "qualname": "", "class_module": module, "class_qualname": ""},
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
        module_doc=doc_literal(whole[0].get("doc")) if whole else None,
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
