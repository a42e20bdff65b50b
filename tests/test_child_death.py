"""A child that dies fails the waiting call at once, clearly; a parent that dies takes its child along."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extradite import ExtraditeProcessError, ExtraditeProtocolError, extradite
from extradite._api import session_of

from conftest import kill_parent_of_a_child, wait_gone



@pytest.fixture
def Fragile() -> Iterator[Any]:
    cls = extradite("targets.dying:Fragile")
    try:
        yield cls
    finally:
        cls.close()


def _dies_quickly(call: Any) -> ExtraditeProcessError:
    start = time.monotonic()
    with pytest.raises(ExtraditeProcessError) as info:
        call()
    assert time.monotonic() - start < 1.5, "the dead child was noticed too late"
    return info.value


def _later_calls_fail_the_same_way(Fragile: Any, instance: Any, first: ExtraditeProcessError) -> None:
    start = time.monotonic()
    for call in (instance.ping, lambda: Fragile()):
        with pytest.raises(ExtraditeProcessError) as again:
            call()
        assert str(again.value) == str(first)
    assert time.monotonic() - start < 0.5


def test_exit_during_call(Fragile: Any) -> None:
    fragile = Fragile()
    error = _dies_quickly(lambda: fragile.exit_hard(3))
    assert isinstance(error, ExtraditeProtocolError)
    assert error.returncode == 3
    assert "exited with code 3" in str(error)
    assert "fragile: exiting with 3" in str(error)
    _later_calls_fail_the_same_way(Fragile, fragile, error)


def test_segfault_during_call(Fragile: Any) -> None:
    fragile = Fragile()
    error = _dies_quickly(fragile.segfault)
    assert error.returncode == -signal.SIGSEGV
    assert "SIGSEGV" in str(error)
    assert "fragile: about to crash" in str(error)
    assert "Segmentation fault" in error.stderr_tail  # faulthandler's report
    _later_calls_fail_the_same_way(Fragile, fragile, error)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_signal_during_call(Fragile: Any, signum: int) -> None:
    fragile = Fragile()
    error = _dies_quickly(lambda: fragile.kill_self(signum))
    assert error.returncode == -signum
    assert signal.Signals(signum).name in str(error)


def test_killed_from_outside_while_call_waits(Fragile: Any) -> None:
    fragile = Fragile()
    pid = fragile.pid()
    timer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
    timer.start()
    try:
        error = _dies_quickly(lambda: fragile.sleep(30))
    finally:
        timer.join()
    assert "SIGKILL" in str(error)
    assert "wrote nothing to stderr" in str(error)


def test_every_waiting_thread_fails_at_once(Fragile: Any) -> None:
    fragile = Fragile()
    errors: list[BaseException] = []

    def wait_on_child() -> None:
        try:
            fragile.sleep(30)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=wait_on_child) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    os.kill(session_of(Fragile).process.pid, signal.SIGKILL)
    for thread in threads:
        thread.join(5)
    assert len(errors) == 3 and all(isinstance(e, ExtraditeProcessError) for e in errors)


def test_sys_exit_in_target_is_a_process_error(Fragile: Any) -> None:
    error = _dies_quickly(Fragile().system_exit)
    assert error.returncode == 7


def test_parent_killed_child_exits(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import time
        from extradite import extradite
        from extradite._api import session_of
        Fragile = extradite("targets.dying:Fragile")
        Fragile().ping()
        print(session_of(Fragile).process.pid, flush=True)
        time.sleep(60)
    """))
    child_pid = kill_parent_of_a_child(script)
    assert wait_gone(child_pid), "the child outlived its killed parent"


@pytest.mark.parametrize("where", ["socket", "ring"])
def test_corrupt_frame_breaks_session_with_protocol_error(Fragile: Any, where: str) -> None:
    """Garbage in the channel (socket or shared ring) is reported as a corrupt frame and stops the child."""
    fragile = Fragile()
    handle = session_of(Fragile)
    child_pid = handle.process.pid
    inject = _garbage_in_socket if where == "socket" else _garbage_in_ring
    with pytest.raises(ExtraditeProtocolError, match="corrupt frame"):
        inject(handle.session.channel, fragile.ping)
    assert wait_gone(child_pid)


def _garbage_in_socket(channel: Any, call: Any) -> None:
    import _socket

    # Another end of the child's channel does not exist; instead, feed the parent's reader
    # garbage by swapping its socket for one end of a fresh pair we control (and hiding the
    # ring, where the real reply goes).
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    real, ring = channel.sock, channel._ring_rx
    channel.sock, channel._ring_rx = ours, None
    try:
        theirs.sendall(b"\x07" + b"\x00" * 31)  # a header whose version byte is wrong
        call()
    finally:
        channel.sock, channel._ring_rx = real, ring
        ours.close()
        theirs.close()


def _garbage_in_ring(channel: Any, call: Any) -> None:
    from extradite import _ring

    if channel._ring_rx is None:
        pytest.skip("no shared ring on this platform")
    # Play a child that writes garbage: a frame with a wrong version byte at the head of
    # its ring, published like a real frame.
    words, base = channel._words, channel._rx
    tail = words[base + _ring.TAIL]
    channel._ring_rx[tail % _ring.RING:tail % _ring.RING + 20] = b"\x07" + b"\x00" * 19
    words[base + _ring.TAIL] = tail + 20
    words[base] += 1
    call()
