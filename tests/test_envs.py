"""`requirements=`: environments built once, cached, and run by the child (extradite._envs).

Real environments built by uv and by pip from the package index (a local mirror
here; tests that need it are marked `index` and skip, saying why, when it cannot
be reached), real children in them, a 3.13 child of this parent, two processes
building one environment at once, and `extradite-env`. Every test uses a cache
directory of this test run (EXTRADITE_ENV_DIR), never the user's. Whether a build
ran is read from the cache's build log (one line per installer run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import extradite
from extradite import (
    ExtraditeEnvironmentError,
    ExtraditeError,
    ExtraditeSessionConflictError,
    close_extradite_session,
    extradite as make_proxy,
    prewarm_extradite_session,
)
from extradite import _envs
from extradite._api import session_of
from extradite._interpreter import resolve_python

from conftest import SRC, TESTS, find_python, require_python

ENVIRONMENT = "targets.environment:Environment"
OLD, NEW = "packaging==23.2", "packaging==24.0"  # this process has a third version of packaging


@pytest.fixture(scope="module", autouse=True)
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The environment cache of this test run (shared by the tests of this module)."""
    where = tmp_path_factory.mktemp("envs")
    before = os.environ.get("EXTRADITE_ENV_DIR")
    os.environ["EXTRADITE_ENV_DIR"] = str(where)
    yield where
    if before is None:
        del os.environ["EXTRADITE_ENV_DIR"]
    else:
        os.environ["EXTRADITE_ENV_DIR"] = before


@pytest.fixture(scope="session")
def _index_reachable(tmp_path_factory: pytest.TempPathFactory) -> str:
    """'' when the package index answers, else why not (checked once per test run)."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                           str(tmp_path_factory.mktemp("index")), NEW], capture_output=True, text=True, timeout=300)
    if done.returncode == 0:
        return ""
    lines = [line for line in done.stderr.splitlines() if line.strip() and "is ignored" not in line]
    return " / ".join(lines[-2:]) or f"pip exited with status {done.returncode}"


@pytest.fixture
def index(_index_reachable: str) -> None:
    if _index_reachable:
        pytest.skip(f"the package index cannot be reached (pip download {NEW} failed: {_index_reachable})")


def builds(where: Path | None = None) -> list[dict[str, Any]]:
    """The installer runs recorded in the cache's build log."""
    log = (where or Path(os.environ["EXTRADITE_ENV_DIR"])) / _envs.BUILD_LOG
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def leftovers(where: Path) -> list[str]:
    return sorted(name for name in os.listdir(where) if name.startswith((".build-", ".trash-")))


# -- the child's own packages ---------------------------------------------------------------------

@pytest.mark.index
def test_two_versions_of_one_package_side_by_side(index: None, env_dir: Path) -> None:
    import packaging

    assert packaging.__version__ not in ("23.2", "24.0")
    Old = make_proxy(ENVIRONMENT, requirements=[OLD])
    New = make_proxy(ENVIRONMENT, requirements=[NEW])
    try:
        old, new = Old(), New()  # both children run at once
        assert old.module_version("packaging") == "23.2"
        assert new.module_version("packaging") == "24.0"
        for env in (old, new):
            assert Path(env.prefix()).parent == env_dir  # the cached environment is the child's sys.prefix
            assert env.module_file("extradite") == extradite.__file__  # the runtime this process runs
            with pytest.raises(ImportError):  # numpy lies in this process's site-packages only
                env.module_file("numpy")
        assert old.prefix() != new.prefix()
    finally:
        Old.close()
        New.close()


def test_empty_requirements_give_a_clean_environment(env_dir: Path) -> None:
    """requirements=[]: an environment of nothing; none of this process's packages (no index needed)."""
    Env = make_proxy(ENVIRONMENT, requirements=[])
    try:
        env = Env()
        with pytest.raises(ImportError):
            env.module_file("packaging")  # installed here, not there
        assert env.module_file("extradite") == extradite.__file__
        assert Path(env.prefix()).parent == env_dir
        assert env.version() == tuple(sys.version_info[:2])
    finally:
        Env.close()


