"""The child's `logging` records, re-emitted in the parent through the parent's configuration.

    child:  logger.info(...) -> root handler (installed when the child imports `logging`)
            -> one JSON line of plain fields -> log pipe (its own descriptor, not stderr)
    parent: watch thread (`_process`) -> LogReceiver -> logging.getLogger(name).handle(record)

The parent only ever parses JSON from the child (never unpickles): a record arrives as
plain fields (name, level, message already formatted, exception text, place, time) and
is rebuilt with `Logger.makeRecord`; its `process` is the child's pid, also kept as
`extradite_pid`. The parent's levels decide: a record goes to the parent's handlers when
the parent's logger of that name is enabled for its level.

Cost: `logging` costs a child milliseconds to import, so the child does not import it;
a meta path hook attaches the handler when the target (or anything) imports it. The
child's root level is the lowest level the parent could want (`parent_threshold`):
records below it are never made. The parent's watch thread looks at that level every
tick and tells the child when it changes (a `logging.basicConfig(level=DEBUG)` after the
session started), through an ordinary deferred request.
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False  # see CONTRIBUTING.md
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from ._output import LineSplitter

WARNING = 30               # logging.WARNING, without importing logging
RECORD_CAP = 1024 * 1024   # bytes of one record's JSON line; longer messages are cut to fit
_STANDARD = frozenset((
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info",
    "exc_text", "stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated", "thread",
    "threadName", "processName", "process", "taskName", "message", "asctime",
))


# -- child side --------------------------------------------------------------------------
class _Child:
    fd = -1                # the log pipe's write end; -1 when not forwarding
    level = WARNING        # the parent's threshold as last told
    handler: Any = None    # the root handler, once `logging` is imported


def install(fd: int, level: int) -> None:
    """Forward this child's records to descriptor `fd`, at `level` and above (at child start)."""
    os.set_inheritable(fd, False)  # the target's subprocesses do not get it
    _Child.fd, _Child.level = fd, level
    logging = sys.modules.get("logging")
    if logging is not None:
        _attach(logging)
    else:
        sys.meta_path.insert(0, _AttachOnImport())
    # A process forked by the target logs as a standalone process (the parent reads
    # records of this child only, and must see the pipe end when it ends).
    os.register_at_fork(after_in_child=_forget_in_fork)


def set_threshold(level: int) -> None:
    """The parent's threshold changed (called from the parent as an ordinary request)."""
    _Child.level = level
    if _Child.handler is not None:
        sys.modules["logging"].getLogger().setLevel(level)


def _forget_in_fork() -> None:
    handler, _Child.handler = _Child.handler, None
    if handler is not None:
        sys.modules["logging"].getLogger().removeHandler(handler)
    if _Child.fd >= 0:
        try:
            os.close(_Child.fd)
        except OSError:
            pass
        _Child.fd = -1


class _AttachOnImport:
    """A meta path finder that lets the real finder load `logging`, then attaches the handler."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "logging":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _AttachAfter(spec.loader)
        return spec


class _AttachAfter:
    """Wraps the real loader of `logging` for one load, then steps aside."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        _attach(module)


def _attach(logging: Any) -> None:
    if _Child.fd < 0 or _Child.handler is not None:
        return

    class ForwardToParent(logging.Handler):  # type: ignore[misc]
        """Sends each record to the parent as one JSON line (see the module docstring)."""

        def emit(self, record: Any) -> None:
            try:
                _write(_Child.fd, _record_line(record, self.formatter or _FORMATTER[0]))
            except Exception:
                self.handleError(record)

    _FORMATTER.append(logging.Formatter())
    _Child.handler = ForwardToParent()
    root = logging.getLogger()
    root.addHandler(_Child.handler)
    root.setLevel(_Child.level)


_FORMATTER: list[Any] = []


