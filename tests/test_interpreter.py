"""`python=` runs the interpreter and environment it names, and hands it only the program's modules.

Real virtual environments (made by `python -m venv`: bin/python is a symlink to
this interpreter's binary) with different versions of one package, a 3.13 child
of this parent, a non-editable install of extradite, and every kind of bad value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import extradite
from extradite import ExtraditeRemoteError, extradite as make_proxy, prewarm_extradite_session
from extradite import _interpreter
from extradite._api import close_extradite_session, session_of
from extradite._interpreter import handover_paths, resolve_python

from conftest import SRC, TESTS, require_python

ENVIRONMENT = "targets.environment:Environment"
VERSIONS = ("23.2", "24.0")  # of `packaging`, one per venv; this process has another


def _pip_into(python: Path, *requirements: str) -> None:
    """Install into the environment of `python` with this process's pip; skip when that fails."""
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           *requirements], capture_output=True, text=True, timeout=300)
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if "is ignored" not in line]
        pytest.skip(f"pip could not install {' '.join(requirements)} (is the package index reachable?): "
                    + " / ".join(lines[-3:]))


def _make_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    return where / "bin" / "python"


@pytest.fixture(scope="session")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """packaging version -> bin/python of a venv holding that version (built once per test run)."""
    root = tmp_path_factory.mktemp("venvs")
    made = {}
    for version in VERSIONS:
        python = _make_venv(root / f"packaging-{version}")
        _pip_into(python, f"packaging=={version}")
        made[version] = python
    return made


def _site_packages() -> str:
    return sysconfig.get_paths()["purelib"]


# -- environments, not binaries ---------------------------------------------------------------

def test_a_venv_python_is_another_environment_though_it_is_this_binary(venvs: dict[str, Path]) -> None:
    python = venvs[VERSIONS[0]]
    assert python.is_symlink() and os.path.realpath(python) == os.path.realpath(sys.executable)
    assert resolve_python(python) == str(python)
    assert resolve_python(str(python)) == str(python)
    assert resolve_python(sys.executable) is None
    assert resolve_python(Path(sys.executable)) is None


def test_each_venv_child_sees_its_own_packages_and_none_of_ours(venvs: dict[str, Path]) -> None:
    import packaging

    assert packaging.__version__ not in VERSIONS  # this process has a third version
    classes = [make_proxy(ENVIRONMENT, python=venvs[version]) for version in VERSIONS]
    try:
        envs = [cls() for cls in classes]  # both children run at once
        for version, env in zip(VERSIONS, envs):
            assert env.module_version("packaging") == version
            assert os.path.realpath(env.prefix()) == os.path.realpath(venvs[version].parent.parent)
            assert env.module_file("extradite") == extradite.__file__  # the runtime this process runs
            with pytest.raises(ImportError):  # numpy lies in this process's site-packages only
                env.module_file("numpy")
            assert not [p for p in env.path() if p.startswith(_site_packages())]
    finally:
        for cls in classes:
            cls.close()


def test_python_naming_this_environment_is_the_default_session(venvs: dict[str, Path]) -> None:
    """sys.executable is the same session identity as None; a venv path conflicts with it."""
    from extradite import ExtraditeSessionConflictError

    cls = make_proxy("targets.counter:Counter", share_key="xd-python-same")
    try:
        same = make_proxy("targets.counter:Counter", share_key="xd-python-same", python=sys.executable)
        try:
            assert session_of(same) is session_of(cls)
            process = session_of(cls).process
            # the fast start of this environment: forked from its template, or `python -S`
            assert process.forked or process.popen.args[1] == "-S"
        finally:
            same.close()
        with pytest.raises(ExtraditeSessionConflictError, match="python="):
            make_proxy("targets.counter:Counter", share_key="xd-python-same", python=venvs[VERSIONS[0]])
    finally:
        cls.close()


