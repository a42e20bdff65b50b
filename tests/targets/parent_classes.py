"""Target for the child's view of parent classes (`_parent_types`): imported only in child processes."""

from __future__ import annotations

import copy
import sqlite3
from typing import Any, Callable


class Inspector:
    """Looks at parent classes and makes instances of them here, as C extensions do."""

    # -- what a class handle shows ------------------------------------------------------
    def view(self, cls: type, names: list[str]) -> dict[str, Any]:
        return {
            "has": {name: hasattr(cls, name) for name in names},
            "dir": dir(cls),
            "vars": sorted(vars(cls)),
            "__dict__": sorted(cls.__dict__),
            "mro": [klass.__qualname__ for klass in cls.__mro__],
            "mro()": [klass.__qualname__ for klass in cls.mro()],
            "bases": [klass.__qualname__ for klass in cls.__bases__],
            "repr": repr(cls),
            "is_type": isinstance(cls, type),
        }

    def get(self, obj: Any, name: str) -> Any:
        return getattr(obj, name)

    def has(self, obj: Any, name: str) -> bool:
        return hasattr(obj, name)

    def subclass_view(self, cls: type) -> tuple[bool, bool, list[str]]:
        """A subclass defined here keeps what it defines itself, machinery names included."""
        sub = type("Sub", (cls,), {"__slots__": ("a",), "close": lambda self: None})
        return hasattr(sub, "__slots__"), hasattr(sub, "close"), [k.__qualname__ for k in sub.__mro__]

    # -- instances made here ----------------------------------------------------------------
    def make(self, cls: type, how: str, **attributes: Any) -> Any:
        """An instance made with no call to the parent, its attributes set three ways."""
        obj: Any = cls.__new__(cls) if how == "cls.__new__" else object.__new__(cls)
        for index, (name, value) in enumerate(attributes.items()):
            if index % 3 == 0:
                setattr(obj, name, value)
            elif index % 3 == 1:
                obj.__dict__[name] = value
            else:
                object.__setattr__(obj, name, value)
        return obj

    def inspect_made(self, cls: type) -> dict[str, Any]:
        obj: Any = cls.__new__(cls)
        obj.value = 3
        obj.__dict__ = {"value": 4, "other": 5}  # as pydantic-core sets it
        del obj.other
        return {
            "class_is_cls": obj.__class__ is cls and type(obj) is cls,
            "isinstance": isinstance(obj, cls),
            "value": obj.value,
            "dict": dict(obj.__dict__),
            "kind": obj.kind,  # a class attribute of the parent class: read from the class
            "repr": repr(obj),
            "copy": vars(copy.copy(obj)),
        }

    def override_class_attribute(self, cls: type) -> tuple[Any, Any, dict[str, Any]]:
        obj: Any = cls.__new__(cls)
        obj.kind = "mine"
        return obj.kind, cls.kind, dict(obj.__dict__)  # type: ignore[attr-defined]

    def call_method(self, cls: type, name: str) -> Any:
        obj: Any = cls.__new__(cls)
        obj.value = 1
        return getattr(obj, name)()

    # -- C extensions calling parent functions ------------------------------------------------
    def sqlite_function(self, fn: Callable[..., Any], aggregate: type, rows: list[int]) -> tuple[list[Any], Any]:
        """sqlite3 calls a parent function (create_function) once per row, and a parent class
        (create_aggregate): it makes an instance and calls its step and finalize methods."""
        con = sqlite3.connect(":memory:")
        try:
            con.create_function("parent_fn", 1, fn)
            con.create_aggregate("parent_sum", 1, aggregate)
            con.execute("create table t (v integer)")
            con.executemany("insert into t values (?)", [(v,) for v in rows])
            mapped = [row[0] for row in con.execute("select parent_fn(v) from t order by v")]
            return mapped, con.execute("select parent_sum(v) from t").fetchone()[0]
        finally:
            con.close()
