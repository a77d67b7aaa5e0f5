"""Voucherify webhook deliveries (v2024-01-01) built around corpus activities, for tests.

`wrap` is the inverse of the gateway's mapping (`delivery_json.parse`): the event carries
the activity's id, type, time, group and source, and `data` its data, flat or nested.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from consumer.devtools.corpus import EXAMPLES

Kind = Literal["webhook", "distribution"]
KINDS: tuple[Kind, ...] = ("webhook", "distribution")


def corpus() -> list[dict[str, Any]]:
    """Every corpus activity, in file order."""
    return [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]


def wrap(activity: dict[str, Any], kind: Kind, *, nested: bool = False, n: int = 0) -> dict[str, Any]:
    """A delivery of `activity` by a project-settings webhook or a distribution."""
    event: dict[str, Any] = {
        "id": activity["id"],
        "type": activity["type"],
        "created_at": activity["created_at"],
        "entity_id": "cust_entity0001",
    }
    for key in ("group_id", "event_source"):
        if key in activity:
            event[key] = activity[key]
    source_id = f"wh_test{n:06d}" if kind == "webhook" else f"distr_test{n:06d}"
    return {
        "id": f"whs_test{n:08d}",
        "project_id": "proj_test0001",
        "created_at": "2024-05-31T10:00:00.000Z",
        # distributions: whatever the user typed as the event name
        "type": activity["type"] if kind == "webhook" else "Customer activity",
        "data": {"data": activity["data"]} if nested else activity["data"],
        "source": {"id": source_id, "object": kind, "target_url": "https://example.test/webhooks/voucherify"},
        "event": event,
    }


def text(doc: Any, *, pretty: bool) -> bytes:
    """JSON text as a bridge would write it: pretty-printed, or compact."""
    if pretty:
        return json.dumps(doc, indent=2, ensure_ascii=False).encode()
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
