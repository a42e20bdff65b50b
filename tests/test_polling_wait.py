"""The low-latency wait: the shared sequence page, no lost wake-up, bounded polling (no child process)."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import pytest

from extradite import _transport
from extradite._transport import Channel
from extradite._wire import REPLY, REQUEST

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="needs memfd_create")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(_transport, "_SPIN_MAX_NS", 200_000)
    monkeypatch.setattr(_transport, "_POLL_POSSIBLE", True)
    monkeypatch.setattr(_transport, "_load", [time.perf_counter_ns(), 1])  # the machine counts as quiet
    before = _open_fds()
    a, b = socket.socketpair()
    owner, other = Channel(a, page_owner=True), Channel(b)
    owner.spin_cap_ns = other.spin_cap_ns = 200_000
    owner._spin_ns = other._spin_ns = 50_000
    yield owner, other
    owner.close()
    other.close()
    assert _open_fds() == before, "a channel left a descriptor open"


def test_page_rides_on_the_first_frame_and_words_count_frames(pair: Any) -> None:
    owner, other = pair
    assert owner._page is not None and other._page is None
    owner.send_bytes(REQUEST, 1, 1, b"first")
    frame = other.recv()
    assert bytes(frame.body) == b"first" and frame.flags == 0  # the page flag is consumed
    assert other._page is not None
    for i in range(5):
        other.send_bytes(REPLY, i, 1, b"r")
    assert _transport._WORD.unpack_from(owner._page, owner._peer_word)[0] == 5
    for i in range(5):
        assert owner.recv().request_id == i
    assert owner._received == 5


def test_slow_peer_is_not_lost_and_polls_less(pair: Any) -> None:
    owner, other = pair
    owner.send_bytes(REQUEST, 1, 1, b"hello")
    other.recv()
    window = owner._spin_ns

    def late_reply() -> None:
        time.sleep(0.05)  # far longer than any polling window: the reader must block, then wake
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
    monkeypatch.setattr(_transport, "_load", [time.perf_counter_ns(), 0])  # runnable tasks > CPUs
    owner.send_bytes(REQUEST, 1, 1, b"x")
    other.recv()
    window = owner._spin_ns
    threading.Timer(0.02, other.send_bytes, (REPLY, 1, 1, b"y")).start()
    assert bytes(owner.recv().body) == b"y"
    assert owner._spin_ns == window  # no polling happened, so the window did not adapt


def test_big_frames_with_shared_memory_keep_the_page(pair: Any) -> None:
    owner, other = pair
    writer = _transport.BodyWriter()
    payload = bytes(range(256)) * 1024  # 256 KiB: through an arena, descriptors beside the page's
    writer.write(payload)
    owner.send(REQUEST, 7, 7, writer)
    frame = other.recv()
    assert other._page is not None
    assert frame.open().read() == payload
    frame.done()
