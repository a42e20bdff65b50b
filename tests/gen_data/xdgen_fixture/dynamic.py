"""A class made without a class statement: the generator has only the runtime's annotation objects."""

from __future__ import annotations

import decimal
import types
from typing import Any, Generic, Literal, Optional, TypeVar

# One statement, so no source parser records them: only the runtime objects say what they are.
T, N, K = TypeVar("T"), TypeVar("N", bound=decimal.Decimal), TypeVar("K", int, str)


def _put(self: Any, item: T) -> None:
    self.item = item


def _get(self: Any) -> T:
    return self.item  # type: ignore[no-any-return]


def _scale(self: Any, value: N, keys: Optional[list[K]] = None, *, mode: Literal["up", "down"] = "up") -> N:
    return value


def _twin(self: Any) -> Dynamic[T]:
    return self  # type: ignore[no-any-return]


def _body(namespace: dict[str, Any]) -> None:
    namespace.update(__module__=__name__, put=_put, get=_get, scale=_scale, twin=_twin)


Dynamic: Any = types.new_class("Dynamic", (Generic[T],), exec_body=_body)
