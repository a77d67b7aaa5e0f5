"""customer.loyalty.tier.* and customer.loyalty.updated -> LoyaltyTierChange (`loyalty-tiers`).

Tier names are merchant-chosen and can be anything, so only tier ids travel. `from` is the
tier held before the event, `to` the tier held after; an event names the ones it has.
"""

from __future__ import annotations

from typing import Any

from consumer.catalogue import TIER_CHANGE_OF
from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import Data, customer_id, emit, first, long, obj, text


def _lower_bound(tier: Data | None) -> int | None:
    bound = long(obj(tier, "points"), "from")
    return bound if bound is not None else long(obj(obj(tier, "config"), "points"), "from")


def tier_change(activity: Activity) -> list[Result]:
    data = activity.data
    change = TIER_CHANGE_OF.get(activity.canonical_type, "updated")
    tier = obj(data, "loyalty_tier")
    before: Data | None
    after: Data | None
    if change in ("upgraded", "downgraded"):
        before, after = obj(data, "loyalty_tier_from"), obj(data, "loyalty_tier_to")
    elif change == "left":
        before, after = tier, None
    else:
        before, after = None, tier
    expiration = obj(after, "expiration")
    value: dict[str, Any] = {
        "change": change,
        "campaign_id": first(
            text(obj(data, "campaign"), "id"), text(after, "campaign_id"), text(before, "campaign_id")
        ),
        "tier_from_id": text(before, "id"),
        "tier_to_id": text(after, "id"),
        "tier_from_points": _lower_bound(before),
        "tier_to_points": _lower_bound(after),
        "start_date": text(expiration, "start_date"),
        "expiration_date": first(text(data, "expiration_date"), text(expiration, "expiration_date")),
    }
    return [emit(activity, "loyalty-tiers", customer_id(data), value)]
