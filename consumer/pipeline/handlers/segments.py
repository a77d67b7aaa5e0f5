"""customer.segment.entered / left -> SegmentMembershipChange (`segments`)."""

from __future__ import annotations

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import customer_id, emit, obj, text


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
