"""Every type without a dedicated handler -> ForwardedActivity (`other`), never an error.

That is the types the catalogue does not know: every catalogue type has a typed handler.
The data travels on as JSON text, without personal data: the fields that
hold it are dropped by name, and emails and international phone numbers left in free text
are masked.
"""

from __future__ import annotations

import json
from typing import Any, Final

from consumer.catalogue import KNOWN_TYPES
from consumer.contract import EXTRA, JSON_NULLS
from consumer.model import Activity, Result
from consumer.pii import ALWAYS_PERSONAL, EMAIL_MASK, PERSON_KEYS, PERSONAL_FIELDS, PHONE_MASK, mask_embedded
from consumer.pipeline.handlers._common import emit, obj, text

_DROP: Final = ALWAYS_PERSONAL | {JSON_NULLS, EXTRA}


def _scrub(value: Any, person: bool = False) -> Any:
    """`value` without nulls, Avro bookkeeping or personal fields (extras merged back in)."""
    if type(value) is dict:
        person = person or value.get("object") == "customer"
        items: Any = value.items()
        extra = value.get(EXTRA)
        if type(extra) is str and extra:
            try:
                more = json.loads(extra)
            except ValueError:
                more = None
            if type(more) is dict:
                items = [*items, *more.items()]
        out: dict[str, Any] = {}
        for k, v in items:
            if v is None or k in _DROP or (person and k in PERSONAL_FIELDS):
                continue
            tv = type(v)  # recurse only into containers: a call per leaf is most of the cost
            out[k] = _scrub(v, k in PERSON_KEYS) if tv is dict or tv is list else v
        return out
    if type(value) is list:
        return [_scrub(v) if type(v) is dict or type(v) is list else v for v in value]
    return value


def _plain_data(data: dict[str, Any]) -> dict[str, Any]:
    """The data as JSON values: a `GenericActivityData` record's text parsed."""
    raw = data.get("json")
    if len(data) == 1 and type(raw) is str:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"json": raw}
        return parsed if type(parsed) is dict else {"json": parsed}
    return data


def forward(activity: Activity) -> list[Result]:
    data = _plain_data(activity.data)
    cid = text(obj(data, "customer"), "id")
    data_json = json.dumps(_scrub(data), default=str, ensure_ascii=False, separators=(",", ":"))
    value = {
        "known": activity.canonical_type in KNOWN_TYPES,
        "data_json": mask_embedded(data_json, EMAIL_MASK, PHONE_MASK),
    }
    return [emit(activity, "other", cid, value)]
