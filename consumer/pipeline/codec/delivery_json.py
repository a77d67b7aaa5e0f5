"""A Voucherify webhook delivery (format v2024-01-01) -> the Customer Activity it carries.

The one home of that mapping: the webhook gateway and the worker's JSON input both use it.
A delivery is `{id, project_id, created_at, type, data, source, event}`; the activity is
`{id: event.id, type: event.type, created_at: event.created_at, group_id: event.group_id,
event_source: event.event_source, data: data}` (see `../shared/voucherify/ingest.md`).
`data` is passed on as it came: flat, or the OpenAPI's nested `data.data`, which
`ActivityConverter.to_avro` accepts. Pure: no I/O, no Avro.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

CUSTOMER_PREFIX: Final = "customer."
# Event members copied onto the activity only when present, so an absent key stays absent
# and an explicit null stays null (the Avro record tells the two apart).
_OPTIONAL_EVENT_KEYS: Final = ("group_id", "event_source")


class NotADelivery(ValueError):
    """JSON that is not a Voucherify webhook delivery; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery: its send-out id, project, and the activity built from its event."""

    delivery_id: str | None  # `whs_…`: this send-out, not the event
    project_id: str | None  # `proj_…`
    event_type: str
    activity: dict[str, Any]

    @property
    def is_customer_event(self) -> bool:
        return is_customer_event(self.event_type)


def is_delivery(value: Any) -> bool:
    """Whether a JSON value claims to be a delivery (a bare activity has no `event`)."""
    return type(value) is dict and "event" in value


def is_customer_event(event_type: str) -> bool:
    """Customer events become activities; `voucher.*`, `campaign.*`, … do not."""
    return event_type.startswith(CUSTOMER_PREFIX)


def event_family(event_type: str) -> str:
    """The first dotted segment (`voucher`, `campaign`, …): a bounded-enough metric label."""
    head = event_type.split(".", 1)[0]
    return head if head.isidentifier() and len(head) <= 40 else "other"


def _optional_str(value: dict[str, Any], key: str) -> str | None:
    got = value.get(key)
    if got is not None and type(got) is not str:
        raise NotADelivery(f"'{key}' must be a string")
    return got


def parse_delivery(value: Any) -> Delivery:
    """A decoded JSON delivery -> `Delivery`; raises `NotADelivery` naming what is wrong.

    Checks only what the mapping needs; the activity itself is checked where it is
    encoded (`ActivityConverter.to_avro` raises `EncodeError`).
    """
    if type(value) is not dict:
        raise NotADelivery("a delivery must be a JSON object")
    event = value.get("event")
    if type(event) is not dict:
        raise NotADelivery("'event' must be an object")
    for key in ("id", "type", "created_at"):
        if type(event.get(key)) is not str:
            raise NotADelivery(f"'event.{key}' must be a string")
    if "data" not in value:
        raise NotADelivery("'data' is missing")
    activity: dict[str, Any] = {
        "id": event["id"],
        "type": event["type"],
        "created_at": event["created_at"],
        "data": value["data"],
    }
    for key in _OPTIONAL_EVENT_KEYS:
        if key in event:
            activity[key] = event[key]
    return Delivery(_optional_str(value, "id"), _optional_str(value, "project_id"), event["type"], activity)


def delivery_to_activity(value: Any) -> dict[str, Any]:
    """Shorthand: the activity a delivery carries (raises `NotADelivery`)."""
    return parse_delivery(value).activity
