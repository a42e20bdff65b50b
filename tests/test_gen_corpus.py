"""Generator fidelity over a corpus: the signatures mypy sees for the real class, on the proxy.

Every public class of the modules below is generated (one extradite-gen run per group),
checked with `mypy --strict` (the `.pyi` files and the `.py` files in separate
directories: mypy reads only the `.pyi` when both exist), and each member the stubs
declares (methods, properties, class and instance attributes; a `__new__` the .pyi
declares where the stub's parameterises the class) is compared with what mypy itself
makes of the real class. The comparison asks
mypy (`reveal_type`) for the member's type through an instance of the real class and of
the proxy, parameterised by the same type variables, so names, kinds, defaults,
annotations and overloads are compared as mypy resolves them (inheritance, base type
arguments, `Self`, aliases), after normalisation: each proxy class's name is replaced
by its target's, a signature's own type variables are numbered, and the names of
`*args`/`**kwargs` (which no caller can use) are dropped.

Every category (C-implemented, pure Python, third party) must reach GOAL, and every
output directory must be mypy-clean; the short CI form (EXTRADITE_STRESS_SCALE < 1)
runs a subset of each group under the same goal. Third party includes a compiled module
that ships its sources (`mypy.options`, built with mypyc).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import python_env, stress_scale

GOAL = 98.0  # percent of members identical to the stubs, per category: less fails

STDLIB_MODULES = [
    "array", "bz2", "collections", "configparser", "datetime", "decimal", "difflib", "fractions",
    "functools", "graphlib", "html.parser", "io", "ipaddress", "itertools", "logging", "lzma",
    "mmap", "operator", "pprint", "queue", "random", "sched", "shlex", "sqlite3", "statistics",
    "string", "struct", "textwrap", "threading", "uuid", "zipfile",
]
THIRD_PARTY_MODULES = ["jinja2", "libcst", "numpy.random", "mypy.options"]
# The short form: a few modules of each kind, C and pure Python.
SHORT_STDLIB = ["collections", "decimal", "fractions", "ipaddress", "queue", "difflib", "datetime"]
SHORT_THIRD_PARTY = ["jinja2"]

MYPY_CONFIG = """\
[mypy]
strict = True
python_version = {major}.{minor}
[mypy-extradite.*]
follow_imports = silent
"""

_LIST_CLASSES = r"""
import enum, importlib, inspect, json, sys, types
out = []
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    exported = getattr(module, "__all__", None)
    names = exported or [n for n in dir(module)]
    for attr in sorted(set(names)):
        obj = getattr(module, attr, None)
        if not exported and not (getattr(obj, "__module__", "") + ".").startswith(name + "."):
            continue  # without __all__, a class another module defines is only imported here
        # Exceptions, enums and named tuples cross by value, protocols are never instantiated:
        # none is a proxy target.
        if (attr.startswith("_") or not isinstance(obj, type) or issubclass(obj, (BaseException, enum.Enum))
                or getattr(obj, "_is_protocol", False) or obj.__name__ != attr
                or (issubclass(obj, tuple) and hasattr(obj, "_fields"))):
            continue
        pure = any(isinstance(v, (types.FunctionType, classmethod, staticmethod, property))
                   for v in vars(obj).values())
        out.append([f"{name}:{attr}", "pure" if pure else "C"])
