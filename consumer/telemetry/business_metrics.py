"""Business metrics, derived from what the handlers produced.

Handlers stay pure: they return Results, and `BusinessMetrics.observe` counts from those.
Every label value is drawn from a bounded set (`other` catches the rest); ids, emails and
campaign names are never labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram

from consumer.catalogue import NOTIFICATION_CHANNELS, OTHER
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

_REDEMPTION_RESULTS: Final = frozenset({"succeeded", "failed"})
_ROLLBACK_RESULTS: Final = {"rollback_succeeded": "succeeded", "rollback_failed": "failed"}
_OUTCOMES: Final = ("sent", "failed", "recovered")
_CHANNELS: Final = frozenset(NOTIFICATION_CHANNELS)
_LIFECYCLE: Final = ("created", "updated", "deleted", "confirmed")
_VOUCHER_DELETED: Final = "voucher_deleted"
_LOYALTY_OPS: Final = ("added", "transferred", "activated")
_EXPIRED: Final = "expired"
_PENDING_OPS: Final = {f"pending_{op}": op for op in ("added", "updated", "activated", "canceled")}
_ORDER_STATUSES: Final = ("created", "updated", "paid", "fulfilled", "processing", "canceled")
_TIER_CHANGES: Final = (
    "joined",
    "left",
    "upgraded",
    "downgraded",
    "prolonged",
    "expiration_changed",
    "updated",
)
_REWARD_REDEMPTION_STATUSES: Final = ("created", "pending", "completed", "rolledback")
_REWARD_TYPES: Final = {"CAMPAIGN": "campaign", "COIN": "coin", "MATERIAL": "material"}
_VALIDATION_RESULTS: Final = ("succeeded", "failed")
_HOLDER_CHANGES: Final = ("created", "deleted")
_SEGMENT_CHANGES: Final = ("entered", "left")
_CONSENT_CHANGES: Final = ("given", "revoked")
_PUBLICATION_RESULTS: Final = ("succeeded", "failed")


def failure_code_label(code: str | None) -> str:
    """A bounded label for a failure code: the code if known, `other` if not, "" if none."""
    if not code:
        return ""
    return code if code in KNOWN_FAILURE_CODES else OTHER


def _bounded(value: Any, allowed: Sequence[str] | frozenset[str]) -> str:
    return value if type(value) is str and value in allowed else OTHER


class BusinessMetrics:
    """The `voucherify_*` business metrics, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.redemptions = Counter(
            "voucherify_redemptions",
            "Redemptions by result and Voucherify failure code ('' when none, 'other' when unknown).",
            ["result", "failure_code"],
            registry=registry,
        )
        self.redeemed_order_amount = Counter(
            "voucherify_redeemed_order_amount_minor_units",
            "Order amount before discounts of succeeded redemptions, in minor units.",
            registry=registry,
        )
        self.redeemed_discount_amount = Counter(
            "voucherify_redeemed_discount_amount_minor_units",
            "Discount granted by succeeded redemptions, in minor units.",
            registry=registry,
        )
        self.redemption_discount = Histogram(
            "voucherify_redemption_discount_minor_units",
            "Discount per succeeded redemption, in minor units.",
            buckets=DISCOUNT_BUCKETS,
            registry=registry,
        )
        self.rollbacks = Counter(
            "voucherify_redemption_rollbacks",
            "Redemption rollbacks by result.",
            ["result"],
            registry=registry,
        )
        self.loyalty_points = Counter(
            "voucherify_loyalty_points",
            "Loyalty points added to or transferred between loyalty cards.",
            ["operation"],
            registry=registry,
        )
        self.gift_credits_added = Counter(
            "voucherify_gift_credits_added_minor_units",
            "Credits added to gift cards, in minor units.",
            registry=registry,
        )
        self.notifications = Counter(
            "voucherify_notifications",
            "Customer notifications by distribution channel and outcome.",
            ["channel", "outcome"],
            registry=registry,
        )
        self.segment_changes = Counter(
            "voucherify_segment_changes",
            "Customers entering or leaving segments.",
            ["change"],
            registry=registry,
        )
        self.publications = Counter(
            "voucherify_publications",
            "Voucher publications by result.",
            ["result"],
            registry=registry,
        )
        self.consent_changes = Counter(
            "voucherify_consent_changes",
            "Consent changes (one per event, however many consents it names).",
            ["change"],
            registry=registry,
        )
        self.customer_lifecycle = Counter(
            "voucherify_customer_lifecycle",
            "Customers created, updated, deleted or confirmed.",
            ["change"],
            registry=registry,
        )
        self.referrals = Counter("voucherify_referrals", "Converted referrals.", registry=registry)
        self.custom_events = Counter("voucherify_custom_events", "Custom events.", registry=registry)
        self.vouchers_deleted = Counter(
            "voucherify_vouchers_deleted", "Customers' vouchers deleted.", registry=registry
        )
        self.loyalty_points_expired = Counter(
            "voucherify_loyalty_points_expired",
            "Loyalty points that expired on loyalty cards.",
            registry=registry,
        )
        self.pending_points = Counter(
            "voucherify_loyalty_pending_points",
            "Pending loyalty points by operation (added, updated, activated, canceled): the pending"
            " entry's points (after the change, for updated).",
            ["operation"],
            registry=registry,
        )
        self.orders = Counter("voucherify_orders", "Order events by status.", ["status"], registry=registry)
        self.order_amount = Counter(
            "voucherify_order_amount_minor_units",
            "Order amounts before discounts, by order event status, in minor units.",
            ["status"],
            registry=registry,
        )
        self.order_discount = Counter(
            "voucherify_order_discount_minor_units",
            "Order discounts, by order event status, in minor units.",
            ["status"],
            registry=registry,
        )
        self.tier_changes = Counter(
            "voucherify_loyalty_tier_changes",
            "Loyalty tier changes by kind (joined, left, upgraded, downgraded, prolonged, ...).",
            ["change"],
            registry=registry,
        )
        self.reward_redemptions = Counter(
            "voucherify_reward_redemptions",
            "Reward redemptions by status and reward type.",
            ["status", "reward_type"],
            registry=registry,
        )
        self.validations = Counter(
            "voucherify_validations",
            "Validations by result and Voucherify failure code ('' when none, 'other' when unknown).",
            ["result", "failure_code"],
            registry=registry,
        )
        self.holder_assignments = Counter(
            "voucherify_holder_assignments",
            "Redeemable holder assignments created or deleted.",
            ["change"],
            registry=registry,
        )

        # Labelled children, cached: .labels() takes a lock and builds a key on every call.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._prime()
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

    def _child(self, metric: Counter, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _prime(self) -> None:
        """Create the cheap label combinations, so their series exist at 0."""
        self._child(self.redemptions, "succeeded", "")
        self._child(self.redemptions, "failed", OTHER)
        for result in ("succeeded", "failed"):
            self._child(self.rollbacks, result)
        for op in _LOYALTY_OPS:
            self._child(self.loyalty_points, op)
        for channel in (*NOTIFICATION_CHANNELS, OTHER):
            for outcome in _OUTCOMES:
                self._child(self.notifications, channel, outcome)
        for change in _SEGMENT_CHANGES:
            self._child(self.segment_changes, change)
        for result in _PUBLICATION_RESULTS:
            self._child(self.publications, result)
        for change in _CONSENT_CHANGES:
            self._child(self.consent_changes, change)
        for change in _LIFECYCLE:
            self._child(self.customer_lifecycle, change)
        for op in _PENDING_OPS.values():
            self._child(self.pending_points, op)
        for status in _ORDER_STATUSES:
            for metric in (self.orders, self.order_amount, self.order_discount):
                self._child(metric, status)
        for change in _TIER_CHANGES:
            self._child(self.tier_changes, change)
        for status in _REWARD_REDEMPTION_STATUSES:
            for reward_type in (*_REWARD_TYPES.values(), OTHER):
                self._child(self.reward_redemptions, status, reward_type)
        for result in _VALIDATION_RESULTS:
            self._child(self.validations, result, "")
        for change in _HOLDER_CHANGES:
            self._child(self.holder_assignments, change)

    def observe(self, results: Sequence[Result]) -> None:
        """Update the metrics from one batch of handler results."""
        observers = self._observers
        for r in results:
            fn = observers.get(r.schema)
            if fn is not None:
                fn(r.value)

    # -- one per result kind ---------------------------------------------------------------
    def _redemption(self, v: dict[str, Any]) -> None:
        result = v.get("result")
        rollback = _ROLLBACK_RESULTS.get(result) if type(result) is str else None
        if rollback is not None:
            self._child(self.rollbacks, rollback).inc()
            return
        label = _bounded(result, _REDEMPTION_RESULTS)
        self._child(self.redemptions, label, failure_code_label(v.get("failure_code"))).inc()
        if label != "succeeded":
            return
        order_amount = v.get("order_amount")
        if type(order_amount) is int and order_amount > 0:
            self.redeemed_order_amount.inc(order_amount)
        discount = v.get("discount_amount")
        if type(discount) is int and discount >= 0:
            if discount:
                self.redeemed_discount_amount.inc(discount)
            self.redemption_discount.observe(discount)

    def _loyalty(self, v: dict[str, Any]) -> None:
        points = v.get("points")
        if type(points) is not int or points <= 0:
            return
        op = v.get("operation")
        pending = _PENDING_OPS.get(op) if type(op) is str else None
        if pending is not None:
            self._child(self.pending_points, pending).inc(points)
        elif op == _EXPIRED:
            self.loyalty_points_expired.inc(points)
        else:
            self._child(self.loyalty_points, _bounded(op, _LOYALTY_OPS)).inc(points)

    def _gift(self, v: dict[str, Any]) -> None:
        amount = v.get("amount")
        if type(amount) is int and amount > 0:
            self.gift_credits_added.inc(amount)

    def _notification(self, v: dict[str, Any]) -> None:
        channel = _bounded(v.get("channel"), _CHANNELS)
        self._child(self.notifications, channel, _bounded(v.get("outcome"), _OUTCOMES)).inc()

    def _segment(self, v: dict[str, Any]) -> None:
        self._child(self.segment_changes, _bounded(v.get("change"), _SEGMENT_CHANGES)).inc()

    def _publication(self, v: dict[str, Any]) -> None:
        self._child(self.publications, _bounded(v.get("result"), _PUBLICATION_RESULTS)).inc()

    def _consent(self, v: dict[str, Any]) -> None:
        self._child(self.consent_changes, _bounded(v.get("change"), _CONSENT_CHANGES)).inc()

    def _lifecycle(self, v: dict[str, Any]) -> None:
        change = v.get("change")
        if change == _VOUCHER_DELETED:  # a voucher's lifecycle, not the customer's
            self.vouchers_deleted.inc()
            return
        self._child(self.customer_lifecycle, _bounded(change, _LIFECYCLE)).inc()

    def _referral(self, v: dict[str, Any]) -> None:
        self.referrals.inc()

    def _custom_event(self, v: dict[str, Any]) -> None:
        self.custom_events.inc()

    def _order(self, v: dict[str, Any]) -> None:
        status = _bounded(v.get("status"), _ORDER_STATUSES)
        self._child(self.orders, status).inc()
        amount = v.get("amount")
        if type(amount) is int and amount > 0:
            self._child(self.order_amount, status).inc(amount)
        discount = v.get("discount_amount")
        if type(discount) is int and discount > 0:
            self._child(self.order_discount, status).inc(discount)

    def _tier_change(self, v: dict[str, Any]) -> None:
        self._child(self.tier_changes, _bounded(v.get("change"), _TIER_CHANGES)).inc()

    def _reward_redemption(self, v: dict[str, Any]) -> None:
        status = _bounded(v.get("status"), _REWARD_REDEMPTION_STATUSES)
        reward_type = v.get("reward_type")
        label = _REWARD_TYPES.get(reward_type, OTHER) if type(reward_type) is str else OTHER
        self._child(self.reward_redemptions, status, label).inc()

    def _validation(self, v: dict[str, Any]) -> None:
        result = _bounded(v.get("result"), _VALIDATION_RESULTS)
        self._child(self.validations, result, failure_code_label(v.get("failure_code"))).inc()

    def _holder(self, v: dict[str, Any]) -> None:
        self._child(self.holder_assignments, _bounded(v.get("change"), _HOLDER_CHANGES)).inc()
