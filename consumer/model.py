"""The in-memory shapes that travel between the pipeline stages."""

from __future__ import annotations

from typing import Any, NamedTuple

from consumer.catalogue import canonical, family_of

TP = tuple[str, int]  # (topic, partition): the key of everything kept per partition


# NamedTuples, not frozen dataclasses: as immutable, and built in half the time (a frozen
# dataclass sets each field through object.__setattr__), once or twice per event.
class Activity(NamedTuple):
    """One decoded Customer Activity event, as handlers see it.

    `data` is the decoded Avro record for the event's data shape: a plain dict with
    Voucherify's field names. Handlers read it; they never mutate it.
    """

    id: str
    type: str  # the exact type string from the wire
    canonical_type: str  # the catalogue's name (aliases folded), or the wire type if unknown
    family: str  # the handler family, "unknown" for types the catalogue does not know
    data: dict[str, Any]
    created_at_ms: int
    group_id: str | None = None


class Result(NamedTuple):
    """One record for a downstream topic, produced by a handler.

    `stream` is the topic suffix (`redemptions` -> `<prefix>redemptions`); `schema` is the
    full name of its Avro record in `avro/results/`; `key` is the customer id, so that a
    customer's results stay in order on one partition.
    """

    stream: str
    schema: str
    key: str | None
    value: dict[str, Any]


def activity_from_record(record: dict[str, Any]) -> Activity:
    """An Activity from a decoded envelope record (`AvroCodec.decode`)."""
    event_type: str = record["type"]
    canonical_type = canonical(event_type)
    created = record["created_at"]
    created_ms = created if type(created) is int else int(created.timestamp() * 1000)
    return Activity(
        id=record["id"],
        type=event_type,
        canonical_type=canonical_type,
        family=family_of(canonical_type),
        data=record["data"],
        created_at_ms=created_ms,
        group_id=record.get("group_id"),
    )
