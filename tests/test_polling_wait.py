"""The shared page: ring frames, their order beside socket frames, no lost wake-up, bounded polling.

Two `Channel`s on a socket pair in one process (no child process).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
from typing import Any

import pytest

from extradite import _polling, _ring
from extradite._errors import ExtraditeProtocolError
from extradite._transport import BodyWriter, Channel, ChannelEOF
from extradite._wire import REPLY, REQUEST

pytestmark = pytest.mark.skipif(not _ring.RING_POSSIBLE, reason="the shared ring needs memfd_create on x86-64")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _socket_is_empty(channel: Channel) -> bool:
    try:
        channel.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    return False


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(_polling, "_load", [time.perf_counter_ns(), 1, 0])  # the machine counts as quiet
    before = _open_fds()
    a, b = socket.socketpair()
    owner, other = Channel(a, page_owner=True), Channel(b)
    owner.spin_cap_ns = other.spin_cap_ns = 200_000
    owner._spin_ns = other._spin_ns = 50_000
    yield owner, other
    owner.close()
    other.close()
    assert _open_fds() == before, "a channel left a descriptor open"


def _connect(owner: Channel, other: Channel) -> None:
    """The first frame carries the page; both sides use the ring from then on."""
    owner.send_bytes(REQUEST, 0, 1, b"first")
    frame = other.recv()
    assert bytes(frame.body) == b"first" and frame.flags == 0  # the page flag is consumed


def _big(n: int) -> BodyWriter:
    writer = BodyWriter()
    writer.write(bytes([n % 251]) * (_ring.RING_MAX + 100))  # too big for the ring, too small for an arena
    return writer


def test_page_rides_on_the_first_frame_then_small_frames_skip_the_socket(pair: Any) -> None:
    owner, other = pair
    assert owner._page is not None and other._page is None
    _connect(owner, other)
    assert other._page is not None
    for i in range(5):
        other.send_bytes(REPLY, i, 1, b"r%d" % i)
    assert _socket_is_empty(owner), "small frames went through the socket"
    assert owner._words is not None and owner._words[owner._rx] == 5  # `published` counts frames
    assert [bytes(owner.recv().body) for _ in range(5)] == [b"r%d" % i for i in range(5)]
    assert owner._received == 5


def test_ring_and_socket_frames_arrive_in_sending_order(pair: Any) -> None:
    owner, other = pair
    _connect(owner, other)
    rng = random.Random(5)
    expected = []
    for i in range(400):  # never read while sending: the ring fills, later frames take the socket
        choice = rng.random()
        if choice < 0.15:
            owner.send(REQUEST, i, 1, _big(i))
            expected.append((i, _ring.RING_MAX + 100))
        elif choice < 0.2:
            writer = BodyWriter()
            writer.write(bytes(200_000))  # through an arena: descriptors on the socket
            owner.send(REQUEST, i, 1, writer)
            expected.append((i, -1))
        else:
            body = bytes([i % 256]) * rng.randrange(0, 3000)
            owner.send_bytes(REQUEST, i, 1, body)
            expected.append((i, len(body)))
        if i % 50 == 49:  # drain now and then, so that the socket buffer never fills
            while expected:
                rid, size = expected.pop(0)
                frame = other.recv()
                assert frame.request_id == rid
                if size >= 0:
                    assert len(frame.body) == size
                else:
                    assert len(frame.open().read()) == 200_000
                    frame.done()


def test_a_published_socket_frame_is_read_without_waiting(pair: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ring empty, socket buffer empty, `published` ahead: the frame is in the socket, so `recv`
    reads it there at once (no polling window, no sleep)."""
    owner, other = pair
    _connect(owner, other)
    owner.send(REQUEST, 7, 1, _big(7))
    owner.send_bytes(REQUEST, 8, 1, b"after")  # and the ring frame behind it keeps its place

    def no_wait() -> None:
        raise AssertionError("recv waited although a published frame was in the socket")

    monkeypatch.setattr(other, "_wait", no_wait)
    frame = other.recv()
    assert frame.request_id == 7 and len(frame.body) == _ring.RING_MAX + 100
    assert bytes(other.recv().body) == b"after"


def test_wrapping_around_the_ring_keeps_every_byte(pair: Any) -> None:
    owner, other = pair
    _connect(owner, other)
    rng = random.Random(7)
    for i in range(3000):
        body = rng.randbytes(rng.randrange(0, _ring.RING_MAX + 1))
        other.send_bytes(REPLY, i, 1, body)
        frame = owner.recv()
        assert frame.request_id == i and bytes(frame.body) == body
    assert owner._rx_head > 10 * _ring.RING  # it wrapped many times


