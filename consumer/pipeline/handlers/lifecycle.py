"""customer.created / updated / deleted / confirmed -> CustomerLifecycleChange (`lifecycle`)."""

from __future__ import annotations

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import emit, obj, safe_id, text


def _change(activity: Activity, change: str) -> list[Result]:
    data = activity.data
    customer = obj(data, "customer")
    cid = text(customer, "id")
    value = {
        "change": change,
        "source_id": safe_id(text(customer, "source_id")),
        "unconfirmed_customer_id": text(obj(data, "unconfirmed_customer"), "id"),
    }
    return [emit(activity, "lifecycle", cid, value)]


def customer_created(activity: Activity) -> list[Result]:
    return _change(activity, "created")


def customer_updated(activity: Activity) -> list[Result]:
    return _change(activity, "updated")


def customer_deleted(activity: Activity) -> list[Result]:
    return _change(activity, "deleted")


def customer_confirmed(activity: Activity) -> list[Result]:
    return _change(activity, "confirmed")
