"""A target whose module imports `six`, which the test process does not have (only an environment does)."""

from __future__ import annotations

import six


class SixUser:
    def six_version(self) -> str:
        return str(six.__version__)

    def text_type(self) -> str:
        return six.text_type.__name__
