"""customer.holder.assignment.created / deleted -> HolderAssignment (`holders`)."""

from __future__ import annotations

from typing import Any

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import emit, first, obj, text


def holder_assignment(activity: Activity) -> list[Result]:
    data = activity.data
    holder = obj(data, "holder")
    voucher = obj(data, "voucher")
    campaign = obj(data, "campaign")
    value: dict[str, Any] = {
        "change": activity.canonical_type.rsplit(".", 1)[1],
        "holder_id": text(holder, "id"),
        "holder_role": text(holder, "holder_role"),
        "redeemable_id": first(text(holder, "redeemable_id"), text(voucher, "id")),
        "redeemable_object": text(holder, "redeemable_object"),
        "voucher_code": text(voucher, "code"),
        "voucher_type": first(text(holder, "voucher_type"), text(voucher, "type")),
        "campaign_id": first(text(holder, "campaign_id"), text(campaign, "id"), text(voucher, "campaign_id")),
        "campaign_type": first(text(holder, "campaign_type"), text(campaign, "campaign_type")),
        "publication_id": text(holder, "publication_id"),
    }
    # the holder's customer is who the assignment is about; `customer` is the same person
    cid = first(text(holder, "customer_id"), text(obj(data, "customer"), "id"))
    return [emit(activity, "holders", cid, value)]
