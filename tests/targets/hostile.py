"""A hostile target: it runs in the child, so it can do anything there, including writing
raw frames to the channel in place of the reply the parent waits for.

Each attack that would run code writes the pid of the process running it to a marker
file: the parent's pid there means the attack got into the parent.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any

from extradite import _shm, _wire


def _serving() -> tuple[Any, int, int]:
    """The child's session and the (request id, chain) of the request being served now."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "_serve" and "rid" in frame.f_locals:
            return frame.f_locals["self"], frame.f_locals["rid"], frame.f_locals["chain"]
        frame = frame.f_back  # type: ignore[assignment]
    raise RuntimeError("not serving a request")


def _text(text: str) -> bytes:
    """A BINUNICODE pickle opcode pushing `text`."""
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


class SystemCall:
    """Unpickled, it runs a shell command writing the unpickling process's pid."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"echo $PPID > {self.marker}",))


class ExecCall:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import builtins

        code = f"open({self.marker!r}, 'w').write(str(__import__('os').getpid()))"
        return (builtins.exec, (code,))


class Hostile:
    # -- values whose unpickling runs code -------------------------------------------
    def system(self, marker: str) -> Any:
        return SystemCall(marker)

    def exec_nested(self, marker: str) -> Any:
        return {"a": [1, (2, ExecCall(marker))]}

    def import_chain(self, marker: str) -> None:
        """A reply built by hand: __import__('os') then getattr(os, 'system')(command)."""
        session, rid, chain = _serving()
        command = f"echo $PPID > {marker}"
        body = (b"\x80\x05(]" + b"cbuiltins\ngetattr\n" + b"cbuiltins\n__import__\n"
                + _text("os") + b"\x85R" + _text("system") + b"\x86R" + _text(command) + b"\x85R" + b"t.")
        self._send(session, _wire.REPLY, rid, chain, body)

    def in_error_frame(self, marker: str) -> None:
        """An ERROR frame whose record carries a value that runs code when unpickled."""
        session, rid, chain = _serving()
        record = ("remote", ("m", "q", "n"), "boom", "", None, (SystemCall(marker),), None)
        self._send(session, _wire.ERROR, rid, chain, pickle.dumps(((), record), 5))

    def walk_globals(self, callback: Any, marker: str) -> str:
        """From a plain lambda the parent passed: its globals' os.system."""
        try:
            system = callback.__globals__["os"].__dict__["system"]
            system(f"echo $PPID > {marker}")
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "walked"

    def walk_class(self, callback: Any, marker: str) -> str:
        try:
            subclasses = callback.__class__.__base__.__subclasses__()
            return f"got {len(subclasses)} subclasses"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    # -- the same values written raw, past the child's codec (as an attacker does) -----------
    def raw_value(self, payload: str, marker: str) -> None:
        """A reply pickled by plain `pickle`: `payload` names which value runs code when loaded."""
        value = {"system": lambda: SystemCall(marker), "exec": lambda: ExecCall(marker),
                 "nested": lambda: {"a": [1, (2, ExecCall(marker))], "b": {SystemCall(marker)}}}[payload]()
        session, rid, chain = _serving()
        self._send(session, _wire.REPLY, rid, chain, pickle.dumps(((), value), 5))

    def import_and_call(self, lent: Any, marker: str) -> None:
        """Ask the parent, through the session of `lent` (a parent object), to import os.system and call it."""
        session = lent._xd_session
        system, _ = session.call(_wire.OP_IMPORT, "os", name="system", args=())
        system(f"echo $PPID > {marker}")

    def walk_to_system(self, callback: Any, marker: str) -> None:
        """callback.__globals__["os"].__dict__["system"](...), letting any refusal propagate."""
        system = callback.__globals__["os"].__dict__["system"]
        system(f"echo $PPID > {marker}")

    def reach(self, lent: Any, path: str) -> Any:
        """Ask the parent for each attribute in `path` ("a.b") in turn, from `lent` (a parent object).

        Raw GETATTR requests: the child's own proxies answer some names locally (`__class__`).
        """
        from extradite._handles import class_dict, class_mro

        if isinstance(lent, type):
            session = next(class_dict(k)["_xd_class_session"] for k in class_mro(lent)
                           if "_xd_class_session" in class_dict(k))
        else:
            session = lent._xd_session
        for name in path.split("."):
            lent = session.call(_wire.OP_GETATTR, lent, name=name)
        return lent

    def set_state(self, lent: Any, state: dict[str, Any]) -> None:
        """A reply that BUILDs `state` into `lent` (a parent object) as it loads: a handle, then BUILD."""
        import extradite._codec as codec

        class Build:
            def __reduce__(self) -> tuple[Any, ...]:
                return (codec._h, (_wire.PID_HOME, lent._xd_hid), state)

        session, rid, chain = _serving()
        self._send(session, _wire.REPLY, rid, chain, pickle.dumps(((), Build()), 5))

    def call_through_reduce(self, lent: Any, marker: str) -> None:
        """A reply whose REDUCE calls `lent` (a parent callable) with a command while the frame loads."""
        handle = (b"cextradite._codec\n_h\n" + b"K\x00J" + lent._xd_hid.to_bytes(4, "little", signed=True)
                  + b"\x86R")
        body = b"\x80\x05)" + handle + _text(f"echo $PPID > {marker}") + b"\x85R\x86."
        session, rid, chain = _serving()
        self._send(session, _wire.REPLY, rid, chain, body)

    def raw_request(self, body: bytes) -> None:
        """A request of this body sent to the parent, as a callback would be."""
        session, rid, chain = _serving()
        self._send(session, _wire.REQUEST, 0x7FFF0001, chain, body)
        import time

        time.sleep(30)  # the parent ends the session (and this child) before any reply

    # -- a broken channel --------------------------------------------------------------
    def raw_reply(self, body: bytes, kind: int = _wire.REPLY) -> None:
        session, rid, chain = _serving()
        self._send(session, kind, rid, chain, body)

    def huge_frame(self) -> None:
        """A reply announcing 4 GiB that never comes."""
        session, rid, chain = _serving()
        with session.channel.send_lock:
            session.channel._emit(_wire.REPLY, 0, rid, chain, [b""], 0xFFFFFFFF, [])

    def descriptor_flood(self, frames: int) -> None:
        """Release frames, each carrying 16 descriptors nobody asked for, then a reply."""
        session, rid, chain = _serving()
        channel = session.channel
        for _ in range(frames):
            fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(16)]
            with channel.send_lock:
                body = pickle.dumps(([],), 5)
                channel._emit(_wire.RELEASE, 0, 0, 0, [body], len(body), fds)
            for fd in fds:
                os.close(fd)

    def shrunk_buffer(self, sealed: bool) -> None:
        """A reply whose shared-memory arena is truncated after it is announced."""
        session, rid, chain = _serving()
        size = 1 << 20
        fd = os.memfd_create("hostile", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(fd, size)
        if sealed:  # sealed, but smaller than the table says
            import fcntl

            os.ftruncate(fd, 4096)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        else:
            os.ftruncate(fd, 0)
        length = 128 * 1024
        table = (_shm.TABLE_HEAD.pack(1, 0, 1, 0) + _shm.NEW_ENTRY.pack(999, size, 1)
                 + _shm.SEG_ENTRY.pack(999, _shm.DATA_OFFSET, length, 4))
        pickled = b"\x80\x05(]" + b"\x97" + b"t."  # NEXT_BUFFER: read out of the arena
        channel = session.channel
        with channel.send_lock:
            channel._emit(_wire.REPLY, _wire.FLAG_SHM, rid, chain, [table, pickled],
                          len(table) + len(pickled), [fd])
        os.close(fd)

    def exception_group(self) -> None:
        raise ExceptionGroup("several failed", [ValueError("first"), KeyError("second"),
                                                ExceptionGroup("inner", [OSError(2, "gone")])])

    def base_exception_group(self) -> None:
        raise BaseExceptionGroup("base", [ValueError("v")])

    @staticmethod
    def _send(session: Any, kind: int, rid: int, chain: int, body: bytes) -> None:
        with session.channel.send_lock:
            session.channel.send_bytes(kind, rid, chain, body)


class Maker:
    def forged(self, planted_name: str) -> Any:
        """An object lent as a handle whose class descriptor plants `planted_name`."""
        import extradite._codec as codec

        class Forged:
            def value(self) -> int:
                return 1

        real = codec.describe_type

        def planted(cls: type, raw: Any = None) -> dict[str, str]:
            table = real(cls, raw)
            if cls is Forged:
                table[planted_name] = "method"
            return table

        codec.describe_type = planted
        return Forged()


class Lender:
    def echo(self, payload: Any) -> Any:
        return payload

    def lend_to_parent(self) -> str:
        """A reply that announces a page and, after it, an unsealed arena for the parent to write into."""
        session, rid, chain = _serving()
        page = os.memfd_create("hostile-page", os.MFD_CLOEXEC)
        evil = os.memfd_create("hostile-lent", os.MFD_CLOEXEC)
        os.ftruncate(page, 4096)
        os.ftruncate(evil, 1 << 20)
        body = pickle.dumps(((), "lent"), 5)
        channel = session.channel
        with channel.send_lock:
            header = _wire.HEADER.pack(_wire.VERSION, _wire.REPLY, _wire.FLAG_PAGE, rid, chain,
                                       channel._sent & 0xFFFFFFFF, len(body))
            channel._sendmsg([header, body], [page, evil])
            channel._sent += 1
            channel._words[channel._tx] = channel._sent
        os.close(page)
        os.close(evil)
        return "sent"  # dropped: the parent took the forged reply above
