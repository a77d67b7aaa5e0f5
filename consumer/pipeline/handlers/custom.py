"""customer.custom_event -> CustomEventRecord (`custom-events`)."""

from __future__ import annotations

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import emit, first, obj, text


def custom_event(activity: Activity) -> list[Result]:
    data = activity.data
    event = obj(data, "event")
    schema = obj(data, "event_schema")
    cid = first(text(obj(data, "customer"), "id"), text(obj(event, "customer"), "id"))
    value = {
        "event_name": first(text(schema, "name"), text(event, "type")),
        "event_id": text(event, "id"),
        "event_schema_id": text(schema, "id"),
    }
    return [emit(activity, "custom-events", cid, value)]
