"""Member tables: what a class offers, learned once so that a call is one round trip.

Runs on the owning side (usually the child). Uses only the standard library
and no `inspect` (it is slow to import and child start-up is on the critical path).

A member table maps each proxied name to a short kind string:

    "method" | "async_method" | "classmethod" | "staticmethod"
    | "property" | "property_rw" | "attribute"

Dunders appear only when they are in `SUPPORTED_DUNDERS` and the class defines
them somewhere below `object` (so the proxy keeps cheap local defaults otherwise).

A generated proxy embeds the kind and a digest of the call signature of each
member (see `_generated.member_digests`) and a `fingerprint()` of the signatures.
When it binds, its import request carries the fingerprint and a `kinds_checksum` of the
table, which the child compares with the live class's (`check_members`); only when one
differs does the reply carry the live table and the `signature_data()`, which the parent
reads (`load_signature_data`, strict: the child may be hostile) to name what changed.
"""

from __future__ import annotations

import marshal
import types
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["SUPPORTED_DUNDERS", "describe_type", "signatures", "signature_data", "load_signature_data",
           "fingerprint", "is_member_table", "kinds_checksum", "check_members", "checksum", "warm_up"]

# Dunders a proxy forwards. `__hash__` and `__eq__` only when the target overrides
# object's identity versions; `__repr__`/`__str__` always (see describe_type).
SUPPORTED_DUNDERS: frozenset[str] = frozenset({
    "__repr__", "__str__", "__bytes__", "__format__", "__bool__", "__len__", "__length_hint__",
    "__iter__", "__next__", "__reversed__", "__getitem__", "__setitem__", "__delitem__",
    "__contains__", "__missing__", "__call__", "__enter__", "__exit__",
    "__aenter__", "__aexit__", "__aiter__", "__anext__", "__await__",
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__",
    "__int__", "__float__", "__complex__", "__index__", "__round__", "__trunc__",
    "__floor__", "__ceil__", "__abs__", "__neg__", "__pos__", "__invert__",
    "__add__", "__sub__", "__mul__", "__matmul__", "__truediv__", "__floordiv__",
    "__mod__", "__divmod__", "__pow__", "__lshift__", "__rshift__", "__and__",
    "__xor__", "__or__",
    "__radd__", "__rsub__", "__rmul__", "__rmatmul__", "__rtruediv__", "__rfloordiv__",
    "__rmod__", "__rdivmod__", "__rpow__", "__rlshift__", "__rrshift__", "__rand__",
    "__rxor__", "__ror__",
    "__iadd__", "__isub__", "__imul__", "__imatmul__", "__itruediv__", "__ifloordiv__",
    "__imod__", "__ipow__", "__ilshift__", "__irshift__", "__iand__", "__ixor__", "__ior__",
})

_CO_COROUTINE = 0x0080
_CO_ASYNC_GENERATOR = 0x0200
_CO_VARARGS = 0x0004
_CO_VARKEYWORDS = 0x0008

_METHOD_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
)
_CLASSMETHOD_TYPES = (classmethod, types.ClassMethodDescriptorType)
_DATA_DESCRIPTOR_TYPES = (types.GetSetDescriptorType, types.MemberDescriptorType)


def _is_async(func: object) -> bool:
    code = getattr(func, "__code__", None)
    return isinstance(code, types.CodeType) and bool(code.co_flags & _CO_COROUTINE)


def _classify(raw: object) -> str:
    """Kind of one raw class-dict entry."""
    if isinstance(raw, staticmethod):
        return "staticmethod"
    if isinstance(raw, _CLASSMETHOD_TYPES):
        return "classmethod"
    if isinstance(raw, property):
        return "property_rw" if raw.fset is not None else "property"
    if isinstance(raw, types.FunctionType):
        return "async_method" if _is_async(raw) else "method"
    if isinstance(raw, _METHOD_TYPES):
        return "method"
    if isinstance(raw, _DATA_DESCRIPTOR_TYPES):
        return "property_rw"
    raw_type = type(raw)
    if isinstance(raw, type):
        return "attribute"
    if hasattr(raw_type, "__get__"):
        if hasattr(raw_type, "__set__"):
            return "property_rw"
        if callable(raw):
            return "async_method" if _is_async(getattr(raw, "func", raw)) else "method"
        return "property"
    return "attribute"


def _raw_members(cls: type) -> dict[str, object]:
    """Name -> raw class-dict entry, subclasses winning.

    Excluded: `object`, and `typing`'s own classes (Generic, Protocol): their entries are
    typing machinery, not the target's API, and differ between Python versions (3.11's
    Generic has `_is_protocol`), which made a proxy generated on one version stale on another.
    """
    raw: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or klass.__module__ == "typing":
            continue
        raw.update(vars(klass))
    return raw


