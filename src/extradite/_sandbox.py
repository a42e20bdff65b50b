"""Confine the child with the kernel's own means: no_new_privs, Landlock and rlimits.

    parent: Sandbox(...), Limits(...)   validated, frozen, part of a shared session's identity
            prepare(sandbox, limits)    probes this kernel; refuses before any process starts
              -> Confinement            .spec goes into the child's `python -c` bootstrap
    child:  confine(spec)               in `_child.main`, before the first request (so before
                                        the target is imported): no_new_privs, one Landlock
                                        ruleset, then the rlimits

Landlock leaves reading and executing alone everywhere (the runtime and the target
keep importing from wherever they live); it denies every write outside the named
writable paths (and /dev/null), and TCP bind and connect. Descriptors open before
it (stdout, stderr, the channel, memfds) keep working: Landlock checks at open time.
Only the standard library and raw syscalls (ctypes): nothing to install. This
module loads in a child only when one of the two options is given (or a call there
raised MemoryError, which `explain_memory_error` words).
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

from ._errors import ExtraditeSandboxError

# Same numbers on x86_64, aarch64 and every architecture of the unified syscall table.
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights that change something, by the Landlock ABI that introduced them.
# Read, read-dir, execute and ioctl stay unhandled, hence allowed everywhere.
_WRITE_FILE = 1 << 1
_TRUNCATE = 1 << 14
_FS_WRITES_BY_ABI = (
    (1, _WRITE_FILE | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10)
     | (1 << 11) | (1 << 12)),   # write, remove dir/file, make char/dir/reg/sock/fifo/block/sym
    (2, 1 << 13),                # refer (rename or link across directories)
    (3, _TRUNCATE),
)
_FILE_RIGHTS = _WRITE_FILE | _TRUNCATE  # the only handled rights a rule on a non-directory may grant
_NET_TCP = (1 << 0) | (1 << 1)          # bind, connect (ABI 4)
_SCOPE_ABSTRACT_UNIX = 1 << 0           # ABI 6: no abstract unix socket outside the sandbox
_SCOPE_SIGNAL = 1 << 1                  # ABI 6: no signal to a process outside the sandbox (the parent)
_NET_ABI = 4
_SCOPE_ABI = 6
_ALWAYS_WRITABLE = ("/dev/null",)       # libraries open it for writing to discard output

# The smallest limits a child runs with at all (the interpreter, the runtime, the channel's maps).
_MIN_MEMORY = 32 * 1024 * 1024
_MIN_OPEN_FILES = 16


class _Frozen:
    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; make a new one")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; make a new one")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self._fields)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), {n: getattr(self, n) for n in self._fields}))


def _rebuild(cls: type[_Frozen], fields: dict[str, Any]) -> _Frozen:
    return cls(**fields)


def _check_bool(owner: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}({name}=...) must be True or False, not {value!r}")
    return value


class Sandbox(_Frozen):
    """What the child may touch: the filesystem read-only except `writable`, and no TCP.

    `writable`: paths (directories or files) the target may write, create and delete in;
    each must exist when a session starts. `allow_network=False` denies TCP bind and
    connect (and, from Landlock ABI 6, abstract unix sockets outside the sandbox).
    `require_landlock=True`: a kernel without Landlock (or one too old for a requested
    rule) refuses to start the child with `ExtraditeSandboxError`; False runs the child
    with what the kernel offers (no_new_privs and the rlimits at least).
    Pair it with `limits=Limits(...)` for memory, CPU time, files and processes.
    """

    __slots__ = ("writable", "allow_network", "require_landlock")
    _fields = __slots__
    writable: tuple[str, ...]
    allow_network: bool
    require_landlock: bool

    def __init__(self, *, writable: Iterable[str | os.PathLike[str]] = (), allow_network: bool = False,
                 require_landlock: bool = True) -> None:
        if isinstance(writable, (str, bytes, os.PathLike)):
            raise TypeError(f"Sandbox(writable=...) must be a list of paths, not the single path {writable!r}; "
                            f"write writable=[{writable!r}]")
        try:
            entries = list(writable)
        except TypeError:
            raise TypeError(f"Sandbox(writable=...) must be a list of paths, not {type(writable).__name__}") from None
        paths = []
        for entry in entries:
            path = os.fspath(entry) if isinstance(entry, (str, os.PathLike)) else entry
            if not isinstance(path, str):
                raise TypeError(f"Sandbox(writable=...) takes str or os.PathLike paths, not {entry!r}")
            if not path or "\0" in path:
                raise ValueError(f"Sandbox(writable=...) has an invalid path {entry!r}")
            paths.append(os.path.abspath(path))
        object.__setattr__(self, "writable", tuple(sorted(set(paths))))
        object.__setattr__(self, "allow_network", _check_bool("Sandbox", "allow_network", allow_network))
        object.__setattr__(self, "require_landlock", _check_bool("Sandbox", "require_landlock", require_landlock))


def _check_limit(name: str, value: object, minimum: int, unit: str = "") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Limits({name}=...) must be an int or None, not {value!r}")
    if value < minimum:
        raise ValueError(f"Limits({name}=...) must be at least {minimum}{unit} (a child needs that much "
                         f"to run at all), not {value}")
    return value


class Limits(_Frozen):
    """Resource limits of the child (rlimits; None leaves one as inherited).

    `memory_bytes`: address space (RLIMIT_AS; counts mapped files and shared memory too);
    `cpu_seconds`: CPU time (RLIMIT_CPU: SIGXCPU at the limit, SIGKILL a second later);
    `open_files`: descriptors (RLIMIT_NOFILE); `processes`: RLIMIT_NPROC, which the
    kernel counts over every process and thread of the user, not only the child's, and
    does not apply to root (refused there).
    """

    __slots__ = ("memory_bytes", "cpu_seconds", "open_files", "processes")
    _fields = __slots__
    memory_bytes: int | None
    cpu_seconds: int | None
    open_files: int | None
    processes: int | None

    def __init__(self, *, memory_bytes: int | None = None, cpu_seconds: int | None = None,
                 open_files: int | None = None, processes: int | None = None) -> None:
        object.__setattr__(self, "memory_bytes", _check_limit("memory_bytes", memory_bytes, _MIN_MEMORY,
                                                              f" bytes ({_MIN_MEMORY // 2**20} MiB)"))
        object.__setattr__(self, "cpu_seconds", _check_limit("cpu_seconds", cpu_seconds, 1))
        object.__setattr__(self, "open_files", _check_limit("open_files", open_files, _MIN_OPEN_FILES))
        object.__setattr__(self, "processes", _check_limit("processes", processes, 1))


def check_option(name: str, value: object, kind: type) -> None:
    """`sandbox=` and `limits=` take their own class or None."""
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name}= must be a {kind.__name__}(...) or None, not {value!r}")


# -- the kernel --------------------------------------------------------------------------

def _libc() -> Any:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers to this process, 0 when there is none.

    0 also when Landlock is compiled out, disabled at boot, or its syscalls are blocked
    (a container's seccomp profile): then the create call fails with ENOSYS or EOPNOTSUPP.
    """
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    abi = int(_libc().syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
                              ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION)))
    return max(abi, 0)


