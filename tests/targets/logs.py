"""A target that logs with `logging.getLogger(__name__)`, as libraries do."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class Logs:
    def pid(self) -> int:
        return os.getpid()

    def emit(self, level: int, message: str, *args: object) -> None:
        log.log(level, message, *args, extra={"order_id": 17})

    def fail(self) -> None:
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("could not divide")

    def root_level(self) -> int:
        return logging.getLogger().level
