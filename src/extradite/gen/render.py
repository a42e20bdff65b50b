"""Render the interface model with the Jinja2 templates in `templates/`.

The body is rendered first and the header second, so the header is written
knowing every import the body needed; then the text is tidied (trailing spaces,
blank-line runs) and compiled once to be sure it is valid Python.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2

from .model import ModuleModel, ProxyClass

__all__ = ["render_module", "template_dir"]


def template_dir() -> Path:
    """Installed wheels carry the templates as `extradite/_templates`; a checkout has `templates/`."""
    try:
        installed = resources.files("extradite") / "_templates"
        if installed.is_dir():
            return Path(str(installed))
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[3] / "templates"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(async_variants=_async_variants, generic_base=_generic_base, async_batch=_async_batch,
                       create_params=_create_params, receiver_params=_receiver_params,
                       create_comment=_create_comment)
    return env


# -- the async variant of each proxy class (templates/async.*.jinja) ------------------------
def _async_variants(classes: tuple[ProxyClass, ...]) -> list[ProxyClass]:
    """The classes that get an `Async<Name>` variant: all but those whose variant name is taken."""
    names = {c.name for c in classes}
    return [c for c in classes if f"Async{c.name}" not in names]


def _generic_base(bases: str, typing_module: str) -> str:
    """The `typing.Generic[...]` base of a proxy class ("" when it has none): its variant is generic too."""
    start = bases.find(f"{typing_module}.Generic[")
    return bases[start:] if start >= 0 else ""


def _first_end(params: str) -> int:
    """Where the first parameter of a parameter list ends (its top-level comma, or the end)."""
    depth = 0
    for index, char in enumerate(params):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            return index
    return len(params)


def _create_params(params: str) -> str:
    """An `__init__`'s parameters for the variant's `create` classmethod: `_xd_cls` (a target's
    `__init__` may take a `cls`) instead of the first parameter (`self`, annotated or not)."""
    return "_xd_cls" + params[_first_end(params):]


def _receiver_params(params: str, decorator: str | None) -> str:
    """A method's parameters in the variant: its receiver unannotated (the stubs' `self: Sync[X]`
    names the sync class, which the variant is not)."""
    if decorator == "staticmethod" or params.startswith("*"):
        return params
    end = _first_end(params)
    return params[:end].partition(":")[0].strip() + params[end:]


def _create_comment(comment: str, generic: str) -> str:
    """`create` of a generic class takes the class's type variables as parameters, which mypy
    refuses for covariant ones outside `__init__`: the variant's `create` ignores that check."""
    if not generic:
        return comment
    if "ignore[" in comment:
        return comment.replace("ignore[", "ignore[misc, ", 1)
    return "  # type: ignore[misc]"


_ASYNC_BATCH = (("await self._xd_batch_async(", "await self._xd_abatch_awaited("),
                ("await cls._xd_class_batch_async(", "await cls._xd_aclass_batch_awaited("),
                ("self._xd_batch(", "await self._xd_abatch("),
                ("cls._xd_class_batch(", "await cls._xd_aclass_batch("))


def _async_batch(line: str) -> str:
    """A sync batch helper's statement as the async variant's (its primitive awaited)."""
    for sync, awaited in _ASYNC_BATCH:
        if sync in line:
            return line.replace(sync, awaited, 1)
    return line


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    out = "\n".join(lines).strip("\n") + "\n"
    return re.sub(r"\n{4,}", "\n\n\n", out)


def render_module(model: ModuleModel) -> dict[str, str]:
    """File name -> text for the `.py` and `.pyi` of one generated module."""
    env = _environment()
    files = {}
    for suffix, body_name, header_name in ((".py", "module.py.jinja", "header.jinja"),
                                           (".pyi", "module.pyi.jinja", "header.pyi.jinja")):
        body = env.get_template(body_name).render(model=model)
        body += env.get_template(f"async{suffix}.jinja").render(model=model)
        header = env.get_template(header_name).render(model=model)
        text = _tidy(header + "\n\n" + body)
        ast.parse(text, filename=model.name + suffix)
        files[model.name + suffix] = text
    return files
