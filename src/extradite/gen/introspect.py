"""Introspection child: imports targets and prints their interface as JSON.

Run as `python -m extradite.gen.introspect TARGET...` by the generator, never
imported by it (the generator's own process must not import a target). Data flow:

    generator ──argv──▶ this child: import module, find class, walk members
              ◀─stdout── one JSON document: per target a raw interface or an error

Only the standard library and extradite's own runtime modules are used here (no jinja2, no
libcst), so any interpreter that can import `extradite` can introspect: that is
what `--python` relies on. Annotations leave as text with every name fully
qualified (`builtins.int`, `collections.abc.Iterable[builtins.str]`) plus a table
of the references in it, so the generator can resolve them without importing.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import math
import os
import sys
import traceback
import types
import typing
from typing import Any

from extradite._generated import member_digests
from extradite._members import _raw_members, describe_type, fingerprint, signatures
from extradite._targets import in_tree, parse_module, parse_target, protected_tree

__all__ = ["main"]

JSON = dict[str, Any]

_LITERAL_TYPES = (bool, int, float, str, bytes, complex, type(None))


def _literal(value: object) -> str | None:
    """Source text for `value` when it can be written out and read back exactly."""
    if isinstance(value, tuple):
        items = [_literal(v) for v in value]
        if any(i is None for i in items):
            return None
        return "(" + ", ".join(typing.cast(list[str], items)) + ("," if len(items) == 1 else "") + ")"
    if type(value) not in _LITERAL_TYPES:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, complex):
        return None
    text = repr(value)
    try:
        if ast.literal_eval(text) != value:
            return None
    except (ValueError, SyntaxError):
        return None
    return text


class _Annotator:
    """Turns runtime annotation objects into qualified text plus a reference table."""

    def __init__(self) -> None:
        self.refs: dict[str, list[Any]] = {}

    def ref(self, module: str, qualname: str, extra: JSON | None = None) -> str:
        dotted = f"{module}.{qualname}"
        self.refs[dotted] = [module, qualname, extra]
        return dotted

    def text(self, obj: object, globalns: dict[str, Any] | None) -> str:
        if isinstance(obj, str):
            try:
                obj = eval(obj, dict(globalns or {}))  # noqa: S307 - the child already runs the target's code
            except Exception:
                return self.ref("typing", "Any")
        if obj is None or obj is type(None):
            return "None"
        if obj is Ellipsis:
            return "..."
        if obj is typing.Any:
            return self.ref("typing", "Any")
        if isinstance(obj, typing.TypeVar):
            return self._typevar(obj, "TypeVar", globalns)
        if isinstance(obj, typing.ParamSpec):
            return self._typevar(obj, "ParamSpec", globalns)
        if isinstance(obj, typing.ForwardRef):
            return self.text(obj.__forward_arg__, globalns)
        origin = typing.get_origin(obj)
        args = typing.get_args(obj)
        if origin is typing.Annotated:
            return self.text(args[0], globalns)
        if origin is typing.Literal:
            parts = [_literal(a) for a in args]
            if any(p is None for p in parts):
                return self.ref("typing", "Any")
            return self.ref("typing", "Literal") + "[" + ", ".join(typing.cast(list[str], parts)) + "]"
        if origin is typing.Union or origin is types.UnionType:
            return self.ref("typing", "Union") + "[" + ", ".join(self.text(a, globalns) for a in args) + "]"
        if origin is not None and isinstance(origin, type) and origin.__module__ == "collections.abc" and origin.__name__ == "Callable":
            if len(args) == 2 and isinstance(args[0], list):
                params = "[" + ", ".join(self.text(a, globalns) for a in args[0]) + "]"
            elif args:
                params = self.text(args[0], globalns)
                args = (args[0], args[-1])
            else:
                return self.ref("collections.abc", "Callable")
            return self.ref("collections.abc", "Callable") + f"[{params}, {self.text(args[-1], globalns)}]"
        if origin is not None and args:
            base = self.text(origin, globalns)
            return base + "[" + ", ".join(self.text(a, globalns) if a != () else "()" for a in args) + "]"
        if isinstance(obj, type):
            if "<locals>" in obj.__qualname__:
                return self.ref("typing", "Any")
            return self.ref(obj.__module__, obj.__qualname__)
        if isinstance(obj, list):
            return "[" + ", ".join(self.text(a, globalns) for a in obj) + "]"
        name = getattr(obj, "_name", None) or getattr(obj, "__name__", None)
        if isinstance(name, str) and getattr(obj, "__module__", None) == "typing":
            return self.ref("typing", name)
        return self.ref("typing", "Any")

    def _typevar(self, var: Any, kind: str, globalns: dict[str, Any] | None) -> str:
        module = getattr(var, "__module__", None) or "typing"
        info: JSON = {"typevar": {
            "name": var.__name__,
            "kind": kind,
            "bound": self.text(var.__bound__, globalns) if getattr(var, "__bound__", None) is not None else None,
            "constraints": [self.text(c, globalns) for c in getattr(var, "__constraints__", ())],
            "variance": "co" if getattr(var, "__covariant__", False) else
                        "contra" if getattr(var, "__contravariant__", False) else "in",
        }}
        return self.ref(module, var.__name__, info)


def _annotation(obj: object, globalns: dict[str, Any] | None) -> JSON | None:
    if obj is inspect.Parameter.empty:
        return None
    annotator = _Annotator()
    text = annotator.text(obj, globalns)
    return {"text": text, "refs": annotator.refs}


def _signature(func: object, *, drop_first: bool) -> JSON | None:
    try:
        sig = inspect.signature(typing.cast(Any, func))
    except (TypeError, ValueError):
        return None
    globalns = getattr(func, "__globals__", None)
    params = list(sig.parameters.values())
    if drop_first and params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]
    out = []
    for p in params:
        default: JSON | None = None
        if p.default is not p.empty:
            text = _literal(p.default)
            default = {"literal": text} if text is not None else {"missing": True}
        out.append({
            "name": p.name,
            "kind": p.kind.name,
            "default": default,
            "annotation": _annotation(p.annotation, globalns),
        })
    ret = _annotation(sig.return_annotation, globalns)
    return {"params": out, "return": ret}


def _unwrap(raw: object) -> object:
    if isinstance(raw, (staticmethod, classmethod)):
        return raw.__func__
    return raw


def _overloads(func: object, *, drop_first: bool) -> list[JSON]:
    get_overloads = getattr(typing, "get_overloads", None)
    if get_overloads is None or not isinstance(func, types.FunctionType):
        return []
    sigs = [_signature(f, drop_first=drop_first) for f in get_overloads(func)]
    return [s for s in sigs if s is not None]


def _doc(obj: object) -> str | None:
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def _defining_class(cls: type, name: str) -> type:
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    return cls


def _value_type(value: object) -> JSON | None:
    if type(value) in _LITERAL_TYPES and value is not None:
        return {"text": f"builtins.{type(value).__name__}", "refs": {f"builtins.{type(value).__name__}": ["builtins", type(value).__name__, None]}}
    return None


def _member(cls: type, name: str, kind: str, raw: object) -> JSON:
    owner = _defining_class(cls, name)
    entry: JSON = {
        "name": name,
        "kind": kind,
        "owner": [owner.__module__, owner.__qualname__],
        "doc": None,
        "signature": None,
        "overloads": [],
        "value_type": None,
        "deletable": False,
    }
    if kind in ("method", "async_method", "classmethod", "staticmethod"):
        func = _unwrap(raw)
        entry["doc"] = _doc(func)
        entry["signature"] = _signature(func, drop_first=kind != "staticmethod")
        entry["overloads"] = _overloads(func, drop_first=kind != "staticmethod")
    elif kind in ("property", "property_rw"):
        entry["doc"] = _doc(raw)
        getter = getattr(raw, "fget", None)
        if getter is not None:
            sig = _signature(getter, drop_first=True)
            entry["value_type"] = sig["return"] if sig else None
        entry["deletable"] = getattr(raw, "fdel", None) is not None
    elif kind == "attribute":
        entry["value_type"] = _value_type(raw)
    return entry


def _module_files(name: str) -> JSON:
    """Source and stub paths for a loaded module, as the target interpreter sees them."""
    module = sys.modules.get(name)
    filename = getattr(module, "__file__", None) if module is not None else None
    source = None
    stub = None
    if isinstance(filename, str):
        directory, basename = os.path.split(filename)
        # `options.cpython-311-x86_64-linux-gnu.so` -> `options`: a compiled module (mypyc, Cython)
        # often ships the source it was compiled from beside it, annotated as written.
        base = filename[:-3] if filename.endswith(".py") else os.path.join(directory, basename.split(".", 1)[0])
        if os.path.exists(base + ".py"):
            source = base + ".py"
        if base.endswith(os.sep + "__init__"):
            candidates = [base + ".pyi"]
        else:
            candidates = [base + ".pyi", os.path.join(os.path.dirname(filename), name.rsplit(".", 1)[-1] + ".pyi")]
        for candidate in candidates:
            if os.path.exists(candidate):
                stub = candidate
                break
    if stub is None:
        top, _, rest = name.partition(".")
        for entry in sys.path:
            root = os.path.join(entry or ".", top + "-stubs")
            if not os.path.isdir(root):
                continue
            rel = rest.replace(".", os.sep)
            for candidate in (os.path.join(root, rel + ".pyi"), os.path.join(root, rel, "__init__.pyi")):
                if rel == "" and candidate.endswith(os.sep + ".pyi"):
                    continue
                if os.path.exists(candidate):
                    stub = candidate
                    break
            if stub is not None:
                break
    return {"source": source, "stub": stub}


def _type_params(cls: type) -> list[JSON]:
    params = getattr(cls, "__type_params__", None) or getattr(cls, "__parameters__", ()) or ()
    annotator_out = []
    for var in params:
        annotator = _Annotator()
        module = sys.modules.get(cls.__module__)
        annotator.text(var, vars(module) if module else None)
        annotator_out.append({"refs": annotator.refs, "name": getattr(var, "__name__", "T")})
    return annotator_out


def _error(target: str, kind: str, message: str) -> JSON:
    return {"target": target, "error": {"kind": kind, "message": message}}


def _import(target: str, module_name: str) -> types.ModuleType | JSON:
    """The imported module, or an error record."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return _error(target, "module_not_found", f"no module named {exc.name!r}")
        return _error(target, "import_raised", _short_tb(exc))
    except SyntaxError as exc:
        return _error(target, "syntax_error", f"{exc.filename}:{exc.lineno}: {exc.msg}")
    except BaseException as exc:  # noqa: BLE001 - any failure of the target's import is reported, not fatal
        return _error(target, "import_raised", _short_tb(exc))


