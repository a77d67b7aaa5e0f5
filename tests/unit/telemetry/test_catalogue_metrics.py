"""Business metrics of today's catalogue (orders, tiers, reward redemptions, pending and
expired points, validations, holders, recovered notifications), checked against sums read
off the JSON payloads of the corpus and every fixture."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from consumer.catalogue import NOTIFICATION_CHANNELS, canonical
from consumer.contract import STREAM_SCHEMAS
from consumer.devtools.corpus import EXAMPLES
from consumer.model import Result, activity_from_record
from consumer.pipeline.codec import AvroCodec
from consumer.pipeline.router import Router
from consumer.telemetry.business_metrics import BusinessMetrics

REPO = Path(__file__).resolve().parents[3]
FOLDERS = (
    EXAMPLES,
    REPO / "tests" / "fixtures" / "seed",
    REPO / "tests" / "fixtures" / "catalogue",
)


def payloads() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for folder in FOLDERS for p in sorted(folder.glob("*.json"))]


@pytest.fixture(scope="module")
def observed() -> tuple[CollectorRegistry, list[dict[str, Any]]]:
    codec = AvroCodec()
    events = payloads()
    activities = [activity_from_record(codec.decode(codec.encode_json(e))) for e in events]
    registry = CollectorRegistry()
    router = Router()
    BusinessMetrics(registry).observe([r for a in activities for r in router.route(a)])
    return registry, events


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    v = registry.get_sample_value(name, labels)
    assert v is not None, (name, labels)
    return v


def of(events: list[dict[str, Any]], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    return [(canonical(e["type"]), e["data"]) for e in events if canonical(e["type"]).startswith(prefix)]


def test_orders_by_status_with_amount_and_discount_sums(observed: Any) -> None:
    r, events = observed
    orders = of(events, "customer.order.")
    assert len({t for t, _ in orders}) == 6
    count: Counter[str] = Counter()
    amount: Counter[str] = Counter()
    discount: Counter[str] = Counter()
    for t, d in orders:
        status = t.rsplit(".", 1)[1]
        o = d["order"]
        count[status] += 1
        amount[status] += o.get("amount") or 0
        discount[status] += o.get("total_discount_amount", o.get("discount_amount")) or 0
    assert sum(amount.values()) > 0 and sum(discount.values()) > 0
    for status in ("created", "updated", "paid", "fulfilled", "processing", "canceled"):
        assert value(r, "voucherify_orders_total", status=status) == count[status]
        assert value(r, "voucherify_order_amount_minor_units_total", status=status) == amount[status]
        assert value(r, "voucherify_order_discount_minor_units_total", status=status) == discount[status]


def test_tier_changes_by_kind(observed: Any) -> None:
    r, events = observed
    kinds = Counter(
        t.removeprefix("customer.loyalty.").removeprefix("tier.").replace("expiration.changed", "expiration_changed")
        for t, _ in of(events, "customer.loyalty.")
    )
    assert len(kinds) == 7
    for kind, n in kinds.items():
        assert value(r, "voucherify_loyalty_tier_changes_total", change=kind) == n


def test_reward_redemptions_by_status_and_reward_type(observed: Any) -> None:
    r, events = observed
    expected = Counter(
        (t.rsplit(".", 1)[1], d["reward"]["type"].lower()) for t, d in of(events, "customer.reward_redemptions.")
    )
    assert len(expected) == 4 and {rt for _, rt in expected} >= {"campaign", "material"}
    for (status, reward_type), n in expected.items():
        assert value(r, "voucherify_reward_redemptions_total", status=status, reward_type=reward_type) == n
    assert sum(
        value(r, "voucherify_reward_redemptions_total", status=s, reward_type=rt)
        for s in ("created", "pending", "completed", "rolledback")
        for rt in ("campaign", "coin", "material", "other")
    ) == sum(expected.values())


def test_pending_points_by_operation_and_points_expired(observed: Any) -> None:
    r, events = observed
    pending: Counter[str] = Counter()
    for t, d in of(events, "customer.voucher.loyalty_card.pending_points."):
        pending[t.rsplit(".", 1)[1]] += d["pending_points"]["points"]
    assert set(pending) == {"added", "updated", "activated", "canceled"}
    for op, n in pending.items():
        assert value(r, "voucherify_loyalty_pending_points_total", operation=op) == n
    expired = sum(d["points"] for _, d in of(events, "customer.voucher.loyalty_card.points_expired"))
    assert expired > 0
    assert value(r, "voucherify_loyalty_points_expired_total") == expired
    activated = sum(d["balance"]["points"] for _, d in of(events, "customer.voucher.loyalty_card.points_activated"))
    assert activated > 0
    assert value(r, "voucherify_loyalty_points_total", operation="activated") == activated


def test_validations_by_result_and_failure_code(observed: Any) -> None:
    r, events = observed
    expected: Counter[tuple[str, str]] = Counter()
    for t, d in of(events, "customer.validation."):
        result = t.rsplit(".", 1)[1]
        errors = [i["result"]["error"]["key"] for i in d["validation"]["inapplicable_redeemables"] if "result" in i]
        expected[(result, errors[0] if errors and result == "failed" else "")] += 1
    assert ("failed", "voucher_expired") in expected
    for (result, code), n in expected.items():
        assert value(r, "voucherify_validations_total", result=result, failure_code=code) == n


def test_notifications_recovered_by_channel(observed: Any) -> None:
    r, events = observed
    for channel in NOTIFICATION_CHANNELS:
        n = sum(1 for t, _ in of(events, f"customer.{channel}.recovered"))
        assert n == 1
        assert value(r, "voucherify_notifications_total", channel=channel, outcome="recovered") == n


def test_holders_and_deleted_vouchers(observed: Any) -> None:
    r, events = observed
    for change in ("created", "deleted"):
        n = len(of(events, f"customer.holder.assignment.{change}"))
        assert n and value(r, "voucherify_holder_assignments_total", change=change) == n
    deleted = len(of(events, "customer.voucher.deleted"))
    assert deleted and value(r, "voucherify_vouchers_deleted_total") == deleted
    # a voucher's deletion is not a customer's lifecycle change
    changes = ("created", "updated", "deleted", "confirmed")
    lifecycle = len([e for e in events if e["type"] in {f"customer.{c}" for c in changes}])
    assert lifecycle
    assert sum(value(r, "voucherify_customer_lifecycle_total", change=c) for c in changes) == lifecycle
    assert r.get_sample_value("voucherify_customer_lifecycle_total", {"change": "other"}) is None


def _validation(result: str, code: str | None) -> Result:
    return Result("validations", STREAM_SCHEMAS["validations"], None, {"result": result, "failure_code": code})


def test_unknown_codes_statuses_and_types_are_bounded() -> None:
    r = CollectorRegistry()
    BusinessMetrics(r).observe(
        [
            _validation("failed", "cust_123 rejected"),
            _validation("failed", None),
            _validation("maybe", None),
            Result("orders", STREAM_SCHEMAS["orders"], None, {"status": "teleported", "amount": 5}),
            Result(
                "reward-redemptions",
                STREAM_SCHEMAS["reward-redemptions"],
                None,
                {"status": "completed", "reward_type": "Gift card 20 EUR"},
            ),
            Result("loyalty-tiers", STREAM_SCHEMAS["loyalty-tiers"], None, {"change": "Star Gold"}),
        ]
    )
    assert value(r, "voucherify_validations_total", result="failed", failure_code="other") == 1
    assert value(r, "voucherify_validations_total", result="failed", failure_code="") == 1
    assert value(r, "voucherify_validations_total", result="other", failure_code="") == 1
    assert value(r, "voucherify_orders_total", status="other") == 1
    assert value(r, "voucherify_order_amount_minor_units_total", status="other") == 5
    assert value(r, "voucherify_reward_redemptions_total", status="completed", reward_type="other") == 1
    assert value(r, "voucherify_loyalty_tier_changes_total", change="other") == 1


def test_new_series_exist_at_zero() -> None:
    r = CollectorRegistry()
    BusinessMetrics(r)
    assert value(r, "voucherify_orders_total", status="paid") == 0
    assert value(r, "voucherify_loyalty_tier_changes_total", change="upgraded") == 0
    assert value(r, "voucherify_reward_redemptions_total", status="completed", reward_type="campaign") == 0
    assert value(r, "voucherify_validations_total", result="failed", failure_code="") == 0
    assert value(r, "voucherify_validations_total", result="succeeded", failure_code="") == 0
    assert value(r, "voucherify_loyalty_pending_points_total", operation="canceled") == 0
    assert value(r, "voucherify_loyalty_points_expired_total") == 0
