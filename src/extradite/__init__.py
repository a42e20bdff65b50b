"""extradite: use classes from modules that must never be imported into this interpreter.

A child interpreter imports the target; this process gets a proxy class whose
every interaction is a request over a private channel. See README.md.
"""

from ._api import close_extradite_session as close_extradite_session
from ._api import extradite as extradite
from ._api import prewarm_extradite_session as prewarm_extradite_session
from ._errors import ExtraditeClosedError as ExtraditeClosedError
from ._errors import ExtraditeError as ExtraditeError
from ._errors import ExtraditeModuleLeakError as ExtraditeModuleLeakError
from ._errors import ExtraditeProcessError as ExtraditeProcessError
from ._errors import ExtraditeProtocolError as ExtraditeProtocolError
from ._errors import ExtraditeRemoteError as ExtraditeRemoteError
from ._errors import ExtraditeSessionConflictError as ExtraditeSessionConflictError
from ._errors import ExtraditeStaleProxyWarning as ExtraditeStaleProxyWarning
from ._errors import UnsupportedInteractionError as UnsupportedInteractionError
from ._api import release as release

__all__ = [
    "extradite",
    "prewarm_extradite_session",
    "close_extradite_session",
    "release",
    "ExtraditeError",
    "ExtraditeProtocolError",
    "ExtraditeProcessError",
    "ExtraditeClosedError",
    "ExtraditeModuleLeakError",
    "UnsupportedInteractionError",
    "ExtraditeRemoteError",
    "ExtraditeSessionConflictError",
    "ExtraditeStaleProxyWarning",
]
