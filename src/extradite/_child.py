"""Child entry point: serve one channel until the parent goes away.

Imports only the standard library and the runtime modules it needs (never the
generator, jinja2 or libcst). Start-up is on the critical path of every
`extradite()`, so nothing is imported here that a plain call does not need.

Run as `python -m extradite._child FD` or through the bootstrap in `_process`.
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._session import Session


def main(fd: int, *, parent: int = 0, log_fd: int = -1, log_level: int = 0,
         confine: tuple[Any, ...] | None = None) -> None:
    """Serve the channel on `fd` until it ends.

    `parent`: the pid of the process that started this child (0: started by hand, no
    warden, see `_warden`); `log_fd`, `log_level`: forward `logging` records from that
    level up to that descriptor (-1: do not, see `_logforward`); `confine`: a
    `_sandbox.Confinement.spec` applied last before serving.
    """
    import gc

    gc.disable()  # start-up allocates much and frees little: no collection until serving (`serve`)
    prepare(0)
    serve(fd, parent=parent, log_fd=log_fd, log_level=log_level, confine=confine)


def prepare(parent: int) -> int:
    """What a child does before it knows its channel: its signals, and its warden where
    `parent` is given (a fork server's child, whose runtime is loaded already; a spawned
    child forks it in `serve`). Returns the warden's middle process (0: none)."""
    warden_middle = 0
    if parent:  # while this process has one thread
        from ._warden import start_warden

        warden_middle = start_warden(parent)
    import _signal  # type: ignore[import-not-found]
    import faulthandler

    # Ctrl-C in a terminal reaches the whole process group; the parent decides (it sends
    # SIGINT to this pid alone to stop a call: `_deadline`).
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    faulthandler.enable()  # a segfault leaves a Python traceback in the parent's error
    return warden_middle


def serve(fd: int, *, warden_middle: int = 0, parent: int = 0, log_fd: int = -1, log_level: int = 0,
          confine: tuple[Any, ...] | None = None, session: Session | None = None) -> None:
    """After `prepare`: serve the channel on `fd` until it ends (arguments: see `main`).

    `warden_middle`: the middle process of a warden `prepare` forked; `parent`: fork the
    warden here instead, once the runtime is loaded and before the target is (see `_warden`);
    `session`: one `new_session` built ahead (a fork server's spare), given the socket here.
    """
    import _socket
    import gc
    import mmap  # noqa: F401  (the shared page's, at the first frame: loaded before the warden shares our pages)

    import_pickle()

    if log_fd >= 0:  # before the target is imported: it may log while it loads
        from ._logforward import install

        install(log_fd, log_level)
    sock = _socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    if session is None:
        # loaded before the warden forks: it shares (and the child then copies) fewer pages
        from ._deadline import install_child_handler  # noqa: F401
        from ._session import Session  # noqa: F401

        if parent:  # still one thread, SIGINT still ignored; the target not loaded yet
            from ._warden import start_warden

            warden_middle = start_warden(parent)
        session = new_session()
    session.channel.attach(sock)
    if confine is not None:  # last before serving: the target loads with the first request
        from ._sandbox import confine as apply_confinement

        apply_confinement(confine)
    if warden_middle:  # it has forked the warden and exits (see `start_warden`): reaped before any target code
        os.waitpid(warden_middle, 0)
    # The runtime lives as long as this process: no collection walks it again.
    gc.freeze()
    gc.enable()
    failure = session.serve_forever()
    if failure is not None and not _parent_left(failure):  # the parent quotes our stderr when we die
        sys.stderr.write(f"extradite child {os.getpid()}: {failure}\n")
    session.close()
    sys.stdout.flush()


def import_pickle() -> None:
    """Import `_pickle` without `functools` and the modules that one imports (`collections`,
    `keyword`, `operator`, `reprlib`, ...): `_pickle` takes only `functools.partial` from it,
    which is `_functools.partial`. A stand-in module serves that one name while `_pickle`
    loads and is gone at once, so the target imports the real `functools` as in a plain
    interpreter. Nothing to do where either is loaded already."""
    modules = sys.modules
    if "_pickle" in modules or "functools" in modules:
        return
    import _functools  # type: ignore[import-not-found]

    stand_in = type(sys)("functools")
    stand_in.partial = _functools.partial  # type: ignore[attr-defined]
    modules["functools"] = stand_in
    try:
        import _pickle  # noqa: F401
    finally:
        if modules.get("functools") is stand_in:
            del modules["functools"]


def new_session() -> Session:
    """The child's `Session`, everything of it but its socket (`serve` attaches that): built
    by a fork server's spare while it waits for a session it does not know yet.

    Its SIGINT handler too (see `_deadline`): it needs the session, not the channel."""
    from ._deadline import install_child_handler
    from ._session import Session

    session = Session(None, is_child=True, factory=_ParentTypesOnFirstUse, name=f"child {os.getpid()}")
    # A process forked by the target (os.fork, multiprocessing's fork start method) must
    # not keep the channel open, or the parent would not see EOF when this child dies.
    os.register_at_fork(after_in_child=session.channel.forget_in_fork)
    install_child_handler(session)
    return session


def _parent_left(failure: BaseException) -> bool:
    from ._transport import ChannelEOF

    # a reset: the parent closed its end with frames unread (a WAKE, a dropped reply)
    return isinstance(failure, ChannelEOF) or isinstance(failure.__cause__, (ChannelEOF, ConnectionResetError))


class _ParentTypesOnFirstUse:
    """The child's proxy factory (`_parent_types.ParentTypes`), imported when the first parent
    class arrives: many children never see one, and start-up is on the critical path."""

    @staticmethod
    def make_class(*args: Any) -> type:
        from ._parent_types import ParentTypes

        # an instance's class always arrives first: from now on, no import per new instance
        _ParentTypesOnFirstUse.make_instance = ParentTypes.make_instance  # type: ignore[method-assign]
        return ParentTypes.make_class(*args)

    @staticmethod
    def make_instance(session: Any, cls: type, hid: int) -> Any:
        from ._parent_types import ParentTypes

        return ParentTypes.make_instance(session, cls, hid)


if __name__ == "__main__":
    main(int(sys.argv[1]))
