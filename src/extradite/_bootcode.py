"""Ship the child's runtime modules to it as compiled code, so no child compiles them.

With PYTHONDONTWRITEBYTECODE=1 (or a read-only checkout) every interpreter compiles
each source module it imports, and compiling the modules a child runs costs about as
much as starting the interpreter. This process compiles them once (its loaders read a
valid .pyc when there is one) and hands every child of the same interpreter the code
objects, marshalled into a memfd, whenever a child would have to compile one of them
(some .pyc is missing or stale; where every .pyc is valid, reading them is faster
than loading the shipped code, so nothing is shipped):

    parent:  {module name: (code, is_package, file)} --marshal--> memfd --pass_fds--> child
    child:   bootstrap reads the memfd, puts a finder for those names first on
             sys.meta_path, then imports extradite._child as usual

The child thereby also runs exactly the extradite this process runs. Anything that
goes wrong here (no memfd, a loader without code) means an ordinary start, never an
error: a child without shipped code imports and compiles as before.
"""

from __future__ import annotations

import _thread
import os
import sys

TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from typing import Any

# Every extradite module a child imports to serve a channel (tests pin the set).
CHILD_MODULES = (
    "extradite", "extradite._child", "extradite._deadline", "extradite._session", "extradite._routing", "extradite._dispatch", "extradite._scalar",
    "extradite._codec", "extradite._transport", "extradite._bodyfile", "extradite._ring", "extradite._polling",
    "extradite._shm", "extradite._wire", "extradite._errors", "extradite._handles",
    "extradite._policy", "extradite._pickling", "extradite._members", "extradite._proxy", "extradite._iteration",
    "extradite._targets", "extradite._parent_types", "extradite._warden", "extradite._logforward",
    "extradite._sandbox",  # only with sandbox= or limits=
    "extradite._template",  # the fork server's template (_forkserver)
)

# Bootstrap lines that install the finder (joined into `python -c`); `CODE_FD` is the memfd.
FINDER = """import marshal
with open(CODE_FD, "rb") as _f:
    _xd = marshal.load(_f)
class _XdFinder:
    def find_spec(name, path=None, target=None):
        entry = _xd.get(name)
        if entry is None:
            return None
        spec = sys.modules["_frozen_importlib"].ModuleSpec(
            name, _XdFinder, origin=entry[2], is_package=entry[1])
        spec.has_location = True
        if entry[1]:
            spec.submodule_search_locations = [entry[2].rpartition("/")[0]]
        return spec
    def create_module(spec):
        return None
    def exec_module(module):
        exec(_xd[module.__name__][0], module.__dict__)
sys.meta_path.insert(0, _XdFinder)"""

_lock = _thread.allocate_lock()
_blob: list[bytes | None] = []  # [] until built; [None] when shipping is impossible here


def _pyc_is_valid(source: str) -> bool:
    """Whether a child would find a usable .pyc for `source` (header checked like the loader does)."""
    # the import system's own functions: `importlib.util` would cost a first session its import
    external: Any = sys.modules["_frozen_importlib_external"]
    try:
        fd = os.open(external.cache_from_source(source), os.O_RDONLY | os.O_CLOEXEC)
        try:  # one read, no file object: a first session checks every child module
            head = os.read(fd, 16)
        finally:
            os.close(fd)
        stat = os.stat(source)
    except (OSError, ValueError, NotImplementedError):
        return False
    if len(head) < 16 or head[:4] != external.MAGIC_NUMBER:
        return False
    if int.from_bytes(head[4:8], "little"):  # hash-based .pyc: validated by hash, not compiled
        return True
    return (int.from_bytes(head[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(head[12:16], "little") == stat.st_size & 0xFFFFFFFF)


def _all_cached() -> bool:
    """Whether every child module sits beside this one as source with a valid .pyc (the usual
    installation), checked without finding each module's spec."""
    package: Any = sys.modules["extradite"]
    loader = getattr(package.__spec__, "loader", None)
    if type(loader).__name__ != "SourceFileLoader" or not package.__file__:
        return False
    root = os.path.dirname(package.__file__)
    return all(_pyc_is_valid(os.path.join(root, "__init__.py" if name == "extradite" else
                                          name.rpartition(".")[2] + ".py"))
               for name in CHILD_MODULES)


def _build() -> bytes | None:
    if _all_cached():
        return None  # children read bytecode caches: faster than anything shipped
    import importlib.util
    import marshal

    specs = [importlib.util.find_spec(name) for name in CHILD_MODULES]
    if all(spec is not None and spec.origin and _pyc_is_valid(spec.origin) for spec in specs):
        return None  # children read bytecode caches: faster than anything shipped
    table = {}
    for name, spec in zip(CHILD_MODULES, specs):
        loader = spec.loader if spec is not None else None
        get_code = getattr(loader, "get_code", None)
        if spec is None or get_code is None or not spec.origin:
            return None
        code = get_code(name)
        if code is None:
            return None
        table[name] = (code, spec.submodule_search_locations is not None, spec.origin)
    return marshal.dumps(table)


def code_fd() -> int:
    """A new memfd holding the child's compiled modules (the caller closes it), or -1."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is None:
        return -1
    with _lock:
        if not _blob:
            try:
                _blob.append(_build())
            except Exception:  # an unusual installation: children compile as before
                _blob.append(None)
    blob = _blob[0]
    if blob is None:
        return -1
    fd: int = memfd_create("extradite-code", os.MFD_CLOEXEC)
    try:
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
