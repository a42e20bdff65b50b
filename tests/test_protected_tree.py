"""The protected tree is the target module and its submodules; `protect=` widens it.

A user's own package is written to a temporary directory (`myapp/`, `fixturespkg/`) and
used as a user would: its parent package and siblings imported in this process, the
target module only in the child. Every rule (the refusal at start, the child's refusal
to send values, the parent's unpickler, the check before each call and the generator)
follows the one definition in `extradite._targets`; the last tests check they agree.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extradite import (
    ExtraditeModuleLeakError,
    ExtraditeSessionConflictError,
    ExtraditeStaleProxyWarning,
    UnsupportedInteractionError,
    close_extradite_session,
    extradite,
    prewarm_extradite_session,
)
from extradite import _targets
from extradite._api import session_of
from extradite._codec import Codec
from extradite._shm import ArenaMaps
from extradite._transport import Frame

SRC = Path(__file__).resolve().parents[1] / "src"

MYAPP = {
    "myapp/__init__.py": "",
    "myapp/utils.py": """
        class Settings:
            def __init__(self, n):
                self.n = n
        """,
    "myapp/heavy_extra.py": """
        class Extra:  # a sibling whose name starts like the target's
            def __init__(self, n):
                self.n = n
        """,
    "myapp/heavy.py": """
        import sys

        from myapp.utils import Settings


        class Model:
            def __init__(self, n=1):
                self.n = n

            def kind(self):
                return "heavy"

            def settings(self):
                return Settings(self.n)

            def extra(self):
                from myapp.heavy_extra import Extra
                return Extra(self.n)

            def fresh(self):
                return Model(self.n + 1)

            def loaded(self):
                return sorted(name for name in sys.modules if name.startswith("myapp"))
        """,
    "myapp/engine/__init__.py": """
        from myapp.engine.parts import Part


        class Engine:
            def part(self):
                return Part(3)
        """,
    "myapp/engine/parts.py": """
        class Part:
            def __init__(self, n):
                self.n = n
        """,
    "fixturespkg/__init__.py": "",
    "fixturespkg/target.py": """
        class Thing:
            def hello(self):
                return "hello from " + __name__
        """,
}
PACKAGES = ("myapp", "fixturespkg")


def _forget_packages() -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in PACKAGES]:
        del sys.modules[name]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Path]:
    """`myapp` and `fixturespkg` written to `tmp_path`, importable here and in children; forgotten after."""
    for name, text in MYAPP.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        _forget_packages()


# --- scenario 1: my own package ----------------------------------------------------------


def test_parent_and_sibling_imported_before_start(app: Path) -> None:
    utils = importlib.import_module("myapp.utils")
    Model = extradite("myapp.heavy:Model")
    try:
        model = Model(2)
        assert model.kind() == "heavy"
        settings = model.settings()  # a sibling's class may cross by value: the parent may import it
        assert type(settings) is utils.Settings and settings.n == 2
        assert "myapp.heavy" in model.loaded()  # the child has it ...
        assert "myapp.heavy" not in sys.modules  # ... this process never does
    finally:
        Model.close()
    assert "myapp.heavy" not in sys.modules


def test_sibling_imports_after_start_are_fine_the_tree_is_caught(app: Path) -> None:
    Model = extradite("myapp.heavy:Model")
    try:
        model = Model(3)
        importlib.import_module("myapp.utils")
        extra_module = importlib.import_module("myapp.heavy_extra")  # 'myapp.heavy' is a prefix of its name
        extra = model.extra()
        assert type(extra) is extra_module.Extra and extra.n == 3
        assert model.kind() == "heavy"
        importlib.import_module("myapp.heavy")
        with pytest.raises(ExtraditeModuleLeakError, match="'myapp.heavy' was imported in this interpreter after"):
            model.kind()
    finally:
        Model.close()


def test_refused_when_the_target_module_is_imported(app: Path) -> None:
    importlib.import_module("myapp.heavy")
    with pytest.raises(ExtraditeModuleLeakError) as info:
        extradite("myapp.heavy:Model")
    message = str(info.value)
    assert "'myapp.heavy' is already imported" in message
    assert "Remove the import of 'myapp.heavy' from this process" in message
    assert "parent package and sibling modules may stay imported" in message


def test_values_from_the_tree_and_its_submodules_are_refused(app: Path) -> None:
    Model = extradite("myapp.heavy:Model")
    Engine = extradite("myapp.engine:Engine")
    try:
        with pytest.raises(UnsupportedInteractionError, match=r"myapp\.heavy\.Model.*'myapp\.heavy'"):
            Model().fresh()
        with pytest.raises(UnsupportedInteractionError, match=r"myapp\.engine\.parts\.Part.*'myapp\.engine'"):
            Engine().part()
        part = Engine().part(__extradite_policy__="reference")
        assert part.n == 3
    finally:
        Model.close()
        Engine.close()
    assert not [name for name in sys.modules if name.split(".")[0] == "myapp"]


def _global_frame(module: str, name: str) -> Frame:
    """A frame whose unpickling looks up `module.name` (the GLOBAL opcode, then STOP)."""
    return Frame(2, 0, 1, 1, b"c" + module.encode() + b"\n" + name.encode() + b"\n.", [], ArenaMaps())


class _FakeSession:
    pass


def test_parent_unpickler_follows_the_tree(app: Path) -> None:
    codec = Codec(_FakeSession(), None, is_child=False)
    codec.protected = ("myapp.heavy", "myapp.engine")
    for module, name in (("myapp.heavy", "Model"), ("myapp.engine.parts", "Part")):
        with pytest.raises(ExtraditeModuleLeakError, match=f"{module}.{name}"):
            codec.decode(_global_frame(module, name))
    assert not [name for name in sys.modules if name.split(".")[0] == "myapp"]
    extra = codec.decode(_global_frame("myapp.heavy_extra", "Extra"))  # a sibling: imported as asked
    assert extra is sys.modules["myapp.heavy_extra"].Extra
    codec.protected = ("myapp",)  # what protect=("myapp",) adds
    with pytest.raises(ExtraditeModuleLeakError, match="myapp.utils.Settings"):
        codec.decode(_global_frame("myapp.utils", "Settings"))
    assert "myapp.utils" not in sys.modules


# --- protect= ----------------------------------------------------------------------------


def test_protect_refuses_when_part_of_the_widened_tree_is_imported(app: Path) -> None:
    importlib.import_module("myapp.utils")
    with pytest.raises(ExtraditeModuleLeakError) as info:
        extradite("myapp.heavy:Model", protect=("myapp",))
    message = str(info.value)
    assert "'myapp', which protect=('myapp',) keeps out" in message and "myapp.utils" in message
    assert "leave 'myapp' out of protect=" in message
    with pytest.raises(ExtraditeModuleLeakError, match="protect="):
        prewarm_extradite_session("protect-refused", protect=["myapp"])


def test_protect_refuses_values_and_later_imports_of_the_widened_tree(app: Path) -> None:
    Model = extradite("myapp.heavy:Model", protect=("myapp",))
    try:
        model = Model(4)
        with pytest.raises(UnsupportedInteractionError, match=r"myapp\.utils\.Settings.*'myapp'"):
            model.settings()
        assert model.settings(__extradite_policy__="reference").n == 4
        assert session_of(Model).protect == ("myapp",)
        assert not [name for name in sys.modules if name.split(".")[0] == "myapp"]
        importlib.import_module("myapp.utils")
        with pytest.raises(ExtraditeModuleLeakError, match="'myapp' was imported in this interpreter after"):
            model.kind()
    finally:
        Model.close()


@pytest.mark.parametrize("protect, error, message", [
    ("myapp", TypeError, r"protect must be a tuple or list of module names.*not str \(write protect=\('myapp',\)\)"),
    (None, TypeError, "protect must be a tuple or list of module names like \\('myapp',\\), not NoneType"),
    ({"myapp"}, TypeError, "protect must be a tuple or list"),
    ((1,), TypeError, r"protect must hold module names as strings, not int \(1\)"),
    (("",), ValueError, "protect names '', which is not a dotted module name"),
    (("my app",), ValueError, "protect names 'my app', which is not a dotted module name"),
    (("myapp.",), ValueError, "protect names 'myapp.', which is not a dotted module name"),
    (("extradite",), ValueError, "protect names 'extradite', the runtime itself"),
])
def test_bad_protect_fails_before_any_process(protect: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        extradite("targets.values:Values", protect=protect)
    with pytest.raises(error, match=message):
        prewarm_extradite_session("bad-protect", protect=protect)


def test_protect_is_part_of_a_shared_session_identity(app: Path) -> None:
    assert prewarm_extradite_session("protected-app", protect=["myapp", "myapp"])
    try:
        assert not prewarm_extradite_session("protected-app", protect=("myapp",))  # the same, normalized
        with pytest.raises(ExtraditeSessionConflictError, match=r"it has protect=\('myapp',\), this call asks for \(\)"):
            extradite("myapp.heavy:Model", share_key="protected-app")
        Model = extradite("myapp.heavy:Model", share_key="protected-app", protect=("myapp",))
        try:
            with pytest.raises(UnsupportedInteractionError, match=r"myapp\.utils\.Settings"):
                Model(1).settings()
        finally:
            Model.close()
    finally:
        close_extradite_session("protected-app")


def test_generated_proxies_take_protect(placeholder_proxy: Any) -> None:
    Placeholder = placeholder_proxy("targets.values:Values")
    with pytest.raises(TypeError, match="protect must be a tuple or list"):
        Placeholder.extradite(protect="json")
    with pytest.raises(ExtraditeModuleLeakError, match="protect=\\('json',\\)"):
        Placeholder.extradite(protect=("json",))  # pytest imported json here
    with pytest.warns(ExtraditeStaleProxyWarning):  # the placeholder embeds no members: a stale bind
        Bound = Placeholder.extradite(protect=("xd_never_imported",))
    try:
        assert session_of(Bound).protect == ("xd_never_imported",)
        assert Bound().echo(5) == 5
    finally:
        Bound.close_proxy_class()


# --- scenario 2: targets under an already imported package (like tests/) -----------------


def test_target_under_an_imported_package(app: Path) -> None:
    importlib.import_module("fixturespkg")
    Thing = extradite("fixturespkg.target:Thing")
    try:
        assert Thing().hello() == "hello from fixturespkg.target"
    finally:
        Thing.close()
    assert "fixturespkg.target" not in sys.modules


def test_target_under_the_imported_tests_package() -> None:
    importlib.import_module("targets")  # the package of this suite's targets, as pytest imports tests/
    try:
        Values = extradite("targets.values:Values")
        try:
            assert Values().echo(7) == 7
        finally:
            Values.close()
        assert "targets.values" not in sys.modules
    finally:
        del sys.modules["targets"]


# --- the generator follows the same rule ---------------------------------------------------


def test_generator_with_the_parent_package_imported(app: Path) -> None:
    from extradite.gen.cli import GenerateOptions, generate

    importlib.import_module("myapp.utils")
    files = generate(GenerateOptions(targets=("myapp.heavy:Model", "myapp.engine:Engine")))
    assert "myapp.heavy" not in sys.modules and "myapp.engine" not in sys.modules
    for name, text in files.items():
        assert "import myapp.heavy" not in text and "import myapp.engine" not in text, name


def test_generated_proxy_runs_beside_its_imported_siblings(app: Path, tmp_path: Path) -> None:
    (app / "myapp" / "heavy.py").write_text(textwrap.dedent('''
        from myapp.utils import Settings
        from myapp.heavy_extra import Extra


        class Model:
            def __init__(self, n: int = 1) -> None:
                self.n = n

            def settings(self) -> Settings:
                return Settings(self.n)

            def twin(self) -> "Model":
                return Model(self.n)
        '''))
    env = dict(os.environ, PYTHONPATH=f"{app}:{SRC}")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "extradite.gen", "myapp.heavy:Model", "-o", str(out)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    py = (out / "myapp_heavy_xdproxy.py").read_text()
    pyi = (out / "myapp_heavy_xdproxy.pyi").read_text()
    policies = py.split("__extradite_method_policies__ = {", 1)[1].split("}", 1)[0]
    assert '"twin": "reference"' in policies and '"settings"' not in policies  # only the tree's own type
    assert "def settings(self) -> myapp.utils.Settings" in pyi  # a sibling's type, imported for checkers
    script = tmp_path / "use.py"
    script.write_text(textwrap.dedent('''
        import sys
        import myapp.utils
        from myapp_heavy_xdproxy import Model

        model = Model(6)
        assert isinstance(model.settings(), myapp.utils.Settings)
        assert model.twin().n == 6
        import myapp.heavy_extra
        assert model.settings().n == 6
        assert "myapp.heavy" not in sys.modules
        print("scenario ok")
        '''))
    env["PYTHONPATH"] = f"{out}:{env['PYTHONPATH']}"
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "scenario ok" in result.stdout, result.stderr


GOOD_TARGETS = ["pkg.mod:Cls", "pkg.mod:Outer.Inner", "a:B", "_p._m:_C", "extradite.demo.counter:Counter"]
BAD_TARGETS = ["pkg.mod.Cls", ":Cls", "pkg.mod:", "pkg mod:Cls", "pkg.mod:Cls:x", "pkg..mod:Cls",
               "pkg.mod:Outer..Inner", "1pkg:Cls", "pkg.mod:Cls ", "", "pkg.mod:Cls-1", ".pkg:Cls"]


def _outcome(parse: Any, text: str) -> tuple[str, object]:
    try:
        return "ok", parse(text)
    except Exception as exc:  # the runtime raises ValueError, the generator's CLI a UsageError
        return "error", str(exc)


@pytest.mark.parametrize("text", GOOD_TARGETS + BAD_TARGETS)
def test_runtime_and_generator_parse_targets_alike(text: str) -> None:
    from extradite import _api
    from extradite.gen import cli, introspect

    runtime = _outcome(_api.parse_target, text)
    assert runtime[0] == ("ok" if text in GOOD_TARGETS else "error")
    generator = _outcome(cli.parse_target, text)
    if ":" not in text:  # the generator reads it as a whole module, as import_isolated() does
        module = _outcome(_targets.parse_module, text)
        assert generator == (module[0], text if module[0] == "ok" else module[1])
    else:
        assert generator == (runtime[0], text if runtime[0] == "ok" else runtime[1])
    if runtime[0] == "error":  # the introspection child reports it without importing anything
        assert introspect.introspect(text) == {"target": text, "error": {"kind": "bad_target",
                                                                        "message": runtime[1]}}
        with pytest.raises(ValueError, match="^" + re.escape(str(runtime[1])) + "$"):
            extradite(text)


def test_runtime_and_generator_protect_the_same_tree(tmp_path: Path) -> None:
    from extradite import _api, _codec
    from extradite.gen import cli, resolve

    document = cli.introspect(["extradite.demo.counter:Counter"], None)
    result = document["results"][0]
    assert (result["module"], result["qualname"]) == _api.parse_target("extradite.demo.counter:Counter")
    assert result["protected_tree"] == _api.protected_tree("extradite.demo.counter") == "extradite.demo.counter"
    for name, inside in [("pkg.mod", True), ("pkg.mod.sub", True), ("pkg.mod.sub.deep", True),
                         ("pkg", False), ("pkg.other", False), ("pkg.module2", False), ("pkg.mod_x", False),
                         ("pkg.modsub", False), ("other.pkg.mod", False)]:
        tree = _api.protected_tree("pkg.mod")
        assert resolve.is_protected(name, frozenset({tree})) is inside, name
        assert (_codec._tree_of(name, (tree,)) == tree) is inside, name
