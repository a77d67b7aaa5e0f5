"""customer.redemption.* -> RedemptionRecord (`redemptions`).

Succeeded and failed redemptions report the event's order. Rollbacks report the order of the
redemption they roll back, so the amounts are what was reversed (or failed to be).
"""

from __future__ import annotations

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import Data, bounded_text, emit, first, long, obj, text


def _record(
    activity: Activity,
    result: str,
    redemption: Data | None,
    rollback: Data | None,
    order: Data | None,
    failed: Data | None,
) -> list[Result]:
    data = activity.data
    voucher = first(obj(data, "voucher"), obj(redemption, "voucher"))
    tier = first(obj(data, "promotion_tier"), obj(redemption, "promotion_tier"))
    cid = first(
        text(obj(data, "customer"), "id"),
        text(redemption, "customer_id"),
        text(rollback, "customer_id"),
    )
    channel = first(obj(rollback, "channel"), obj(redemption, "channel"))
    value = {
        "result": result,
        "redemption_id": first(text(redemption, "id"), text(rollback, "redemption")),
        "rollback_id": text(rollback, "id"),
        "voucher_id": text(voucher, "id"),
        "voucher_code": text(voucher, "code"),
        "promotion_tier_id": text(tier, "id"),
        "campaign_id": first(
            text(obj(data, "campaign"), "id"),
            text(voucher, "campaign_id"),
            text(obj(tier, "campaign"), "id"),
        ),
        "order_id": text(order, "id"),
        "order_amount": long(order, "amount"),
        "discount_amount": first(long(order, "total_discount_amount"), long(order, "discount_amount")),
        "total_amount": long(order, "total_amount"),
        "channel_type": text(channel, "channel_type"),
        "failure_code": text(failed, "failure_code"),
        "failure_message": bounded_text(failed.get("failure_message")) if failed else None,
    }
    return [emit(activity, "redemptions", cid, value)]


def redemption_succeeded(activity: Activity) -> list[Result]:
    data = activity.data
    redemption = obj(data, "redemption")
    order = first(obj(data, "order"), obj(redemption, "order"))
    return _record(activity, "succeeded", redemption, None, order, None)


def redemption_failed(activity: Activity) -> list[Result]:
    data = activity.data
    redemption = obj(data, "redemption")
    order = first(obj(data, "order"), obj(redemption, "order"))
    return _record(activity, "failed", redemption, None, order, redemption)


def _rollback(activity: Activity, result: str, failed: bool) -> list[Result]:
    data = activity.data
    redemption = obj(data, "redemption")
    rollback = obj(data, "redemption_rollback")
    order = first(obj(redemption, "order"), obj(data, "order"), obj(rollback, "order"))
    return _record(activity, result, redemption, rollback, order, rollback if failed else None)


def rollback_succeeded(activity: Activity) -> list[Result]:
    return _rollback(activity, "rollback_succeeded", failed=False)


def rollback_failed(activity: Activity) -> list[Result]:
    return _rollback(activity, "rollback_failed", failed=True)
