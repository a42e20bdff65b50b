"""Which interpreter a child runs (`python=`), and what it sees of this process.

What decides is the *environment* a path starts, never the binary it resolves to:
a virtual environment's bin/python is a symlink to its base interpreter, yet it
runs with the venv's own site-packages, because Python looks for `pyvenv.cfg`
beside or above the path *as given*. Two ways to start a child follow:

    python=None, or a path starting   ->  the fast start (see `_process`): no `site`,
    this very environment                  this process's sys.path verbatim,
                                           compiled runtime shipped (_bootcode)

    any other interpreter or venv     ->  its own installation and site-packages
                                           + `handover_paths()` in front
                                           + this process's `extradite` package

The rule of `handover_paths()`: the child gets the entries of this process's
sys.path that hold the program's own modules (script directory, PYTHONPATH
entries, source trees, editable installs) and nothing of this interpreter's
installation: no standard library (another Python version would load ours), no
site-packages (our packages were installed for this Python and environment and
would shadow the child's own). Site-packages means this interpreter's site and
user-site directories and any directory named `site-packages` or `dist-packages`,
with everything below them. The `extradite` package itself is imported from the
directory this process loaded it from, by a finder that answers for that one
name: when extradite is installed in site-packages, nothing else there shows.
The same rule filters the PYTHONPATH the child inherits (`foreign_environ()`):
it reads that variable itself, and so do the processes it starts.

`resolve_python()` checks a `python=` value before any child starts. Asking an
interpreter its version costs a process start, so the answer is cached per file
(path, inode, mtime): repeated `extradite()` calls pay it once.
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

MIN_CHILD_VERSION = (3, 11)
_PROBE_TIMEOUT = 30.0
# Runs under any Python (2.7 included), so an old interpreter is named as such.
_PROBE = "import sys; sys.stdout.write('extradite-probe %d.%d.%d' % tuple(sys.version_info[:3]))"
_PROBE_PREFIX = "extradite-probe "
# A candidate for a version: its version, then the path it knows itself by (not a shim's).
_WHO_PROBE = "import sys; print('%d.%d.%d' % tuple(sys.version_info[:3])); print(sys.executable)"

# Bootstrap lines (see `_process`) that import the package `extradite`, and only that
# name, from PACKAGE_DIR: the directory this process loaded it from, whatever else that
# directory holds and whatever extradite the child's own environment has.
_HOME_FINDER = """class _XdHome:
    def find_spec(name, path=None, target=None):
        if name != "extradite":
            return None
        return sys.modules["_frozen_importlib_external"].PathFinder.find_spec(name, [PACKAGE_DIR])
