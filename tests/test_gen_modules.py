"""extradite-gen for whole modules (`pkg.mod`) and single functions (`pkg.mod:func`):
real introspection children, generated proxies run in a fresh interpreter, real mypy runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from test_gen_cli import DATA, _env, gen, run_mypy

USAGE = """\
import sys

import xdgen_fixture_funcs_xdproxy as funcs

assert "xdgen_fixture.funcs" not in sys.modules
home = getattr(funcs, "_xd_module")  # the GeneratedModule (private: not in the .pyi)
assert home._proxy is None  # importing the proxy started nothing
doubled: list[float] = funcs.scale([1.0, 2.5])
assert doubled == [2.0, 5.0], doubled
assert funcs.scale([1.0], 3.0, offset=0.5) == [3.5]
assert funcs.greet("ann") == "hello ann!"
assert funcs.greet("bob", punctuation="?") == "hello bob?"
assert funcs.greet_batch([("a",), ("b",)]) == ["hello a!", "hello b!"]
assert funcs.loaded_here() is True  # in the child
tally = funcs.Tally(10)
total: int = tally.add(5)
assert total == 15
# one child for the module's functions and classes
assert funcs.Tally._xd_bound().__dict__["_xd_api"].handle is type(home.module()).__dict__["_xd_api"].handle
assert "xdgen_fixture.funcs" not in sys.modules
funcs.extradite_close()
assert funcs.greet("again") == "hello again!"  # binds again
funcs.extradite_close()
print("ok")
"""

MISTAKE = """\
import xdgen_fixture_funcs_xdproxy as funcs

funcs.greet(42)
"""


def _generate(tmp_path: Path, *targets: str) -> Path:
    out = tmp_path / "out"
    result = gen(*targets, "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_module_proxy_runs_and_typechecks(tmp_path: Path) -> None:
    out = _generate(tmp_path, "xdgen_fixture.funcs")
    text = (out / "xdgen_fixture_funcs_xdproxy.pyi").read_text()
    assert "def scale(values: list[float], factor: float = 2.0, *, offset: float = 0.0) -> list[float]" in text
    assert "class Tally(" in text and "def extradite_bind(" in text
    usage = tmp_path / "usage.py"
    usage.write_text(USAGE)
    run = subprocess.run([sys.executable, str(usage)], env=_env(out), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
    mistake = tmp_path / "mistake.py"
    mistake.write_text(MISTAKE)
    errors = run_mypy([usage, mistake], tmp_path, [out, DATA])
    assert "usage.py" not in errors, errors
    assert any('Argument 1 to "greet" has incompatible type "int"; expected "str"' in e
               for e in errors.get("mistake.py", [])), errors


def test_single_function_target(tmp_path: Path) -> None:
    out = _generate(tmp_path, "xdgen_fixture.funcs:greet")
    text = (out / "xdgen_fixture_funcs_xdproxy.py").read_text()
    assert "def greet(" in text and "def scale(" not in text and "class Tally" not in text
    usage = tmp_path / "one.py"
    usage.write_text(textwrap.dedent("""\
        import sys
        from xdgen_fixture_funcs_xdproxy import extradite_bind, greet
        extradite_bind(share_key=None)
        print(greet("x", punctuation="."), "xdgen_fixture.funcs" in sys.modules)
        """))
    run = subprocess.run([sys.executable, str(usage)], env=_env(out), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "hello x. False", run.stderr
    assert "one.py" not in run_mypy([usage], tmp_path, [out, DATA])


def test_stdlib_module_proxy(tmp_path: Path) -> None:
    out = _generate(tmp_path, "textwrap", "colorsys")
    pyi = (out / "colorsys_xdproxy.pyi").read_text()
    assert "def rgb_to_hsv(r: float, g: float, b: float) -> tuple[float, float, float]" in pyi
    usage = tmp_path / "std.py"
    usage.write_text(textwrap.dedent("""\
        import sys
        import colorsys_xdproxy as colorsys
        import textwrap_xdproxy as tw
        print(tw.shorten("hello world again", 12), colorsys.rgb_to_hsv_batch([(1.0, 0.0, 0.0)]),
              "textwrap" in sys.modules or "colorsys" in sys.modules)
        """))
    run = subprocess.run([sys.executable, str(usage)], env=_env(out), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "hello [...] [(0.0, 1.0, 1.0)] False", run.stderr
    errors = run_mypy([out / "colorsys_xdproxy.pyi", out / "textwrap_xdproxy.pyi", usage], tmp_path, [out])
    assert not errors, errors