def test_a_venv_of_this_binary_gets_the_shipped_runtime_code(venvs: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Its bytecode is ours, so a child that would compile the runtime runs this process's code."""
    from extradite import _bootcode

    monkeypatch.setattr(_bootcode, "_blob", [])
    monkeypatch.setattr(_bootcode, "_pyc_is_valid", lambda source: False)  # as with no bytecode cache
    cls = make_proxy(ENVIRONMENT, python=venvs[VERSIONS[0]])
    try:
        env = cls()
        assert env.loader_of("extradite._session") == "_XdFinder"
        assert env.module_version("packaging") == VERSIONS[0]
    finally:
        cls.close()


# -- another interpreter --------------------------------------------------------------------

def test_a_3_13_child_gets_the_program_modules_and_nothing_of_our_installation() -> None:
    python = require_python("3.13")
    import numpy  # noqa: F401  (installed here, never in the child's Python)

    assert "graphlib" not in sys.modules
    cls = make_proxy(ENVIRONMENT, python=python)
    try:
        env = cls()
        assert env.version() == (3, 13)
        with pytest.raises(ImportError) as caught:
            env.module_file("numpy")
        assert isinstance(caught.value, ExtraditeRemoteError)
        assert env.module_file("extradite") == extradite.__file__
        assert env.loader_of("extradite._session") == "SourceFileLoader"  # our bytecode is not its own
        ours = (sysconfig.get_paths()["stdlib"], _site_packages())
        path = env.path()
        assert str(TESTS) in path  # the program's own modules (the targets live there)
        assert not [p for p in path if p.startswith(ours)], path
    finally:
        cls.close()
    Sorter = make_proxy("graphlib:TopologicalSorter", python=python)  # a stdlib target of the child's own
    try:
        assert list(Sorter({"a": ["b"]}).static_order()) == ["b", "a"]
    finally:
        Sorter.close()


def test_pythonpath_reaches_another_interpreter_filtered_by_the_same_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = require_python("3.13")
    mine, installed = tmp_path / "mine", tmp_path / "lib" / "site-packages"
    for directory, module in ((mine, "xd_mine"), (installed, "xd_installed")):
        directory.mkdir(parents=True)
        (directory / f"{module}.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(installed), str(mine)]))
    cls = make_proxy(ENVIRONMENT, python=python)
    try:
        env = cls()
        assert env.environ("PYTHONPATH") == str(mine)  # what the child and its own children read
        assert env.module_file("xd_mine") == str(mine / "xd_mine.py")
        with pytest.raises(ImportError):
            env.module_file("xd_installed")
    finally:
        cls.close()


def test_handover_keeps_the_program_and_drops_stdlib_and_site_packages() -> None:
    stdlib = sysconfig.get_paths()["stdlib"]
    zipped = os.path.join(sys.base_prefix, "lib", f"python{sys.version_info[0]}{sys.version_info[1]}.zip")
    given = [
        "", str(TESTS), str(SRC), "/opt/app/lib", str(TESTS),             # kept (once each)
        stdlib, os.path.join(stdlib, "lib-dynload"), zipped,            # this Python's stdlib
        _site_packages(), os.path.join(_site_packages(), "some.egg"),   # its site-packages
        "/usr/lib/python3/dist-packages", "/other/venv/lib/python3.9/site-packages",  # anyone's
    ]
    assert handover_paths(given) == ["", str(TESTS), str(SRC), "/opt/app/lib"]


@pytest.mark.slow
def test_non_editable_install_hands_a_3_13_child_only_extradite(tmp_path: Path) -> None:
    """extradite installed in a venv's site-packages: the child imports it and nothing beside it."""
    child_python = require_python("3.13")
    python = _make_venv(tmp_path / "venv")
    _pip_into(python, str(SRC.parent))
    site = next((tmp_path / "venv" / "lib").glob("python3.*/site-packages"))
    (site / "xd_parent_only.py").write_text("MARK = 1\n")  # beside extradite: must stay invisible
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        import extradite, xd_parent_only
        from extradite import extradite as make_proxy
        out = {{"here": extradite.__file__}}
        Env = make_proxy({ENVIRONMENT!r}, python={child_python!r})
        env = Env()
        out["child"] = env.module_file("extradite")
        out["version"] = env.version()
        try:
            env.module_file("xd_parent_only")
        except ImportError as exc:
            out["leak"] = "ImportError: " + str(exc)
        Env.close()
        print(json.dumps(out))
    """))
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    done = subprocess.run([str(python), str(script)], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["here"].startswith(str(site)) and out["child"] == out["here"]
    assert out["version"] == [3, 13]
    assert out["leak"] == "ImportError: No module named 'xd_parent_only'"


# -- bad values -------------------------------------------------------------------------------

def _file(tmp_path: Path, name: str, text: str, mode: int) -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


BAD: dict[str, tuple[Callable[[Path], Any], type[Exception], str]] = {
    "not a path": (lambda tmp: 42, TypeError, r"python must be the path of a Python interpreter .*not int"),
    "bytes": (lambda tmp: os.fsencode(sys.executable), TypeError, r"python must be .*not bytes"),
    "empty": (lambda tmp: "", ValueError, r"python='' is empty"),
    "no command": (lambda tmp: "xd-no-such-python", ValueError, r"python='xd-no-such-python': no command"),
    "missing": (lambda tmp: tmp / "missing", ValueError, r"python=.*missing.*: no such file"),
    "directory": (lambda tmp: tmp, ValueError, r"python=.* is a directory; name the interpreter inside it"),
    "not executable": (lambda tmp: _file(tmp, "text", "hello\n", 0o644), ValueError, r"python=.* is not executable"),
    "no #!": (lambda tmp: _file(tmp, "text", "hello\n", 0o755), ValueError,
              r"python=.* could not be run \(Exec format error\); name a Python 3.11\+ interpreter"),
    "not a python": (lambda tmp: "true", ValueError,
                     r"python='true' is not a Python interpreter: asked for its version, it printed nothing"),
    "a failing program": (lambda tmp: _file(tmp, "fails", "#!/bin/sh\necho nope >&2; exit 3\n", 0o755), ValueError,
                          r"is not a Python interpreter: .*exited with status 3, saying 'nope'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_python_fails_clearly_before_any_child(case: str, tmp_path: Path) -> None:
    make, error, message = BAD[case]
    with pytest.raises(error, match=message):
        make_proxy("targets.counter:Counter", python=make(tmp_path))


def test_python_older_than_3_11_is_refused() -> None:
    python = require_python("3.10")
    with pytest.raises(ValueError, match=r"python=.* is Python 3\.10; the child needs Python 3\.11 or newer"):
        make_proxy("targets.counter:Counter", python=python)


@pytest.mark.parametrize("entry", ["extradite", "prewarm", "generated"])
def test_every_entry_point_checks_python(entry: str, tmp_path: Path,
                                         placeholder_proxy: Callable[..., Any]) -> None:
    bad = tmp_path / "missing"
    with pytest.raises(ValueError, match="no such file"):
        if entry == "extradite":
            make_proxy("targets.counter:Counter", python=bad)
        elif entry == "prewarm":
            prewarm_extradite_session("xd-python-bad", python=bad)
        else:
            placeholder_proxy("targets.counter:Counter").extradite(python=bad)
    assert not close_extradite_session("xd-python-bad")


def test_an_interpreters_version_is_asked_once_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeated calls reuse the answer; a changed file is asked again."""
    python = require_python("3.13")
    wrapper = _file(tmp_path, "python", f'#!/bin/sh\nexec {python} "$@"\n', 0o755)
    asked = []
    probe = _interpreter._probe

    def counting(path: str, value: object) -> tuple[int, int, int]:
        asked.append(path)
        return probe(path, value)

    monkeypatch.setattr(_interpreter, "_probe", counting)
    assert resolve_python(wrapper) == str(wrapper)
    cls = make_proxy(ENVIRONMENT, python=wrapper)  # the child runs through the wrapper
    try:
        assert cls().version() == (3, 13)
    finally:
        cls.close()
    assert asked == [str(wrapper)]
    info = wrapper.stat()
    os.utime(wrapper, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    assert resolve_python(wrapper) == str(wrapper)
    assert asked == [str(wrapper)] * 2


def test_a_path_object_on_sys_path_does_not_break_a_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports skip entries that are not str; so do the children, of this environment and of another."""
    monkeypatch.setattr(sys, "path", [*sys.path, Path("/nonexistent")])
    for version in (None, "3.13"):
        cls = make_proxy(ENVIRONMENT, python=version and require_python(version))
        try:
            assert str(TESTS) in cls().path()
        finally:
            cls.close()
