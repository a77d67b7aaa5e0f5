"""customer.referred -> Referral (`referrals`). The customer is the referee."""

from __future__ import annotations

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import customer_id, emit, first, obj, text


def customer_referred(activity: Activity) -> list[Result]:
    data = activity.data
    voucher = obj(data, "voucher")
    custom_event = obj(data, "custom_event")
    referral = obj(custom_event, "referral")
    value = {
        "referrer_id": first(
            text(obj(data, "referrer"), "id"),
            text(referral, "referrer_id"),
            text(voucher, "holder_id"),
        ),
        "campaign_id": first(text(obj(data, "campaign"), "id"), text(voucher, "campaign_id")),
        "voucher_code": first(text(voucher, "code"), text(referral, "code")),
        "conversion_event": text(custom_event, "type"),
        "custom_event_id": text(custom_event, "id"),
        "redemption_id": text(obj(data, "redemption"), "id"),
    }
    return [emit(activity, "referrals", customer_id(data), value)]