def _record_line(record: Any, formatter: Any) -> bytes:
    import json

    exc_text = record.exc_text
    if record.exc_info and not exc_text:
        exc_text = formatter.formatException(record.exc_info)
    fields = {
        "name": record.name, "levelno": record.levelno, "levelname": record.levelname,
        "msg": record.getMessage(), "exc_text": exc_text, "stack_info": record.stack_info,
        "pathname": record.pathname, "lineno": record.lineno, "funcName": record.funcName,
        "created": record.created, "thread": record.thread, "threadName": record.threadName,
        "processName": record.processName,
        "extra": {key: value for key, value in record.__dict__.items()
                  if key not in _STANDARD and type(value) in (str, int, float, bool)},
    }
    line = json.dumps(fields, default=str).encode()
    if len(line) > RECORD_CAP:  # cut the big texts so that the record still arrives
        share = RECORD_CAP // 4
        for key in ("msg", "exc_text", "stack_info"):
            text = fields[key]
            if isinstance(text, str) and len(text) > share:
                fields[key] = text[:share] + f"...[extradite: cut at {share} characters]"
        fields["extra"] = {}
        line = json.dumps(fields, default=str).encode()
    return line + b"\n"


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- parent side -------------------------------------------------------------------------
def parent_threshold() -> int:
    """The lowest level a record may need to reach this process's handlers.

    The root's level, lowered by any logger set lower explicitly, raised by `logging.disable`.
    WARNING when `logging` is not imported here (its last-resort handler's level).
    """
    logging = sys.modules.get("logging")
    if logging is None:
        return WARNING
    root = logging.getLogger()
    level: int = root.level
    for logger in list(logging.Logger.manager.loggerDict.values()):
        own = getattr(logger, "level", 0)  # placeholders have none
        if own and own < level:
            level = own
    disable: int = logging.Logger.manager.disable
    return max(level, disable + 1) if disable else level


class LogReceiver:
    """Turns the child's JSON lines back into records of this process's loggers."""

    def __init__(self, child_pid: int) -> None:
        from ._output import LineSplitter

        self.child_pid = child_pid
        self.splitter: LineSplitter = LineSplitter(RECORD_CAP + 4096)

    def feed(self, chunk: bytes) -> None:
        for line, cut in self.splitter.feed(chunk):
            if not cut:  # a cut line is no JSON any more (the child cuts records to fit first)
                self.emit(line)

    def emit(self, line: bytes) -> None:
        import json
        import logging

        try:
            fields = json.loads(line)
            name, levelno, msg = fields["name"], fields["levelno"], fields["msg"]
            if not (type(name) is str and type(levelno) is int and type(msg) is str):
                return
        except Exception:  # not a record of ours: nothing to re-emit
            return
        logger = logging.getLogger(name)
        if not logger.isEnabledFor(levelno):
            return
        text = _text_or_none
        record = logger.makeRecord(name, levelno, text(fields, "pathname") or "(unknown file)",
                                   _int(fields, "lineno"), msg, (), None,
                                   text(fields, "funcName"), None, text(fields, "stack_info"))
        levelname = text(fields, "levelname")
        if levelname:
            record.levelname = levelname
        created = fields.get("created")
        if type(created) is float:
            record.created = created
            record.msecs = (created - int(created)) * 1000
            record.relativeCreated = (created - logging._startTime) * 1000  # type: ignore[attr-defined]
        record.exc_text = text(fields, "exc_text")
        record.thread = _int(fields, "thread")
        record.threadName = text(fields, "threadName")
        record.processName = text(fields, "processName")
        record.process = record.extradite_pid = self.child_pid
        extra = fields.get("extra")
        if isinstance(extra, dict):
            for key, value in extra.items():
                if type(key) is str and key not in record.__dict__ and type(value) in (str, int, float, bool):
                    setattr(record, key, value)
        logger.handle(record)


def _text_or_none(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    return value if type(value) is str else None


def _int(fields: dict[str, Any], key: str) -> int:
    value = fields.get(key)
    return value if type(value) is int else 0
