"""Deadlines and interrupts with real children: a bounded call raises ExtraditeTimeoutError and the
session goes on (or is dead, if the child had to be killed); Ctrl-C in the parent stops the child's call."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ctrl_c_while_ready
from extradite import ExtraditeError, ExtraditeProcessError, ExtraditeTimeoutError, extradite

TARGET = "tests.targets.slowpoke:Slowpoke"


def test_sleeping_call_bounded_by_call_timeout_then_session_works() -> None:
    Slowpoke = extradite(TARGET, call_timeout=0.5)
    try:
        poke = Slowpoke(1)
        with pytest.raises(ExtraditeTimeoutError) as info:
            poke.sleep(3600)
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, ExtraditeError)
        assert poke.add(2) == 3  # interrupted cleanly: the same child goes on, nothing queued
    finally:
        Slowpoke.close()


def test_child_deaf_to_the_interrupt_is_killed_after_the_grace_period() -> None:
    Slowpoke = extradite(TARGET, call_timeout=0.3, timeout_grace=0.3)
    try:
        poke = Slowpoke()
        with pytest.raises(ExtraditeTimeoutError, match="killed"):
            poke.deaf()
        with pytest.raises(ExtraditeProcessError):
            poke.add(1)
    finally:
        Slowpoke.close()


def test_per_call_timeout() -> None:
    Slowpoke = extradite(TARGET)
    try:
        poke = Slowpoke()
        with pytest.raises(ExtraditeTimeoutError):
            poke.sleep(3600, __extradite_timeout__=0.3)
        assert poke.sleep(0, __extradite_timeout__=5) == "slept"
        with pytest.raises(ValueError, match="__extradite_timeout__"):
            poke.sleep(0, __extradite_timeout__=-1)
    finally:
        Slowpoke.close()


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="call_timeout"):
        extradite(TARGET, call_timeout=0)
    with pytest.raises(ValueError, match="timeout_grace"):
        extradite(TARGET, timeout_grace=-1)


_PARENT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from extradite import extradite
    Slowpoke = extradite("tests.targets.slowpoke:Slowpoke")
    poke = Slowpoke(1)
    mode = sys.argv[1]
    def hang():
        print("ready", flush=True)
        time.sleep(3600)
    print("ready", flush=True) if mode == "call" else None
    try:
        poke.sleep(3600) if mode == "call" else poke.call_back(hang)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    print("after", poke.add(1), flush=True)
    Slowpoke.close()
""")


@pytest.mark.parametrize("mode", ["call", "callback"])
def test_sigint_to_the_parent(mode: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = ctrl_c_while_ready(_PARENT.format(root=root), mode)
    assert out.split("\n")[:2] == ["interrupted", "after 2"]


def test_a_per_call_timeout_replaces_call_timeout() -> None:
    Slowpoke = extradite(TARGET, call_timeout=0.2)
    try:
        poke = Slowpoke()
        assert poke.sleep(0.6, __extradite_timeout__=10) == "slept"  # longer than call_timeout, within its own
        assert poke.sleep.batch([((0.6,), {})], call_timeout=10) == ["slept"]
        with pytest.raises(ExtraditeTimeoutError):
            poke.sleep(3600)  # call_timeout again
        with pytest.raises(ExtraditeTimeoutError, match="0.3 s"):
            poke.sleep(3600, __extradite_timeout__=0.3)
    finally:
        Slowpoke.close()


def test_construction_is_bounded_by_call_timeout_and_per_call() -> None:
    Slowpoke = extradite(TARGET, call_timeout=0.3)
    try:
        with pytest.raises(ExtraditeTimeoutError):
            Slowpoke(1, 3600)  # a constructor that sleeps
        assert Slowpoke(2).add(1) == 3
    finally:
        Slowpoke.close()
    Slowpoke = extradite(TARGET)
    try:
        with pytest.raises(ExtraditeTimeoutError):
            Slowpoke(1, 3600, __extradite_timeout__=0.3)
        assert Slowpoke(2, __extradite_timeout__=5).add(1) == 3  # the keyword is not the constructor's
    finally:
        Slowpoke.close()


def test_generated_proxy_construction_and_batch_honour_call_timeout(tmp_path: Path) -> None:
    from test_gen_cli import gen

    out = tmp_path / "out"
    result = gen(TARGET, "-o", str(out))
    assert result.returncode == 0, result.stderr
    sys.path.insert(0, str(out))
    try:
        from tests_targets_slowpoke_xdproxy import Slowpoke as Generated  # type: ignore[import-not-found]

        Slowpoke = Generated.extradite(call_timeout=0.3)
        try:
            with pytest.raises(ExtraditeTimeoutError):
                Slowpoke(1, 3600)
            poke = Slowpoke(1)
            with pytest.raises(ExtraditeTimeoutError):
                poke.sleep_batch([(0,), (3600,)])
            assert poke.add_batch([(1,), (2,)]) == [2, 4]  # interrupted cleanly: the child goes on
            with pytest.raises(ExtraditeTimeoutError):
                poke.sleep(3600)
        finally:
            Slowpoke.close_proxy_class()
    finally:
        sys.path.remove(str(out))
        sys.modules.pop("tests_targets_slowpoke_xdproxy", None)
        from extradite import _proxy

        _proxy.GENERATED.pop(TARGET, None)
