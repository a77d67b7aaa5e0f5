"""Event type -> handler. The seed's 30 types have their own; everything else is forwarded.

Types newer than the seed (today's catalogue adds 46) and types nobody knows go to the
fallback handler, which forwards them to the `other` stream: an unfamiliar type is never an
error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from consumer.catalogue import ALIASES, SEED_TYPES, canonical
from consumer.model import Activity, Result
from consumer.pipeline.handlers import (
    consents,
    custom,
    distribution,
    lifecycle,
    loyalty,
    publications,
    redemptions,
    referrals,
    rewards,
    segments,
)
from consumer.pipeline.handlers._common import Handler
from consumer.pipeline.handlers.fallback import forward

__all__ = ["SEED_HANDLERS", "Handler", "Router"]

# canonical type -> handler, for every seed type
SEED_HANDLERS: Final[Mapping[str, Handler]] = MappingProxyType(
    {
        "customer.created": lifecycle.customer_created,
        "customer.updated": lifecycle.customer_updated,
        "customer.deleted": lifecycle.customer_deleted,
        "customer.confirmed": lifecycle.customer_confirmed,
        "customer.redemption.succeeded": redemptions.redemption_succeeded,
        "customer.redemption.failed": redemptions.redemption_failed,
        "customer.redemption.rollback.succeeded": redemptions.rollback_succeeded,
        "customer.redemption.rollback.failed": redemptions.rollback_failed,
        "customer.voucher.loyalty_card.points_added": loyalty.points_added,
        "customer.voucher.loyalty_card.points_transferred": loyalty.points_transferred,
        "customer.voucher.gift.balance_added": loyalty.gift_balance_added,
        "customer.rewarded": rewards.rewarded,
        "customer.rewarded.loyalty_points": rewards.rewarded_loyalty_points,
        "customer.sms.sent": distribution.notification,
        "customer.sms.failed": distribution.notification,
        "customer.email.sent": distribution.notification,
        "customer.email.failed": distribution.notification,
        "customer.activecampaign.sent": distribution.notification,
        "customer.braze.sent": distribution.notification,
        "customer.mailchimp.sent": distribution.notification,
        "customer.intercom.sent": distribution.notification,
        "customer.intercom.failed": distribution.notification,
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
assert SEED_HANDLERS.keys() == SEED_TYPES, "every seed type has exactly one handler"


class Router:
    """Picks the handler for an activity and runs it.

    `handlers` maps catalogue (canonical) type names to handlers; each alias of a mapped
    type is registered too, so a wire spelling routes like its canonical name.
    """

    __slots__ = ("_fallback", "_table")

    def __init__(
        self,
        handlers: Mapping[str, Handler] = SEED_HANDLERS,
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

    def handler_for(self, event_type: str) -> Handler:
        """The handler for a type (canonical or an alias); the fallback when none."""
        return self._table.get(canonical(event_type), self._fallback)

    def route(self, activity: Activity) -> list[Result]:
        return self._table.get(activity.canonical_type, self._fallback)(activity)

    def route_all(self, activities: Iterable[Activity]) -> list[Result]:
        """The results of a batch of activities, in order."""
        get = self._table.get
        fb = self._fallback
        out: list[Result] = []
        extend = out.extend
        for a in activities:
            extend(get(a.canonical_type, fb)(a))
        return out
