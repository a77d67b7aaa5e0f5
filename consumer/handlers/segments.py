"""customer.segment.entered / left -> SegmentMembershipChange (`segments`)."""

from __future__ import annotations

from consumer.handlers._common import customer_id, emit, obj, text
from consumer.model import Activity, Result


def _change(activity: Activity, change: str) -> list[Result]:
    data = activity.data
    segment = obj(data, "segment")
    value = {
        "change": change,
        "segment_id": text(segment, "id"),
        "segment_name": text(segment, "name"),
    }
    return [emit(activity, "segments", customer_id(data), value)]


def segment_entered(activity: Activity) -> list[Result]:
    return _change(activity, "entered")


def segment_left(activity: Activity) -> list[Result]:
    return _change(activity, "left")