def _privileged_for_nproc() -> bool:
    """Whether the kernel exempts this process from RLIMIT_NPROC (root, CAP_SYS_ADMIN, CAP_SYS_RESOURCE)."""
    if os.getuid() == 0:
        return True
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    caps = int(line.split()[1], 16)
                    return bool(caps & ((1 << 21) | (1 << 24)))
    except (OSError, ValueError, IndexError):
        pass
    return False


class Confinement:
    """What `prepare` decided for one child: the bootstrap's spec and how to read its death."""

    __slots__ = ("sandbox", "limits", "spec")

    def __init__(self, sandbox: Sandbox | None, limits: Limits | None, spec: tuple[Any, ...]) -> None:
        self.sandbox = sandbox
        self.limits = limits
        self.spec = spec  # plain tuples, ints, strs and bools: written into `python -c` with repr()

    def death_hint(self, returncode: int | None, stderr_tail: str) -> str:
        """A phrase naming the limit a child that ended with `returncode` probably hit ('' if none)."""
        import signal

        limits = self.limits
        if limits is None or returncode is None or returncode == 0:
            return ""
        hints = []
        if limits.cpu_seconds is not None and returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            hints.append(f"its CPU time limit Limits(cpu_seconds={limits.cpu_seconds})"
                         + (" (SIGKILL follows SIGXCPU a second later)" if returncode == -signal.SIGKILL else ""))
        # RLIMIT_AS fails allocations, it sends no signal: native code that does not check them crashes
        out_of_memory = returncode in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS) or (
            returncode > 0 and ("MemoryError" in stderr_tail or "Cannot allocate memory" in stderr_tail))
        if limits.memory_bytes is not None and out_of_memory:
            hints.append(f"its memory limit Limits(memory_bytes={limits.memory_bytes}) (an allocation that "
                         "failed where Python could not raise MemoryError)")
        if not hints:
            return ""
        return "; it probably exceeded " + ", or ".join(hints)


