"""How long a waiting side polls the shared page before it sleeps on the socket.

Before it sleeps, a reader polls the peer's `published` word (see _ring) for a short,
adaptive window, with a sched_yield() per round so that a runnable peer on the same
CPU goes first. The window adapts per channel: after a wait that ended within the
cap it is the whole cap; after a longer one it halves, so a peer that is busy for
long costs ever less polling (never more than the cap of CPU per wait).

Polling is skipped while the machine is busy: every LOAD_EVERY_NS a waiting side
reads /proc/loadavg and stops polling once two samples in a row show more runnable
tasks than CPUs (a poller competing with CPU-bound processes steals the time its
peer needs; a single busy sample is mostly a passing kernel worker).

Polling is on by default with a cap of SPIN_DEFAULT_US: a peer that answers a small
call within the window saves the reader a sleep and a wake-up from another CPU,
which cost more than the rest of the call; on one shared CPU the yield hands the CPU
to the peer, and beside CPU-bound processes the load check turns polling off.
`EXTRADITE_SPIN_US=N` (read when this module is imported, inherited by the child;
a forked child reads its session's value)
sets the cap to N microseconds; 0 turns polling off. Without a shared page
(no memfd) nothing is polled.
"""

from __future__ import annotations

import os
import time

from ._ring import PAGE_POSSIBLE

SPIN_MIN_NS = 4_000       # the shortest window a slow peer shrinks it to
SPIN_DEFAULT_US = 200
LOAD_EVERY_NS = 50_000_000
# Bound once: the waiting loop calls them every round.
yield_cpu = getattr(os, "sched_yield", lambda: None)
now = time.perf_counter_ns


def spin_cap_from_environment() -> int:
    """Read EXTRADITE_SPIN_US again into SPIN_MAX_NS (a child forked by the fork server's
    template takes its session's environment after this module was imported); returns it."""
    global SPIN_MAX_NS
    SPIN_MAX_NS = _spin_cap_ns()
    return SPIN_MAX_NS


def _spin_cap_ns() -> int:
    """The polling window's upper bound for this process (0: never poll)."""
    text = os.environ.get("EXTRADITE_SPIN_US")
    cap = SPIN_DEFAULT_US * 1000
    if text is not None:
        try:
            cap = max(0, int(float(text) * 1000))
        except ValueError:
            pass
    return cap if PAGE_POSSIBLE else 0


SPIN_MAX_NS = _spin_cap_ns()
_CPUS = os.cpu_count() or 1
# [time of the last /proc/loadavg sample, polling allowed, busy samples in a row]
_load = [0, 1, 0]


def machine_quiet() -> bool:
    """False while other runnable tasks compete for the CPUs (sampled every LOAD_EVERY_NS, for all channels).

    A waiting side and its peer are runnable themselves, so `running` counts them; the
    machine is busy when the count exceeds the CPUs in two samples in a row. One busy
    sample is most often a kernel worker or a short process that is gone by the next
    sample, and turning polling off for it costs a sleep and a cross-CPU wake-up per
    call until the next sample; a CPU-bound competitor shows up in every sample.
    """
    current = now()
    if current - _load[0] < LOAD_EVERY_NS:
        return bool(_load[1])
    _load[0] = current
    _load[2] = _load[2] + 1 if _runnable_tasks() > _CPUS else 0
    _load[1] = _load[2] < 2
    return bool(_load[1])


def _runnable_tasks() -> int:
    """Runnable tasks on the machine now (the 4th field of /proc/loadavg); 0 if unknown."""
    try:
        fd = os.open("/proc/loadavg", os.O_RDONLY)
        try:
            text = os.read(fd, 128)
        finally:
            os.close(fd)
        return int(text.split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return 0  # no loadavg: rely on the adaptive window alone
