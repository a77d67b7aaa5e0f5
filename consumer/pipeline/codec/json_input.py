"""Activity JSON on the input topic, beside the two Avro framings.

A generic HTTP-to-Kafka bridge writes the body as it came: a Voucherify webhook delivery,
or a bare Customer Activity. Such a value is told apart per record by its first byte
(`{` after optional JSON whitespace); neither Avro framing starts so (`C3 01`, `00`).
The caller encodes the activity with the contract's converter and reads it back, so the
record is the one its Avro twin decodes to.
"""

from __future__ import annotations

from typing import Any, Final

from consumer.pii import mask_text
from consumer.pipeline.codec.delivery_json import DeliveryError, bounded_type, is_delivery, loads, parse
from consumer.pipeline.codec.framing import DecodeError

JSON_FRAMING: Final = "json"  # the framing label of these values on metrics and errors
_OPEN: Final = 0x7B  # "{"
_WHITESPACE: Final = b" \t\n\r"  # JSON's insignificant whitespace (RFC 8259)


def is_json(payload: bytes) -> bool:
    """Whether a value is JSON object text rather than framed Avro."""
    if not payload:
        return False
    first = payload[0]
    if first == _OPEN:
        return True
    return first in _WHITESPACE and payload.lstrip(_WHITESPACE)[:1] == b"{"


def not_activity(detail: str) -> DecodeError:
    """The JSON parsed, but is not an activity; the detail names what (no values, masked)."""
    return DecodeError("json_not_activity", mask_text(detail)[:300], JSON_FRAMING)


def activity_of(payload: bytes) -> dict[str, Any]:
    """JSON text -> the activity it is or carries; raises `DecodeError` naming what is wrong.

    The activity is not checked here: encoding it (`ActivityConverter.to_avro`) does that.
    """
    try:
        doc = loads(payload)
    except DeliveryError as exc:
        raise DecodeError("json_malformed", str(exc), JSON_FRAMING) from None
    if not isinstance(doc, dict):  # `{...} trailing` is malformed, so this cannot happen; be sure
        raise not_activity("the JSON value is not an object")
    if not is_delivery(doc):
        return doc
    try:
        delivery = parse(doc)
    except DeliveryError as exc:
        raise not_activity(str(exc)) from None
    if not delivery.is_customer_event:
        raise not_activity(f"a delivery of {bounded_type(delivery.event_type)}, not a customer event")
    return delivery.activity
