"""customer.created / updated / deleted / confirmed and customer.voucher.deleted ->
CustomerLifecycleChange (`lifecycle`)."""

from __future__ import annotations

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import emit, first, obj, safe_id, text


def _change(activity: Activity, change: str) -> list[Result]:
    data = activity.data
    customer = obj(data, "customer")
    cid = text(customer, "id")
    value = {
        "change": change,
        "source_id": safe_id(text(customer, "source_id")),
        "unconfirmed_customer_id": text(obj(data, "unconfirmed_customer"), "id"),
        "voucher_id": None,
        "voucher_code": None,
        "campaign_id": None,
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


def voucher_deleted(activity: Activity) -> list[Result]:
    data = activity.data
    customer = obj(data, "customer")
    voucher = obj(data, "voucher")
    value = {
        "change": "voucher_deleted",
        "source_id": safe_id(text(customer, "source_id")),
        "unconfirmed_customer_id": None,
        "voucher_id": text(voucher, "id"),
        "voucher_code": text(voucher, "code"),
        "campaign_id": first(text(obj(data, "campaign"), "id"), text(voucher, "campaign_id")),
    }
    return [emit(activity, "lifecycle", text(customer, "id"), value)]
