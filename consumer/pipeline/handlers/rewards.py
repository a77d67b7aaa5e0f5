"""customer.rewarded / customer.rewarded.loyalty_points -> RewardGranted (`rewards`)."""

from __future__ import annotations

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import customer_id, emit, first, long, obj, text


def rewarded(activity: Activity) -> list[Result]:
    data = activity.data
    reward = obj(data, "reward")
    voucher = obj(data, "voucher")
    redemption = obj(data, "redemption")
    balance = obj(data, "balance")
    value = {
        "grant": "reward",
        "reward_type": text(reward, "type"),
        "reward_id": text(reward, "id"),
        "assignment_id": text(reward, "assignment_id"),
        "campaign_id": first(text(obj(data, "campaign"), "id"), text(voucher, "campaign_id")),
        "voucher_id": text(voucher, "id"),
        "redemption_id": text(redemption, "id"),
        "earning_rule_id": None,
        "points": long(balance, "points"),
        "amount": long(balance, "amount"),
    }
    return [emit(activity, "rewards", customer_id(data), value)]


def rewarded_loyalty_points(activity: Activity) -> list[Result]:
    data = activity.data
    voucher = obj(data, "voucher")
    value = {
        "grant": "loyalty_points",
        "reward_type": None,
        "reward_id": None,
        "assignment_id": None,
        "campaign_id": first(text(obj(data, "campaign"), "id"), text(voucher, "campaign_id")),
        "voucher_id": text(voucher, "id"),
        "redemption_id": None,
        "earning_rule_id": text(obj(data, "earning_rule"), "id"),
        "points": long(obj(data, "balance"), "points"),
        "amount": None,
    }
    return [emit(activity, "rewards", customer_id(data), value)]
