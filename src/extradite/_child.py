"""Child entry point: serve one channel until the parent goes away.

Imports only the standard library and the runtime modules it needs (never the
generator, jinja2 or libcst). Start-up is on the critical path of every
`extradite()`, so nothing is imported here that a plain call does not need.

Run as `python -m extradite._child FD` or through the bootstrap in `_process`.
"""

from __future__ import annotations

import os
import sys


def main(fd: int) -> None:
    import _signal  # type: ignore[import-not-found]
    import _socket
    import faulthandler

    # Ctrl-C in a terminal reaches the whole process group; the parent decides.
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    faulthandler.enable()  # a segfault leaves a Python traceback in the parent's error
    sock = _socket.socket(fileno=fd)
    os.set_inheritable(fd, False)

    from ._parent_types import ParentTypes
    from ._session import Session

    session = Session(sock, is_child=True, factory=ParentTypes, name=f"child {os.getpid()}")

    # A process forked by the target (os.fork, multiprocessing's fork start method) must
    # not keep the channel open, or the parent would not see EOF when this child dies.
    os.register_at_fork(after_in_child=session.channel.forget_in_fork)
    session.serve_forever()
    session.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main(int(sys.argv[1]))
