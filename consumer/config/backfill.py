"""`activity-consumer backfill`: the REST backfill's settings."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from consumer.config.declare import (
    ConfigError,
    LogFormat,
    Spec,
    _between,
    _not_blank,
    _positive,
    _topic_names,
    field_problems,
    setting,
)
from consumer.config.worker import shared

if TYPE_CHECKING:
    pass


def iso_instant(raw: str) -> datetime:
    """ISO 8601 text as an aware UTC datetime (UTC unless zoned); raises ValueError."""
    when = datetime.fromisoformat(raw.strip())
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _iso_problem(raw: str) -> str | None:
    try:
        iso_instant(raw)
    except ValueError:
        return "must be an ISO 8601 date or date-time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z"
    return None


def _http_url(url: str) -> str | None:
    return None if re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url) else "must be an http(s):// base URL"


def _ids(raw: str) -> tuple[str, ...]:
    return tuple(i.strip() for i in raw.split(",") if i.strip())


@dataclass(frozen=True, slots=True)
class BackfillSettings:
    """`activity-consumer backfill`: history from Voucherify's REST API onto the input topic.
    The credentials are no settings: VOUCHERIFY_APP_ID and VOUCHERIFY_APP_TOKEN, from the
    environment only (consumer/ingest/voucherify_api.py)."""

    bootstrap_servers: str = shared("bootstrap_servers")
    topic: str | None = setting(
        None,
        Spec(
            "ACTIVITY_BACKFILL_TOPIC", "input topic the activities are produced to", check=lambda t: _topic_names((t,))
        ),
    )
    api_url: str = setting(
        "https://api.voucherify.io",
        Spec(
            "VOUCHERIFY_API_URL",
            "Voucherify API base URL (EU; https://us1.api.voucherify.io, https://as1.api.voucherify.io)",
            check=_http_url,
        ),
    )
    since: str | None = setting(
        None, Spec("ACTIVITY_BACKFILL_SINCE", "activities at or after (ISO 8601, UTC unless zoned)", check=_iso_problem)
    )
    until: str | None = setting(
        None,
        Spec(
            "ACTIVITY_BACKFILL_UNTIL",
            "activities before (ISO 8601); the gateway's go-live keeps the overlap small",
            check=_iso_problem,
        ),
    )
    customer: tuple[str, ...] = setting(
        (),
        Spec(
            "ACTIVITY_BACKFILL_CUSTOMERS",
            "only these customers (id or source_id; repeat the flag or comma-separate); no customer listing",
            _ids,
            metavar="ID",
            repeat=True,
        ),
    )
    max_requests_per_minute: int = setting(
        90,
        Spec(
            "ACTIVITY_BACKFILL_MAX_REQUESTS_PER_MINUTE",
            "request budget, evenly paced (the smallest plan allows 100/min)",
            int,
            check=_between(1, 100_000),
        ),
    )
    request_timeout_seconds: float = setting(
        30.0, Spec("ACTIVITY_BACKFILL_REQUEST_TIMEOUT_SECONDS", "timeout of one API request", float, check=_positive)
    )
    max_attempts: int = setting(
        8,
        Spec(
            "ACTIVITY_BACKFILL_MAX_ATTEMPTS",
            "tries of one request on 5xx and network errors (backoff 1s doubling, capped at 60s) before exit 1",
            int,
            check=_between(1, 100),
        ),
    )
    progress_file: str = setting(
        "backfill-progress.json",
        Spec(
            "ACTIVITY_BACKFILL_PROGRESS_FILE",
            "the resumable position (put it on the Job's volume); the same command line resumes from it",
            check=_not_blank,
        ),
    )
    log_format: LogFormat = shared("log_format")
    log_level: str = shared("log_level")

    def validate(self, earlier: Iterable[str] = ()) -> BackfillSettings:
        problems = field_problems(self, earlier)
        if not self.topic:
            problems.append("--topic (ACTIVITY_BACKFILL_TOPIC) is required")
        window = (self.since, self.until)
        if (
            all(window)
            and not any(_iso_problem(str(w)) for w in window)
            and iso_instant(str(self.since)) >= iso_instant(str(self.until))
        ):
            problems.append(f"--since {self.since!r} is not before --until {self.until!r}")
        if problems:
            raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return self
