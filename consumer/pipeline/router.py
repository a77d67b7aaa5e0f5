"""Event type -> handler, for every catalogue type; everything else is forwarded.

Every type the catalogue knows (the seed's 30 and the 46 today's API adds) has a typed
handler. Types nobody knows go to the fallback handler, which forwards them to the `other`
stream: an unfamiliar type is never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from consumer.catalogue import (
    ALIASES,
    HOLDER_CHANGES,
    KNOWN_TYPES,
    NOTIFICATION_CHANNELS,
    ORDER_STATUSES,
    REWARD_REDEMPTION_STATUSES,
    TIER_CHANGE_OF,
    VALIDATION_RESULTS,
    canonical,
)
from consumer.model import Activity, Result
from consumer.pipeline.handlers import (
    consents,
    custom,
    distribution,
    holders,
    lifecycle,
    loyalty,
    loyalty_tiers,
    orders,
    publications,
    redemptions,
    referrals,
    reward_redemptions,
    rewards,
    segments,
    validations,
)
from consumer.pipeline.handlers._common import Handler
from consumer.pipeline.handlers.fallback import forward

__all__ = ["HANDLERS", "Handler", "Router"]

# canonical type -> handler, for every catalogue type
HANDLERS: Final[Mapping[str, Handler]] = MappingProxyType(
    {
        "customer.created": lifecycle.customer_created,
        "customer.updated": lifecycle.customer_updated,
        "customer.deleted": lifecycle.customer_deleted,
        "customer.confirmed": lifecycle.customer_confirmed,
        "customer.voucher.deleted": lifecycle.voucher_deleted,
        "customer.redemption.succeeded": redemptions.redemption_succeeded,
        "customer.redemption.failed": redemptions.redemption_failed,
        "customer.redemption.rollback.succeeded": redemptions.rollback_succeeded,
        "customer.redemption.rollback.failed": redemptions.rollback_failed,
        **{f"customer.validation.{r}": validations.validation for r in VALIDATION_RESULTS},
        "customer.voucher.loyalty_card.points_added": loyalty.points_added,
        "customer.voucher.loyalty_card.points_transferred": loyalty.points_transferred,
        "customer.voucher.loyalty_card.points_activated": loyalty.points_activated,
        "customer.voucher.loyalty_card.points_expired": loyalty.points_expired,
        "customer.voucher.loyalty_card.pending_points.added": loyalty.pending_points_added,
        "customer.voucher.loyalty_card.pending_points.updated": loyalty.pending_points_updated,
        "customer.voucher.loyalty_card.pending_points.activated": loyalty.pending_points_activated,
        "customer.voucher.loyalty_card.pending_points.canceled": loyalty.pending_points_canceled,
        "customer.voucher.gift.balance_added": loyalty.gift_balance_added,
        **dict.fromkeys(TIER_CHANGE_OF, loyalty_tiers.tier_change),
        "customer.rewarded": rewards.rewarded,
        "customer.rewarded.loyalty_points": rewards.rewarded_loyalty_points,
        **{
            f"customer.reward_redemptions.{s}": reward_redemptions.reward_redemption for s in REWARD_REDEMPTION_STATUSES
        },
        **{f"customer.order.{s}": orders.order_event for s in ORDER_STATUSES},
        **{f"customer.holder.assignment.{c}": holders.holder_assignment for c in HOLDER_CHANGES},
        # every channel's sent, failed and recovered
        **{
            f"customer.{channel}.{outcome}": distribution.notification
            for channel in NOTIFICATION_CHANNELS
            for outcome in ("sent", "failed", "recovered")
        },
        "customer.segment.entered": segments.segment_entered,
        "customer.segment.left": segments.segment_left,
        "customer.publication.succeeded": publications.publication_succeeded,
        "customer.publication.failed": publications.publication_failed,
        "customer.consents.given": consents.consents_given,
        "customer.consents.revoked": consents.consents_revoked,
        "customer.referred": referrals.customer_referred,
        "customer.custom_event": custom.custom_event,
    }
)
assert HANDLERS.keys() == KNOWN_TYPES, "every catalogue type has exactly one handler"


class Router:
    """Picks the handler for an activity and runs it.

    `handlers` maps catalogue (canonical) type names to handlers; each alias of a mapped
    type is registered too, so a wire spelling routes like its canonical name.
    """

    __slots__ = ("_fallback", "_table")

    def __init__(
        self,
        handlers: Mapping[str, Handler] = HANDLERS,
        fallback: Handler = forward,
    ) -> None:
        table: dict[str, Handler] = {}
        for event_type, handler in handlers.items():
            if canonical(event_type) != event_type:
                raise ValueError(f"{event_type!r} is an alias; map {canonical(event_type)!r} instead")
            table[event_type] = handler
        for alias, target in ALIASES.items():
            if target in table:
                table[alias] = table[target]
        self._table = table
        self._fallback = fallback

    def route(self, activity: Activity) -> list[Result]:
        return self._table.get(activity.canonical_type, self._fallback)(activity)
