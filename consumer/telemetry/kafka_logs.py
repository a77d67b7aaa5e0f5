"""librdkafka's own log lines, through structlog, instead of raw `%3|...` lines on stderr.

Every client this project makes takes its config through `routed()`, which sets librdkafka's
`logger`: confluent-kafka then hands each line to this module's logging handler on the
client's own poll, never from a librdkafka thread. Levels are mapped to structlog's, and a
line that repeats (a broker that is away fails every second) is logged once per window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

from consumer.telemetry.logs import get as get_logger

REPEAT_WINDOW_SECONDS: Final = 30.0
_METHODS: Final = {
    logging.CRITICAL: "critical",
    logging.ERROR: "error",
    logging.WARNING: "warning",
    logging.INFO: "info",
    logging.DEBUG: "debug",
}

log = get_logger("librdkafka")


class _ToStructlog(logging.Handler):
    """One structlog event per librdkafka line; repeats of a (client, facility, level) muted."""

    def __init__(self, window: float) -> None:
        super().__init__(logging.DEBUG)
        self.window = window
        self._last: dict[tuple[str, str, int], tuple[float, int]] = {}
        self._mutex = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        # confluent-kafka logs ("%s [%s] %s", facility, client name, message).
        args = record.args if isinstance(record.args, tuple) and len(record.args) == 3 else None
        facility, client, message = (str(a) for a in args) if args else ("", "", record.getMessage())
        key = (client, facility, record.levelno)
        now = time.monotonic()
        with self._mutex:
            last, muted = self._last.get(key, (-self.window, 0))
            if now - last < self.window:
                self._last[key] = (last, muted + 1)
                return
            self._last[key] = (now, 0)
        method = _METHODS.get(record.levelno, "info")
        fields: dict[str, Any] = {"facility": facility, "client": client, "message": message}
        if muted:
            fields["repeats_muted"] = muted
        try:
            getattr(log, method)("librdkafka", **fields)
        except Exception:  # a log line must never raise into librdkafka's callback
            self.handleError(record)


def _make_logger() -> logging.Logger:
    logger = logging.getLogger("consumer.librdkafka")
    logger.handlers[:] = [_ToStructlog(REPEAT_WINDOW_SECONDS)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # structlog renders it; the root logger must not print it again
    return logger


LOGGER: Final = _make_logger()


def routed(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` for a Producer, Consumer or AdminClient, with librdkafka's logs sent to structlog."""
    return {**config, "logger": LOGGER}
