"""Target for handle, callback, thread, policy and batch tests: imported only in child processes."""

from __future__ import annotations

import threading
import types
from typing import Any, Callable


class Service:
    """Does things to whatever the parent hands over, so the parent can check what crossed."""

    def __init__(self) -> None:
        self.kept: list[Any] = []
        self.total = 0

    # -- identity and handles ----------------------------------------------------------
    def echo(self, value: Any) -> Any:
        return value

    def keep(self, value: Any) -> int:
        self.kept.append(value)
        return len(self.kept)

    def kept_item(self, index: int) -> Any:
        return self.kept[index]

    def drop_kept(self) -> None:
        self.kept.clear()

    def same(self, a: Any, b: Any) -> bool:
        return a is b

    def type_name(self, value: Any) -> str:
        return type(value).__name__

    def nest(self, value: Any) -> Any:
        """Containers built here around a handle: they come home holding the original."""
        return [value, {"key": value, "pair": (value, 1)}, {value} if _hashable(value) else None]

    def nested_keys(self, value: dict[str, Any]) -> list[str]:
        return sorted(value)

    # -- transparency --------------------------------------------------------------------
    def get(self, obj: Any, name: str) -> Any:
        return getattr(obj, name)

    def set(self, obj: Any, name: str, value: Any) -> None:
        setattr(obj, name, value)

    def delete(self, obj: Any, name: str) -> None:
        delattr(obj, name)

    def has(self, obj: Any, name: str) -> bool:
        return hasattr(obj, name)

    def dict_keys(self, obj: Any) -> list[str]:
        return sorted(obj.__dict__)

    def dict_set(self, obj: Any, name: str, value: Any) -> None:
        obj.__dict__[name] = value

    def length(self, obj: Any) -> int:
        return len(obj)

    def item(self, obj: Any, key: Any) -> Any:
        return obj[key]

    def set_item(self, obj: Any, key: Any, value: Any) -> None:
        obj[key] = value

    def contains(self, obj: Any, key: Any) -> bool:
        return key in obj

    def iterate(self, obj: Any) -> list[Any]:
        return list(obj)

    def text(self, obj: Any) -> tuple[str, str]:
        return repr(obj), str(obj)

    def add(self, a: Any, b: Any) -> Any:
        return a + b

    def equal(self, a: Any, b: Any) -> bool:
        return bool(a == b)

    def with_block(self, obj: Any) -> Any:
        with obj as entered:
            return entered

    # -- class handles ------------------------------------------------------------------
    def is_instance(self, value: Any, cls: Any) -> bool:
        return isinstance(value, cls)

    def is_subclass(self, sub: Any, cls: Any) -> bool:
        return issubclass(sub, cls)

    def is_type(self, cls: Any) -> bool:
        return isinstance(cls, type)

    def subclass_name(self, cls: Any) -> str:
        sub = type("X", (cls,), {})
        return f"{sub.__name__}:{issubclass(sub, cls)}"

    def instantiate(self, cls: Any, *args: Any) -> Any:
        return cls(*args)

    def class_of(self, value: Any) -> Any:
        return type(value)

    def class_repr(self, cls: Any) -> str:
        return repr(cls)

    # -- child-side values --------------------------------------------------------------
    def make_lock(self) -> Any:
        return threading.Lock()

    def make_closure(self, base: int) -> Callable[[int], int]:
        def add(x: int) -> int:
            return base + x
        return add

    def make_local_instance(self) -> Any:
        class Local:
            def __init__(self) -> None:
                self.value = 7

            def double(self) -> int:
                return self.value * 2
        return Local()

    def make_generator(self, n: int) -> Any:
        return (i * i for i in range(n))

    def make_namespace(self, **fields: Any) -> types.SimpleNamespace:
        """A picklable object made here, of a class outside the protected tree."""
        return types.SimpleNamespace(**fields)

    def make_child_object(self) -> Any:
        return Plain(5)

    # -- callbacks ------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def call_catching(self, fn: Callable[..., Any], *args: Any) -> tuple[str, str]:
        """Call a parent callback that raises; the child catches what it raised."""
        try:
            fn(*args)
        except ValueError as exc:
            return ("ValueError", exc.args[0])
        except Exception as exc:  # noqa: BLE001 - the test inspects what was caught
            return (type(exc).__name__, exc.args[0] if exc.args else "")
        return ("nothing", "")

    def call_catching_key(self, fn: Callable[..., Any]) -> str:
        try:
            fn()
        except KeyError as exc:
            return f"caught KeyError {exc.args[0]!r}"
        return "nothing"

    def release_then_call(self, fn: Callable[[], Any]) -> Any:
        """Release the parent's callback handle here, then use it: the child's use-after-release."""
        from extradite import release

        release(fn)
        return fn()

    def bounce(self, fn: Callable[[int], Any], level: int) -> Any:
        """One level of parent -> child -> parent recursion: call back with the level."""
        return ["child", level, fn(level)]

    def bounce_raise(self, fn: Callable[[int], Any], level: int) -> Any:
        """Like bounce, but wraps whatever the callback raised in a child-side error."""
        try:
            return fn(level)
        except Exception as exc:
            raise RuntimeError(f"child level {level} <- {exc}") from exc

    def callback_batch(self, fn: Any, calls: list[tuple[list[Any], dict[str, Any]]]) -> list[Any]:
        return fn.batch(calls)  # type: ignore[no-any-return]

    def callback_batch_failure(self, fn: Any, calls: list[tuple[list[Any], dict[str, Any]]]) -> Any:
        try:
            fn.batch(calls)
        except Exception as exc:  # noqa: BLE001 - reported back to the test
            return (type(exc).__name__, getattr(exc, "batch_index", None), str(exc))
        return None

    def accumulate(self, n: int) -> int:
        self.total += n
        return self.total

    def maybe_fail(self, n: int) -> int:
        if n < 0:
            raise ValueError(f"negative: {n}")
        return n * 10

    def thread_name(self) -> str:
        return threading.current_thread().name

    def __repr__(self) -> str:
        return "Service()"


class Plain:
    """A picklable child-side class, sent by value unless a policy says otherwise."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plain) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