@pytest.mark.index
def test_a_second_extradite_builds_nothing(index: None, env_dir: Path) -> None:
    First = make_proxy(ENVIRONMENT, requirements=[OLD, "six"])
    First.close()
    made = builds()
    assert [b["requirements"] for b in made].count(sorted([OLD, "six"])) == 1
    # The same requirements in another order and spelling: the same environment, no installer run.
    Second = make_proxy(ENVIRONMENT, requirements=["Six", " packaging == 23.2 ", "six"])
    try:
        assert builds() == made
        env = Second()
        assert env.module_version("packaging") == "23.2"
        [key] = [b["key"] for b in made if b["requirements"] == sorted([OLD, "six"])]
        assert session_of(Second).process.popen.args[0] == str(env_dir / key / "bin" / "python")
    finally:
        Second.close()


@pytest.mark.index
def test_a_3_13_environment_from_this_parent(index: None, env_dir: Path) -> None:
    python = require_python("3.13")
    Env = make_proxy(ENVIRONMENT, requirements=[NEW], python="3.13")
    try:
        env = Env()
        assert env.version() == (3, 13)
        assert env.module_version("packaging") == "24.0"
        assert Path(env.prefix()).parent == env_dir
        assert env.module_file("extradite") == extradite.__file__
    finally:
        Env.close()
    built = [b for b in builds() if b["requirements"] == [NEW] and b["version"].startswith("3.13.")]
    assert len(built) == 1 and built[0]["python"] == os.path.realpath(python)
    # The interpreter's path names the same environment as its version did.
    count = len(builds())
    Again = make_proxy(ENVIRONMENT, requirements=[NEW], python=python)
    Again.close()
    assert len(builds()) == count


def test_a_version_names_an_installed_interpreter() -> None:
    python = require_python("3.13")
    assert os.path.realpath(resolve_python("3.13") or "") == os.path.realpath(python)
    with pytest.raises(ValueError) as caught:
        resolve_python("3.99")
    message = str(caught.value)
    assert "python='3.99': no Python 3.99 found; searched python3.99 on PATH" in message
    assert "versions/3.99*/bin/python" in message and "pyenv install 3.99" in message


# -- building ----------------------------------------------------------------------------------