sys.meta_path.insert(0, _XdHome)"""

_versions: dict[tuple[str, int, int, int, int], tuple[int, int, int]] = {}
_found_versions: dict[str, str] = {}  # "3.13" -> the interpreter found for it
_excluded: list[tuple[str, ...]] = []  # [] until computed: this interpreter's own directories


def resolve_python(value: object, *, option: str = "python") -> str | None:
    """The interpreter a `python=` value names: None for this environment, else its absolute path.

    A value is a path, a command on PATH (`python3.13`) or a version ("3.13", see `_find_version`).

    Raises TypeError (not a path) or ValueError (no such file, a directory, not
    executable, not a Python, a Python older than 3.11), each message naming the
    `option` and what to give instead. No process outlives this call.
    """
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{option} must be the path of a Python interpreter (a str or os.PathLike), "
                        f"not {type(value).__name__}")
    path = os.fspath(value)
    if not isinstance(path, str):
        raise TypeError(f"{option} must be the path of a Python interpreter as str, not {type(path).__name__}")
    named = f"{option}={path!r}"
    if not path:
        raise ValueError(f"{named} is empty; give the path of a Python interpreter "
                         "(e.g. a virtual environment's bin/python), or None for this one")
    if os.sep not in path:
        path = _find_command(path, named)
    path = os.path.abspath(path)
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{named}: no such file; give the path of an existing Python "
                         "interpreter (e.g. a virtual environment's bin/python)") from None
    except OSError as exc:
        raise ValueError(f"{named} cannot be read ({exc.strerror}); give the path of a "
                         "Python interpreter you can run") from None
    if stat.S_ISDIR(info.st_mode):
        inside = os.path.join(path, "bin", "python")
        hint = f"e.g. {inside!r}" if os.path.exists(inside) else "e.g. a virtual environment's bin/python"
        raise ValueError(f"{named} is a directory; name the interpreter inside it ({hint})")
    if not os.access(path, os.X_OK):
        raise ValueError(f"{named} is not executable; name a Python interpreter "
                         "(e.g. a virtual environment's bin/python)")
    if same_environment(path):
        return None
    if not same_binary(path):
        version = _version_of(path, info, named)
        if version[:2] < MIN_CHILD_VERSION:
            raise ValueError(
                f"{named} is Python {version[0]}.{version[1]}; the child needs Python "
                f"{MIN_CHILD_VERSION[0]}.{MIN_CHILD_VERSION[1]} or newer: name a newer interpreter")
    return path


def _find_command(name: str, named: str) -> str:
    """The interpreter a bare command name (`python3.13`) or a version ("3.13") names.

    A command is searched on PATH like a shell does; a version by `_find_version`.
    """
    if _is_version(name):
        return _find_version(name, named)
    import shutil

    found = shutil.which(name)
    if found is None:
        raise ValueError(f"{named}: no command {name!r} on PATH; give the path of a Python "
                         "interpreter (e.g. '/path/to/venv/bin/python') or a version such as '3.13'")
    return found


def _is_version(name: str) -> bool:
    """Whether `name` reads as a Python version: "3.13" or "3.13.0"."""
    parts = name.split(".")
    return 2 <= len(parts) <= 3 and all(part.isdigit() for part in parts)


def _find_version(version: str, named: str) -> str:
    """The interpreter of Python `version` ("3.13", "3.13.0"), as it names itself (sys.executable).

    Candidates, in order: `pythonX.Y` on PATH, `PYENV_VERSION=<version> pyenv which python`,
    the newest `$PYENV_ROOT/versions/<version>[.*]/bin/python`. Each must prove, when run,
    that it is that version (a pyenv shim exists on PATH even for a version pyenv lacks).
    The answer is kept for the life of this process.
    """
    found = _found_versions.get(version)
    if found is not None:
        return found
    import glob
    import shutil
    import subprocess

    wanted = tuple(int(part) for part in version.split("."))
    searched: list[str] = []
    candidates: list[str] = []
    command = "python" + ".".join(version.split(".")[:2])
    on_path = shutil.which(command)
    searched.append(f"{command} on PATH ({'found ' + on_path if on_path else 'none'})")
    if on_path:
        candidates.append(on_path)
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        searched.append("pyenv (not on PATH)")
    else:
        try:
            done = subprocess.run([pyenv, "which", "python"], env=dict(os.environ, PYENV_VERSION=version),
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=_PROBE_TIMEOUT)
            said = done.stdout.strip() if done.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            said = ""
        searched.append(f"`PYENV_VERSION={version} pyenv which python` ({said or 'no such version'})")
        if said:
            candidates.append(said)
    root = os.environ.get("PYENV_ROOT") or os.path.join(os.path.expanduser("~"), ".pyenv")
    pattern = os.path.join(root, "versions", version + "*", "bin", "python")
    builds = [path for path in glob.glob(pattern)
              if os.path.basename(os.path.dirname(os.path.dirname(path))).split(".")[:len(wanted)]
              == version.split(".")]
    builds.sort(key=lambda path: [int(x) if x.isdigit() else -1 for x in
                                  os.path.basename(os.path.dirname(os.path.dirname(path))).split(".")],
                reverse=True)
    searched.append(f"{pattern} ({', '.join(builds) if builds else 'none'})")
    candidates.extend(builds)
    rejected: list[str] = []
    for candidate in dict.fromkeys(candidates):
        try:
            done = subprocess.run([candidate, "-S", "-c", _WHO_PROBE], stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=_PROBE_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            rejected.append(f"{candidate} did not run")
            continue
        lines = done.stdout.split("\n")
        if done.returncode or len(lines) < 2 or not lines[1]:
            rejected.append(f"{candidate} did not run (status {done.returncode})")
            continue
        got = tuple(int(part) for part in lines[0].split(".") if part.isdigit())
        if got[:len(wanted)] != wanted:
            rejected.append(f"{candidate} is Python {lines[0]}")
            continue
        _found_versions[version] = lines[1]
        return lines[1]
    also = f"; {'; '.join(rejected)}" if rejected else ""
    raise ValueError(f"{named}: no Python {version} found; searched {', '.join(searched)}{also}. Install it "
                     f"(e.g. `pyenv install {version}`) or give the interpreter's path")


def interpreter_version(path: str) -> tuple[int, int, int]:
    """The version of the interpreter at `path` (resolved by `resolve_python`; cached per file)."""
    if same_binary(path):
        return (sys.version_info[0], sys.version_info[1], sys.version_info[2])
    return _version_of(path, os.stat(path), f"python={path!r}")


def _version_of(path: str, info: os.stat_result, named: str) -> tuple[int, int, int]:
    """The version `path` reports when asked (cached per file: path, inode, mtime)."""
    key = (path, info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
    version = _versions.get(key)
    if version is None:
        version = _probe(path, named)
        _versions[key] = version
    return version


def _probe(path: str, named: str) -> tuple[int, int, int]:
    import subprocess

    advice = "name a Python 3.11+ interpreter (e.g. a virtual environment's bin/python)"
    try:
        done = subprocess.run([path, "-S", "-c", _PROBE], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=_PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:  # run() has killed and reaped it
        raise ValueError(f"{named} did not say its version within {_PROBE_TIMEOUT:.0f} s; "
                         f"{advice}") from None
    except OSError as exc:  # a text file without #!, a binary for another machine, ...
        raise ValueError(f"{named} could not be run ({exc.strerror}); {advice}") from None
    out = done.stdout.decode("ascii", "replace").strip()
    if done.returncode == 0 and out.startswith(_PROBE_PREFIX):
        parts = out[len(_PROBE_PREFIX):].split(".")
        if len(parts) == 3 and all(part.isdigit() for part in parts):
            return int(parts[0]), int(parts[1]), int(parts[2])
    said = [line.strip() for line in (done.stderr or done.stdout).decode("utf-8", "replace").splitlines()]
    said = [line[:200] for line in said if line]
    # The first line of a wrapper's complaint names the problem, the last of a traceback does.
    quoted = " ... ".join(repr(line) for line in dict.fromkeys(said[:1] + said[-1:])) or "nothing"
    if done.returncode:
        what = f"it exited with status {done.returncode}, saying {quoted}"
    else:
        what = f"it printed {quoted}"
    raise ValueError(f"{named} is not a Python interpreter: asked for its version, {what}; {advice}")


def _environment(executable: str) -> tuple[str, str]:
    """(the real binary, the venv root or '' for the installation itself) that `executable` starts.

    Python's own rule (site.venv): a `pyvenv.cfg` in the directory of the path as
    given, or one above it, makes that parent directory the environment.
    """
    exe_dir = os.path.dirname(os.path.abspath(executable))
    root = os.path.dirname(exe_dir)
    for where in (exe_dir, root):
        if os.path.isfile(os.path.join(where, "pyvenv.cfg")):
            return os.path.realpath(executable), os.path.realpath(root)
    return os.path.realpath(executable), ""


def same_binary(python: str) -> bool:
    """Whether `python` is this interpreter's binary (so this process's bytecode suits it)."""
    return bool(sys.executable) and os.path.realpath(python) == os.path.realpath(sys.executable)


def same_environment(python: str) -> bool:
    """Whether `python` starts this very environment: this binary, from the same venv or installation."""
    if not sys.executable:
        return False
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        return True
    return _environment(python) == _environment(sys.executable)


def _excluded_roots() -> tuple[str, ...]:
    """This interpreter's standard library and site directories (as given and resolved)."""
    if not _excluded:
        import site
        import sysconfig

        roots = {os.path.dirname(os.__file__)}
        paths = sysconfig.get_paths()
        roots.update(paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths)
        roots.update(getattr(site, "getsitepackages", list)())
        user_site = getattr(site, "getusersitepackages", lambda: None)()
        if user_site:
            roots.add(user_site)
        zipped = f"python{sys.version_info[0]}{sys.version_info[1]}.zip"
        roots.update(os.path.join(prefix, "lib", zipped) for prefix in {sys.base_prefix, sys.base_exec_prefix})
        both = {os.path.abspath(r) for r in roots} | {os.path.realpath(r) for r in roots}
        _excluded.append(tuple(sorted(both)))
    return _excluded[0]


