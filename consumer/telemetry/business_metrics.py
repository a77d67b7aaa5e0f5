"""Business metrics, derived from what the handlers produced.

Handlers stay pure: they return Results, and `BusinessMetrics.observe` counts from those.
`METRICS` is the table: one row per metric, with the label values it starts with at 0. Every
label value is drawn from a bounded set (`other` catches the rest), taken from where it is
declared (the catalogue, for what an event type names); ids, emails and campaign names are
never labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram

from consumer.catalogue import (
    CONSENT_CHANGES,
    HOLDER_CHANGES,
    NOTIFICATION_CHANNELS,
    ORDER_STATUSES,
    OTHER,
    REWARD_REDEMPTION_STATUSES,
    TIER_CHANGES,
    VALIDATION_RESULTS,
)
from consumer.contract import STREAM_SCHEMAS
from consumer.model import Result

# Voucherify's documented error codes (https://docs.voucherify.io/docs/errors): the values a
# redemption's `failure_code` takes. Anything else is `other`.
KNOWN_FAILURE_CODES: Final[frozenset[str]] = frozenset(
    {
        "already_rolled_back",
        "customer_rules_violated",
        "duplicate_resource_key",
        "gift_amount_exceeded",
        "invalid_add_balance_params",
        "invalid_amount",
        "invalid_campaign_params",
        "invalid_code_config",
        "invalid_customer",
        "invalid_export_params",
        "invalid_gift",
        "invalid_order",
        "invalid_payload",
        "invalid_product",
        "invalid_publish_params",
        "invalid_query_params",
        "invalid_rollback_params",
        "invalid_sku",
        "invalid_validation_rules",
        "invalid_voucher",
        "loyalty_card_points_exceeded",
        "missing_amount",
        "missing_customer",
        "missing_order",
        "missing_order_items",
        "missing_order_items_amount",
        "missing_reward",
        "multiple_requests",
        "no_voucher_suitable_for_publication",
        "not_found",
        "order_rules_violated",
        "promotion_inactive",
        "promotion_not_active_now",
        "quantity_exceeded",
        "query_too_large",
        "referrer_not_permitted_to_redeem",
        "resource_not_found",
        "voucher_disabled",
        "voucher_expired",
        "voucher_not_active",
        "voucher_not_active_now",
    }
)

# Discounts in minor units: 0.50 to 1000.00 in a two-decimal currency.
DISCOUNT_BUCKETS: Final[tuple[float, ...]] = (
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    25000,
    50000,
    100000,
)

# Vocabularies of the result records (avro/results/ documents each) that no event type names.
_REDEMPTION_RESULTS: Final = ("succeeded", "failed")
_ROLLBACK_RESULTS: Final = {"rollback_succeeded": "succeeded", "rollback_failed": "failed"}
_OUTCOMES: Final = ("sent", "failed", "recovered")
_CHANNELS: Final = frozenset(NOTIFICATION_CHANNELS)
_LIFECYCLE: Final = ("created", "updated", "deleted", "confirmed")
_VOUCHER_DELETED: Final = "voucher_deleted"
_LOYALTY_OPS: Final = ("added", "transferred", "activated")
_EXPIRED: Final = "expired"
_PENDING_OPS: Final = {f"pending_{op}": op for op in ("added", "updated", "activated", "canceled")}
_REWARD_TYPES: Final = {"CAMPAIGN": "campaign", "COIN": "coin", "MATERIAL": "material"}
_SEGMENT_CHANGES: Final = ("entered", "left")
_PUBLICATION_RESULTS: Final = ("succeeded", "failed")


def failure_code_label(code: str | None) -> str:
    """A bounded label for a failure code: the code if known, `other` if not, "" if none."""
    if not code:
        return ""
    return code if code in KNOWN_FAILURE_CODES else OTHER


def _bounded(value: Any, allowed: Sequence[str] | frozenset[str]) -> str:
    return value if type(value) is str and value in allowed else OTHER


@dataclass(frozen=True, slots=True, eq=False)  # eq=False: hashed by identity, cheap on the hot path
class Metric:
    """One row of the table: a counter (a histogram when it has buckets)."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    primed: tuple[tuple[str, ...], ...] = ()  # label values whose series exist from the start, at 0
    buckets: tuple[float, ...] | None = None

    def build(self, registry: CollectorRegistry) -> Counter | Histogram:
        if self.buckets is not None:
            return Histogram(self.name, self.help, self.labels, buckets=self.buckets, registry=registry)
        return Counter(self.name, self.help, self.labels, registry=registry)