def _is_function(obj: object) -> bool:
    return inspect.isfunction(obj) or inspect.isbuiltin(obj)


def _function(name: str, func: object) -> JSON:
    return {"name": name, "doc": _doc(func), "signature": _signature(func, drop_first=False),
            "overloads": _overloads(func, drop_first=False), "is_async": inspect.iscoroutinefunction(func)}


def _functions_record(target: str, module_name: str, module: types.ModuleType,
                      functions: list[JSON], classes: list[str], whole: bool) -> JSON:
    """The functions a generated module proxy forwards (all public ones, or the one a target names)."""
    tree = protected_tree(module_name)
    return {
        "target": target,
        "kind": "functions",
        "module": module_name,
        "qualname": "",
        "protected_tree": tree,
        "whole_module": whole,
        "doc": _doc(module) if whole else None,
        "functions": functions,
        "classes": classes,
        "files": {name: _module_files(name) for name in sorted(n for n in list(sys.modules) if in_tree(n, (tree,)))},
    }


def _public_names(module: types.ModuleType, module_name: str) -> list[str]:
    """`__all__`, else the names not starting with `_` that the module's own tree defines."""
    names = getattr(module, "__all__", None)
    tree = protected_tree(module_name)
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return sorted(set(names))
    return sorted(name for name, value in vars(module).items() if not name.startswith("_")
                  and in_tree(str(getattr(value, "__module__", "") or ""), (tree,)))


