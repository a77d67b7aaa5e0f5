"""customer.<channel>.sent / failed / recovered -> NotificationOutcome (`notifications`).

The channel and outcome come from the type, so one handler serves every channel. The
distribution is free-form JSON; only its id and a failure reason are read from it, and the
reason is redacted and cut short: it may quote the address that bounced.
"""

from __future__ import annotations

from typing import Any, Final

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import bounded_text, customer_id, emit, text
from consumer.pipeline.handlers._json import parse_object

# Where providers put the reason, in the order tried.
_REASON_KEYS: Final = ("failure_reason", "failure_message", "reason", "error", "message")


def _reason(distribution: dict[str, Any]) -> str | None:
    for key in _REASON_KEYS:
        v = distribution.get(key)
        if type(v) is dict:  # {"error": {"code": ..., "message": ...}}
            v = v.get("message")
        reason = bounded_text(v)
        if reason is not None:
            return reason
    return None


def notification(activity: Activity) -> list[Result]:
    data = activity.data
    _, _, rest = activity.canonical_type.partition(".")
    channel, _, outcome = rest.partition(".")
    distribution = parse_object(data.get("distribution"))
    value = {
        "channel": channel,
        "outcome": outcome,
        "distribution_id": text(distribution, "id"),
        "failure_reason": _reason(distribution) if distribution is not None and outcome == "failed" else None,
    }
    return [emit(activity, "notifications", customer_id(data), value)]
