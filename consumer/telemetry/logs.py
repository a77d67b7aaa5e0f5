"""structlog setup: JSON in production, pretty on a terminal, personal data redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog
from structlog.typing import FilteringBoundLogger

from consumer.pii import REDACTED, scrub_for_log, scrub_item_for_log

__all__ = ["REDACTED", "configure", "get", "redact_personal_data"]

# Fields the pipeline itself writes: never personal, kept exact.
_TRUSTED_KEYS = frozenset({"timestamp", "level", "logger", "topic", "partition", "offset", "activity_type"})


def redact_personal_data(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask personal and secret fields, and emails/phones anywhere."""
    for key in list(event_dict):
        if key in _TRUSTED_KEYS:
            continue
        if key == "event":
            event_dict[key] = scrub_for_log(event_dict[key])
        else:
            event_dict[key] = scrub_item_for_log(key, event_dict[key])
    return event_dict


def configure(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    pretty = fmt == "console" or (fmt == "auto" and hasattr(out, "isatty") and out.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if pretty else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # One write per line: the processes of --processes N share stdout, and print() writes the
        # line and its newline apart, so two processes could interleave within one line.
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def get(name: str = "consumer") -> FilteringBoundLogger:
    """A logger whose lines go through `configure`'s processors (the PII policy included)."""
    return cast(FilteringBoundLogger, structlog.get_logger(name))
