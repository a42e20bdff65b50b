"""`extradite-gen`: command line, pyproject configuration and the generation pipeline.

    targets ──▶ introspection child (python -m extradite.gen.introspect, JSON on stdout)
            ──▶ build.build_modules (libcst annotations, interface model)
            ──▶ render.render_module (Jinja2)  ──▶ write.write_files | write.stale_diff
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _targets
from .build import BuildOptions, GenerationError, build_modules
from .render import render_module
from .locate import StubsMissing, find_typeshed
from .write import OutputError, stale_diff, stub_change, write_files

__all__ = ["main", "generate", "GenerateOptions", "Environment", "EXIT_CODES"]

EXIT_OK = 0
EXIT_STALE = 1
EXIT_USAGE = 2
EXIT_TARGET = 3
EXIT_OUTPUT = 4
EXIT_INTROSPECTION = 5
EXIT_ENVIRONMENT = 6

EXIT_CODES = {
    EXIT_OK: "success; with --check: the output is fresh",
    EXIT_STALE: "--check only: the output is stale (a unified diff is printed)",
    EXIT_USAGE: "bad command line or [tool.extradite-gen] configuration (target string, --policy, --python), or the stubs are not installed",
    EXIT_TARGET: "a target cannot be introspected (missing module, syntax error, import raised, not a class)",
    EXIT_OUTPUT: "the output directory cannot be created or written",
    EXIT_INTROSPECTION: "the introspection child failed (crashed or printed no result)",
    EXIT_ENVIRONMENT: "the environment of --requirements (or of a target's requirements) could not be built",
}

CLOSURE_ROUNDS = 3  # how far the closure follows references from the requested classes
CLOSURE_LIMIT = 200  # at most this many classes are added by the closure

_POLICY_RE = re.compile(r"^(?P<cls>[A-Za-z_]\w*)\.(?P<member>[A-Za-z_]\w*)=(?P<policy>\w+)$")
_TARGET_ERROR_LABELS = {
    "module_not_found": "module not found",
    "syntax_error": "syntax error in the target module",
    "import_raised": "importing the target module raised",
    "not_a_class": "not a class or function",
    "attribute_missing": "no such class",
    "bad_target": "not a target",
}


class UsageError(Exception):
    """The command line or configuration is wrong."""


@dataclass(frozen=True)
class Environment:
    """Where a target is introspected, as `extradite(python=, requirements=)` would run it."""

    python: str | None = None
    requirements: tuple[str, ...] | None = None


@dataclass(frozen=True)
class GenerateOptions:
    targets: tuple[str, ...]
    policies: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    python: str | None = None
    closure: bool = True  # also generate the protected classes the targets' signatures reference
    requirements: tuple[str, ...] | None = None
    environments: Mapping[str, Environment] = field(default_factory=dict)  # per target: wins over the two above

    def environment_of(self, target: str) -> Environment:
        return self.environments.get(target) or Environment(self.python, self.requirements)


def parse_target(text: str) -> str:
    """`text` checked by the runtime's own rules (`extradite._targets`), so both accept the same targets:
    "pkg.mod:Cls" or "pkg.mod:func" (`extradite()`), or a whole module "pkg.mod" (`import_isolated()`)."""
    try:
        if ":" in text:
            _targets.parse_target(text)
        else:
            _targets.parse_module(text)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return text


def parse_policies(items: Sequence[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items:
        match = _POLICY_RE.match(item)
        if not match:
            raise UsageError(f"--policy {item!r} must look like 'Class.method=value' or 'Class.method=reference'")
        if match["policy"] not in ("value", "reference"):
            raise UsageError(f"--policy {item!r}: the policy must be 'value' or 'reference', not {match['policy']!r}")
        out.setdefault(match["cls"], {})[match["member"]] = match["policy"]
    return out


def _child_env() -> dict[str, str]:
    """This interpreter's introspection child sees what we see, and extradite."""
    package_parent = str(Path(__file__).resolve().parents[2])  # the directory holding `extradite/`
    env = dict(os.environ)
    paths = [package_parent, *(p for p in sys.path if isinstance(p, str) and p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _introspection_command(targets: Sequence[str], python: str | None,
                           requirements: Sequence[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """argv and environment of the introspection child.

    Another interpreter or environment (`--python`, or the environment `--requirements`
    builds, the one `extradite(requirements=)` runs) gets what the runtime's children
    of `python=` get (see extradite._interpreter), plus the working directory, where
    the targets usually live, and keeps its own site-packages: no module of this
    installation reaches it.
    """
    from .._interpreter import foreign_environ, foreign_prelude, resolve_python

    try:
        resolved = resolve_python(python, option="--python")
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if requirements is not None:
        from .._envs import environment_python, normalise_requirements
        from .._errors import ExtraditeEnvironmentError

        try:
            resolved = environment_python(normalise_requirements(requirements, option="--requirements"), resolved)
        except (TypeError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        except ExtraditeEnvironmentError as exc:
            raise GenerationError("environment", str(exc)) from None
    if resolved is None:
        return [sys.executable, "-m", "extradite.gen.introspect", *targets], _child_env()
    package_parent = str(Path(__file__).resolve().parents[2])
    code = "\n".join([foreign_prelude(package_parent, extra=[os.getcwd()]), "import runpy",
                      "runpy.run_module('extradite.gen.introspect', run_name='__main__', alter_sys=True)"])
    return [resolved, "-P", "-c", code, *targets], foreign_environ()


def introspect(targets: Sequence[str], python: str | None,
               requirements: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the throwaway introspection child and return its JSON document."""
    cmd, env = _introspection_command(targets, python, requirements)
    executable = cmd[0]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                              stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise UsageError(f"--python {executable!r} could not be run: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise GenerationError("introspection", f"the introspection child ({executable}) did not finish within 600 s") from None
    try:
        document = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = "\n".join(proc.stderr.strip().splitlines()[-12:])
        raise GenerationError("introspection", f"the introspection child ({executable}) exited with status "
                              f"{proc.returncode} and printed no result:\n{tail}") from None
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise GenerationError("introspection", "the introspection child printed an unexpected document")
    return document


def generate(options: GenerateOptions) -> dict[str, str]:
    """File name -> text for every generated module. The targets are imported only in a child."""
    targets = tuple(parse_target(t) for t in options.targets)
    if not targets:
        raise UsageError("no targets: name at least one 'package.module:Class' (or set targets in [tool.extradite-gen])")
    try:
        find_typeshed()
    except StubsMissing as exc:
        raise UsageError(str(exc)) from None
    documents = _introspect_by_environment(targets, options)
    errors = [r for document in documents for r in document["results"] if "error" in r]
    if errors:
        lines = []
        for r in errors:
            label = _TARGET_ERROR_LABELS.get(r["error"]["kind"], r["error"]["kind"])
            lines.append(f"{r['target']}: {label}: {r['error']['message']}")
        raise GenerationError("target", "\n".join(lines))
    # Targets introspected by one Python version are built together (their proxies may name
    # each other); another version's targets form modules of their own.
    by_python: dict[tuple[tuple[int, ...], str], list[Any]] = {}
    for document in documents:
        by_python.setdefault((tuple(document["python"]), document["platform"]), []).extend(document["results"])
    files: dict[str, str] = {}
    for (python, platform), results in by_python.items():
        results.sort(key=lambda r: targets.index(r["target"]) if r.get("target") in targets else len(targets))
        policies = options.policies
        if len(by_python) > 1:
            names = {r["qualname"].replace(".", "_") for r in results}
            policies = {cls: p for cls, p in options.policies.items() if cls in names}
        models = _build_with_closure(results, python, platform, BuildOptions(policies=policies),
                                     options, targets)
        for model in models:
            for name, text in render_module(model).items():
                if name in files:
                    raise UsageError(f"the targets written to {name} are introspected with different Python "
                                     "versions; give the targets of one module the same python")
                files[name] = text
    if len(by_python) > 1:
        unknown = set(options.policies) - {r["qualname"].replace(".", "_")
                                           for results in by_python.values() for r in results}
        if unknown:
            raise GenerationError("bad_policy", f"--policy names class(es) {', '.join(sorted(unknown))}, "
                                  "which are not targets")
    return files


def _build_with_closure(results: list[Any], python: tuple[int, ...], platform: str, build: BuildOptions,
                        options: GenerateOptions, targets: tuple[str, ...]) -> list[Any]:
    """The models of `results`, plus the protected classes their signatures name (else they are Any),
    introspected in the environment of the group's first target."""
    models = build_modules(results, python=python, platform=platform, options=build)
    environment = options.environment_of(results[0]["target"]) if results else Environment(None, None)
    known = set(targets)
    for _ in range(CLOSURE_ROUNDS if options.closure else 0):
        room = max(0, CLOSURE_LIMIT - len(known) + len(targets))
        wanted = sorted({t for m in models for t in m.unresolved} - known)[:room]
        if not wanted:
            break
        known.update(wanted)
        # A class only the stubs declare cannot be introspected: it stays Any, as before.
        found = [r for r in introspect(wanted, environment.python, environment.requirements)["results"]
                 if "error" not in r and r.get("kind") != "functions"]  # classes only: a function is no type
        if not found:
            break
        results = results + found
        models = build_modules(results, python=python, platform=platform, options=build)
    return models


def _introspect_by_environment(targets: tuple[str, ...], options: GenerateOptions) -> list[dict[str, Any]]:
    """One introspection child per environment the targets need (usually one for all)."""
    groups: dict[Environment, list[str]] = {}
    for target in targets:
        groups.setdefault(options.environment_of(target), []).append(target)
    return [introspect(group, environment.python, environment.requirements)
            for environment, group in groups.items()]


def _load_pyproject(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    section = data.get("tool", {}).get("extradite-gen", {})
    if not isinstance(section, dict):
        raise UsageError(f"{path}: [tool.extradite-gen] must be a table")
    allowed = {"targets", "output", "policy", "python", "requirements", "environments"}
    unknown = set(section) - allowed
    if unknown:
        raise UsageError(f"{path}: unknown key(s) in [tool.extradite-gen]: {', '.join(sorted(unknown))} "
                         f"(allowed: {', '.join(sorted(allowed))})")
    for key in ("targets", "policy", "requirements"):
        value = section.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{path}: [tool.extradite-gen] {key} must be a list of strings")
    for key in ("output", "python"):
        if key in section and not isinstance(section[key], str):
            raise UsageError(f"{path}: [tool.extradite-gen] {key} must be a string")
    environments = section.get("environments", {})
    if not isinstance(environments, dict):
        raise UsageError(f'{path}: [tool.extradite-gen] environments must be a table of targets, e.g. '
                         '[tool.extradite-gen.environments."pkg.mod:Cls"] with python and/or requirements')
    for target, entry in environments.items():
        where = f'{path}: [tool.extradite-gen.environments."{target}"]'
        if target not in section.get("targets", []):
            raise UsageError(f"{where} names a target that is not in targets; add it there or remove the table")
        if not isinstance(entry, dict):
            raise UsageError(f"{where} must be a table (with python and/or requirements)")
        unknown = set(entry) - {"python", "requirements"}
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: python, requirements)")
        if "python" in entry and not isinstance(entry["python"], str):
            raise UsageError(f"{where} python must be a string")
        requirements = entry.get("requirements", [])
        if not isinstance(requirements, list) or not all(isinstance(v, str) for v in requirements):
            raise UsageError(f"{where} requirements must be a list of strings")
    return section


_EPILOG = """\
example:
  extradite-gen extradite.demo.counter:Counter decimal:Context -o generated/
  extradite-gen textwrap colorsys:hls_to_rgb -o generated/   # a module proxy; one function
  extradite-gen --check            # targets and output from [tool.extradite-gen]

pyproject.toml (used when no targets are given; paths relative to it):
  [tool.extradite-gen]
  targets = ["extradite.demo.counter:Counter"]
  output = "generated"
  policy = ["Counter.snapshot=reference"]
  python = "3.13"                        # optional, for every target (a path or a version)
  requirements = ["packaging==24.0"]     # optional: introspect in the environment requirements= builds
  [tool.extradite-gen.environments."pkg.mod:Cls"]   # optional, per target (wins over the two above)
  requirements = ["six==1.16.0"]

exit codes:
""" + "".join(f"  {code}  {text}\n" for code, text in EXIT_CODES.items())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extradite-gen",
        description="Generate typed proxy modules (.py + .pyi) for classes that must not be imported here. "
                    "Each target is imported only in a throwaway child interpreter.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="a class or function as 'package.module:Name', or a whole module as 'package.module'")
    parser.add_argument("-o", "--output", metavar="DIR", help="directory for the generated modules")
    parser.add_argument("--policy", action="append", default=[], metavar="Class.method=value|reference",
                        help="default transport policy of one method's results (repeatable)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and print a unified diff when DIR is stale")
    parser.add_argument("--no-closure", dest="closure", action="store_false",
                        help="generate only the named classes; protected classes their signatures reference are Any")
    parser.add_argument("--python", metavar="PATH|VERSION",
                        help="introspect with this interpreter: a path, a command or a version such as 3.13")
    parser.add_argument("--requirements", action="append", metavar="REQ",
                        help="introspect in the environment extradite(requirements=[...]) runs the target in, "
                             "holding these requirements (repeatable: one requirement each)")
    parser.add_argument("--config", metavar="PYPROJECT", default="pyproject.toml",
                        help="pyproject.toml to read [tool.extradite-gen] from when no targets are given")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        targets = list(args.targets)
        output = args.output
        policies = list(args.policy)
        python = args.python
        requirements: list[str] | None = args.requirements
        environments: dict[str, Environment] = {}
        if not targets:
            config_path = Path(args.config)
            section = _load_pyproject(config_path)
            base = config_path.resolve().parent
            targets = list(section.get("targets", []))
            if output is None and "output" in section:
                output = str(base / section["output"])
            policies = list(section.get("policy", [])) + policies
            if python is None and "python" in section:
                python = section["python"]
            if requirements is None and "requirements" in section:
                requirements = list(section["requirements"])
            for target, entry in section.get("environments", {}).items():
                own = entry.get("requirements", requirements)
                environments[target] = Environment(entry.get("python", python),
                                                   None if own is None else tuple(own))
            if not targets:
                raise UsageError(f"no targets given and none in [tool.extradite-gen] of {config_path}")
        if output is None:
            raise UsageError("no output directory: pass -o DIR (or set output in [tool.extradite-gen])")
        options = GenerateOptions(targets=tuple(targets), policies=parse_policies(policies), python=python,
                                  closure=args.closure,
                                  requirements=None if requirements is None else tuple(requirements),
                                  environments=environments)
        files = generate(options)
        directory = Path(output)
        if args.check:
            diff = stale_diff(directory, files)
            if diff:
                sys.stdout.write(diff)
                note = stub_change(directory, files)
                if note:
                    print(f"extradite-gen: note: {note}", file=sys.stderr)
                print(f"extradite-gen: {directory} is stale; regenerate with: extradite-gen "
                      f"{' '.join(targets)} -o {output}", file=sys.stderr)
                return EXIT_STALE
            return EXIT_OK
        written = write_files(directory, files)
        for name in written:
            print(f"wrote {directory / name}", file=sys.stderr)
        return EXIT_OK
    except UsageError as exc:
        print(f"extradite-gen: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GenerationError as exc:
        print(f"extradite-gen: error: {exc}", file=sys.stderr)
        return {"target": EXIT_TARGET, "bad_policy": EXIT_USAGE,
                "environment": EXIT_ENVIRONMENT}.get(exc.kind, EXIT_INTROSPECTION)
    except OutputError as exc:
        print(f"extradite-gen: error: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
