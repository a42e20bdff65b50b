"""extradite: use classes from modules that must never be imported into this interpreter.

A child interpreter imports the target; this process gets a proxy class whose
every interaction is a request over a private channel. See README.md.

Errors: everything raised derives from `ExtraditeError`; `ExtraditeEnvironmentError`
says that the environment `requirements=` asks for could not be built (its
`installer_output` holds the installer's last lines).

The public names load on first use (PEP 562): a child process imports this
package too (for `extradite._child`) and must not pay for the API it never calls.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._api import close_extradite_session as close_extradite_session
    from ._api import extradite as extradite
    from ._api import extradite_async as extradite_async
    from ._asyncproxy import aio as aio
    from ._asyncproxy import aio_setattr as aio_setattr
    from ._api import import_isolated as import_isolated
    from ._iteration import iterate as iterate
    from ._api import prewarm_extradite_session as prewarm_extradite_session
    from ._api import release as release
    from ._errors import ExtraditeClosedError as ExtraditeClosedError
    from ._errors import ExtraditeEnvironmentError as ExtraditeEnvironmentError
    from ._executor import ExtraditeExecutor as ExtraditeExecutor
    from ._errors import ExtraditeError as ExtraditeError
    from ._errors import ExtraditeModuleLeakError as ExtraditeModuleLeakError
    from ._errors import ExtraditeProcessError as ExtraditeProcessError
    from ._errors import ExtraditeProtocolError as ExtraditeProtocolError
    from ._errors import ExtraditeRemoteError as ExtraditeRemoteError
    from ._errors import ExtraditeSandboxError as ExtraditeSandboxError
    from ._errors import ExtraditeTimeoutError as ExtraditeTimeoutError
    from ._errors import ExtraditeSessionConflictError as ExtraditeSessionConflictError
    from ._errors import ExtraditeStaleProxyWarning as ExtraditeStaleProxyWarning
    from ._errors import UnsupportedInteractionError as UnsupportedInteractionError
    from ._restart import Restart as Restart
    from ._sandbox import Limits as Limits
    from ._sandbox import Sandbox as Sandbox
    from ._status import ExtraditeStatus as ExtraditeStatus
    from ._status import extradite_status as extradite_status

_HOME = {
    "extradite": "_api",
    "extradite_async": "_api",
    "aio": "_asyncproxy",
    "aio_setattr": "_asyncproxy",
    "import_isolated": "_api",
    "iterate": "_iteration",
    "prewarm_extradite_session": "_api",
    "close_extradite_session": "_api",
    "release": "_api",
    "ExtraditeExecutor": "_executor",
    "ExtraditeError": "_errors",
    "ExtraditeProtocolError": "_errors",
    "ExtraditeProcessError": "_errors",
    "ExtraditeClosedError": "_errors",
    "ExtraditeModuleLeakError": "_errors",
    "UnsupportedInteractionError": "_errors",
    "ExtraditeRemoteError": "_errors",
    "ExtraditeSessionConflictError": "_errors",
    "ExtraditeEnvironmentError": "_errors",
    "ExtraditeStaleProxyWarning": "_errors",
    "ExtraditeSandboxError": "_errors",
    "ExtraditeTimeoutError": "_errors",
    "Sandbox": "_sandbox",
    "Limits": "_sandbox",
    "Restart": "_restart",
    "extradite_status": "_status",
    "ExtraditeStatus": "_status",
}
__all__ = list(_HOME)


if not TYPE_CHECKING:  # hidden from type checkers, which see the imports above (typos stay errors)
    def __getattr__(name: str) -> object:
        home = _HOME.get(name)
        if home is None:
            raise AttributeError(f"module 'extradite' has no attribute {name!r}")
        if home == "_api":
            from . import _api as module
        elif home == "_sandbox":
            from . import _sandbox as module
        elif home == "_status":
            from . import _status as module
        elif home == "_executor":
            from . import _executor as module
        elif home == "_restart":
            from . import _restart as module
        elif home == "_iteration":
            from . import _iteration as module
        elif home == "_asyncproxy":
            from . import _asyncproxy as module
        else:
            from . import _errors as module
        value: object = getattr(module, name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(__all__)
