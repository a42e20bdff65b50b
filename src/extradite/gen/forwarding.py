"""How a generated method is written: its signature for both files and the call it forwards.

    parameters (Param) + return text ──▶ Signature: parameters for the .py and the
        .pyi, the positional tuple and keyword dict the body sends, the batch item type
    Signature ──▶ body statements (`self._xd_call(...)` and friends of
        `extradite.generated_support.GeneratedProxy`) and the typed `*_batch` helper

Forwarding: positional-only arguments go positionally, the others positionally
until the first default that cannot be written out (`MISSING`), and by keyword
from there on, so an omitted argument is never sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .emit import Emitter
from .model import Batch, Signature

__all__ = ["Param", "MethodWriter"]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Param:
    """One parameter with its annotation text and default as each file writes it."""

    name: str
    kind: str  # an inspect.Parameter kind name
    annotation: str
    default_pyi: str | None  # None: required
    default_py: str | None  # "_xd_MISSING" where the .pyi writes "..."


class MethodWriter:
    """Signatures and bodies for the methods of one proxy class."""

    def __init__(self, emitter: Emitter, proxy_name: str) -> None:
        self.emitter = emitter
        self.proxy_name = proxy_name
        self.class_typevars: list[str] = []  # the proxy class's own type parameters, once known

    def implementation(self, returns: str, first: str | None, ignore: str | None = None) -> Signature:
        """The one implementation behind overloads: it takes everything, `self` included.

        `self` stays inside `*args` so that no overload's **kwargs (`dict.update(self, m, /,
        **kwargs)`) nor a keyword-capable `self` makes mypy reject the implementation.
        """
        any_t = self.emitter.any()
        params = f"*args: {any_t}, **kwargs: {any_t}"
        return Signature(params_py=params, params_pyi=params, returns=returns,
                         args="args[1:]" if first else "args", kwargs="kwargs",
                         comment=f"  {ignore}" if ignore else "")

    def signature(self, params: list[Param], returns: str, first: str | None, ignore: str | None = None) -> Signature:
        """Both parameter lists (after `first`, e.g. "self") and what the body forwards."""
        params = [self._optional_fix(p) for p in params]
        returns = self._unbound_return(params, returns)
        py_parts: list[str] = [first] if first else []
        pyi_parts: list[str] = [first] if first else []
        has_var = any(p.kind == "VAR_POSITIONAL" for p in params)
        star_done = has_var
        last_posonly = max((i for i, p in enumerate(params) if p.kind == "POSITIONAL_ONLY"), default=-1)
        for i, p in enumerate(params):
            if p.kind == "KEYWORD_ONLY" and not star_done:
                py_parts.append("*")
                pyi_parts.append("*")
                star_done = True
            prefix = "*" if p.kind == "VAR_POSITIONAL" else "**" if p.kind == "VAR_KEYWORD" else ""
            base = f"{prefix}{p.name}: {p.annotation}"
            py_parts.append(base + (f" = {p.default_py}" if p.default_py is not None else ""))
            pyi_parts.append(base + (f" = {p.default_pyi}" if p.default_pyi is not None else ""))
            if i == last_posonly:
                py_parts.append("/")
                pyi_parts.append("/")
        args: list[str] = []
        kwargs: list[str] = []
        by_keyword = False
        for p in params:
            if p.kind == "POSITIONAL_ONLY":
                args.append(p.name)
            elif p.kind == "POSITIONAL_OR_KEYWORD":
                if p.default_py == "_xd_MISSING" and not has_var:
                    by_keyword = True
                if by_keyword:
                    kwargs.append(f"{p.name!r}: {p.name}")
                else:
                    args.append(p.name)
            elif p.kind == "VAR_POSITIONAL":
                args.append(f"*{p.name}")
            elif p.kind == "KEYWORD_ONLY":
                kwargs.append(f"{p.name!r}: {p.name}")
            else:
                kwargs.append(f"**{p.name}")
        args_text = "(" + ", ".join(args) + ("," if len(args) == 1 else "") + ")"
        if len(args) == 1 and args[0].startswith("*"):
            args_text = args[0][1:]  # `*args` alone: forward the tuple itself
        kwargs_text = "{" + ", ".join(kwargs).replace("'", '"') + "}"
        if len(kwargs) == 1 and kwargs[0].startswith("**"):
            kwargs_text = kwargs[0][2:]
        return Signature(
            params_py=", ".join(py_parts),
            params_pyi=", ".join(pyi_parts),
            returns=returns,
            args=args_text,
            kwargs=kwargs_text,
            comment=f"  {ignore}" if ignore else "",
        )

    def _unbound_return(self, params: list[Param], returns: str) -> str:
        """A type variable only in the return (a base's parameter we cannot substitute) becomes Any."""
        used = {n for p in params for n in _NAME_RE.findall(p.annotation)}
        for name in _NAME_RE.findall(returns):
            if name in self.emitter.typevar_texts and name not in self.class_typevars and name not in used:
                return self.emitter.any()
        return returns

    def _optional_fix(self, p: Param) -> Param:
        # `x: int = None` (implicit Optional) is rejected by mypy --strict; say what the target means.
        if p.default_py == "None" and not re.search(r"\bNone\b|Optional|\bAny\b|object", p.annotation):
            return Param(p.name, p.kind, f"{p.annotation} | None", p.default_pyi, p.default_py)
        return p

    def batch_item(self, params: list[Param]) -> tuple[str, str] | None:
        """(item type, split arguments) for the batch helper, None when only raw items fit."""
        if any(p.kind == "VAR_KEYWORD" for p in params):
            return None
        has_var = any(p.kind == "VAR_POSITIONAL" for p in params)
        named = [p for p in params if p.kind != "VAR_POSITIONAL"]
        if has_var and any(p.kind == "KEYWORD_ONLY" for p in params):
            return None
        required = max((i + 1 for i, p in enumerate(named) if p.default_py is None), default=0)
        tup = self.emitter.builtin("tuple")
        shapes = []
        for arity in range(required, len(named) + 1):
            types = [p.annotation for p in named[:arity]]
            if arity == len(named) and has_var:
                var = next(p for p in params if p.kind == "VAR_POSITIONAL")
                types.append(f"*{tup}[{var.annotation}, ...]")
            if types and len(types) == 1 and types[0].startswith("*"):
                shapes.append(f"{tup}[{var.annotation}, ...]")
            else:
                shapes.append(f"{tup}[{', '.join(types)}]" if types else f"{tup}[()]")
        npos = -1 if has_var else sum(1 for p in named if p.kind != "KEYWORD_ONLY")
        kwnames = tuple(p.name for p in named if p.kind == "KEYWORD_ONLY")
        return " | ".join(shapes), f"{npos}, {kwnames!r}".replace("'", '"')

    def returning(self, returns: str, expr: str, *, batch: bool = False) -> tuple[str, ...]:
        """Statements that return `expr` (the runtime's Any) as `returns`.

        Through an annotated local, not `typing.cast`: mypy checks the same, and a local's
        annotation is never evaluated, so the call costs no extra Python frame.
        """
        if returns == self.emitter.any() or (batch and returns == f"{self.emitter.builtin('list')}[{self.emitter.any()}]"):
            return (f"return {expr}",)
        return (f"_xd_result: {returns} = {expr}", "return _xd_result")

    def body(self, name: str, kind: str, sig: Signature, is_async: bool) -> tuple[str, ...]:
        if kind in ("classmethod", "staticmethod"):
            call = f"cls._xd_class_call({name!r}, {sig.args}, {sig.kwargs})"
        elif is_async:
            call = f"await self._xd_call_async({name!r}, {sig.args}, {sig.kwargs})"
        else:
            call = f"self._xd_call({name!r}, {sig.args}, {sig.kwargs})"
        call = call.replace("'", '"')
        if sig.args == "args[1:]":  # an implementation behind overloads: the receiver is args[0]
            call = call.replace("self._xd_", "args[0]._xd_").replace("cls._xd_", "args[0]._xd_")
        if kind == "staticmethod":
            call = call.replace("cls._xd_class_call", f"{self.proxy_name}._xd_class_call")
        if sig.returns == "None":
            return (call,)
        if sig.returns.endswith((".NoReturn", ".Never")):
            return (call, 'raise AssertionError("unreachable: the target declares that this never returns")')
        return self.returning(sig.returns, call)

    def batch(self, name: str, kind: str, batch_name: str, shapes: list[tuple[str, str, str]],
               overloaded: bool, is_async: bool) -> Batch:
        owner = "cls._xd_class_batch" if kind in ("classmethod", "staticmethod") else "self._xd_batch"
        if is_async:  # awaited item by item in the child, one round trip, off the caller's loop
            owner = "await " + owner + "_async"
        lst = self.emitter.builtin("list")
        if not shapes or (overloaded and len(set(s[1] for s in shapes)) > 1):
            tup, dct, string = self.emitter.builtin("tuple"), self.emitter.builtin("dict"), self.emitter.builtin("str")
            item = f"{tup}[{tup}[{self.emitter.any()}, ...], {dct}[{string}, {self.emitter.any()}]]"
            returns = shapes[0][2] if len(shapes) == 1 else self.emitter.any()
            result = f"{lst}[{returns}]"
            body = self.returning(result, f'{owner}("{name}", calls)', batch=True)
            return Batch(name=batch_name, item_type=item, calls_type=self._iterable(item), returns=result, body=body,
                         is_async=is_async)
        items = " | ".join(dict.fromkeys(s[0] for s in shapes))
        returns_union = " | ".join(dict.fromkeys(s[2] for s in shapes))
        if any(s[2] == self.emitter.any() for s in shapes):
            returns_union = self.emitter.any()
        result = f"{lst}[{returns_union}]"
        split_args = shapes[0][1]
        call = f'{owner}("{name}", calls, {split_args})'
        return Batch(name=batch_name, item_type=items, calls_type=self._iterable(items), returns=result,
                     body=self.returning(result, call, batch=True), is_async=is_async)

    def _iterable(self, item: str) -> str:
        return self.emitter.import_ref("collections.abc", "Iterable") + f"[{item}]"
