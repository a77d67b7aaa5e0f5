"""The event types: the seed's 30, today's 74, aliases, and the family of each.

Pure data and two lookups; no Kafka, no Avro. The router and the metrics use it to keep
label sets bounded: a type not in `KNOWN_TYPES` is `other` on every metric.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

SEED_TYPES: Final[frozenset[str]] = frozenset(
    {
        "customer.confirmed",
        "customer.created",
        "customer.updated",
        "customer.deleted",
        "customer.referred",
        "customer.custom_event",
        "customer.segment.entered",  # the seed spells it customer.segment_entered
        "customer.segment.left",
        "customer.sms.sent",
        "customer.sms.failed",
        "customer.email.sent",
        "customer.email.failed",
        "customer.activecampaign.sent",
        "customer.braze.sent",
        "customer.mailchimp.sent",
        "customer.intercom.sent",
        "customer.intercom.failed",
        "customer.rewarded",
        "customer.rewarded.loyalty_points",
        "customer.voucher.gift.balance_added",
        "customer.voucher.loyalty_card.points_added",
        "customer.voucher.loyalty_card.points_transferred",
        "customer.publication.succeeded",
        "customer.publication.failed",
        "customer.redemption.succeeded",
        "customer.redemption.failed",
        "customer.redemption.rollback.succeeded",
        "customer.redemption.rollback.failed",
        "customer.consents.given",
        "customer.consents.revoked",
    }
)

CONSENT_TYPES: Final[tuple[str, ...]] = ("customer.consents.given", "customer.consents.revoked")

# Other spellings of one type -> the catalogue's name.
ALIASES: Final[dict[str, str]] = {"customer.segment_entered": "customer.segment.entered"}

NOTIFICATION_CHANNELS: Final[tuple[str, ...]] = (
    "sms",
    "email",
    "activecampaign",
    "braze",
    "mailchimp",
    "intercom",
    "shopify",
    "klaviyo",
    "batch",
)

# Vocabularies an event type names (its last part, or a mapping): the handlers record them in
# results, the business metrics label by them. Declared here, in the types' order.
ORDER_STATUSES: Final[tuple[str, ...]] = ("created", "updated", "paid", "fulfilled", "processing", "canceled")
HOLDER_CHANGES: Final[tuple[str, ...]] = ("created", "deleted")
REWARD_REDEMPTION_STATUSES: Final[tuple[str, ...]] = ("created", "pending", "completed", "rolledback")
VALIDATION_RESULTS: Final[tuple[str, ...]] = ("succeeded", "failed")
CONSENT_CHANGES: Final[tuple[str, ...]] = tuple(t.rsplit(".", 1)[1] for t in CONSENT_TYPES)
# loyalty tier type -> the `change` a LoyaltyTierChange records
TIER_CHANGE_OF: Final[dict[str, str]] = {
    "customer.loyalty.tier.joined": "joined",
    "customer.loyalty.tier.left": "left",
    "customer.loyalty.tier.upgraded": "upgraded",
    "customer.loyalty.tier.downgraded": "downgraded",
    "customer.loyalty.tier.prolonged": "prolonged",
    "customer.loyalty.tier.expiration.changed": "expiration_changed",
    "customer.loyalty.updated": "updated",
}
TIER_CHANGES: Final[tuple[str, ...]] = tuple(TIER_CHANGE_OF.values())

_CURRENT_NON_SEED: Final[tuple[str, ...]] = (
    *(f"customer.{c}.recovered" for c in NOTIFICATION_CHANNELS),
    "customer.activecampaign.failed",
    "customer.braze.failed",
    "customer.mailchimp.failed",
    "customer.shopify.sent",
    "customer.shopify.failed",
    "customer.klaviyo.sent",
    "customer.klaviyo.failed",
    "customer.batch.sent",
    "customer.batch.failed",
    "customer.voucher.loyalty_card.pending_points.activated",
    "customer.voucher.loyalty_card.pending_points.added",
    "customer.voucher.loyalty_card.pending_points.canceled",
    "customer.voucher.loyalty_card.pending_points.updated",
    "customer.voucher.loyalty_card.points_activated",
    "customer.voucher.loyalty_card.points_expired",
    "customer.voucher.deleted",
    *(f"customer.validation.{r}" for r in VALIDATION_RESULTS),
    *(f"customer.order.{s}" for s in ORDER_STATUSES),
    *(f"customer.reward_redemptions.{s}" for s in REWARD_REDEMPTION_STATUSES),
    *TIER_CHANGE_OF,
    *(f"customer.holder.assignment.{c}" for c in HOLDER_CHANGES),
)

KNOWN_TYPES: Final[frozenset[str]] = SEED_TYPES | frozenset(_CURRENT_NON_SEED)

OTHER: Final = "other"
UNKNOWN_FAMILY: Final = "unknown"

_FAMILY_BY_PREFIX: Final[tuple[tuple[str, str], ...]] = (
    ("customer.redemption.", "redemptions"),
    ("customer.validation.", "redemptions"),
    ("customer.voucher.loyalty_card.", "loyalty"),
    ("customer.loyalty.", "loyalty"),
    ("customer.voucher.gift.", "loyalty"),
    ("customer.voucher.", "lifecycle"),
    ("customer.rewarded", "rewards"),
    ("customer.reward_redemptions.", "rewards"),
    ("customer.segment.", "segments"),
    ("customer.publication.", "publications"),
    ("customer.consents.", "consents"),
    ("customer.referred", "referrals"),
    ("customer.custom_event", "custom"),
    ("customer.order.", "orders"),
    ("customer.holder.", "holders"),
    *((f"customer.{c}.", "distribution") for c in NOTIFICATION_CHANNELS),
)
_LIFECYCLE: Final = frozenset({"customer.confirmed", "customer.created", "customer.updated", "customer.deleted"})


@lru_cache(maxsize=4096)  # per event on the hot path; the wire may carry many unknown types
def canonical(event_type: str) -> str:
    """The catalogue's name for a wire type (aliases folded); unknown types unchanged."""
    return ALIASES.get(event_type, event_type)


@lru_cache(maxsize=4096)
def family_of(canonical_type: str) -> str:
    """The handler family of a catalogue type, `unknown` for types not in the catalogue."""
    if canonical_type not in KNOWN_TYPES:
        return UNKNOWN_FAMILY
    if canonical_type in _LIFECYCLE:
        return "lifecycle"
    for prefix, family in _FAMILY_BY_PREFIX:
        if canonical_type.startswith(prefix):
            return family
    raise AssertionError(f"no family for catalogue type {canonical_type}")  # pragma: no cover


@lru_cache(maxsize=4096)
def label_of(event_type: str) -> str:
    """A bounded metric label: the catalogue's name, or `other`."""
    c = canonical(event_type)
    return c if c in KNOWN_TYPES else OTHER


FAMILIES: Final[frozenset[str]] = frozenset(family_of(t) for t in KNOWN_TYPES) | {UNKNOWN_FAMILY}
