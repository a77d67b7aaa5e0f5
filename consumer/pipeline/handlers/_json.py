"""Members that travel as JSON text: free-form objects, `_extra`, and untyped data.

A free-form object of the OpenAPI description (`reward_redemption`, `loyalty`) is JSON text in
its data record; a member the record does not type (a wrong-typed `source`, an undocumented
`voucher_pending_points_balance`) is kept in `_extra`; a type without a published data schema
(`points_activated`) arrives as `{"json": ...}`. These readers return plain dicts, never raise.
"""

from __future__ import annotations

import json
from typing import Any

from consumer.contract import EXTRA
from consumer.pipeline.handlers._common import Data, obj


def parse_object(raw: Any) -> Data | None:
    """`raw` as an object: a dict as is, JSON object text parsed, anything else None."""
    if type(raw) is dict:
        return raw
    if type(raw) is not str or not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if type(value) is dict else None


def member(d: Data | None, key: str) -> Data | None:
    """`d[key]` as an object, from the record's field or, when it has none, from its `_extra`."""
    if d is None:
        return None
    found = parse_object(d.get(key))
    if found is not None:
        return found
    return obj(parse_object(d.get(EXTRA)), key)


def plain(data: Data) -> Data:
    """The data as an object: a `GenericActivityData` record's JSON text parsed."""
    raw = data.get("json")
    if len(data) == 1 and type(raw) is str:
        return parse_object(raw) or {}
    return data
