"""An honest target for untrusted mode: it returns values of kinds the parent will not load
from an untrusted child, which come back as proxies instead of errors."""

from __future__ import annotations

import datetime
import decimal
import ipaddress
from collections import OrderedDict, defaultdict
from typing import Any

from value_types import Point


class Honest:
    def echo(self, value: Any) -> Any:
        return value

    def address(self) -> Any:
        return ipaddress.ip_address("192.0.2.1")

    def standard_values(self) -> Any:
        return {"when": datetime.datetime(2020, 1, 2, 3, 4, tzinfo=datetime.timezone.utc),
                "amount": decimal.Decimal("1.25"), "ordered": OrderedDict(a=1),
                "grouped": defaultdict(list, {"k": [1]})}

    def with_address(self) -> Any:
        return {"plain": [1, 2], "address": ipaddress.ip_address("192.0.2.1")}

    def zoned(self) -> Any:
        from zoneinfo import ZoneInfo

        return datetime.datetime(2020, 1, 2, tzinfo=ZoneInfo("UTC"))

    def point(self) -> Point:
        return Point(1, 2)

    def apply(self, func: Any, *args: Any) -> Any:
        return func(*args)

    def call_method(self, obj: Any, name: str, *args: Any) -> Any:
        return getattr(obj, name)(*args)

    def array(self) -> Any:
        import numpy

        return numpy.arange(6, dtype=numpy.float64).reshape(2, 3)