def describe_type(cls: type, raw: dict[str, object] | None = None) -> dict[str, str]:
    """The member table of `cls` (see module docstring); `raw`: its `_raw_members`, if known."""
    table: dict[str, str] = {}
    for name, entry in (_raw_members(cls) if raw is None else raw).items():
        if name.startswith("__") and name.endswith("__"):
            if name not in SUPPORTED_DUNDERS:
                continue
            if name == "__hash__" and entry is None:
                table[name] = "unhashable"
                continue
        if type(entry) is _FunctionType:  # most members: `_classify`'s answer without its tests
            table[name] = "async_method" if entry.__code__.co_flags & _CO_COROUTINE else "method"
        else:
            table[name] = _classify(entry)
    # repr/str always cross the boundary so the proxy shows the remote object.
    table.setdefault("__repr__", "method")
    table.setdefault("__str__", "method")
    return table


_SIGNATURE_FLAGS = _CO_VARARGS | _CO_VARKEYWORDS | _CO_COROUTINE | _CO_ASYNC_GENERATOR
_SCALARS = (bool, int, float, complex, str, bytes)
_CodeType = types.CodeType
_FunctionType = types.FunctionType
_SIGNED_DUNDERS = SUPPORTED_DUNDERS | {"__init__"}  # the dunders whose signatures are fingerprinted


def _default_text(value: object) -> str:
    if value is None or isinstance(value, _SCALARS):
        return repr(value)
    return f"<{type(value).__qualname__}>"


def checksum(data: bytes, length: int = 12) -> str:
    """A short, stable checksum (change detection, not security), with no import.

    The data as one big integer, reduced by the interpreter's integer hash (a
    residue modulo the Mersenne prime 2**61 - 1, the same in every process:
    integer hashing is not randomised), in hex. hashlib would cost the child
    milliseconds at every generated proxy's connect.
    """
    return hex(hash(int.from_bytes(b"\x01" + data, "big")) | 1 << 64)[-length:]


def signatures(cls: type, raw: dict[str, object] | None = None) -> list[tuple[str, tuple[object, ...] | str]]:
    """(name, signature) of every member of `cls` and its `__init__`, by name.

    A signature is plain data with no addresses or annotations. A function:
    (names, posonly, args, kwonly, flags, default texts, keyword default texts by
    name); a property: (settable, deletable); anything else a text. One inline
    loop (no helper call per member): the child runs it whenever a generated proxy binds.
    `raw`: the `_raw_members` of `cls`, if known.
    """
    if raw is None:
        raw = _raw_members(cls)
    signed = _SIGNED_DUNDERS
    out: list[tuple[str, tuple[object, ...] | str]] = []
    for name in sorted(raw):
        if name not in signed and name.startswith("__") and name.endswith("__"):
            continue
        func = entry = raw[name]
        code: object
        if type(entry) is _FunctionType:  # most members: no wrapper to look through
            code = entry.__code__
        else:
            if isinstance(entry, (staticmethod, classmethod)):
                func = entry.__func__
            elif isinstance(entry, property):
                out.append((name, (entry.fset is not None, entry.fdel is not None)))
                continue
            code = getattr(func, "__code__", None)
        if isinstance(code, _CodeType):
            flags = code.co_flags
            argcount = code.co_argcount
            kwonly = code.co_kwonlyargcount
            defaults = getattr(func, "__defaults__", None)
            kwdefaults = getattr(func, "__kwdefaults__", None)
            out.append((name, (
                code.co_varnames[: argcount + kwonly + bool(flags & _CO_VARARGS) + bool(flags & _CO_VARKEYWORDS)],
                code.co_posonlyargcount, argcount, kwonly, flags & _SIGNATURE_FLAGS,
                tuple([_default_text(d) for d in defaults]) if defaults else (),
                tuple([(k, _default_text(kwdefaults[k])) for k in sorted(kwdefaults)]) if kwdefaults else ())))
        elif entry is None:
            out.append((name, ""))
        else:
            text_signature = getattr(func, "__text_signature__", None)
            out.append((name, text_signature if isinstance(text_signature, str) else type(entry).__name__))
    return out


def signature_data(cls: type, raw: dict[str, object] | None = None) -> bytes:
    """`signatures(cls)` in marshal format 2, which writes this plain data the same way in every process.

    What the child sends when a generated proxy binds (the parent checksums it).
    """
    return marshal.dumps(signatures(cls, raw), 2)


MEMBER_KINDS: frozenset[str] = frozenset({
    "method", "async_method", "classmethod", "staticmethod", "property", "property_rw", "attribute",
    "unhashable"})


def is_member_table(value: object) -> bool:
    """Whether `value` is a member table as `describe_type` makes it: (name, kind) str pairs.

    The sender may be hostile: a planted name (`__getattribute__`, `__class__`, a proxy's own
    `_xd_` state) would take over the proxy class built from the table, so only what
    `describe_type` can produce passes.
    """
    return type(value) is tuple and all(
        type(m) is tuple and len(m) == 2 and type(m[0]) is str and type(m[1]) is str
        and _member_allowed(m[0], m[1]) for m in value)


def _member_allowed(name: str, kind: str) -> bool:
    if kind not in MEMBER_KINDS or name.startswith("_xd_"):
        return False
    if name.startswith("__") and name.endswith("__"):
        return name in SUPPORTED_DUNDERS
    return kind != "unhashable"


