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

from .model import ModuleModel

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
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


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
        header = env.get_template(header_name).render(model=model)
        text = _tidy(header + "\n\n" + body)
        ast.parse(text, filename=model.name + suffix)
        files[model.name + suffix] = text
    return files
