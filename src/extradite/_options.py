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

    from ._restart import Restart
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
                 "requirements", "call_timeout", "timeout_grace", "untrusted", "trusted_types",
                 "lend_attributes", "max_frame_bytes", "restart",
                 "concurrency")

    def __init__(self, config: PolicyConfig = DEFAULT_CONFIG, keepalive: float | None = None,
                 python: str | None = None, protect: tuple[str, ...] = (),
                 sandbox: Sandbox | None = None, limits: Limits | None = None,
                 forward_logging: bool = True, requirements: tuple[str, ...] | None = None,
                 call_timeout: float | None = None, timeout_grace: float = 1.0, untrusted: bool = False,
                 trusted_types: tuple[type, ...] = (),
                 lend_attributes: tuple[tuple[type, frozenset[str]], ...] = (),
                 max_frame_bytes: int | None = None, restart: Restart | None = None,
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
        self.untrusted = untrusted  # the allow-list unpickler and the lent-object surface (`_untrusted`)
        self.trusted_types = trusted_types  # sorted by name: compared as a set
        self.lend_attributes = lend_attributes  # (type, private names the child may use), sorted by name
        self.max_frame_bytes = max_frame_bytes  # None: `_transport.MAX_FRAME`
        self.restart = restart  # supervision (`_restart`); None: a dead child stays dead
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
                  call_timeout: float | None = None, timeout_grace: float = 1.0, untrusted: bool = False,
                  trusted_types: Iterable[type] = (),
                  lend_attributes: Mapping[type, Iterable[str]] | None = None,
                  max_frame_bytes: int | None = None,
                  restart: Restart | None = None, concurrency: str = "serial") -> SessionOptions:
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
        timeout = check_seconds(call_timeout, "call_timeout")
        grace = check_seconds(timeout_grace, "timeout_grace", zero=True)
        if grace is None:
            raise ValueError("timeout_grace must be a number of seconds >= 0, not None")
        trust = _check_trust(untrusted, trusted_types, lend_attributes)
        if restart is not None:
            from ._restart import check_restart

            check_restart(restart)
        return cls(config, keepalive, resolved, trees, sandbox, limits, forward_logging, wanted, timeout, grace,
                   *trust, _check_frame_cap(max_frame_bytes), restart, mode)

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
            "call_timeout", "timeout_grace", "untrusted", "trusted_types", "lend_attributes",
            "max_frame_bytes", "restart", "concurrency")  # ==; `config`: same_as
_LABELS = {"keepalive": "share_keepalive_seconds"}  # the keyword a user wrote


def _type_key(cls: type) -> tuple[str, str]:
    return (str(cls.__module__), cls.__qualname__)


def _check_trust(untrusted: object, trusted_types: Iterable[type],
                 lend_attributes: Mapping[type, Iterable[str]] | None,
                 ) -> tuple[bool, tuple[type, ...], tuple[tuple[type, frozenset[str]], ...]]:
    """untrusted=, trusted_types= and lend_attributes=, checked and in a canonical order."""
    if not isinstance(untrusted, bool):
        raise TypeError(f"untrusted must be True or False, not {untrusted!r}")
    if isinstance(trusted_types, (str, bytes, type)) or not hasattr(trusted_types, "__iter__"):
        raise TypeError(f"trusted_types must be an iterable of classes, not {trusted_types!r}")
    types = tuple(trusted_types)
    for cls in types:
        if not isinstance(cls, type):
            raise TypeError(f"trusted_types must hold classes only, not {cls!r} (functions are never trusted)")
    rules: list[tuple[type, frozenset[str]]] = []
    if lend_attributes is not None:
        if not hasattr(lend_attributes, "items"):
            raise TypeError(f"lend_attributes must be a dict of class -> attribute names, not {lend_attributes!r}")
        for cls, names in lend_attributes.items():
            if not isinstance(cls, type):
                raise TypeError(f"lend_attributes keys must be classes, not {cls!r}")
            if isinstance(names, str) or not hasattr(names, "__iter__"):
                raise TypeError(f"lend_attributes[{cls.__qualname__}] must be a tuple of names, not {names!r}")
            listed = frozenset(names)
            if not all(type(n) is str and n.isidentifier() for n in listed):
                raise TypeError(f"lend_attributes[{cls.__qualname__}] must hold attribute names, not {names!r}")
            rules.append((cls, listed))
    if (types or rules) and not untrusted:
        raise ValueError("trusted_types= and lend_attributes= apply to untrusted=True sessions only; "
                         "pass untrusted=True too (the default mode already trusts the child)")
    return (untrusted, tuple(sorted(set(types), key=_type_key)),
            tuple(sorted(rules, key=lambda rule: _type_key(rule[0]))))


def _check_frame_cap(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 4096:
        raise ValueError(f"max_frame_bytes must be an int of at least 4096 (bytes), not {value!r}")
    return value


def _listed(requirements: tuple[str, ...] | None) -> str:
    return "None" if requirements is None else repr(list(requirements))


def check_seconds(value: object, what: str, *, zero: bool = False) -> float | None:
    """`value` as seconds (None stays None); anything else raises naming `what`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"{what} must be a number of seconds {bound}, or None, not {value!r}")
    return float(value)
