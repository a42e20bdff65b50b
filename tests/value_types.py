"""A value type both sides import (outside `targets`, which the parent never imports): what
`trusted_types=` names in tests/test_untrusted.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Point:
    x: int
    y: int