def prepare(sandbox: Sandbox | None, limits: Limits | None) -> Confinement | None:
    """Check that this kernel can confine a child as asked (before any process starts).

    Raises `ExtraditeSandboxError` when it cannot and the user did not accept less.
    """
    if sandbox is None and limits is None:
        return None
    if limits is not None and limits.processes is not None and _privileged_for_nproc():
        raise ExtraditeSandboxError(
            f"Limits(processes={limits.processes}) cannot be enforced: the kernel does not apply RLIMIT_NPROC "
            "to root or to a process with CAP_SYS_ADMIN or CAP_SYS_RESOURCE, and this program runs as one. "
            "Run it as an ordinary user, or leave processes= out")
    rlimits: tuple[tuple[str, int], ...] = ()
    if limits is not None:
        rlimits = tuple((name, value) for name, value in (
            ("AS", limits.memory_bytes), ("CPU", limits.cpu_seconds),
            ("NOFILE", limits.open_files), ("NPROC", limits.processes)) if value is not None)
    landlock: tuple[Any, ...] = ()
    if sandbox is not None:
        abi = landlock_abi()
        need = 1 if sandbox.allow_network else _NET_ABI
        if abi < need and sandbox.require_landlock:
            offered = f"Landlock ABI {abi}" if abi else "no Landlock at all"
            wanted = "TCP rules (allow_network=False)" if abi else "filesystem rules"
            raise ExtraditeSandboxError(
                f"sandbox={sandbox!r} needs Landlock ABI {need} or newer for its {wanted}, but this kernel offers "
                f"{offered} (Landlock is in Linux since 5.13, TCP rules since 6.7; it may also be disabled at "
                "boot (lsm=) or blocked by a container's seccomp profile). Pass "
                "Sandbox(..., require_landlock=False) to run the child with only what the kernel offers, "
                "or allow_network=True if only the network rules are missing")
        for path in sandbox.writable:
            if not os.path.exists(path):
                raise ValueError(f"Sandbox(writable=...) names {path!r}, which does not exist; create it "
                                 "before the session starts (Landlock grants rights on existing paths)")
        landlock = (sandbox.writable + _ALWAYS_WRITABLE, not sandbox.allow_network, sandbox.require_landlock)
    return Confinement(sandbox, limits, (landlock, rlimits))


# -- in the child ------------------------------------------------------------------------

def explain_memory_error(exc: MemoryError) -> None:
    """Say in a call's MemoryError that the child ran out, and of which limit, if it has one."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if len(exc.args) > 1:
        return
    text = str(exc.args[0]) if exc.args else "the child process ran out of memory"
    if soft != resource.RLIM_INFINITY:
        text += f" (the child's address space is limited to {soft} bytes: Limits(memory_bytes={soft}))"
    exc.args = (text,)


def confine(spec: tuple[Any, ...]) -> None:
    """Apply `Confinement.spec` to this process, for good (in the child, before serving)."""
    landlock, rlimits = spec
    if landlock:
        _no_new_privs()
        writable, deny_tcp, required = landlock
        _restrict_self(writable, deny_tcp, required)
    if rlimits:
        import resource

        for name, value in rlimits:
            which = getattr(resource, f"RLIMIT_{name}")
            _, hard = resource.getrlimit(which)
            # CPU: the soft limit sends SIGXCPU (a clear death), the hard one SIGKILL a second later
            soft_value, hard_value = (value, value + 1) if name == "CPU" else (value, value)
            if hard != resource.RLIM_INFINITY:
                soft_value, hard_value = min(soft_value, hard), min(hard_value, hard)
            resource.setrlimit(which, (soft_value, hard_value))


def _no_new_privs() -> None:
    import ctypes

    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                  ctypes.c_ulong(0)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"extradite sandbox: prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(errno)}")


def _restrict_self(writable: tuple[str, ...], deny_tcp: bool, required: bool) -> None:
    import ctypes

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                    ("scoped", ctypes.c_uint64)]

    class PathBeneathAttr(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    abi = landlock_abi()
    if abi < (_NET_ABI if deny_tcp else 1):
        if required:  # the parent checked the same kernel: something in between blocks Landlock
            raise OSError(f"extradite sandbox: this child sees Landlock ABI {abi}, too old for the sandbox")
        if abi == 0:
            return
    fs = 0
    for since, rights in _FS_WRITES_BY_ABI:
        if abi >= since:
            fs |= rights
    net = _NET_TCP if deny_tcp and abi >= _NET_ABI else 0
    scoped = 0
    if abi >= _SCOPE_ABI:
        scoped = _SCOPE_SIGNAL | (_SCOPE_ABSTRACT_UNIX if deny_tcp else 0)
    attr = RulesetAttr(fs, net, scoped)
    # the kernel reads only the fields its ABI knows: a shorter struct for an older one
    size = 8 if abi < _NET_ABI else 16 if abi < _SCOPE_ABI else 24
    libc = _libc()
    syscall = libc.syscall
    ruleset = int(syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr),
                          ctypes.c_size_t(size), ctypes.c_uint32(0)))
    if ruleset < 0:
        _fail("landlock_create_ruleset", ctypes.get_errno())
    try:
        for path in writable:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                if path in _ALWAYS_WRITABLE:
                    continue
                raise
            try:
                rights = fs if os.path.isdir(path) else fs & _FILE_RIGHTS
                rule = PathBeneathAttr(rights, fd)
                if syscall(ctypes.c_long(_SYS_LANDLOCK_ADD_RULE), ctypes.c_int(ruleset),
                           ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule),
                           ctypes.c_uint32(0)) != 0:
                    _fail(f"landlock_add_rule({path!r})", ctypes.get_errno())
            finally:
                os.close(fd)
        if syscall(ctypes.c_long(_SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            _fail("landlock_restrict_self", ctypes.get_errno())
    finally:
        os.close(ruleset)


def _fail(call: str, errno: int) -> None:
    raise OSError(errno, f"extradite sandbox: {call} failed: {os.strerror(errno)}")
