"""Runtime support for proxies written by `extradite-gen`.

Generated modules subclass `GeneratedProxy` and call its `_xd_*` primitives from
typed method bodies; everything else (sessions, handles, policies, errors) is the
same runtime that `extradite()` uses. The class attributes below are written by
the generator; the runtime reads them when the class first connects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

__all__ = ["GeneratedProxy", "MISSING"]


class _Missing:
    """Stands for a default the generator could not write out; the runtime omits it."""

    _instance: ClassVar[_Missing | None] = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class GeneratedProxy:
    """Base class of generated proxies (placeholder until the runtime lands)."""

    __extradite_target__: ClassVar[str]
    __extradite_fingerprint__: ClassVar[str]
    __extradite_members__: ClassVar[Mapping[str, str]]
    __extradite_method_policies__: ClassVar[Mapping[str, str]] = {}

    def _xd_init(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        raise NotImplementedError

    def _xd_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def _xd_call_async(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _xd_batch(self, name: str, calls: Iterable[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        raise NotImplementedError

    def _xd_get(self, name: str) -> Any:
        raise NotImplementedError

    def _xd_set(self, name: str, value: Any) -> None:
        raise NotImplementedError

    def _xd_del(self, name: str) -> None:
        raise NotImplementedError

    @classmethod
    def _xd_class_call(cls, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    @classmethod
    def _xd_class_batch(cls, name: str, calls: Iterable[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        raise NotImplementedError

    @classmethod
    def _xd_class_get(cls, name: str) -> Any:
        raise NotImplementedError