def kinds_checksum(table: Mapping[str, str]) -> str:
    """The checksum of a member table (name -> kind), the same in every process."""
    return checksum(marshal.dumps(tuple(sorted(table.items())), 2), 16)


def check_members(cls: object, fingerprint: str, kinds: str) -> tuple[tuple[tuple[str, str], ...], bytes] | None:
    """None when `cls` has the fingerprint and `kinds_checksum` a generated proxy embeds, else
    (its member table, its `signature_data`): what the parent needs to say what changed.

    The child compares, so a bind whose proxy is up to date moves neither.
    """
    if not isinstance(cls, type):
        return (), b""
    raw = _raw_members(cls)  # one walk of the class tree for both
    table = describe_type(cls, raw)
    data = signature_data(cls, raw)
    # not bytes: a replaced `signature_data` (a hostile target; tests/targets/forged.py), whose
    # data goes to the parent, which reads it as a broken child's
    if type(data) is bytes and checksum(data, 16) == fingerprint and kinds_checksum(table) == kinds:
        return None
    return tuple(table.items()), data


def fingerprint(cls: type) -> str:
    """The checksum of `signature_data(cls)` that a generated proxy embeds."""
    return checksum(signature_data(cls), 16)


_Signature = tuple[object, ...] | str


def load_signature_data(data: bytes) -> list[tuple[str, _Signature]]:
    """Read `signature_data` from another process, which may be broken or hostile.

    Not `marshal.loads` (not meant for untrusted bytes): a strict reader of the only
    codes format 2 writes for this data (list, tuple, str, int, bool, None), then a check
    that the result has the shape `signatures` returns. ValueError says what was wrong.
    """
    if type(data) is not bytes:
        raise ValueError(f"signature data is a {type(data).__name__}, not bytes")
    view = memoryview(data)
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        if n < 0 or pos + n > len(view):
            raise ValueError(f"signature data ends early at byte {pos} of {len(view)}")
        chunk = view[pos:pos + n]
        pos += n
        return chunk

    def count() -> int:
        return int.from_bytes(take(4), "little", signed=True)

    def read(depth: int) -> object:
        code = bytes(take(1))
        if code in (b"[", b"(") and depth < 5:  # list > entry > signature > keyword defaults > pair
            n = count()
            if not 0 <= n <= len(view) - pos:  # every item takes at least one byte
                raise ValueError(f"signature data has a bad length {n} at byte {pos}")
            items = [read(depth + 1) for _ in range(n)]
            return items if code == b"[" else tuple(items)
        if code in (b"u", b"t"):
            return str(take(count()), "utf-8", "surrogatepass")  # as marshal writes str
        if code == b"i":
            return count()
        if code in (b"T", b"F", b"N"):
            return {b"T": True, b"F": False, b"N": None}[code]
        raise ValueError(f"signature data has an unexpected code {code!r} at byte {pos - 1}")

    out = read(0)
    if pos != len(view):
        raise ValueError(f"signature data has {len(view) - pos} bytes after its end")
    if not isinstance(out, list) or not all(_is_entry(item) for item in out):
        raise ValueError("signature data does not have the shape of signatures()")
    return out


def _is_entry(item: object) -> bool:
    """(name, signature) as `signatures` makes it."""
    if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
        return False
    sig = item[1]
    if isinstance(sig, str):
        return True
    if not isinstance(sig, tuple):
        return False
    if len(sig) == 2:
        return all(isinstance(v, bool) for v in sig)
    if len(sig) != 7:
        return False
    names, pos, args, kw, flags, defaults, kwdefaults = sig
    return (isinstance(names, tuple) and all(isinstance(n, str) for n in names)
            and all(type(v) is int for v in (pos, args, kw, flags))
            and isinstance(defaults, tuple) and all(isinstance(d, str) for d in defaults)
            and isinstance(kwdefaults, tuple)
            and all(isinstance(k, tuple) and len(k) == 2 and all(isinstance(t, str) for t in k)
                    for k in kwdefaults))


_WARM_UP_SOURCE = """
class Sample:
    limit = 3

    def __init__(self, start=0, *, step=1):
        self.value = start

    def add(self, amount=None, /, *more, scale=1.0, **options):
        return self.value

    @property
    def double(self):
        return 2 * self.value

    @classmethod
    def make(cls, text: str = ""):
        return cls()

    @staticmethod
    def parse(text, base=10):
        return int(text, base)

    def __len__(self):
        return 0
"""


def warm_up() -> None:
    """What a prewarmed child does while it waits for its first class (`OP_WARM_UP`; skipped
    when a request is already there: a bind right after the prewarm would wait for it).

    A process's first `compile` sets the compiler up (paid by the first target imported
    from source), and the member-table and signature code above runs slower the first
    time than later. A bind after this pays neither.
    """
    global warmed_up
    namespace: dict[str, object] = {}
    exec(compile(_WARM_UP_SOURCE, "<extradite warm-up>", "exec"), namespace)
    sample = namespace["Sample"]
    assert isinstance(sample, type)
    for _ in range(2):
        describe_type(sample)
        fingerprint(sample)
    warmed_up = True


warmed_up = False  # whether this process ran `warm_up` (diagnostics and tests)
