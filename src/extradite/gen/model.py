"""The interface model: plain frozen data that the templates print and nothing more.

`build.py` (with `classes.py`, `signatures.py` and `hierarchy.py`) fills it from the
introspection child's output and the parsed sources/stubs; every decision (names,
annotations, forwarding, batch item types, policies, docstring quoting) is made there,
so the templates stay dumb.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Signature", "Method", "Batch", "Property", "ClassAttribute", "InstanceAttribute", "ProxyClass", "ModuleModel"]


@dataclass(frozen=True)
class Signature:
    """One callable shape, already rendered for both files."""

    params_py: str  # "self, x: int, /, y: str = _xd_MISSING"
    params_pyi: str  # "self, x: int, /, y: str = ..."
    returns: str
    args: str  # positional arguments the body forwards, e.g. "(x,)"
    kwargs: str  # keyword arguments the body forwards, e.g. '{"y": y}'
    comment: str = ""  # "  # type: ignore[...]" carried over from the stub's overload


@dataclass(frozen=True)
class Batch:
    """A typed batch helper: many calls of one method in one round trip."""

    name: str  # e.g. "increment_batch"
    item_type: str  # the per-call tuple type mypy checks
    calls_type: str  # `collections.abc.Iterable[item_type]`
    returns: str  # "list[...]"
    body: tuple[str, ...]  # statements of the .py body
    is_async: bool = False  # an `async def` helper for an async method


@dataclass(frozen=True)
class Method:
    name: str
    decorator: str | None  # "classmethod" | "staticmethod" | None
    is_async: bool
    doc: str | None  # a ready-to-print string literal
    overloads: tuple[Signature, ...]
    signature: Signature  # the implementation (generic when overloaded)
    body: tuple[str, ...]  # statements of the .py body
    batch: Batch | None


@dataclass(frozen=True)
class Property:
    name: str
    type: str
    doc: str | None
    settable: bool
    deletable: bool
    getter: tuple[str, ...]  # statements of the .py getter


@dataclass(frozen=True)
class ClassAttribute:
    name: str
    type: str
    type_py: str  # annotation of the descriptor in the .py


@dataclass(frozen=True)
class InstanceAttribute:
    """An attribute the class body or stub annotates (`width: int`): read and set through the
    dynamic path at run time, declared so that mypy knows it."""

    name: str
    type: str


@dataclass(frozen=True)
class ProxyClass:
    name: str
    target: str
    fingerprint: str
    bases: str
    doc: str | None
    digests: tuple[tuple[str, str], ...]
    policies: tuple[tuple[str, str], ...]
    init: Method
    methods: tuple[Method, ...]
    properties: tuple[Property, ...]
    attributes: tuple[ClassAttribute, ...]
    unhashable: bool
    new: Method | None = None  # the .pyi's constructor instead of `init` (a `__new__` that parameterises)
    instance_attributes: tuple[InstanceAttribute, ...] = ()


@dataclass(frozen=True)
class ModuleModel:
    name: str  # generated module name (file stem)
    targets: tuple[tuple[str, str], ...]  # (target, fingerprint)
    runtime_imports: tuple[str, ...]  # import lines needed when the .py runs
    typing_imports: tuple[str, ...]  # import lines needed only by type checkers
    typevars: tuple[str, ...]  # `T = typing.TypeVar("T")` lines
    classes: tuple[ProxyClass, ...]
    typing_module: str  # how `typing` is spelled in this module
    uses_class_attribute: bool
    class_aliases: tuple[str, ...] = ()  # `_xd_cls_date = date` lines after the classes
    stubs: str = ""
    functions: tuple[Method, ...] = ()  # module-level functions (`extradite-gen pkg.mod` or `pkg.mod:func`)
    module_target: str | None = None  # the module a generated module proxy binds to, None: classes only
    module_doc: str | None = None  # a ready-to-print string literal
    unresolved: tuple[str, ...] = ()  # `module:Class` of the protected tree the annotations had to write as Any  # the stub source and version the annotations came from (locate.stub_source)