print(json.dumps(out))
"""


@dataclass
class Group:
    name: str
    modules: list[str]
    classes: list[tuple[str, str]] = field(default_factory=list)  # (target, category)


@dataclass
class Outcome:
    same: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    mypy_errors: dict[str, list[str]] = field(default_factory=dict)
    seconds_per_class: float = 0.0


def list_classes(modules: list[str]) -> list[tuple[str, str]]:
    result = subprocess.run([sys.executable, "-c", _LIST_CLASSES, *modules], env=python_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return [(t, c) for t, c in json.loads(result.stdout)]


def proxy_module(target: str) -> str:
    module, qualname = target.split(":")
    return module.replace(".", "_") + "_xdproxy", qualname.replace(".", "_")


def run_mypy(files: list[Path], work: Path, path: list[Path], *, strict: bool) -> list[str]:
    config = work / ("strict.ini" if strict else "plain.ini")
    text = MYPY_CONFIG.format(major=sys.version_info[0], minor=sys.version_info[1])
    config.write_text(text if strict else text.replace("strict = True", "strict = False"))
    src = Path(__file__).resolve().parents[1] / "src"
    env = dict(os.environ, MYPYPATH=os.pathsep.join(str(p) for p in (*path, src)))
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), "--no-error-summary",
                             "--cache-dir", str(work / ".mypy_cache"), "--show-error-codes",
                             *(str(f) for f in files)],
                            env=env, capture_output=True, text=True, timeout=1200, cwd=work)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout.splitlines()


def class_members(pyi: Path) -> dict[str, list[str]]:
    """Proxy class name -> the members it declares (the `*_batch` helpers are the proxy's own)."""
    out: dict[str, list[str]] = {}
    for node in ast.parse(pyi.read_text()).body:
        if isinstance(node, ast.ClassDef):
            names = [n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            # Attributes too: class attributes and those the stubs annotate on instances (`width: int`).
            names += [n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
                      and not n.target.id.startswith("__")]
            own = set(names)
            out[node.name] = [n for n in dict.fromkeys(names)
                              if n != "__init__" and not (n.endswith("_batch") and n[:-6] in own)]
    return out


def _split_top(text: str, sep: str = ", ") -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
            i += len(sep)
            continue
        i += 1
    parts.append(text[start:])
    return parts


def normalise(revealed: str, names: dict[str, str]) -> str:
    """Proxy class names -> target names; a signature's own type variables numbered in order."""
    for proxy, real in names.items():
        revealed = re.sub(rf"\b{re.escape(proxy)}\b", real, revealed)
    # The name of `*args`/`**kwargs` never matters to a caller (mypy shows it for some defs only).
    revealed = re.sub(r"(?<![\w*])(\*\*?)\w+: ", r"\1", revealed)

    def number(match: re.Match[str]) -> str:
        return match.group(0)

    out = []
    pos = 0
    for match in re.finditer(r"def \[", revealed):
        if match.start() < pos:
            continue
        depth, i = 1, match.end()
        while depth and i < len(revealed):
            depth += {"[": 1, "]": -1}.get(revealed[i], 0)
            i += 1
        variables = [v.split(" ")[0] for v in _split_top(revealed[match.end():i - 1])]
        end = _callable_end(revealed, i)
        segment = revealed[match.start():end]
        for n, var in enumerate(variables):
            segment = re.sub(rf"(?<![\w.]){re.escape(var)}(?![\w])", f"T{n}`", segment)
        out.append(revealed[pos:match.start()])
        out.append(segment)
        pos = end
    out.append(revealed[pos:])
    return "".join(out)


def _callable_end(text: str, start: int) -> int:
    """End of the `def ...` item starting before `start`: the next top-level `, def`/`)` of an Overload."""
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            if depth == 0:
                return i
            depth -= 1
        elif depth == 0 and text.startswith(", def ", i):
            return i
    return len(text)


_REVEALED = re.compile(r"^[^:]+:(\d+): note: Revealed type is \"(.*)\"$")
_ERROR = re.compile(r"^[^:]+:(\d+): error:")


def reveal(lines: list[str], work: Path, path: list[Path]) -> tuple[dict[int, str], set[int]]:
    probe = work / "probe.py"
    probe.write_text("\n".join(lines) + "\n")
    output = run_mypy([probe], work, path, strict=False)
    revealed: dict[int, str] = {}
    errors: set[int] = set()
    for line in output:
        if not line.startswith("probe.py:") and not line.startswith(str(probe)):
            continue
        match = _REVEALED.match(line)
        if match:
            revealed[int(match.group(1))] = match.group(2)
        elif _ERROR.match(line):
            errors.add(int(_ERROR.match(line).group(1)))  # type: ignore[union-attr]
    return revealed, errors


def measure(group: Group, work: Path) -> Outcome:
    outcome = Outcome()
    out = work / "out"
    targets = [t for t, _ in group.classes]
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "extradite.gen", *targets, "-o", str(out)], env=python_env(),
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr
    outcome.seconds_per_class = (time.monotonic() - started) / max(1, len(targets))
    pyi_dir, py_dir = work / "pyi", work / "py"
    pyi_dir.mkdir()
    py_dir.mkdir()
    for path in out.iterdir():
        (pyi_dir if path.suffix == ".pyi" else py_dir).joinpath(path.name).write_text(path.read_text())
    for label, directory in (("pyi", pyi_dir), ("py", py_dir)):
        files = sorted(directory.iterdir())
        for line in run_mypy(files, work, [directory], strict=True):
            if ": error:" in line:
                outcome.mypy_errors.setdefault(f"{label}:{Path(line.split(':', 1)[0]).name}", []).append(line)

    # First the constructors: their result names each class as mypy prints it and its type parameters.
    # Every generated class counts, those the closure added too (their headers name them).
    generated = sorted({m for p in pyi_dir.iterdir() for m in re.findall(r"^# (\S+:\S+) fingerprint", p.read_text(), re.M)})
    category = dict(group.classes)
    lines = ["import typing"]
    lines += sorted({f"import {t.split(':')[0]}" for t in generated} | {f"import {proxy_module(t)[0]}" for t in generated})
    lines += [f"_P{i} = typing.TypeVar('_P{i}')" for i in range(8)]
    first: dict[str, int] = {}
    for n, target in enumerate(generated):
        module, qualname = target.split(":")
        first[target] = len(lines) + 1
        pmod, pname = proxy_module(target)
        lines += [f"reveal_type({module}.{qualname})", f"reveal_type({pmod}.{pname})",
                  f"def _name{n}(x: {module}.{qualname}) -> None:", "    reveal_type(x)"]
    revealed, _errors = reveal(lines, work, [pyi_dir])
    names: dict[str, str] = {}
    arity: dict[str, int] = {}
    for target in generated:
        real = revealed.get(first[target], "")
        result_type = real.rsplit("-> ", 1)[-1].rstrip(")")
        head, _, args = result_type.partition("[")
        pmod, pname = proxy_module(target)
        # The class's name as mypy prints an instance of it (a constructor may return Any or a base).
        instance = revealed.get(first[target] + 3, "").partition("[")[0]
        names[f"{pmod}.{pname}"] = instance if instance and instance != "Any" else head
        if head == "tuple" and "fallback=" in result_type:  # a named tuple: mypy prints its tuple type
            names[f"{pmod}.{pname}"] = result_type + ")" * (result_type.count("(") - result_type.count(")"))
            args = ""
        arity[target] = len(_split_top(args[:-1])) if args else 0

    members: dict[str, list[str]] = {}
    for pyi in pyi_dir.iterdir():
        for cls, names_ in class_members(pyi).items():
            members[f"{pyi.stem}.{cls}"] = names_
    probe_lines = [ln for ln in lines if ln.startswith("import ") or ln.startswith("_P")]
    checks: list[tuple[str, str, str, int]] = []  # target, member, category, line of the real reveal
    for n, target in enumerate(targets):
        module, qualname = target.split(":")
        pmod, pname = proxy_module(target)
        params = f"[{', '.join(f'_P{i}' for i in range(arity[target]))}]" if arity[target] else ""
        probe_lines.append(f"def _probe{n}(x: {module}.{qualname}{params}, y: {pmod}.{pname}{params}) -> None:")
        checks.append((target, "__init__", category[target], len(probe_lines) + 1))
        probe_lines += [f"    reveal_type({module}.{qualname})", f"    reveal_type({pmod}.{pname})"]
        for member in members.get(f"{pmod}.{pname}", []):
            checks.append((target, member, category[target], len(probe_lines) + 1))
            probe_lines += [f"    reveal_type(x.{member})", f"    reveal_type(y.{member})"]
    revealed, errors = reveal(probe_lines, work, [pyi_dir])
    for target, member, cat, line in checks:
        if line in errors or line not in revealed:
            continue  # the stubs do not declare it: nothing to compare with
        real = normalise(revealed[line], {})
        proxy = normalise(revealed.get(line + 1, "<missing>"), names)
        outcome.total[cat] += 1
        if real == proxy:
            outcome.same[cat] += 1
        else:
            outcome.mismatches.append(f"{target}.{member}\n    stub:  {real}\n    proxy: {proxy}")
    return outcome


def report(group: Group, outcome: Outcome) -> str:
    lines = [f"{group.name}: {len(group.classes)} classes, {outcome.seconds_per_class:.2f} s per class generated"]
    for cat in sorted(outcome.total):
        pct = 100.0 * outcome.same[cat] / outcome.total[cat]
        lines.append(f"  {cat}: {outcome.same[cat]}/{outcome.total[cat]} members identical ({pct:.1f}%)")
    lines.append(f"  mypy --strict: {len(outcome.mypy_errors)} files with errors")
    return "\n".join(lines)


def _group(name: str, modules: list[str], short: list[str]) -> Group:
    chosen = short if stress_scale() < 1 else modules
    return Group(name, chosen, list_classes(chosen))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stdlib", "third_party"])
def test_corpus_fidelity(name: str, tmp_path: Path) -> None:
    if name == "stdlib":
        group = _group("stdlib", STDLIB_MODULES, SHORT_STDLIB)
    else:
        group = _group("third_party", THIRD_PARTY_MODULES, SHORT_THIRD_PARTY)
        group.classes = [(t, "third party") for t, _ in group.classes]
    assert group.classes, f"no classes found in {group.modules}"
    outcome = measure(group, tmp_path)
    summary = report(group, outcome)
    print(summary)
    detail = "\n".join(outcome.mismatches[:60])
    errors = "\n".join(e for errs in outcome.mypy_errors.values() for e in errs[:5])
    assert not outcome.mypy_errors, f"{summary}\nmypy --strict errors in generated files:\n{errors}"
    for cat in sorted(outcome.total):
        pct = 100.0 * outcome.same[cat] / outcome.total[cat]
        assert pct >= GOAL, f"{summary}\n{cat}: {pct:.1f}% of members identical to the stubs < {GOAL}%; first differences:\n{detail}"
