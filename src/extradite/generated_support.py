"""The stable surface that code written by `extradite-gen` imports.

Generated proxies import only from this module, so a proxy generated with one
release of extradite keeps importing with the next: the names below and the
`_xd_*` primitives of `GeneratedProxy` that generated method bodies call
(`_xd_init`, `_xd_call`, `_xd_call_async`, `_xd_batch`, `_xd_batch_async`,
`_xd_get`, `_xd_set`, `_xd_del`, `_xd_class_call`, `_xd_class_batch`,
`_xd_class_batch_async`, `_xd_class_get`) keep their meaning. Everything else in
the package's private modules may change without notice.

Guaranteed names:

- `GeneratedProxy`: base class of every generated proxy class; binds to a
  session on first use (`Proxy.extradite(...)` binds with explicit options).
- `MISSING`: the default of a parameter whose default could not be written
  out; the runtime omits such an argument, so the target applies its own.
- `GeneratedModule`: the lazily bound session of a generated module proxy
  (`extradite-gen pkg.mod` or `pkg.mod:func`); generated functions call its
  `call` and `batch`, the generated `extradite_bind`/`extradite_close` its
  `bind` and `close`, and its classes bind through it (`bind_class`).
- `ClassAttribute`: descriptor of a target's class attribute, read from the
  child on every access.
- `AsyncGeneratedProxy`: base class of the async variant written beside each
  proxy class (`AsyncCounter`); its bodies call `_xd_construct`, `_xd_acall`,
  `_xd_aclass_call`, `_xd_aget`, `_xd_abatch` and `_xd_aclass_batch`.

Importing this module costs what a generated proxy's import costs anyway (the
runtime it binds to); `import extradite` alone does not load it.
"""

from ._generated import MISSING as MISSING
from ._generated import AsyncGeneratedProxy as AsyncGeneratedProxy
from ._generated import ClassAttribute as ClassAttribute
from ._generated import GeneratedModule as GeneratedModule
from ._generated import GeneratedProxy as GeneratedProxy

__all__ = ["GeneratedProxy", "GeneratedModule", "MISSING", "ClassAttribute", "AsyncGeneratedProxy"]
