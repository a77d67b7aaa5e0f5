"""/metrics of a real worker over a real broker: every number checked against what was sent.

The expectations are computed from the JSON payloads that were produced (not from the
worker's own handlers), so a metric that counts the wrong thing, or stops counting, fails.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from consumer.catalogue import KNOWN_TYPES, NOTIFICATION_CHANNELS, OTHER, family_of, label_of
from tests.support.observed_worker import PARTITIONS, ObservedRun, campaign_names

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# Which downstream stream each catalogue type's result goes to (the README's tables); types the
# catalogue does not know go to `other`.
STREAM_OF: dict[str, str] = {
    **dict.fromkeys(("customer.created", "customer.updated", "customer.deleted", "customer.confirmed"), "lifecycle"),
    **dict.fromkeys(
        (
            "customer.redemption.succeeded",
            "customer.redemption.failed",
            "customer.redemption.rollback.succeeded",
            "customer.redemption.rollback.failed",
        ),
        "redemptions",
    ),
    **{t: "loyalty" for t in KNOWN_TYPES if t.startswith("customer.voucher.loyalty_card.")},
    "customer.voucher.gift.balance_added": "gift-credits",
    "customer.voucher.deleted": "lifecycle",
    **{t: "orders" for t in KNOWN_TYPES if t.startswith("customer.order.")},
    **{t: "loyalty-tiers" for t in KNOWN_TYPES if t.startswith("customer.loyalty.")},
    **{t: "reward-redemptions" for t in KNOWN_TYPES if t.startswith("customer.reward_redemptions.")},
    **{t: "validations" for t in KNOWN_TYPES if t.startswith("customer.validation.")},
    **{t: "holders" for t in KNOWN_TYPES if t.startswith("customer.holder.")},
    "customer.rewarded": "rewards",
    "customer.rewarded.loyalty_points": "rewards",
    **{f"customer.{c}.{o}": "notifications" for c in NOTIFICATION_CHANNELS for o in ("sent", "failed", "recovered")},
    "customer.segment.entered": "segments",
    "customer.segment.left": "segments",
    "customer.publication.succeeded": "publications",
    "customer.publication.failed": "publications",
    "customer.consents.given": "consents",
    "customer.consents.revoked": "consents",
    "customer.referred": "referrals",
    "customer.custom_event": "custom-events",
}


def test_stream_table_covers_every_catalogue_type() -> None:
    assert set(STREAM_OF) == KNOWN_TYPES


def _payloads(run: ObservedRun) -> list[dict[str, Any]]:
    return [e.payload for e in run.events if e.payload is not None]


def _types(run: ObservedRun) -> Counter[str]:
    return Counter(label_of(p["type"]) for p in _payloads(run))


def _nonzero(counts: Counter[str]) -> dict[str, float]:
    return {k: float(v) for k, v in counts.items() if v}


def test_consumed_and_processed_per_type(observed_run: ObservedRun) -> None:
    s = observed_run.scrape
    sent = _types(observed_run)
    poison = sum(1 for e in observed_run.events if e.poison)
    assert sent[OTHER] == 5  # the unknown type, labelled `other`, never its own name
    assert s.by("activity_consumer_events_processed_total", "type") == _nonzero(sent)
    assert s.by("activity_consumer_events_consumed_total", "type") == _nonzero(sent + Counter({OTHER: poison}))
    # every catalogue type has its series from the start (rate() needs the zero)
    types = {x.labels["type"] for x in s.select("activity_consumer_events_consumed_total")}
    assert types == KNOWN_TYPES | {OTHER}


def test_dead_letters_by_reason_and_decode_errors_by_framing(observed_run: ObservedRun) -> None:
    s = observed_run.scrape
    poison = [e.poison for e in observed_run.events if e.poison]
    assert len(poison) == 7
    assert s.by("activity_consumer_dead_letters_total", "reason") == _nonzero(Counter(r for r, _ in poison))
    assert s.by("activity_consumer_decode_errors_total", "framing") == _nonzero(Counter(f for _, f in poison))
    assert s.total("activity_consumer_retries_total") == 0


def test_results_by_stream(observed_run: ObservedRun) -> None:
    expected = Counter(STREAM_OF.get(label_of(p["type"]), "other") for p in _payloads(observed_run))
    assert observed_run.scrape.by("activity_consumer_results_produced_total", "stream") == _nonzero(expected)


def _of_type(run: ObservedRun, event_type: str) -> list[dict[str, Any]]:
    return [p["data"] for p in _payloads(run) if label_of(p["type"]) == event_type]


def test_redemption_metrics_match_the_corpus(observed_run: ObservedRun) -> None:
    s = observed_run.scrape
    succeeded = _of_type(observed_run, "customer.redemption.succeeded")
    failed = _of_type(observed_run, "customer.redemption.failed")
    assert succeeded and failed
    codes = Counter(d["redemption"]["failure_code"] for d in failed)
    assert s.value("voucherify_redemptions_total", result="succeeded", failure_code="") == len(succeeded)
    for code, n in codes.items():
        assert s.value("voucherify_redemptions_total", result="failed", failure_code=code) == n
    assert s.total("voucherify_redemptions_total") == len(succeeded) + len(failed)
    for result in ("succeeded", "failed"):
        n = len(_of_type(observed_run, f"customer.redemption.rollback.{result}"))
        assert n and s.value("voucherify_redemption_rollbacks_total", result=result) == n

    orders = [d.get("order") or d["redemption"]["order"] for d in succeeded]
    assert s.value("voucherify_redeemed_order_amount_minor_units_total") == sum(o["amount"] for o in orders)
    discounts = [o.get("total_discount_amount", o.get("discount_amount")) for o in orders]
    assert s.value("voucherify_redeemed_discount_amount_minor_units_total") == sum(discounts)
    assert s.value("voucherify_redemption_discount_minor_units_count") == len(succeeded)
    assert s.value("voucherify_redemption_discount_minor_units_sum") == sum(discounts)


def test_loyalty_and_gift_metrics_match_the_corpus(observed_run: ObservedRun) -> None:
    s = observed_run.scrape
    added = _of_type(observed_run, "customer.voucher.loyalty_card.points_added")
    moved = _of_type(observed_run, "customer.voucher.loyalty_card.points_transferred")
    gifts = _of_type(observed_run, "customer.voucher.gift.balance_added")
    assert added and moved and gifts
    assert s.value("voucherify_loyalty_points_total", operation="added") == sum(d["balance"]["points"] for d in added)
    assert s.value("voucherify_loyalty_points_total", operation="transferred") == sum(
        d["balance"]["points"] for d in moved
    )
    assert s.value("voucherify_gift_credits_added_minor_units_total") == sum(d["balance"]["amount"] for d in gifts)


def test_notification_and_other_business_counts_match_the_corpus(observed_run: ObservedRun) -> None:
    s = observed_run.scrape
    sent = _types(observed_run)
    notifications = Counter[tuple[str, str]]()
    for t, n in sent.items():
        if STREAM_OF.get(t) == "notifications":
            _, channel, outcome = t.split(".")
            notifications[(channel, outcome)] += n
    scraped = {
        (x.labels["channel"], x.labels["outcome"]): x.value
        for x in s.select("voucherify_notifications_total")
        if x.value
    }
    assert scraped == {k: float(v) for k, v in notifications.items()}
    assert len(scraped) == 27  # every channel sent, failed and recovered

    def by(metric: str, label: str, prefix: str, values: tuple[str, ...]) -> None:
        expected = {v: float(sent[f"{prefix}{v}"]) for v in values if sent[f"{prefix}{v}"]}
        assert expected and s.by(metric, label) == expected, metric

    by("voucherify_segment_changes_total", "change", "customer.segment.", ("entered", "left"))
    by("voucherify_publications_total", "result", "customer.publication.", ("succeeded", "failed"))
    by("voucherify_consent_changes_total", "change", "customer.consents.", ("given", "revoked"))
    by("voucherify_customer_lifecycle_total", "change", "customer.", ("created", "updated", "deleted", "confirmed"))
    assert s.value("voucherify_referrals_total") == sent["customer.referred"] > 0
    assert s.value("voucherify_custom_events_total") == sent["customer.custom_event"] > 0


def _suffix(event_type: str) -> str:
    return event_type.rsplit(".", 1)[1]


def test_todays_catalogue_metrics_match_the_payloads(observed_run: ObservedRun) -> None:
    """Orders, tiers, reward redemptions, pending/expired points, validations and holders:
    each series equals what the payloads that were sent add up to."""
    s = observed_run.scrape
    payloads = [(label_of(p["type"]), p["data"]) for p in _payloads(observed_run)]

    def of(prefix: str) -> list[tuple[str, dict[str, Any]]]:
        return [(t, d) for t, d in payloads if t.startswith(prefix)]

    orders, amounts, discounts = Counter[str](), Counter[str](), Counter[str]()
    for t, d in of("customer.order."):
        o = d["order"]
        orders[_suffix(t)] += 1
        amounts[_suffix(t)] += o.get("amount") or 0
        discounts[_suffix(t)] += o.get("total_discount_amount", o.get("discount_amount")) or 0
    assert len(orders) == 6
    assert s.by("voucherify_orders_total", "status") == _nonzero(orders)
    assert s.by("voucherify_order_amount_minor_units_total", "status") == _nonzero(amounts)
    assert s.by("voucherify_order_discount_minor_units_total", "status") == _nonzero(discounts)

    tiers = Counter(
        t.removeprefix("customer.loyalty.").removeprefix("tier.").replace(".", "_") for t, _ in of("customer.loyalty.")
    )
    assert len(tiers) == 7
    assert s.by("voucherify_loyalty_tier_changes_total", "change") == _nonzero(tiers)

    rewards = Counter((_suffix(t), d["reward"]["type"].lower()) for t, d in of("customer.reward_redemptions."))
    scraped = {
        (x.labels["status"], x.labels["reward_type"]): x.value
        for x in s.select("voucherify_reward_redemptions_total")
        if x.value
    }
    assert len(rewards) == 4 and scraped == {k: float(v) for k, v in rewards.items()}

    pending = Counter[str]()
    for t, d in of("customer.voucher.loyalty_card.pending_points."):
        pending[_suffix(t)] += d["pending_points"]["points"]
    assert len(pending) == 4
    assert s.by("voucherify_loyalty_pending_points_total", "operation") == _nonzero(pending)
    expired = sum(d["points"] for _, d in of("customer.voucher.loyalty_card.points_expired"))
    assert expired > 0 and s.value("voucherify_loyalty_points_expired_total") == expired
    activated = sum(d["balance"]["points"] for _, d in of("customer.voucher.loyalty_card.points_activated"))
    assert activated > 0 and s.value("voucherify_loyalty_points_total", operation="activated") == activated

    validations = Counter[tuple[str, str]]()
    for t, d in of("customer.validation."):
        codes = [i["result"]["error"]["key"] for i in d["validation"]["inapplicable_redeemables"] if "result" in i]
        validations[(_suffix(t), codes[0] if codes and _suffix(t) == "failed" else "")] += 1
    scraped = {
        (x.labels["result"], x.labels["failure_code"]): x.value
        for x in s.select("voucherify_validations_total")
        if x.value
    }
    assert ("failed", "voucher_expired") in validations
    assert scraped == {k: float(v) for k, v in validations.items()}

    holders = Counter(_suffix(t) for t, _ in of("customer.holder.assignment."))
    assert s.by("voucherify_holder_assignments_total", "change") == _nonzero(holders) != {}
    deleted = len(of("customer.voucher.deleted"))
    assert deleted and s.value("voucherify_vouchers_deleted_total") == deleted


def _timestamp(text: str) -> float:
    # one corpus example writes "2024-05-13T10: 24: 01.084Z"; the codec reads it without the spaces
    return datetime.fromisoformat(text.replace(" ", "").replace("Z", "+00:00")).timestamp()


def test_handler_duration_per_family_and_event_age(observed_run: ObservedRun) -> None:
    s = observed_run.scrape
    processed = _types(observed_run)
    per_family = Counter[str]()
    for p in _payloads(observed_run):
        per_family[family_of(label_of(p["type"]))] += 1
    counts = s.by("activity_consumer_handler_duration_seconds_count", "family")
    assert counts == _nonzero(per_family)
    for family, n in per_family.items():
        assert s.value("activity_consumer_handler_duration_seconds_bucket", family=family, le="+Inf") == n
        assert 0 < s.value("activity_consumer_handler_duration_seconds_sum", family=family) < n * 1.0

    total = sum(processed.values())
    assert s.value("activity_consumer_event_age_seconds_count") == total
    assert s.value("activity_consumer_event_age_seconds_bucket", le="+Inf") == total
    # the age is now - created_at at processing time: between worker start and the final scrape
    created = [_timestamp(p["created_at"]) for p in _payloads(observed_run)]
    age_sum = s.value("activity_consumer_event_age_seconds_sum")
    assert sum(observed_run.started_at - c for c in created) <= age_sum + 1
    assert age_sum <= sum(observed_run.scraped_at - c for c in created) + 1


def test_commits_rebalances_lag_and_queue(observed_run: ObservedRun) -> None:
    s = observed_run.scrape
    assert s.value("activity_consumer_commits_total") > 0
    assert s.value("activity_consumer_commit_failures_total") == 0
    last_commit = s.value("activity_consumer_last_commit_timestamp_seconds")
    assert observed_run.started_at < last_commit <= observed_run.scraped_at
    assert s.value("activity_consumer_rebalances_total", kind="assign") >= 1
    assert s.value("activity_consumer_rebalances_total", kind="lost") == 0
    lag = {x.labels["partition"]: x.value for x in s.select("activity_consumer_lag_messages")}
    assert lag == {str(p): 0.0 for p in range(PARTITIONS)}
    assert s.value("activity_consumer_producer_queue_messages") == 0


def test_promtool_check_metrics_is_clean(observed_run: ObservedRun, promtool: str) -> None:
    proc = subprocess.run(
        [promtool, "check", "metrics"],
        input=observed_run.scrape.text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr


def test_no_identifier_or_personal_data_in_label_values(observed_run: ObservedRun) -> None:
    values = observed_run.scrape.label_values()
    assert values, "no labelled series at all"
    bad = {v for v in values if any(marker in v for marker in ("cust_", "evcus_", "camp_", "@"))}
    assert not bad, sorted(bad)
    names = campaign_names(_payloads(observed_run))
    assert names, "the corpus names campaigns"
    assert not values & names
    assert not {v for v in values for n in names if n in v}
    # every label value is from a bounded vocabulary: a type, family, stream, reason, ...
    assert len(values) < 200, sorted(values)