def test_a_sleeping_reader_is_woken_by_a_ring_frame(pair: Any) -> None:
    owner, other = pair
    _connect(owner, other)
    owner.spin_cap_ns = owner._spin_ns = 0  # never poll: every wait sleeps on the socket
    rng = random.Random(3)
    for i in range(200):
        delay = rng.choice([0, 0, 1e-5, 1e-4, 1e-3])
        timer = threading.Timer(delay, other.send_bytes, (REPLY, i, 1, b"late"))
        timer.start()
        start = time.perf_counter()
        frame = owner.recv()
        timer.join()
        assert frame.request_id == i
        assert time.perf_counter() - start < 5, "a wake-up was lost"


class _CountingSocket:
    """A socket whose sendall calls are recorded."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sent.append(bytes(data))
        self.sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def test_frames_published_during_one_sleep_send_one_wake(pair: Any) -> None:
    """A deferred request behind another: one WAKE on the socket; the reader takes both from the ring.
    A reader that went back to sleep shows a new sleep, which gets its own WAKE."""
    owner, other = pair
    _connect(owner, other)
    owner.spin_cap_ns = owner._spin_ns = 0  # never poll: every wait sleeps on the socket
    counting = _CountingSocket(other.sock)
    other.sock = counting  # type: ignore[assignment]
    wakes = counting.sent
    try:
        _one_wake_per_sleep(owner, other, wakes)
    finally:
        other.sock = counting.sock


def _one_wake_per_sleep(owner: Channel, other: Channel, wakes: list[bytes]) -> None:
    """Each sleep of the reader gets at most one WAKE, and two frames published during one
    sleep get one. Under load the reader may take the first frame and sleep again before
    the second is published (a new sleep, rightly woken again), so rounds repeat until one
    saw both frames published during a single sleep."""
    single_sleep_rounds = 0
    for round_ in range(20):
        taken: list[int] = []
        sleeps_before, wakes_before = owner._sleeps, len(wakes)
        reader = threading.Thread(target=lambda: taken.extend(owner.recv().request_id for _ in range(2)))
        reader.start()
        deadline = time.monotonic() + 5
        while not other.peer_asleep() and time.monotonic() < deadline:
            time.sleep(0.001)
        other.send_bytes(REPLY, 10 * round_, 1, b"first")
        other.send_bytes(REPLY, 10 * round_ + 1, 1, b"second")
        reader.join(5)
        assert taken == [10 * round_, 10 * round_ + 1]
        sleeps, new_wakes = owner._sleeps - sleeps_before, len(wakes) - wakes_before
        assert wakes[wakes_before:] == [_ring.WAKE_FRAME] * new_wakes
        assert 1 <= new_wakes <= sleeps, "one WAKE per sleep at most"
        if sleeps == 1:
            assert new_wakes == 1, "one WAKE per sleep, not per frame"
            single_sleep_rounds += 1
            if single_sleep_rounds == 3:
                return
    assert single_sleep_rounds, "no round published both frames during one sleep of the reader"


def test_frame_ready_says_whether_a_frame_waits_without_waiting(pair: Any) -> None:
    owner, other = pair
    _connect(owner, other)
    assert not owner.frame_ready()
    other.send_bytes(REPLY, 1, 1, b"ring")  # through the ring
    other.send(REPLY, 2, 1, _big(2))  # through the socket
    assert owner.frame_ready()
    assert owner.recv().request_id == 1 and owner.frame_ready()
    assert owner.recv().request_id == 2 and not owner.frame_ready()


def test_polling_the_next_wait_fully_respects_the_cap(pair: Any) -> None:
    owner, _ = pair
    owner._spin_ns = 1_000
    owner.poll_next_wait_fully()
    assert owner._spin_ns == owner.spin_cap_ns == 200_000
    owner.spin_cap_ns = owner._spin_ns = 0  # EXTRADITE_SPIN_US=0: never poll, not even then
    owner.poll_next_wait_fully()
    assert owner._spin_ns == 0


def test_the_serving_side_polls_fully_after_an_import() -> None:
    """Construction and the first calls follow an import sooner than a window shrunk by the
    idle wait before it would poll: the serving side waits for them polling, not asleep."""
    from extradite._dispatch import op_import
    from extradite._proxy import ProxyFactory
    from extradite._session import Session

    a, b = socket.socketpair()
    child = Session(b, is_child=True, factory=ProxyFactory)
    try:
        child.channel._spin_ns = 1_000  # as a long idle wait leaves it
        assert op_import(child, "json", "JSONDecoder", ("json",), {}, 0)[0].__name__ == "JSONDecoder"
        assert child.channel._spin_ns == child.channel.spin_cap_ns
    finally:
        child.close()
        a.close()


def test_many_writer_threads_one_reader(pair: Any) -> None:
    owner, other = pair
    _connect(owner, other)

    def writer(tid: int) -> None:
        for n in range(500):
            with other.send_lock:
                if n % 97 == 0:
                    other.send(REPLY, n, tid, _big(n))
                else:
                    other.send_bytes(REPLY, n, tid, b"%d:%d" % (tid, n))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    seen = {t: -1 for t in range(4)}
    for _ in range(4 * 500):
        frame = owner.recv()
        assert frame.request_id == seen[frame.chain] + 1  # each thread's frames stay in order
        seen[frame.chain] = frame.request_id
    for thread in threads:
        thread.join()


def test_slow_peer_is_not_lost_and_polls_less(pair: Any) -> None:
    owner, other = pair
    _connect(owner, other)
    window = owner._spin_ns

    def late_reply() -> None:
        time.sleep(0.05)  # far longer than any polling window: the reader must sleep, then wake
        other.send_bytes(REPLY, 1, 1, b"late")

    for _ in range(3):
        thread = threading.Thread(target=late_reply)
        start = time.perf_counter()
        thread.start()
        frame = owner.recv()
        thread.join()
        assert bytes(frame.body) == b"late"
        assert time.perf_counter() - start < 5
    assert owner._spin_ns < window  # a slow peer is polled for ever shorter windows


def test_busy_machine_skips_polling_and_stays_correct(pair: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    owner, other = pair
    _connect(owner, other)
    monkeypatch.setattr(_polling, "_load", [time.perf_counter_ns(), 0, 2])  # runnable tasks > CPUs
    window = owner._spin_ns
    threading.Timer(0.02, other.send_bytes, (REPLY, 1, 1, b"y")).start()
    assert bytes(owner.recv().body) == b"y"
    assert owner._spin_ns == window  # no polling happened, so the window did not adapt


def test_polling_stops_after_two_busy_load_samples_in_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """One busy sample (a passing kernel worker) keeps polling on; a CPU-bound competitor,
    busy in every sample, turns it off; one quiet sample turns it back on."""
    busy, quiet = _polling._CPUS + 1, _polling._CPUS
    samples = iter([busy, quiet, busy, busy, busy, quiet])
    monkeypatch.setattr(_polling, "_runnable_tasks", lambda: next(samples))
    monkeypatch.setattr(_polling, "_load", [0, 1, 0])
    decisions = []
    for _ in range(6):
        _polling._load[0] = 0  # the last sample is old: take a new one
        decisions.append(_polling.machine_quiet())
    assert decisions == [True, True, True, False, False, True]
    assert _polling.machine_quiet() is True  # within 50 ms: the last decision, no new sample


def test_a_replayed_frame_is_a_protocol_error(pair: Any) -> None:
    owner, other = pair
    _connect(owner, other)
    other.send_bytes(REPLY, 1, 1, b"once")
    owner.recv()
    other._sent -= 1  # the next frame repeats the last sequence number
    other.send_bytes(REPLY, 1, 1, b"again")
    with pytest.raises(ExtraditeProtocolError, match="corrupt frame.*replayed or stale"):
        owner.recv()


def test_closing_wakes_a_reader_that_waits(pair: Any) -> None:
    owner, other = pair
    _connect(owner, other)
    owner.spin_cap_ns = owner._spin_ns = 0
    errors: list[BaseException] = []

    def read() -> None:
        try:
            owner.recv()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.05)
    owner.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], (ChannelEOF, OSError))


def test_a_writer_in_another_process_mixing_ring_and_socket_frames_keeps_order(pair: Any) -> None:
    """A second process writes frames of mixed sizes (ring and socket) while this one reads.

    This is what catches a control word the reader sees half-written: `struct.pack_into`
    zeroes its destination before it packs, so a reader on the other CPU could see the
    ring's tail at 0 for a moment and report a frame beyond it as corrupt.
    """
    owner, other = pair
    _connect(owner, other)
    frames = 200_000
    sizes = [10, 30, 100, 3000, 9000]  # 9000 is over the ring's limit: those take the socket
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the writer process
        status = 0
        try:
            owner.sock.close()
            rng = random.Random(1)
            for index in range(frames):
                other.send_bytes(REPLY, 1, index, index.to_bytes(4, "little") + bytes(rng.choice(sizes)))
        except BaseException:
            status = 1
        os._exit(status)
    owner.sock.settimeout(30)  # a reader that waits for a frame it missed fails instead of hanging
    try:
        rng = random.Random(1)
        for index in range(frames):
            frame = owner.recv()
            assert (frame.chain, int.from_bytes(frame.body[:4], "little")) == (index, index)
            assert len(frame.body) == 4 + rng.choice(sizes)
    except BaseException:
        os.kill(pid, signal.SIGKILL)  # it may be blocked on a full socket
        raise
    finally:
        _, status = os.waitpid(pid, 0)
    assert status == 0
