"""What every handler shares: None-safe field readers, result building, bounded text.

Handlers read the decoded Avro data record, where every field is present and absent ones
are None, but a seed event whose data did not fit its record arrives as untyped JSON
(`{"json": ...}`). So every reader here checks the type of what it returns and never raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from consumer.contract import STREAM_SCHEMAS
from consumer.model import Activity, Result
from consumer.pii import mask_text

Handler = Callable[[Activity], list[Result]]
Data = dict[str, Any]

TEXT_LIMIT: Final = 256


def obj(d: Data | None, key: str) -> Data | None:
    """`d[key]` when it is an object, else None."""
    if d is None:
        return None
    v = d.get(key)
    return v if type(v) is dict else None


def text(d: Data | None, key: str) -> str | None:
    """`d[key]` when it is a non-empty string, else None."""
    if d is None:
        return None
    v = d.get(key)
    return v if type(v) is str and v else None


def long(d: Data | None, key: str) -> int | None:
    """`d[key]` as an integer (a whole float is accepted), else None."""
    if d is None:
        return None
    v = d.get(key)
    if type(v) is int:
        return v
    if type(v) is float and v.is_integer():
        return int(v)
    return None


def first(*values: Any) -> Any:
    """The first value that is not None (0 and "" count as values)."""
    for v in values:
        if v is not None:
            return v
    return None


def customer_id(data: Data) -> str | None:
    return text(obj(data, "customer"), "id")


def emit(activity: Activity, stream: str, cid: str | None, value: dict[str, Any]) -> Result:
    """A Result for `stream`, with the common fields added to `value` (which it takes over)."""
    value["activity_id"] = activity.id
    value["activity_type"] = activity.canonical_type
    value["occurred_at"] = activity.created_at_ms
    value["customer_id"] = cid
    return Result(stream=stream, schema=STREAM_SCHEMAS[stream], key=cid, value=value)


def bounded_text(v: Any) -> str | None:
    """Free text from the data, safe for a result: redacted, at most TEXT_LIMIT characters."""
    if type(v) is not str or not v:
        return None
    return mask_text(v)[:TEXT_LIMIT]


def safe_id(v: str | None) -> str | None:
    """A merchant-chosen id (source_id), dropped when it is an email address."""
    return None if v is None or "@" in v else v
