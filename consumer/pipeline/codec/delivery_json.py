"""A Voucherify webhook delivery (format v2024-01-01) -> the Customer Activity it carries.

The one home of that mapping: the webhook gateway (consumer/ingest) and the worker's JSON
input (json_input.py) both use it, so both build the same activity. Pure: no I/O, no Avro.

Both kinds share the envelope: project-settings webhooks (`source.object` "webhook") and
distributions ("distribution"). The activity is `{id: event.id, type: event.type,
created_at: event.created_at, group_id, event_source, data}`; `data` may be flat or the
OpenAPI's nested `data.data` (the codec reads both). Deliveries whose event is not a
customer event are valid but carry no activity.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from consumer.errors import ConsumerError

KINDS: Final = ("webhook", "distribution")
CUSTOMER_PREFIX: Final = "customer."
OTHER_FAMILY: Final = "other"
# Voucherify's non-customer event families: a metric label, so a closed set.
FAMILIES: Final = frozenset(
    {
        "voucher",
        "campaign",
        "business_validation_rule",
        "validation_rule",
        "order",
        "product",
        "sku",
        "promotion_tier",
        "publication",
        "redemption",
        "reward",
        "earning_rule",
        "loyalty",
        "segment",
        "distribution",
        "referral",
        "location",
        "product_collection",
        "qualification",
        "export",
        "async_action",
    }
)
_REQUIRED: Final = ("id", "project_id", "created_at", "type", "data", "source", "event")
FORMAT_VERSION: Final = "2024-01-01"  # the one documented webhook format

# Why a body is not a delivery this mapping reads: a dead letter's reason code, a metric label.
NOT_JSON: Final = "not_json"  # not UTF-8 or not JSON
TOO_DEEP: Final = "too_deep"  # JSON nested past the parser's depth
NOT_OBJECT: Final = "not_object"  # JSON, but an array, a string, a number, ...
NOT_DELIVERY: Final = "not_delivery"  # an object without the delivery envelope (`source`, `event`)
UNKNOWN_FORMAT: Final = "unknown_format"  # a `version` other than FORMAT_VERSION
RESHAPED_PAYLOAD: Final = "reshaped_payload"  # a distribution whose payload designer changed the body
MISSING_FIELD: Final = "missing_field"  # a webhook envelope without a required key
WRONG_TYPE: Final = "wrong_type"  # a key of the wrong type or an unknown `source.object`
NOT_ENCODABLE: Final = "not_encodable"  # a delivery whose activity the contract cannot hold
REASON_CODES: Final = (
    NOT_JSON,
    TOO_DEEP,
    NOT_OBJECT,
    NOT_DELIVERY,
    UNKNOWN_FORMAT,
    RESHAPED_PAYLOAD,
    MISSING_FIELD,
    WRONG_TYPE,
    NOT_ENCODABLE,
)


class DeliveryError(ConsumerError, ValueError):
    """The body is not a Voucherify delivery this mapping reads; the message names what is wrong
    (never a value from the body) and `code` is one of REASON_CODES."""

    def __init__(self, message: str, code: str = WRONG_TYPE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: str  # `whs_…`: this send-out
    project_id: str
    kind: str  # webhook | distribution
    event_id: str
    event_type: str
    activity: dict[str, Any]

    @property
    def is_customer_event(self) -> bool:
        return self.event_type.startswith(CUSTOMER_PREFIX)

    @property
    def family(self) -> str:
        """The bounded family of a non-customer event, for the ignored-deliveries metric."""
        first = self.event_type.split(".", 1)[0]
        return first if first in FAMILIES else OTHER_FAMILY


def loads(body: bytes) -> Any:
    """The body as JSON; raises DeliveryError (never the decoder's message with a payload excerpt)."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise DeliveryError("the body is not UTF-8 text", NOT_JSON) from None
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise DeliveryError(f"the body is not JSON ({where})", NOT_JSON) from None
    except RecursionError:
        raise DeliveryError("the body nests JSON too deeply", TOO_DEEP) from None


def is_delivery(doc: Any) -> bool:
    """Whether a JSON document claims to be a delivery (a bare activity has no `event`)."""
    return isinstance(doc, dict) and "event" in doc


def project_of(doc: Any) -> str | None:
    """The delivery's `project_id` when it has one (needed to choose its secrets)."""
    if isinstance(doc, dict):
        pid = doc.get("project_id")
        if isinstance(pid, str) and pid:
            return pid
    return None


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise DeliveryError(f"'{where}{key}' must be a non-empty string")
    return value


def parse(doc: Any) -> Delivery:
    """A parsed JSON document -> Delivery; raises DeliveryError naming the first problem."""
    if not isinstance(doc, dict):
        raise DeliveryError(f"a delivery is a JSON object, not {_json_kind(doc)}", NOT_OBJECT)
    version = doc.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        shown = repr(version) if isinstance(version, str) and re.fullmatch(r"[\w.-]{1,32}", version) else "unusual"
        raise DeliveryError(
            f"an unknown webhook format (version {shown}; this gateway reads {FORMAT_VERSION})", UNKNOWN_FORMAT
        )
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        named = ", ".join(repr(k) for k in missing)
        if _is_distribution(doc):
            raise DeliveryError(f"a distribution's payload was reshaped: missing {named}", RESHAPED_PAYLOAD)
        if "source" not in doc and "event" not in doc:
            raise DeliveryError(f"not a Voucherify delivery: missing {named}", NOT_DELIVERY)
        raise DeliveryError(f"not a Voucherify delivery: missing {named}", MISSING_FIELD)
    delivery_id = _text(doc, "id", "")
    project_id = _text(doc, "project_id", "")
    _text(doc, "type", "")
    source, event = doc["source"], doc["event"]
    if not isinstance(source, dict):
        raise DeliveryError("'source' must be an object")
    kind = source.get("object")
    if kind not in KINDS:
        raise DeliveryError(f"'source.object' must be one of {', '.join(KINDS)}")
    if not isinstance(event, dict):
        raise DeliveryError("'event' must be an object")
    event_id = _text(event, "id", "event.")
    event_type = _text(event, "type", "event.")
    created_at = _text(event, "created_at", "event.")
    if not isinstance(doc["data"], dict):
        raise DeliveryError("'data' must be an object")
    activity: dict[str, Any] = {"id": event_id, "type": event_type, "created_at": created_at}
    for key, kinds, named in (("group_id", (str,), "a string"), ("event_source", (dict,), "an object")):
        if key in event:
            if event[key] is not None and not isinstance(event[key], kinds):
                raise DeliveryError(f"'event.{key}' must be {named} or null")
            activity[key] = event[key]
    activity["data"] = doc["data"]
    return Delivery(delivery_id, project_id, str(kind), event_id, event_type, activity)


def _is_distribution(doc: dict[str, Any]) -> bool:
    source = doc.get("source")
    return isinstance(source, dict) and source.get("object") == "distribution"


def _json_kind(doc: Any) -> str:
    if doc is None:
        return "null"
    if isinstance(doc, bool):
        return "a boolean"
    if isinstance(doc, int | float):
        return "a number"
    return "a string" if isinstance(doc, str) else "an array"


def bounded_type(event_type: str) -> str:
    """An event type fit for a log field: Voucherify's name shape, else a placeholder."""
    return event_type if re.fullmatch(r"[a-z0-9_.]{1,100}", event_type) else "(unusual type)"
