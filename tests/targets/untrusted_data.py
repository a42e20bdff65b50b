"""A value type both sides import (not a target): what `trusted_types=` names in the tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Point:
    x: int
    y: int
