"""structlog setup: JSON in production, pretty on a terminal, personal data redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from consumer.config import SECRET_KEY

REDACTED = "[redacted]"
# Keys whose values are personal or free-form: never logged, whatever they hold.
_PERSONAL_KEYS = frozenset(
    {
        "email",
        "phone",
        "name",
        "first_name",
        "last_name",
        "birthdate",
        "birthday",
        "address",
        "metadata",
        "system_metadata",
        "customer",
        "data",
        "value",
        "payload",
    }
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# International (+44 7700 900123) and North-American ((555) 123-4567) numbers; plain digit
# runs are left alone so that offsets, dates and addresses stay readable.
_PHONE = re.compile(r"\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}|\(\d{3}\)\s?\d{3}[\s.-]\d{4}")
# Fields the pipeline itself writes: never personal, kept exact.
_TRUSTED_KEYS = frozenset({"timestamp", "level", "logger", "topic", "partition", "offset", "activity_type"})


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _PHONE.sub(REDACTED, _EMAIL.sub(REDACTED, value))
    if depth > 4:
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _scrub_item(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def _scrub_item(key: str, value: Any, depth: int) -> Any:
    if key.lower() in _PERSONAL_KEYS or SECRET_KEY.search(key):
        return REDACTED
    return _scrub(value, depth)


def redact_personal_data(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask personal and secret fields, and emails/phones anywhere."""
    for key in list(event_dict):
        if key in _TRUSTED_KEYS:
            continue
        if key == "event":
            event_dict[key] = _scrub(event_dict[key])
        else:
            event_dict[key] = _scrub_item(key, event_dict[key], 0)
    return event_dict


def configure(fmt: str = "auto", level: str = "info", stream: Any = None) -> None:
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
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def get(name: str = "consumer") -> Any:
    return structlog.get_logger(name)