def introspect_all(target: str) -> list[JSON]:
    """The raw interfaces a target stands for: a class's; a function's; or a module's public
    functions (one record) and each of its public classes (one record each)."""
    if ":" in target:
        return [introspect(target)]
    try:
        module_name = parse_module(target)
    except (TypeError, ValueError) as exc:
        return [_error(target, "bad_target", str(exc))]
    module = _import(target, module_name)
    if not isinstance(module, types.ModuleType):
        return [module]
    functions: list[JSON] = []
    classes: list[str] = []
    tree = protected_tree(module_name)
    for name in _public_names(module, module_name):
        value = getattr(module, name, None)
        if not in_tree(str(getattr(value, "__module__", "") or ""), (tree,)):
            continue  # re-exported from outside the protected tree: import it from there
        if isinstance(value, type):
            classes.append(name)
        elif _is_function(value) and not inspect.iscoroutinefunction(value):
            functions.append(_function(name, value))
    records = [_functions_record(target, module_name, module, functions, classes, True)]
    records.extend(introspect(f"{module_name}:{name}") for name in classes)
    return records


def introspect(target: str) -> JSON:
    """The raw interface of one `module:Class` (or `module:function`) target, or an error record."""
    try:
        module_name, qualname = parse_target(target)
    except (TypeError, ValueError) as exc:
        return _error(target, "bad_target", str(exc))
    module = _import(target, module_name)
    if not isinstance(module, types.ModuleType):
        return module
    obj: object = module
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            return _error(target, "attribute_missing", f"module {module_name!r} has no attribute {qualname!r}")
    if _is_function(obj) and "." not in qualname:
        if inspect.iscoroutinefunction(obj):
            return _error(target, "not_a_class", f"{target} is an async function; generated proxies forward "
                          "plain functions and classes (use extradite() for it)")
        return _functions_record(target, module_name, module, [_function(qualname, obj)], [], False)
    if not isinstance(obj, type):
        return _error(target, "not_a_class", f"{target} is a {type(obj).__name__}, not a class or a function")
    cls = obj
    raw = _raw_members(cls)
    table = describe_type(cls)
    digests = member_digests(table, signatures(cls))
    members = []
    for name in sorted(table):
        kind = table[name]
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
            continue
        members.append(_member(cls, name, kind, raw.get(name)))
    init_sig = None
    try:
        init_sig = _signature(cls, drop_first=False)
    except Exception:  # noqa: BLE001 - some metaclasses break signature(); then stubs or *args decide
        init_sig = None
    init_owner = _defining_class(cls, "__init__")
    new_owner = _defining_class(cls, "__new__")
    tree = protected_tree(module_name)
    modules = {module_name, cls.__module__}
    modules.update(m["owner"][0] for m in members)
    modules.update(n for n in list(sys.modules) if in_tree(n, (tree,)))
    return {
        "target": target,
        "module": module_name,
        "qualname": qualname,
        "class_module": cls.__module__,
        "class_qualname": cls.__qualname__,
        "protected_tree": tree,
        "doc": _doc(cls),
        "digests": digests,
        "fingerprint": fingerprint(cls),
        "type_params": _type_params(cls),
        "members": members,
        "init": {
            "signature": init_sig,
            "owner": [init_owner.__module__, init_owner.__qualname__],
            "new_owner": [new_owner.__module__, new_owner.__qualname__],
        },
        "mro": [[k.__module__, k.__qualname__] for k in cls.__mro__],
        "files": {name: _module_files(name) for name in sorted(modules)},
    }


def _short_tb(exc: BaseException) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return "".join(lines[-6:]).rstrip()


def main(argv: list[str] | None = None) -> int:
    targets = list(sys.argv[1:] if argv is None else argv)
    # The target may print on import; keep stdout for our JSON document only.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        results = [r for t in targets for r in introspect_all(t)]
    finally:
        sys.stdout = real_stdout
    document = {
        "python": list(sys.version_info[:3]),
        "platform": sys.platform,
        "results": results,
    }
    real_stdout.write(json.dumps(document, sort_keys=True))
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