@pytest.mark.index
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_an_unsatisfiable_requirement_leaves_nothing(index: None, installer: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if installer == "uv" and _envs.installer()[0] != "uv":
        pytest.skip("uv is not installed (pip install 'extradite[envs]')")
    monkeypatch.setenv("EXTRADITE_ENV_DIR", str(tmp_path))
    monkeypatch.setenv("EXTRADITE_ENV_INSTALLER", installer)
    with pytest.raises(ExtraditeEnvironmentError) as caught:
        make_proxy(ENVIRONMENT, requirements=["packaging==999.0"])
    error = caught.value
    assert isinstance(error, ExtraditeError)
    assert f"{installer} failed to install" in str(error) and "requirements=['packaging==999.0']" in str(error)
    assert "999" in error.installer_output and error.installer_output.splitlines()[-1] in str(error)
    assert not [name for name in os.listdir(tmp_path) if not name.endswith(".lock")]  # no env, no build dir
    assert builds(tmp_path) == []


@pytest.mark.index
def test_pip_builds_when_uv_is_absent(index: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTRADITE_ENV_DIR", str(tmp_path))
    monkeypatch.setenv("EXTRADITE_ENV_INSTALLER", "pip")
    Env = make_proxy(ENVIRONMENT, requirements=[OLD])
    try:
        assert Env().module_version("packaging") == "23.2"
    finally:
        Env.close()
    [built] = builds(tmp_path)
    assert built["installer"] == "pip" and built["requirements"] == [OLD]
    # Scripts name the environment's final place, not the directory it was built in.
    activate = (tmp_path / built["key"] / "bin" / "activate").read_text()
    assert str(tmp_path / built["key"]) in activate and ".build-" not in activate


_BUILDER = """
import os, sys, time
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.001)
from extradite._envs import environment_python
print(environment_python(["six==1.16.0", "packaging==24.0"], None))
"""


@pytest.mark.index
def test_two_processes_building_one_environment_build_it_once(index: None, tmp_path: Path) -> None:
    go = tmp_path / "go"
    cache = tmp_path / "cache"
    env = dict(os.environ, EXTRADITE_ENV_DIR=str(cache), PYTHONPATH=str(SRC))
    procs = [subprocess.Popen([sys.executable, "-c", _BUILDER, str(go)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.5)  # both are up and waiting (a late one finds the environment built: still one build)
    go.touch()
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    paths = {out.strip() for out, _ in outputs}
    [built] = builds(cache)
    assert paths == {str(cache / built["key"] / "bin" / "python")}
    assert leftovers(cache) == []


def test_threads_building_one_environment_build_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.setenv("EXTRADITE_ENV_DIR", str(tmp_path))
    barrier = threading.Barrier(4)
    found: list[str] = []

    def build() -> None:
        barrier.wait()
        found.append(_envs.environment_python([], None))

    threads = [threading.Thread(target=build) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    [built] = builds(tmp_path)
    assert found == [str(tmp_path / built["key"] / "bin" / "python")] * 4


def test_bad_requirements_are_refused_before_anything_starts(env_dir: Path) -> None:
    before = builds()
    with pytest.raises(TypeError, match=r"requirements must be a list of requirement strings \(e.g. "):
        make_proxy(ENVIRONMENT, requirements=OLD)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must hold requirement strings, not int"):
        make_proxy(ENVIRONMENT, requirements=[1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="empty requirement"):
        make_proxy(ENVIRONMENT, requirements=[" "])
    with pytest.raises(ValueError, match="is an installer option, not a requirement"):
        make_proxy(ENVIRONMENT, requirements=["--index-url=http://elsewhere"])
    with pytest.raises(ValueError, match="spans lines"):
        make_proxy(ENVIRONMENT, requirements=["six\npackaging"])
    assert builds() == before


def test_requirements_are_normalised() -> None:
    assert _envs.normalise_requirements(["Six", "six", "packaging == 23.2", "Foo_Bar[B, a] >= 1 ; python_version  < '4'"]) == (
        "foo-bar[a,b]>=1; python_version < '4'", "packaging==23.2", "six")


# -- sessions ----------------------------------------------------------------------------------

@pytest.mark.index
def test_requirements_are_part_of_a_shared_sessions_identity(index: None) -> None:
    assert prewarm_extradite_session("xd-envs", requirements=[OLD]) is True
    try:
        Env = make_proxy(ENVIRONMENT, share_key="xd-envs", requirements=[" packaging==23.2"])
        try:
            assert Env().module_version("packaging") == "23.2"
            assert prewarm_extradite_session("xd-envs", requirements=[OLD]) is False
            with pytest.raises(ExtraditeSessionConflictError,
                               match=r"it has requirements=\['packaging==23.2'\], this call asks for \['packaging==24.0'\]"):
                make_proxy(ENVIRONMENT, share_key="xd-envs", requirements=[NEW])
            with pytest.raises(ExtraditeSessionConflictError, match=r"this call asks for None"):
                make_proxy(ENVIRONMENT, share_key="xd-envs")
        finally:
            Env.close()
    finally:
        close_extradite_session("xd-envs")


@pytest.mark.index
def test_a_generated_proxy_binds_with_requirements(index: None, placeholder_proxy: Any) -> None:
    Placeholder = placeholder_proxy(ENVIRONMENT)
    with pytest.warns(extradite.ExtraditeStaleProxyWarning):
        Bound = Placeholder.extradite(requirements=[NEW])
    try:
        assert Bound().module_version("packaging") == "24.0"
    finally:
        Bound.close()


_SUBINTERPRETER = r'''
import _interpreters, sys
code = f"""
import sys
sys.path[:0] = {sys.argv[1:]!r}
from extradite import extradite
Env = extradite("targets.environment:Environment", requirements=["packaging==24.0"])
try:
    print(Env().module_version("packaging"), Env().version())
finally:
    Env.close()
"""
iid = _interpreters.create(_interpreters.new_config("isolated"))
try:
    info = _interpreters.exec(iid, code)
    if info is not None:
        print(info.formatted)
        sys.exit(1)
finally:
    _interpreters.destroy(iid)
'''


@pytest.mark.index
def test_a_subinterpreter_builds_and_uses_an_environment(index: None, tmp_path: Path) -> None:
    python = require_python("3.13")
    done = subprocess.run([python, "-c", _SUBINTERPRETER, str(SRC), str(TESTS)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, EXTRADITE_ENV_DIR=str(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "24.0 (3, 13)", done.stdout + done.stderr
    [built] = builds(tmp_path)  # built from inside the subinterpreter (a fresh cache)
    assert built["requirements"] == [NEW] and built["version"].startswith("3.13.")


# -- the generator ---------------------------------------------------------------------------------

def _gen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]))
    return subprocess.run([sys.executable, "-m", "extradite.gen", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.index
def test_the_generator_introspects_in_the_targets_environment(index: None, tmp_path: Path) -> None:
    """targets.needs_six imports six, which only the environment has."""
    target = "targets.needs_six:SixUser"
    missing = _gen(target, "-o", str(tmp_path / "none"), cwd=tmp_path)
    assert missing.returncode == 3 and "No module named 'six'" in missing.stderr
    done = _gen(target, "-o", str(tmp_path / "out"), "--requirements", "six==1.16.0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "def six_version(self) -> str" in (tmp_path / "out" / "targets_needs_six_xdproxy.pyi").read_text()
    failed = _gen(target, "-o", str(tmp_path / "bad"), "--requirements", "six==999", cwd=tmp_path)
    assert failed.returncode == 6 and "six==999" in failed.stderr and "failed to install" in failed.stderr
    # The same in pyproject.toml: one target in its own environment, the others in this one.
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [tool.extradite-gen]
        targets = ["{target}", "extradite.demo.counter:Counter"]
        output = "proxies"
        [tool.extradite-gen.environments."{target}"]
        requirements = ["six==1.16.0"]
    """))
    config = _gen(cwd=tmp_path)
    assert config.returncode == 0, config.stderr
    assert {p.name for p in (tmp_path / "proxies").iterdir()} >= {
        "targets_needs_six_xdproxy.py", "extradite_demo_counter_xdproxy.py"}
    assert _gen("--check", cwd=tmp_path).returncode == 0
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""\
        [tool.extradite-gen]
        targets = ["extradite.demo.counter:Counter"]
        output = "proxies"
        [tool.extradite-gen.environments."pkg.mod:Other"]
        requirements = ["six"]
    """))
    bad = _gen(cwd=tmp_path)
    assert bad.returncode == 2 and "names a target that is not in targets" in bad.stderr


# -- extradite-env --------------------------------------------------------------------------------

def _env_cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EXTRADITE_ENV_DIR=str(cache), PYTHONPATH=str(SRC))
    return subprocess.run([sys.executable, "-m", "extradite.envs", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_extradite_env_lists_locates_and_prunes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTRADITE_ENV_DIR", str(tmp_path))
    mine = _envs.environment_python([], None)  # empty environments: no index needed
    other = find_python("3.13") or find_python("3.12")
    if other is None:
        pytest.skip("needs Python 3.12 or 3.13 for a second environment")
    theirs = _envs.environment_python([], other)
    keys = {Path(mine).parent.parent.name, Path(theirs).parent.parent.name}

    assert _env_cli("path", cache=tmp_path).stdout.strip() == str(tmp_path)
    listed = json.loads(_env_cli("list", "--json", cache=tmp_path).stdout)
    assert {env["key"] for env in listed} == keys
    for env in listed:
        assert env["requirements"] == [] and env["size"] > 0 and env["path"] == str(tmp_path / env["key"])
        assert env["version"].split(".")[:2] in (["3", "11"], ["3", "12"], ["3", "13"])
    table = _env_cli("list", cache=tmp_path).stdout
    assert "2 environment(s)" in table and all(key in table for key in keys)
    assert f"(from {os.path.realpath(other)})" in table
    old_key = Path(theirs).parent.parent.name
    located = _env_cli("path", old_key[:6], cache=tmp_path)
    assert located.stdout.strip() == str(tmp_path / old_key)
    unknown = _env_cli("path", "zzzz", cache=tmp_path)
    assert unknown.returncode == 2 and "no cached environment has a key starting with 'zzzz'" in unknown.stderr

    nothing = _env_cli("prune", cache=tmp_path)
    assert nothing.returncode == 2 and "say what to prune" in nothing.stderr
    marker = tmp_path / old_key / _envs.MARKER
    three_days_ago = time.time() - 3 * 86400
    os.utime(marker, (three_days_ago, three_days_ago))
    aged = _env_cli("prune", "--older-than", "2", cache=tmp_path)
    assert aged.returncode == 0 and f"removed {old_key}" in aged.stdout and "1 environment(s) removed" in aged.stdout
    assert not (tmp_path / old_key).exists() and Path(mine).parent.parent.exists()

    (tmp_path / ".build-0123456789abcdef-dead").mkdir()  # a builder that died
    assert "unfinished build" in _env_cli("list", cache=tmp_path).stdout
    cleared = _env_cli("prune", "--all", cache=tmp_path)
    assert cleared.returncode == 0 and "1 environment(s) removed" in cleared.stdout
    assert json.loads(_env_cli("list", "--json", cache=tmp_path).stdout) == []
    assert leftovers(tmp_path) == []
    # A pruned environment is rebuilt when next asked for.
    assert _envs.environment_python([], None) == mine and Path(mine).exists()

