"""The benchmark's rpyc column: what a user who picks rpyc instead of extradite would run.

A classic rpyc connection to a server process over its stdio pipes, as
`rpyc.classic.connect_subproc` sets one up (on the development machine this was faster
than rpyc over TCP or a Unix socket: 107 against 400 and 270 us per call). Used as an rpyc
user who cares about speed would:

- every netref attribute access is a round trip, so methods are looked up once, outside
  the timed loop;
- rpyc passes immutable builtins (and tuples of them) by value and everything else by
  reference, so where the other columns copy a value (a dict, a list, an array) `ByValue`
  copies it through the server's pickle, as `rpyc.classic.deliver` and `obtain` do, with
  the server's `pickle.loads`/`pickle.dumps` looked up once (callables stay references,
  for callbacks).

Imported only when rpyc is installed.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

from rpyc.core.brine import dumpable
from rpyc.core.netref import BaseNetref
from rpyc.core.service import ClassicService
from rpyc.utils.factory import connect_subproc

# The classic server (`rpyc_classic -m stdio`), started without its console script, which
# a virtual environment may not have on PATH.
SERVER = "from rpyc.cli.rpyc_classic import main; main()"


class Server:
    """An rpyc classic server process and the connection to it; `paths` go first on its sys.path."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.conn = connect_subproc([sys.executable, "-u", "-c", SERVER, "-q", "-m", "stdio"], ClassicService)
        try:
            remote_sys = self.conn.modules.sys
            for path in reversed(list(paths)):
                remote_sys.path.insert(0, path)
            remote_pickle = self.conn.modules.pickle
            self._loads, self._dumps = remote_pickle.loads, remote_pickle.dumps
        except BaseException:
            self.close()
            raise

    def new(self, target: str, *args: Any) -> Any:
        """A netref to a new instance of `target` ("module:Class") in the server."""
        module, _, name = target.partition(":")
        return getattr(self.conn.modules[module], name)(*args)

    def by_value(self, obj: Any) -> ByValue:
        return ByValue(self, obj)

    def deliver(self, value: Any) -> Any:
        """A copy of `value` in the server (a netref to it), as `rpyc.classic.deliver`."""
        return self._loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))

    def obtain(self, netref: Any) -> Any:
        """A local copy of the server's object behind `netref`, as `rpyc.classic.obtain`."""
        return pickle.loads(self._dumps(netref, pickle.HIGHEST_PROTOCOL))

    def close(self) -> None:
        proc = self.conn.proc
        try:
            self.conn.close()  # the server reads end of file and exits
        finally:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class ColdStart:
    """A new server for one cold start: calling this constructs `target` ("module:Class") there."""

    def __init__(self, paths: Iterable[str], target: str) -> None:
        self.server = Server(paths)
        self.target = target

    def __call__(self, *args: Any) -> Any:
        return self.server.new(self.target, *args)

    def close(self) -> None:
        self.server.close()


class ByValue:
    """A netref whose method calls copy arguments and results both ways, as pickling does."""

    def __init__(self, server: Server, obj: Any) -> None:
        self._server = server
        self._obj = obj

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._obj, name)  # once per name (cached below)
        server = self._server

        def call(*args: Any) -> Any:
            # callables stay references: the server calls back into this process through them
            sent = tuple(a if dumpable(a) or callable(a) else server.deliver(a) for a in args)
            result = method(*sent)
            return server.obtain(result) if isinstance(result, BaseNetref) else result
        self.__dict__[name] = call
        return call
