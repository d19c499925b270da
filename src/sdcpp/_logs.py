"""Engine log lines go to the ``sdcpp`` logger (the compiled module calls :func:`emit`)."""

from __future__ import annotations

import atexit
import logging

from . import _core

logger = logging.getLogger("sdcpp")
# The engine may still log while Python shuts down (freeing models); stop forwarding before that.
atexit.register(_core.shutdown)


def emit(level: int, message: str, to: logging.Logger | None = None) -> None:
    (to or logger).log(level, message)


def sync_level() -> None:
    """Forward engine lines from the level the ``sdcpp`` logger emits now (before each engine call)."""
    _core.set_log_level(logger.getEffectiveLevel())
