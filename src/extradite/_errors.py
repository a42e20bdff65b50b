"""Exception types.

Split by who is at fault, so callers can react to each:

    ExtraditeError                      everything extradite raises
    ├── ExtraditeProtocolError          the channel or a handle is unusable
    │   ├── ExtraditeProcessError       the child died (exit code / signal, stderr tail)
    │   └── ExtraditeClosedError        you closed it (instance, class or session)
    ├── ExtraditeModuleLeakError        the protected module tree reached this interpreter
    ├── ExtraditeSandboxError           this kernel cannot confine the child as `sandbox=`/`limits=` ask
    ├── UnsupportedInteractionError     the operation cannot cross the boundary
    ├── ExtraditeEnvironmentError       the child's environment (requirements=) could not be built
    └── ExtraditeRemoteError            the other side raised; fields keep its type, text, traceback

A remote exception whose type derives from a builtin exception is raised as a
dynamic subclass of both `ExtraditeRemoteError` and that builtin, so
`except KeyError` and `hasattr` keep working across the boundary.
"""

from __future__ import annotations

import builtins

__all__ = [
    "ExtraditeError",
    "ExtraditeProtocolError",
    "ExtraditeProcessError",
    "ExtraditeClosedError",
    "ExtraditeModuleLeakError",
    "ExtraditeSandboxError",
    "UnsupportedInteractionError",
    "ExtraditeRemoteError",
    "ExtraditeSessionConflictError",
    "ExtraditeEnvironmentError",
    "ExtraditeStaleProxyWarning",
    "remote_error_class",
]


class ExtraditeError(Exception):
    """Base class of every error extradite raises."""


class ExtraditeProtocolError(ExtraditeError):
    """The channel, a frame or a handle is unusable (bad bytes, released handle, closed session)."""


class ExtraditeProcessError(ExtraditeProtocolError):
    """The child process died; the message names the exit status and quotes its stderr."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class ExtraditeClosedError(ExtraditeProtocolError):
    """The instance, class or session was closed by this program and is used again.

    A released handle says "Unknown or released remote object id", the original's phrase.
    """


class ExtraditeModuleLeakError(ExtraditeError):
    """A protected module tree is (or would be) imported in this interpreter."""


class ExtraditeSandboxError(ExtraditeError):
    """The child cannot be confined as asked here (no Landlock, an ABI too old, a limit root ignores).

    Raised before any child starts; the message says what is missing and what to pass instead.
    """


class UnsupportedInteractionError(ExtraditeError):
    """The requested interaction cannot cross the process boundary."""


class ExtraditeRemoteError(ExtraditeError):
    """An exception raised on the other side of the channel.

    `remote_type_name` is the original type's `__name__` (`"KeyError"`, `"CustomError"`);
    `remote_type_module` and `remote_type_qualname` locate it (`"pkg.mod"`, `"Outer.CustomError"`).
    `remote_message` is its `str()`, `remote_traceback` the formatted remote traceback.
    """

    remote_type_name: str
    remote_type_module: str
    remote_type_qualname: str
    remote_message: str
    remote_traceback: str

    def __init__(self, remote_type_name: str, remote_message: str, remote_traceback: str, *,
                 remote_type_module: str = "builtins", remote_type_qualname: str | None = None) -> None:
        self.remote_type_name = remote_type_name
        self.remote_type_module = remote_type_module
        self.remote_type_qualname = remote_type_qualname or remote_type_name
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        Exception.__init__(self, ExtraditeRemoteError.__str__(self))

    def __str__(self) -> str:
        module, qualname = self.remote_type_module, self.remote_type_qualname
        return f"{qualname if module == 'builtins' else f'{module}.{qualname}'}: {self.remote_message}"


class ExtraditeSessionConflictError(ExtraditeError, ValueError):
    """A shared session was asked for with options that differ from the running one."""


class ExtraditeEnvironmentError(ExtraditeError):
    """The environment `requirements=` asks for could not be built; nothing half-made is kept.

    `installer_output` holds the installer's last lines (also quoted in the message).
    """

    def __init__(self, message: str, *, installer_output: str = "") -> None:
        super().__init__(message)
        self.installer_output = installer_output


class ExtraditeStaleProxyWarning(UserWarning):
    """A generated proxy no longer matches the live target; changed members use the dynamic path."""


_REMOTE_CLASSES: dict[str, type[ExtraditeRemoteError]] = {}


def _original_str(self: ExtraditeRemoteError) -> str:
    return self.remote_message


def _plain_new(cls: type, *args: object) -> object:
    return BaseException.__new__(cls, *args)


def _combine(builtin_name: str, base: type) -> type[ExtraditeRemoteError]:
    """`ExtraditeRemoteError` and `base` in one class (TypeError when their layouts do not combine)."""
    namespace: dict[str, object] = {
        "__module__": __name__,
        # str() as the original gives it, so code that prints or parses it keeps working
        "__str__": _original_str,
    }
    name = f"ExtraditeRemoteError[{builtin_name}]"
    cls: type[ExtraditeRemoteError] = type(name, (ExtraditeRemoteError, base), namespace)
    if "__new__" in vars(base):
        try:
            cls.__new__(cls)
        except TypeError as exc:  # MemoryError's own __new__ refuses a subclass with another base first
            if "is not safe" in str(exc):
                namespace["__new__"] = _plain_new
                cls = type(name, (ExtraditeRemoteError, base), namespace)
    return cls


def remote_error_class(builtin_name: str | None) -> type[ExtraditeRemoteError]:
    """The `ExtraditeRemoteError` subclass that is also the named builtin exception.

    Falls back to plain `ExtraditeRemoteError` for unknown names or builtins whose
    C layout cannot be combined with it.
    """
    if not builtin_name:
        return ExtraditeRemoteError
    cached = _REMOTE_CLASSES.get(builtin_name)
    if cached is not None:
        return cached
    base = getattr(builtins, builtin_name, None)
    cls: type[ExtraditeRemoteError] = ExtraditeRemoteError
    if (isinstance(base, type) and issubclass(base, Exception) and base is not Exception
            and not issubclass(base, BaseExceptionGroup)):  # a group's layout needs its members
        try:
            cls = _combine(builtin_name, base)
        except TypeError:
            cls = ExtraditeRemoteError
    _REMOTE_CLASSES[builtin_name] = cls
    return cls


class ExtraditeTimeoutError(ExtraditeError, TimeoutError):
    """A call ran past its deadline (`call_timeout=` or `__extradite_timeout__=`); the child was
    interrupted, and killed if it did not answer within `timeout_grace` seconds."""
