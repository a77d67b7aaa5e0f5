"""customer.reward_redemptions.created / pending / completed / rolledback -> RewardRedemption
(`reward-redemptions`).

`reward_redemption` is a free-form object in the OpenAPI description (JSON text here) and
`source` is typed as a string but sent as an object, so both are read as JSON.
"""

from __future__ import annotations

from typing import Any

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import customer_id, emit, first, long, obj, text
from consumer.pipeline.handlers._json import member


def reward_redemption(activity: Activity) -> list[Result]:
    data = activity.data
    record = member(data, "reward_redemption")
    reward = obj(data, "reward")
    assignment = obj(data, "reward_assignment")
    voucher = obj(data, "voucher")
    source = member(data, "source")
    value: dict[str, Any] = {
        "status": activity.canonical_type.rsplit(".", 1)[1],
        "reward_redemption_id": text(record, "id"),
        "reward_id": first(text(reward, "id"), text(assignment, "reward_id")),
        "reward_type": text(reward, "type"),
        "assignment_id": first(
            text(reward, "assignment_id"), text(assignment, "id"), text(record, "reward_assignment_id")
        ),
        "campaign_id": first(
            text(obj(data, "campaign"), "id"), text(voucher, "campaign_id"), text(record, "campaign_id")
        ),
        "voucher_id": first(text(voucher, "id"), text(record, "voucher_id")),
        "reward_voucher_id": text(obj(reward, "voucher"), "id"),
        "product_id": text(obj(reward, "product"), "id"),
        "points": long(obj(obj(assignment, "parameters"), "loyalty"), "points"),
        "amount": long(data, "balance"),
        "source_redemption_id": first(
            text(source, "id") if text(source, "type") in (None, "redemption") else None,
            text(record, "source_id") if text(record, "source_type") == "redemption" else None,
        ),
    }
    cid = first(customer_id(data), text(record, "customer_id"))
    return [emit(activity, "reward-redemptions", cid, value)]
