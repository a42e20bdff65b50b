"""Calls proxies generated for classes nobody here wrote; mypy --strict must accept it (and it runs).

Run with the generated modules of TARGETS (see test_gen_cli.py) on sys.path.
"""

from __future__ import annotations

import sys

from array_xdproxy import array
from calendar_xdproxy import TextCalendar
from decimal_xdproxy import Context, Decimal
from difflib_xdproxy import SequenceMatcher
from fractions_xdproxy import Fraction
from graphlib_xdproxy import TopologicalSorter
from html_parser_xdproxy import HTMLParser
from iniconfig_xdproxy import IniConfig
from packaging_version_xdproxy import Version
from pprint_xdproxy import PrettyPrinter
from queue_xdproxy import SimpleQueue
from sched_xdproxy import scheduler
from shlex_xdproxy import shlex
from sqlite3_xdproxy import Connection
from statistics_xdproxy import NormalDist
from uuid_xdproxy import UUID


def _close(proxy: object) -> None:
    if isinstance(proxy, type):
        getattr(proxy, "close_proxy_class", getattr(proxy, "close"))()
    else:
        getattr(proxy, "close")()


def main() -> None:
    ctx = Context(prec=5)
    assert ctx.prec == 5
    ctx.prec = 7
    total: Decimal = ctx.add(1, 2)
    assert str(total) == "3"
    assert str(Decimal("1.5")) == "1.5"

    conn = Connection(":memory:")
    conn.execute("create table t (x integer)")
    conn.executemany("insert into t values (?)", [(1,), (2,)])
    assert conn.total_changes == 2
    assert conn.in_transaction

    assert str(Fraction(1, 3)) == "1/3"
    assert Fraction(3, 4).limit_denominator(2).numerator in (1, 0)

    sm = SequenceMatcher(None, "abcd", "abed")
    assert round(sm.ratio(), 2) == 0.75
    assert sm.quick_ratio_batch([(), ()]) == [0.75, 0.75]

    lexer = shlex("a 'b c'", posix=True)
    assert lexer.get_token() == "a"
    # Instance attributes the stub annotates: declared for mypy, served by the dynamic path.
    lexer.whitespace_split = True
    quotes: str = lexer.quotes
    assert lexer.whitespace_split is True and "'" in quotes

    sched = scheduler()
    assert sched.empty()

    nd = NormalDist(0.0, 1.0)
    assert round(nd.cdf(0.0), 3) == 0.5
    assert nd.mean == 0.0

    cal = TextCalendar()
    assert "2024" in cal.formatyear(2024)

    ts: TopologicalSorter[str] = TopologicalSorter({"b": {"a"}})
    assert ts.static_order() is not None

    q: SimpleQueue[int] = SimpleQueue()
    q.put(1)
    assert q.qsize() == 1 and q.get() == 1

    parser = HTMLParser()
    parser.feed("<p>x</p>")
    parser.close()

    pp = PrettyPrinter(width=20)
    assert pp.pformat({"a": 1}) == "{'a': 1}"

    arr: array[int] = array("i", [1, 2])
    arr.append(3)
    assert arr.tolist() == [1, 2, 3] and len(arr) == 3 and arr.itemsize == 4

    u = UUID("12345678123456781234567812345678")
    assert u.hex == "12345678123456781234567812345678" and u.version is None

    v = Version("1.2.3")
    assert v.major == 1 and v.release == (1, 2, 3) and not v.is_prerelease

    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as handle:
        handle.write("[s]\nk = v\n")
    ini = IniConfig(handle.name)
    assert ini.get("s", "k") == "v"

    protected = {"decimal", "sqlite3", "fractions", "difflib", "shlex", "sched", "statistics", "calendar",
                 "graphlib", "queue", "html", "pprint", "array", "uuid", "packaging", "iniconfig"}
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in protected)
    for proxy in (Context, Decimal, Connection, Fraction, SequenceMatcher, shlex, scheduler, NormalDist,
                  TextCalendar, TopologicalSorter, SimpleQueue, HTMLParser, PrettyPrinter, array, UUID,
                  Version, IniConfig):
        _close(proxy)
    assert not leaked, leaked
    print("usage_stdlib ok")


if __name__ == "__main__":
    main()