def _is_installation(entry: str, roots: tuple[str, ...]) -> bool:
    for form in {os.path.abspath(entry or os.curdir), os.path.realpath(entry or os.curdir)}:
        parts = form.split(os.sep)
        if "site-packages" in parts or "dist-packages" in parts:
            return True
        if any(form == root or form.startswith(root + os.sep) for root in roots):
            return True
    return False


def handover_paths(path: list[str] | None = None) -> list[str]:
    """The entries of `path` (default sys.path) a child of another interpreter gets (see module doc)."""
    roots = _excluded_roots()
    out: list[str] = []
    for entry in sys.path if path is None else path:
        if isinstance(entry, str) and entry not in out and not _is_installation(entry, roots):
            out.append(entry)
    return out


def foreign_prelude(package_dir: str, extra: Sequence[str] = ()) -> str:
    """`python -c` lines for a child of another interpreter or environment (see module doc).

    In front of its own sys.path: `handover_paths()`, then `extra`; `extradite` is
    imported from `package_dir` (the directory holding the package).
    """
    paths = handover_paths()
    paths += [entry for entry in extra if entry not in paths]
    return "\n".join(["import sys", f"sys.path[:0] = [p for p in {paths!r} if p not in sys.path]",
                      _HOME_FINDER.replace("PACKAGE_DIR", repr(package_dir))])


def foreign_environ() -> dict[str, str]:
    """The environment variables of a child of another interpreter: PYTHONPATH filtered by the rule."""
    env = dict(os.environ)
    given = env.pop("PYTHONPATH", None)
    if given:
        roots = _excluded_roots()
        kept = [entry for entry in given.split(os.pathsep) if entry and not _is_installation(entry, roots)]
        if kept:
            env["PYTHONPATH"] = os.pathsep.join(kept)
    return env
