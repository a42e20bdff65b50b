"""A session's options: validated once, before any process starts, and compared as a whole.

Everything here is part of a shared session's identity: two classes may share a
`share_key` only when every field is equal. A new session option is one slot, one
check in `from_user` and one line in `_FIELDS`; `extradite()`,
`prewarm_extradite_session()` and generated proxies' `.extradite()` pass it through.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from os import PathLike

    from ._sandbox import Limits, Sandbox

from ._policy import PolicyConfig
from ._targets import check_protect

DEFAULT_CONFIG = PolicyConfig()  # immutable: shared by every session that keeps the default policy


def _check_keepalive(share_key: str | None, seconds: object) -> float | None:
    if seconds is None:
        return None
    if share_key is None:
        raise ValueError("share_keepalive_seconds requires share_key (only a shared session can stay warm)")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError(f"share_keepalive_seconds must be a number >= 0, not {seconds!r}")
    return seconds


def check_concurrency(value: object) -> str:
    """The `concurrency=` option, normalised: "serial", "async" or "threads:N" (see `_concurrency`)."""
    if not isinstance(value, str):
        raise TypeError(f"concurrency must be a string ('serial', 'async' or 'threads:N'), not {type(value).__name__}")
    if value in ("serial", "async"):
        return value
    kind, _, count = value.partition(":")
    if kind == "threads" and count.strip().isdigit() and 1 <= int(count) <= 256:
        return f"threads:{int(count)}"
    raise ValueError(
        f"concurrency must be 'serial' (one call at a time, the default), 'async' (coroutine methods run "
        f"concurrently on the child's event loop) or 'threads:N' (calls run on N threads, N from 1 to 256), "
        f"not {value!r}")


class SessionOptions:
    """The validated options of one session (see the module docstring)."""

    __slots__ = ("config", "keepalive", "python", "protect", "sandbox", "limits", "forward_logging",
                 "requirements", "call_timeout", "timeout_grace", "concurrency")

    def __init__(self, config: PolicyConfig = DEFAULT_CONFIG, keepalive: float | None = None,
                 python: str | None = None, protect: tuple[str, ...] = (),
                 sandbox: Sandbox | None = None, limits: Limits | None = None,
                 forward_logging: bool = True, requirements: tuple[str, ...] | None = None,
                 call_timeout: float | None = None, timeout_grace: float = 1.0,
                 concurrency: str = "serial") -> None:
        self.config = config
        self.keepalive = keepalive
        self.python = python      # resolved absolute path, or None for this very environment
        self.protect = protect    # sorted module trees, as `check_protect` returns them
        self.sandbox = sandbox    # frozen and compared by value (see _sandbox)
        self.limits = limits
        self.forward_logging = forward_logging  # the child's `logging` records come here (_logforward)
        self.requirements = requirements  # normalised (`_envs`); None: the interpreter's own environment
        self.call_timeout = call_timeout  # seconds per top-level call (`_deadline`); None: unbounded
        self.timeout_grace = timeout_grace  # after an interrupt, seconds before the child is killed
        self.concurrency = concurrency  # which calls run side by side in the child (`_concurrency`)

    @classmethod
    def from_user(cls, share_key: str | None, *, transport_policy: str = "value",
                  transport_type_rules: Mapping[type, str] | None = None,
                  share_keepalive_seconds: float | None = None,
                  python: str | PathLike[str] | None = None,
                  protect: tuple[str, ...] | list[str] = (),
                  sandbox: Sandbox | None = None, limits: Limits | None = None,
                  forward_logging: bool = True,
                  requirements: Iterable[str] | None = None,
                  call_timeout: float | None = None, timeout_grace: float = 1.0,
                  concurrency: str = "serial") -> SessionOptions:
        """Check what a user passed; every bad value raises TypeError or ValueError naming it."""
        mode = check_concurrency(concurrency)
        if not isinstance(forward_logging, bool):
            raise TypeError(f"forward_logging must be True or False, not {forward_logging!r}")
        if share_key is not None and not isinstance(share_key, str):
            raise TypeError(f"share_key must be a string or None, not {type(share_key).__name__}")
        if transport_policy == "value" and transport_type_rules is None:
            config = DEFAULT_CONFIG
        else:
            config = PolicyConfig(transport_policy, transport_type_rules)
        keepalive = _check_keepalive(share_key, share_keepalive_seconds)
        trees = check_protect(protect)
        if sandbox is not None or limits is not None:
            from ._sandbox import Limits, Sandbox, check_option

            check_option("sandbox", sandbox, Sandbox)
            check_option("limits", limits, Limits)
        resolved = None
        if python is not None:  # asks the interpreter its version (once per file): last
            from ._interpreter import resolve_python

            resolved = resolve_python(python)
        wanted = None
        if requirements is not None:
            from ._envs import normalise_requirements

            wanted = normalise_requirements(requirements)
        from ._deadline import check_seconds

        timeout = check_seconds(call_timeout, "call_timeout")
        grace = check_seconds(timeout_grace, "timeout_grace", zero=True)
        if grace is None:
            raise ValueError("timeout_grace must be a number of seconds >= 0, not None")
        return cls(config, keepalive, resolved, trees, sandbox, limits, forward_logging, wanted, timeout, grace,
                   mode)

    @property
    def child_python(self) -> str | None:
        """The interpreter the child runs: the environment's (built now if need be), else `python`."""
        if self.requirements is None:
            return self.python
        from ._envs import environment_python

        return environment_python(self.requirements, self.python)

    def conflicts(self, other: SessionOptions) -> list[str]:
        """What differs from `other` (the running session's options), one phrase per field."""
        differ = []
        if not self.config.same_as(other.config):
            differ.append(f"it runs with {other.config.describe()}, this call asks for {self.config.describe()}")
        for name in _COMPARED:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                if name == "requirements":  # written as the user wrote them: lists
                    mine, theirs = _listed(mine), _listed(theirs)
                    differ.append(f"it has requirements={theirs}, this call asks for {mine}")
                else:
                    differ.append(f"it has {_LABELS.get(name, name)}={theirs!r}, this call asks for {mine!r}")
        return differ


_COMPARED = ("keepalive", "python", "protect", "sandbox", "limits", "forward_logging", "requirements",
            "call_timeout", "timeout_grace", "concurrency")  # ==; `config`: same_as
_LABELS = {"keepalive": "share_keepalive_seconds"}  # the keyword a user wrote


def _listed(requirements: tuple[str, ...] | None) -> str:
    return "None" if requirements is None else repr(list(requirements))
