"""One activity -> one input record: the key rule, the value (the project's codec) and the
headers. Every way in (`produce`, the webhook gateway, the backfill) builds records here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from consumer.contract import H_ACTIVITY_ID, H_ACTIVITY_TYPE, H_DELIVERY_ID, H_INGEST_SOURCE, H_PROJECT_ID
from consumer.pipeline.codec import AvroCodec
from consumer.pipeline.codec.delivery_json import Delivery

WEBHOOK: Final = "webhook"  # the activity-source header of what the gateway (and its dead-letter remap) writes


def customer_key(activity: dict[str, Any]) -> str | None:
    """The customer id an activity is about: the partitioning key that keeps order."""
    data = activity.get("data")
    if isinstance(data, dict) and set(data) <= {"data", "event_source"} and "data" in data:
        data = data["data"]
    if not isinstance(data, dict):
        return None
    customer = data.get("customer")
    if isinstance(customer, dict) and isinstance(customer.get("id"), str):
        return str(customer["id"])
    cid = data.get("customer_id")
    return cid if isinstance(cid, str) else None


@dataclass(frozen=True, slots=True)
class InputRecord:
    key: str | None
    value: bytes
    headers: list[tuple[str, bytes]]


def input_record(
    codec: AvroCodec,
    activity: dict[str, Any],
    *,
    source: str,
    delivery_id: str | None = None,
    project_id: str | None = None,
) -> InputRecord:
    """Encode `activity` (raises `EncodeError` naming what is wrong) with its key and headers."""
    value = codec.encode_json(activity)
    headers = [
        (H_ACTIVITY_ID, str(activity["id"]).encode()),
        (H_ACTIVITY_TYPE, str(activity["type"]).encode()),
        (H_INGEST_SOURCE, source.encode()),
    ]
    if delivery_id:
        headers.append((H_DELIVERY_ID, delivery_id.encode()))
    if project_id:
        headers.append((H_PROJECT_ID, project_id.encode()))
    return InputRecord(customer_key(activity), value, headers)


def webhook_record(codec: AvroCodec, delivery: Delivery) -> InputRecord:
    """What the gateway writes for a customer event's delivery (a remapped dead letter too)."""
    return input_record(
        codec, delivery.activity, source=WEBHOOK, delivery_id=delivery.delivery_id, project_id=delivery.project_id
    )
