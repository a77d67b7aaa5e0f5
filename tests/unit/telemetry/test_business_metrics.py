"""Business metrics: counted from handler results, with bounded labels only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from consumer.catalogue import NOTIFICATION_CHANNELS
from consumer.contract import STREAM_SCHEMAS
from consumer.devtools.corpus import EXAMPLES
from consumer.model import Result, activity_from_record
from consumer.pipeline.codec import AvroCodec
from consumer.pipeline.router import Router
from consumer.telemetry.business_metrics import (
    DISCOUNT_BUCKETS,
    KNOWN_FAILURE_CODES,
    BusinessMetrics,
    failure_code_label,
)

REPO = Path(__file__).resolve().parents[3]
SEED_FIXTURES = REPO / "tests" / "fixtures" / "seed"


def corpus_results() -> list[Result]:
    codec = AvroCodec()
    paths = sorted(EXAMPLES.glob("*.json")) + sorted(SEED_FIXTURES.glob("*.json"))
    activities = [activity_from_record(codec.decode(codec.encode_json(json.loads(p.read_text())))) for p in paths]
    router = Router()
    return [r for a in activities for r in router.route(a)]


@pytest.fixture(scope="module")
def observed() -> CollectorRegistry:
    registry = CollectorRegistry()
    BusinessMetrics(registry).observe(corpus_results())
    return registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_redemptions(observed: CollectorRegistry) -> None:
    r = observed
    assert value(r, "voucherify_redemptions_total", result="succeeded", failure_code="") == 1
    assert value(r, "voucherify_redemptions_total", result="failed", failure_code="voucher_expired") == 1
    assert value(r, "voucherify_redemptions_total", result="failed", failure_code="other") == 0
    # the corpus's redemption: order 114.99, discount 11.50
    assert value(r, "voucherify_redeemed_order_amount_minor_units_total") == 11499
    assert value(r, "voucherify_redeemed_discount_amount_minor_units_total") == 1150
    assert value(r, "voucherify_redemption_discount_minor_units_count") == 1
    assert value(r, "voucherify_redemption_discount_minor_units_sum") == 1150
    assert value(r, "voucherify_redemption_discount_minor_units_bucket", le="1000.0") == 0
    assert value(r, "voucherify_redemption_discount_minor_units_bucket", le="2500.0") == 1
    assert value(r, "voucherify_redemption_rollbacks_total", result="succeeded") == 1
    assert value(r, "voucherify_redemption_rollbacks_total", result="failed") == 1


def test_loyalty_and_gift_credits(observed: CollectorRegistry) -> None:
    r = observed
    assert value(r, "voucherify_loyalty_points_total", operation="added") == 40
    assert value(r, "voucherify_loyalty_points_total", operation="transferred") == 500
    assert value(r, "voucherify_gift_credits_added_minor_units_total") == 400


def test_notifications(observed: CollectorRegistry) -> None:
    expected = {
        ("sms", "sent"): 1,
        ("sms", "failed"): 1,
        ("email", "sent"): 1,
        ("email", "failed"): 1,
        ("activecampaign", "sent"): 1,
        ("braze", "sent"): 1,
        ("mailchimp", "sent"): 1,
        ("intercom", "sent"): 1,
        ("intercom", "failed"): 1,
    }
    for channel in (*NOTIFICATION_CHANNELS, "other"):
        for outcome in ("sent", "failed", "recovered"):
            got = value(observed, "voucherify_notifications_total", channel=channel, outcome=outcome)
            assert got == expected.get((channel, outcome), 0), (channel, outcome)


def test_the_other_families(observed: CollectorRegistry) -> None:
    r = observed
    for change in ("entered", "left"):
        assert value(r, "voucherify_segment_changes_total", change=change) == 1
    for result in ("succeeded", "failed"):
        assert value(r, "voucherify_publications_total", result=result) == 1
    for change in ("given", "revoked"):
        assert value(r, "voucherify_consent_changes_total", change=change) == 1
    for change in ("created", "updated", "deleted", "confirmed"):
        assert value(r, "voucherify_customer_lifecycle_total", change=change) == 1
    assert value(r, "voucherify_referrals_total") == 1
    assert value(r, "voucherify_custom_events_total") == 1


def test_series_exist_at_zero_before_any_event() -> None:
    r = CollectorRegistry()
    BusinessMetrics(r)
    assert value(r, "voucherify_redemptions_total", result="succeeded", failure_code="") == 0
    assert value(r, "voucherify_redemption_rollbacks_total", result="failed") == 0
    assert value(r, "voucherify_loyalty_points_total", operation="transferred") == 0
    assert value(r, "voucherify_notifications_total", channel="klaviyo", outcome="recovered") == 0
    assert value(r, "voucherify_customer_lifecycle_total", change="confirmed") == 0
    assert value(r, "voucherify_referrals_total") == 0
    assert value(r, "voucherify_redemption_discount_minor_units_count") == 0


def test_labels_are_bounded(observed: CollectorRegistry) -> None:
    allowed = (
        {"", "other", "succeeded", "failed", "sent", "recovered", "added", "transferred"}
        | {"entered", "left", "given", "revoked", "created", "updated", "deleted", "confirmed"}
        # today's catalogue: orders, tiers, reward redemptions, pending points
        | {"paid", "fulfilled", "processing", "canceled", "activated"}
        | {"joined", "upgraded", "downgraded", "prolonged", "expiration_changed"}
        | {"pending", "completed", "rolledback", "campaign", "coin", "material"}
        | set(NOTIFICATION_CHANNELS)
        | KNOWN_FAILURE_CODES
        | {str(float(b)) for b in DISCOUNT_BUCKETS}
        | {"+Inf"}
    )
    for family in observed.collect():
        if not family.name.startswith("voucherify_"):
            continue
        for sample in family.samples:
            for label, v in sample.labels.items():
                assert v in allowed, (sample.name, label, v)


def _redemption(result: str, failure_code: str | None, **extra: object) -> Result:
    return Result(
        stream="redemptions",
        schema=STREAM_SCHEMAS["redemptions"],
        key=None,
        value={"result": result, "failure_code": failure_code, **extra},
    )


def test_failure_codes_are_bounded() -> None:
    assert failure_code_label(None) == ""
    assert failure_code_label("") == ""
    assert failure_code_label("voucher_expired") == "voucher_expired"
    assert failure_code_label("cust_1234 is broke") == "other"
    r = CollectorRegistry()
    m = BusinessMetrics(r)
    m.observe([_redemption("failed", "something_new"), _redemption("failed", "quantity_exceeded")])
    assert value(r, "voucherify_redemptions_total", result="failed", failure_code="other") == 1
    assert value(r, "voucherify_redemptions_total", result="failed", failure_code="quantity_exceeded") == 1


def test_only_succeeded_redemptions_count_amounts() -> None:
    r = CollectorRegistry()
    m = BusinessMetrics(r)
    m.observe(
        [
            _redemption("failed", "voucher_expired", order_amount=5000, discount_amount=500),
            _redemption("rollback_succeeded", None, order_amount=5000, discount_amount=500),
            _redemption("succeeded", None, order_amount=2000, discount_amount=None),
            _redemption("succeeded", None, order_amount=3000, discount_amount=300),
            _redemption("weird", None),
        ]
    )
    assert value(r, "voucherify_redeemed_order_amount_minor_units_total") == 5000
    assert value(r, "voucherify_redeemed_discount_amount_minor_units_total") == 300
    assert value(r, "voucherify_redemption_discount_minor_units_count") == 1
    assert value(r, "voucherify_redemption_rollbacks_total", result="succeeded") == 1
    assert value(r, "voucherify_redemptions_total", result="other", failure_code="") == 1


def test_unknown_channels_and_results_are_other() -> None:
    r = CollectorRegistry()
    m = BusinessMetrics(r)
    m.observe(
        [
            Result(
                "notifications",
                STREAM_SCHEMAS["notifications"],
                None,
                {"channel": "carrier-pigeon", "outcome": "sent"},
            ),
            Result("other", STREAM_SCHEMAS["other"], None, {"known": False, "data_json": "{}"}),
            Result("somewhere", "not.a.Schema", None, {}),
        ]
    )
    assert value(r, "voucherify_notifications_total", channel="other", outcome="sent") == 1


def test_two_instances_on_two_registries() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    BusinessMetrics(a).observe([_redemption("succeeded", None)])
    BusinessMetrics(b)
    assert value(a, "voucherify_redemptions_total", result="succeeded", failure_code="") == 1
    assert value(b, "voucherify_redemptions_total", result="succeeded", failure_code="") == 0
