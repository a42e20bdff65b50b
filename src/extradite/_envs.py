"""Environments built for `requirements=`: made once, cached, shared by every process.

    requirements + interpreter ──▶ key = hash(normalised requirements, interpreter path, version)
                               ──▶ <root>/<key>/bin/python   (the child's interpreter, via python=)

    <root> = $EXTRADITE_ENV_DIR, else $XDG_CACHE_HOME/extradite/envs (default ~/.cache/...)
    <root>/<key>/             a virtual environment; its marker file, written last, says it is whole
    <root>/<key>.lock         flock: one builder per key, across threads and processes
    <root>/.build-<key>-*/    a build in progress (renamed to <key> when complete)
    <root>/builds.log         one JSON line per installer run (what `extradite-env` and tests read)

A ready environment costs a stat and a touch (its last use); nothing is locked. A
missing one is built under the key's lock, in a directory beside its final place,
with `uv` when it is installed (`uv venv`, `uv pip install`) and otherwise `venv` +
pip, then renamed into place: a reader sees a whole environment or none. A build
that fails raises `ExtraditeEnvironmentError` with the installer's last lines and
leaves nothing behind. The child reaches the environment through the `python=`
handover (see `_interpreter`): the environment's packages and extradite's runtime,
nothing of this process's site-packages.
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

from ._errors import ExtraditeEnvironmentError

MARKER = "extradite-env.json"
BUILD_LOG = "builds.log"
_BUILD_PREFIX = ".build-"
_TRASH_PREFIX = ".trash-"
_OUTPUT_LINES = 25


def root() -> str:
    """The directory holding the cached environments (`EXTRADITE_ENV_DIR` overrides the default)."""
    given = os.environ.get("EXTRADITE_ENV_DIR")
    if given:
        return os.path.abspath(os.path.expanduser(given))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(cache), "extradite", "envs")


def normalise_requirements(value: object, *, option: str = "requirements") -> tuple[str, ...]:
    """`value` checked and in one spelling per meaning: sorted, duplicates dropped, names canonical.

    "Packaging == 23.2" and "packaging==23.2" are one requirement; so are "a_b" and "A-B".
    Raises TypeError (not a list of strings) or ValueError (an empty item, an option, a line break).
    """
    from collections.abc import Iterable

    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{option} must be a list of requirement strings (e.g. ['packaging==23.2']), "
                        f"not {type(value).__name__}")
    out: set[str] = set()
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"{option} must hold requirement strings, not {type(item).__name__} ({item!r})")
        text = item.strip()
        if not text:
            raise ValueError(f"{option} holds an empty requirement; remove it")
        if "\n" in text or "\r" in text or "\0" in text:
            raise ValueError(f"{option}: {item!r} spans lines; give one requirement per item")
        if text.startswith("-"):
            raise ValueError(f"{option}: {item!r} is an installer option, not a requirement; give "
                             "requirements such as 'packaging==23.2' (index settings belong to uv's or "
                             "pip's own configuration)")
        out.add(_canonical(text))
    return tuple(sorted(out))


def _canonical(text: str) -> str:
    import re

    match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$", text, re.S)
    if match is None:  # a path or URL: kept as written
        return text
    name = re.sub(r"[-_.]+", "-", match[1]).lower()
    extras = ""
    if match[2]:
        names = sorted({re.sub(r"[-_.]+", "-", e.strip()).lower() for e in match[2][1:-1].split(",") if e.strip()})
        extras = f"[{','.join(names)}]"
    rest = match[3]
    if rest.startswith("@"):
        return f"{name}{extras} @ {rest[1:].strip()}"
    spec, semi, marker = rest.partition(";")
    spec = "".join(spec.split())
    return f"{name}{extras}{spec}" + (f"; {' '.join(marker.split())}" if semi else "")


def key_of(requirements: tuple[str, ...], interpreter: str, version: tuple[int, int, int]) -> str:
    """The cache key of an environment: its requirements and the interpreter (real path and version)."""
    import hashlib
    import json

    identity = json.dumps({"requirements": list(requirements), "python": interpreter,
                           "version": list(version)}, sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def base_interpreter(python: str | None) -> tuple[str, tuple[int, int, int]]:
    """(real path, version) of the interpreter an environment is made from (None: this one)."""
    from ._interpreter import interpreter_version

    path = os.path.realpath(python if python is not None else sys.executable)
    return path, interpreter_version(path)


def environment_python(requirements: Sequence[str], python: str | None) -> str:
    """bin/python of the environment holding `requirements` for `python` (built if need be).

    `python`: None (this interpreter) or a path `resolve_python` returned; the
    environment is made from that interpreter's own installation.
    """
    wanted = normalise_requirements(requirements)
    interpreter, version = base_interpreter(python)
    key = key_of(wanted, interpreter, version)
    where = os.path.join(root(), key)
    if not _whole(where):
        _build_locked(key, where, wanted, interpreter, version)
    _touch(where)
    return os.path.join(where, "bin", "python")


def _whole(where: str) -> bool:
    return os.path.isfile(os.path.join(where, MARKER))


def _touch(where: str) -> None:
    """Record the last use (the marker's mtime), for `extradite-env list` and `prune --older-than`."""
    try:
        os.utime(os.path.join(where, MARKER))
    except OSError:  # a read-only cache still serves
        pass


class _Lock:
    """An exclusive flock on `<root>/<key>.lock` (released by closing: also when the process dies)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def acquire(self) -> None:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def release(self) -> None:
        os.close(self.fd)  # closing the only descriptor releases the lock

    def __enter__(self) -> _Lock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _build_locked(key: str, where: str, requirements: tuple[str, ...], interpreter: str,
                  version: tuple[int, int, int]) -> None:
    base = os.path.dirname(where)
    try:
        os.makedirs(base, exist_ok=True)
    except OSError as exc:
        raise ExtraditeEnvironmentError(
            f"cannot create the environment cache {base!r} ({exc.strerror}); set EXTRADITE_ENV_DIR to a "
            "writable directory") from None
    lock = _Lock(os.path.join(base, key + ".lock"))
    try:
        lock.acquire()
    except OSError as exc:
        raise ExtraditeEnvironmentError(
            f"cannot lock {lock.path!r} to build an environment ({exc.strerror}); set EXTRADITE_ENV_DIR "
            "to a writable directory") from None
    try:
        if _whole(where):  # another thread or process built it while this one waited
            return
        import shutil

        # Under the lock nobody else builds this key: anything left is from a builder that died.
        for name in os.listdir(base):
            if name.startswith(f"{_BUILD_PREFIX}{key}-"):
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        if os.path.lexists(where):  # a directory without its marker: never whole, never used
            _discard(where)
        _build(key, where, requirements, interpreter, version)
    finally:
        lock.release()


def _discard(path: str) -> None:
    """Remove `path` so that nobody sees it half-deleted: rename it aside first."""
    import shutil
    import tempfile

    trash = tempfile.mkdtemp(prefix=_TRASH_PREFIX, dir=os.path.dirname(path))
    try:
        os.rename(path, os.path.join(trash, "env"))
    except OSError:
        pass
    shutil.rmtree(trash, ignore_errors=True)


def installer() -> tuple[str, str]:
    """("uv", its path) when uv is installed, else ("pip", ""). EXTRADITE_ENV_INSTALLER=uv|pip decides."""
    import shutil

    forced = os.environ.get("EXTRADITE_ENV_INSTALLER", "").strip().lower()
    if forced not in ("", "uv", "pip"):
        raise ExtraditeEnvironmentError(
            f"EXTRADITE_ENV_INSTALLER={forced!r} is not an installer; set it to 'uv' or 'pip', or unset it")
    if forced == "pip":
        return "pip", ""
    import sysconfig

    places = [shutil.which("uv"), shutil.which("uv", path=sysconfig.get_path("scripts")),
              shutil.which("uv", path=os.path.dirname(sys.executable))]
    found = next((place for place in places if place), None)
    if found is not None:
        return "uv", found
    if forced == "uv":
        raise ExtraditeEnvironmentError(
            "EXTRADITE_ENV_INSTALLER=uv but uv is not installed (not on PATH nor beside this Python); "
            "install it (pip install 'extradite[envs]') or unset EXTRADITE_ENV_INSTALLER")
    return "pip", ""


def _commands(tool: str, uv: str, interpreter: str, env: str,
              requirements: tuple[str, ...]) -> list[list[str]]:
    """The installer runs that make a virtual environment at `env` holding `requirements`."""
    env_python = os.path.join(env, "bin", "python")
    if tool == "uv":
        steps = [[uv, "venv", "--no-project", "--python", interpreter, env]]
        if requirements:
            steps.append([uv, "pip", "install", "--python", env_python, *requirements])
        return steps
    import importlib.util

    if importlib.util.find_spec("pip") is None:  # the environment's own pip (ensurepip) installs
        steps = [[interpreter, "-m", "venv", env]]
        if requirements:
            steps.append([env_python, "-m", "pip", "install", "--disable-pip-version-check", *requirements])
        return steps
    # This process's pip installs into the new environment (`--python`): no pip copied into it.
    steps = [[interpreter, "-m", "venv", "--without-pip", env]]
    if requirements:
        steps.append([sys.executable, "-m", "pip", "--python", env_python, "install",
                      "--disable-pip-version-check", *requirements])
    return steps


def _build(key: str, where: str, requirements: tuple[str, ...], interpreter: str,
           version: tuple[int, int, int]) -> None:
    import json
    import shutil
    import subprocess
    import tempfile
    import time

    tool, uv = installer()
    started = time.time()
    scratch = tempfile.mkdtemp(prefix=f"{_BUILD_PREFIX}{key}-", dir=os.path.dirname(where))
    env = os.path.join(scratch, "env")
    environ = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
    environ.pop("PYTHONPATH", None)  # the interpreter's own installation decides, not this program's path
    environ.pop("VIRTUAL_ENV", None)
    try:
        for argv in _commands(tool, uv, interpreter, env, requirements):
            try:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, env=environ)
            except OSError as exc:
                raise ExtraditeEnvironmentError(
                    f"could not run {argv[0]!r} to build the environment for {list(requirements)!r} "
                    f"({exc.strerror})") from None
            output = done.stdout.decode("utf-8", "replace")
            if done.returncode:
                tail = "\n".join(line for line in output.splitlines() if line.strip()
                                 and "is ignored: it is neither a file nor a directory" not in line)
                tail = "\n".join(tail.splitlines()[-_OUTPUT_LINES:])
                quoted = "\n".join("    " + line for line in tail.splitlines()) or "    (no output)"
                step = "install" if "install" in argv else "create the virtual environment"
                raise ExtraditeEnvironmentError(
                    f"could not build the environment for requirements={list(requirements)!r} with Python "
                    f"{'.'.join(map(str, version))} ({interpreter}): {tool} failed to {step} "
                    f"(exit status {done.returncode}); its last lines:\n{quoted}\n"
                    "Fix the requirements (or the package index settings of uv/pip) and try again",
                    installer_output=tail)
        _relocate(env, where)
        info = {"key": key, "requirements": list(requirements), "python": interpreter,
                "version": ".".join(map(str, version)), "installer": tool, "created": started,
                "build_seconds": round(time.time() - started, 3)}
        with open(os.path.join(env, MARKER), "w", encoding="utf-8") as handle:  # last: the env is whole
            json.dump(info, handle, indent=1)
        os.rename(env, where)
        with open(os.path.join(os.path.dirname(where), BUILD_LOG), "a", encoding="utf-8") as log:
            log.write(json.dumps({**info, "pid": os.getpid()}) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _relocate(env: str, where: str) -> None:
    """Point the scripts of bin/ (and pyvenv.cfg) at the final place `where` instead of `env`.

    bin/python finds its environment relative to itself, so only text files that name
    the build directory (script shebangs, activate scripts) need it.
    """
    old, new = env.encode(), where.encode()
    bin_dir = os.path.join(env, "bin")
    paths = [os.path.join(bin_dir, name) for name in os.listdir(bin_dir)] + [os.path.join(env, "pyvenv.cfg")]
    for path in paths:
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as handle:
            data = handle.read()
        if old in data:
            with open(path, "wb") as handle:
                handle.write(data.replace(old, new))


# -- the cache as `extradite-env` shows it ------------------------------------------------------

def environments() -> Iterator[dict[str, Any]]:
    """Each whole environment in the cache: its marker's fields, plus "path" and "last_used"."""
    import json

    base = root()
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return
    for name in names:
        marker = os.path.join(base, name, MARKER)
        try:
            with open(marker, encoding="utf-8") as handle:
                info = json.load(handle)
            last_used = os.stat(marker).st_mtime
        except (OSError, ValueError):
            continue
        if isinstance(info, dict):
            yield {**info, "key": name, "path": os.path.join(base, name), "last_used": last_used}


def leftovers() -> list[str]:
    """Directories of builds or deletions that did not finish (their process died)."""
    try:
        names = os.listdir(root())
    except FileNotFoundError:
        return []
    return [os.path.join(root(), n) for n in sorted(names) if n.startswith((_BUILD_PREFIX, _TRASH_PREFIX))]


def size_of(path: str) -> int:
    """Bytes used by the files below `path` (symlinks counted as links)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                pass
    return total


def remove(key: str) -> bool:
    """Delete the environment `key` (under its lock: never one being built). True if it existed.

    The lock file stays: a process may be waiting on it, and a new one would not exclude it.
    """
    base = root()
    where = os.path.join(base, key)
    if not os.path.lexists(where):
        return False
    with _Lock(os.path.join(base, key + ".lock")):
        existed = os.path.lexists(where)
        if existed:
            _discard(where)
    return existed


def remove_leftover(path: str) -> None:
    """Delete a leftover build directory, unless its build is still running (its key is locked)."""
    import fcntl
    import shutil

    name = os.path.basename(path)
    if name.startswith(_BUILD_PREFIX):
        key = name[len(_BUILD_PREFIX):].split("-", 1)[0]
        fd = os.open(os.path.join(os.path.dirname(path), key + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a build in progress
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
        return
    shutil.rmtree(path, ignore_errors=True)