def each(*domains: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    """Every combination of the label domains."""
    return tuple(product(*domains))


REDEMPTIONS: Final = Metric(
    "voucherify_redemptions",
    "Redemptions by result and Voucherify failure code ('' when none, 'other' when unknown).",
    ("result", "failure_code"),
    (("succeeded", ""), ("failed", OTHER)),
)
REDEEMED_ORDER_AMOUNT: Final = Metric(
    "voucherify_redeemed_order_amount_minor_units",
    "Order amount before discounts of succeeded redemptions, in minor units.",
)
REDEEMED_DISCOUNT_AMOUNT: Final = Metric(
    "voucherify_redeemed_discount_amount_minor_units", "Discount granted by succeeded redemptions, in minor units."
)
REDEMPTION_DISCOUNT: Final = Metric(
    "voucherify_redemption_discount_minor_units",
    "Discount per succeeded redemption, in minor units.",
    buckets=DISCOUNT_BUCKETS,
)
ROLLBACKS: Final = Metric(
    "voucherify_redemption_rollbacks", "Redemption rollbacks by result.", ("result",), each(_ROLLBACK_RESULTS.values())
)
LOYALTY_POINTS: Final = Metric(
    "voucherify_loyalty_points",
    "Loyalty points added to or transferred between loyalty cards.",
    ("operation",),
    each(_LOYALTY_OPS),
)
GIFT_CREDITS_ADDED: Final = Metric(
    "voucherify_gift_credits_added_minor_units", "Credits added to gift cards, in minor units."
)
NOTIFICATIONS: Final = Metric(
    "voucherify_notifications",
    "Customer notifications by distribution channel and outcome.",
    ("channel", "outcome"),
    each((*NOTIFICATION_CHANNELS, OTHER), _OUTCOMES),
)
SEGMENT_CHANGES: Final = Metric(
    "voucherify_segment_changes", "Customers entering or leaving segments.", ("change",), each(_SEGMENT_CHANGES)
)
PUBLICATIONS: Final = Metric(
    "voucherify_publications", "Voucher publications by result.", ("result",), each(_PUBLICATION_RESULTS)
)
CONSENTS: Final = Metric(
    "voucherify_consent_changes",
    "Consent changes (one per event, however many consents it names).",
    ("change",),
    each(CONSENT_CHANGES),
)
CUSTOMER_LIFECYCLE: Final = Metric(
    "voucherify_customer_lifecycle",
    "Customers created, updated, deleted or confirmed.",
    ("change",),
    each(_LIFECYCLE),
)
REFERRALS: Final = Metric("voucherify_referrals", "Converted referrals.")
CUSTOM_EVENTS: Final = Metric("voucherify_custom_events", "Custom events.")
VOUCHERS_DELETED: Final = Metric("voucherify_vouchers_deleted", "Customers' vouchers deleted.")
LOYALTY_POINTS_EXPIRED: Final = Metric(
    "voucherify_loyalty_points_expired", "Loyalty points that expired on loyalty cards."
)
PENDING_POINTS: Final = Metric(
    "voucherify_loyalty_pending_points",
    "Pending loyalty points by operation (added, updated, activated, canceled): the pending"
    " entry's points (after the change, for updated).",
    ("operation",),
    each(_PENDING_OPS.values()),
)
ORDERS: Final = Metric("voucherify_orders", "Order events by status.", ("status",), each(ORDER_STATUSES))
ORDER_AMOUNT: Final = Metric(
    "voucherify_order_amount_minor_units",
    "Order amounts before discounts, by order event status, in minor units.",
    ("status",),
    each(ORDER_STATUSES),
)
ORDER_DISCOUNT: Final = Metric(
    "voucherify_order_discount_minor_units",
    "Order discounts, by order event status, in minor units.",
    ("status",),
    each(ORDER_STATUSES),
)
TIERS: Final = Metric(
    "voucherify_loyalty_tier_changes",
    "Loyalty tier changes by kind (joined, left, upgraded, downgraded, prolonged, ...).",
    ("change",),
    each(TIER_CHANGES),
)
REWARD_REDEMPTIONS: Final = Metric(
    "voucherify_reward_redemptions",
    "Reward redemptions by status and reward type.",
    ("status", "reward_type"),
    each(REWARD_REDEMPTION_STATUSES, (*_REWARD_TYPES.values(), OTHER)),
)
VALIDATIONS: Final = Metric(
    "voucherify_validations",
    "Validations by result and Voucherify failure code ('' when none, 'other' when unknown).",
    ("result", "failure_code"),
    each(VALIDATION_RESULTS, ("",)),
)
HOLDERS: Final = Metric(
    "voucherify_holder_assignments",
    "Redeemable holder assignments created or deleted.",
    ("change",),
    each(HOLDER_CHANGES),
)

# The table, in registration (and so exposition) order.
METRICS: Final[tuple[Metric, ...]] = (
    REDEMPTIONS,
    REDEEMED_ORDER_AMOUNT,
    REDEEMED_DISCOUNT_AMOUNT,
    REDEMPTION_DISCOUNT,
    ROLLBACKS,
    LOYALTY_POINTS,
    GIFT_CREDITS_ADDED,
    NOTIFICATIONS,
    SEGMENT_CHANGES,
    PUBLICATIONS,
    CONSENTS,
    CUSTOMER_LIFECYCLE,
    REFERRALS,
    CUSTOM_EVENTS,
    VOUCHERS_DELETED,
    LOYALTY_POINTS_EXPIRED,
    PENDING_POINTS,
    ORDERS,
    ORDER_AMOUNT,
    ORDER_DISCOUNT,
    TIERS,
    REWARD_REDEMPTIONS,
    VALIDATIONS,
    HOLDERS,
)


class BusinessTally:
    """What some results add to the business metrics, in plain numbers: held per committed slice
    (a few series, not every result), applied once the slice is committed."""

    __slots__ = ("counts", "discounts")

    def __init__(self) -> None:
        self.counts: dict[tuple[Metric, tuple[str, ...]], float] = {}  # counter series -> amount
        self.discounts: list[int] = []  # REDEMPTION_DISCOUNT observations


class BusinessMetrics:
    """The `voucherify_*` business metrics of `METRICS`, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._metrics = {m: m.build(registry) for m in METRICS}
        # Labelled children, cached: .labels() takes a lock and builds a key on every call.
        self._children: dict[tuple[Metric, tuple[str, ...]], Any] = {}
        self._tally = BusinessTally()  # the one `count` adds to
        for m in METRICS:
            for labels in m.primed:
                self._child(m, labels)
        s = STREAM_SCHEMAS
        self._observers: dict[str, Callable[[dict[str, Any]], None]] = {
            s["redemptions"]: self._redemption,
            s["loyalty"]: self._loyalty,
            s["gift-credits"]: self._gift,
            s["notifications"]: self._notification,
            s["segments"]: self._segment,
            s["publications"]: self._publication,
            s["consents"]: self._consent,
            s["lifecycle"]: self._lifecycle,
            s["referrals"]: self._referral,
            s["custom-events"]: self._custom_event,
            s["orders"]: self._order,
            s["loyalty-tiers"]: self._tier_change,
            s["reward-redemptions"]: self._reward_redemption,
            s["validations"]: self._validation,
            s["holders"]: self._holder,
        }

    def _child(self, metric: Metric, labels: tuple[str, ...]) -> Any:
        """The series of `metric` with these label values (the metric itself when it has no labels)."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            parent = self._metrics[metric]
            child = self._children[key] = parent.labels(*labels) if labels else parent
        return child

    def _add(self, metric: Metric, labels: tuple[str, ...] = (), amount: float = 1) -> None:
        counts = self._tally.counts
        key = (metric, labels)
        counts[key] = counts.get(key, 0) + amount

    def count(self, results: Sequence[Result], tally: BusinessTally) -> None:
        """Add what `results` mean for the metrics to `tally`; the metrics are not touched."""
        self._tally = tally
        observers = self._observers
        for r in results:
            fn = observers.get(r.schema)
            if fn is not None:
                fn(r.value)

    def apply(self, tally: BusinessTally) -> None:
        """Add a tally to the metrics: one `inc` per counter series it touched."""
        for key, amount in tally.counts.items():
            self._child(*key).inc(amount)
        if tally.discounts:
            histogram = self._child(REDEMPTION_DISCOUNT, ())
            for discount in tally.discounts:
                histogram.observe(discount)

    def observe(self, results: Sequence[Result]) -> None:
        """Update the metrics from results at once (`count`, then `apply`)."""
        tally = BusinessTally()
        self.count(results, tally)
        self.apply(tally)

    # -- one per result kind ---------------------------------------------------------------
    def _redemption(self, v: dict[str, Any]) -> None:
        result = v.get("result")
        rollback = _ROLLBACK_RESULTS.get(result) if type(result) is str else None
        if rollback is not None:
            self._add(ROLLBACKS, (rollback,))
            return
        label = _bounded(result, _REDEMPTION_RESULTS)
        self._add(REDEMPTIONS, (label, failure_code_label(v.get("failure_code"))))
        if label != "succeeded":
            return
        order_amount = v.get("order_amount")
        if type(order_amount) is int and order_amount > 0:
            self._add(REDEEMED_ORDER_AMOUNT, (), order_amount)
        discount = v.get("discount_amount")
        if type(discount) is int and discount >= 0:
            if discount:
                self._add(REDEEMED_DISCOUNT_AMOUNT, (), discount)
            self._tally.discounts.append(discount)

    def _loyalty(self, v: dict[str, Any]) -> None:
        points = v.get("points")
        if type(points) is not int or points <= 0:
            return
        op = v.get("operation")
        pending = _PENDING_OPS.get(op) if type(op) is str else None
        if pending is not None:
            self._add(PENDING_POINTS, (pending,), points)
        elif op == _EXPIRED:
            self._add(LOYALTY_POINTS_EXPIRED, (), points)
        else:
            self._add(LOYALTY_POINTS, (_bounded(op, _LOYALTY_OPS),), points)

    def _gift(self, v: dict[str, Any]) -> None:
        amount = v.get("amount")
        if type(amount) is int and amount > 0:
            self._add(GIFT_CREDITS_ADDED, (), amount)

    def _notification(self, v: dict[str, Any]) -> None:
        channel = _bounded(v.get("channel"), _CHANNELS)
        self._add(NOTIFICATIONS, (channel, _bounded(v.get("outcome"), _OUTCOMES)))

    def _segment(self, v: dict[str, Any]) -> None:
        self._add(SEGMENT_CHANGES, (_bounded(v.get("change"), _SEGMENT_CHANGES),))

    def _publication(self, v: dict[str, Any]) -> None:
        self._add(PUBLICATIONS, (_bounded(v.get("result"), _PUBLICATION_RESULTS),))

    def _consent(self, v: dict[str, Any]) -> None:
        self._add(CONSENTS, (_bounded(v.get("change"), CONSENT_CHANGES),))

    def _lifecycle(self, v: dict[str, Any]) -> None:
        change = v.get("change")
        if change == _VOUCHER_DELETED:  # a voucher's lifecycle, not the customer's
            self._add(VOUCHERS_DELETED)
            return
        self._add(CUSTOMER_LIFECYCLE, (_bounded(change, _LIFECYCLE),))

    def _referral(self, v: dict[str, Any]) -> None:
        self._add(REFERRALS)

    def _custom_event(self, v: dict[str, Any]) -> None:
        self._add(CUSTOM_EVENTS)

    def _order(self, v: dict[str, Any]) -> None:
        status = (_bounded(v.get("status"), ORDER_STATUSES),)
        self._add(ORDERS, status)
        amount = v.get("amount")
        if type(amount) is int and amount > 0:
            self._add(ORDER_AMOUNT, status, amount)
        discount = v.get("discount_amount")
        if type(discount) is int and discount > 0:
            self._add(ORDER_DISCOUNT, status, discount)

    def _tier_change(self, v: dict[str, Any]) -> None:
        self._add(TIERS, (_bounded(v.get("change"), TIER_CHANGES),))

    def _reward_redemption(self, v: dict[str, Any]) -> None:
        status = _bounded(v.get("status"), REWARD_REDEMPTION_STATUSES)
        reward_type = v.get("reward_type")
        label = _REWARD_TYPES.get(reward_type, OTHER) if type(reward_type) is str else OTHER
        self._add(REWARD_REDEMPTIONS, (status, label))

    def _validation(self, v: dict[str, Any]) -> None:
        result = _bounded(v.get("result"), VALIDATION_RESULTS)
        self._add(VALIDATIONS, (result, failure_code_label(v.get("failure_code"))))

    def _holder(self, v: dict[str, Any]) -> None:
        self._add(HOLDERS, (_bounded(v.get("change"), HOLDER_CHANGES),))
