"""Handlers of the 46 types today's catalogue adds to the seed: each payload (corpus, or a
fixture written from the OpenAPI shapes) becomes one result on its typed stream, carrying the
payload's values.

The expected values are read off the JSON payloads here, by Voucherify's field names, not
computed with the handlers' own readers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consumer.catalogue import KNOWN_TYPES, NOTIFICATION_CHANNELS, SEED_TYPES
from consumer.contract import STREAM_SCHEMAS
from consumer.devtools.corpus import EXAMPLES, OPENAPI
from consumer.model import Activity, activity_from_record
from consumer.pipeline.codec import AvroCodec
from consumer.pipeline.handlers import fallback
from consumer.pipeline.router import HANDLERS, Router

REPO = Path(__file__).resolve().parents[4]
CATALOGUE_FIXTURES = REPO / "tests" / "fixtures" / "catalogue"
NEWER = sorted(KNOWN_TYPES - SEED_TYPES)
CODEC = AvroCodec()

Expected = dict[str, Any]


def payload(event_type: str) -> dict[str, Any]:
    for folder in (EXAMPLES, CATALOGUE_FIXTURES):
        path = folder / f"{event_type}.json"
        if path.exists():
            data: dict[str, Any] = json.loads(path.read_text())
            return data
    raise FileNotFoundError(event_type)


def activity_of(obj: dict[str, Any]) -> Activity:
    return activity_from_record(CODEC.decode(CODEC.encode_json(obj)))


def suffix(event_type: str) -> str:
    return event_type.rsplit(".", 1)[1]


def masked(s: str) -> str:
    """What a result may keep of free text: emails and phone numbers replaced (the test's own rule)."""
    s = re.sub(r"\S+@\S+\.[a-z]+", "[email]", s)
    return re.sub(r"\+\d[\d ]{8,}\d", "[phone]", s)


def _d(p: dict[str, Any], *path: str) -> Any:
    """p['data'][path...], None where a step is missing or null."""
    v: Any = p["data"]
    for k in path:
        v = v.get(k) if isinstance(v, dict) else None
    return v


# -- expectations, one reader per group --------------------------------------------------
def notification(t: str, p: dict[str, Any]) -> tuple[str, Expected]:
    _, channel, outcome = t.split(".")
    reason = _d(p, "distribution", "failure_reason")
    return "notifications", {
        "channel": channel,
        "outcome": outcome,
        "customer_id": _d(p, "customer", "id"),
        "distribution_id": _d(p, "distribution", "id"),
        "failure_reason": masked(reason) if outcome == "failed" and reason else None,
    }


def order(t: str, p: dict[str, Any]) -> tuple[str, Expected]:
    o = _d(p, "order")
    items = o.get("items") or []
    return "orders", {
        "status": suffix(t),
        "customer_id": _d(p, "customer", "id"),
        "order_id": o["id"],
        "order_status": o["status"],
        "amount": o.get("amount"),
        "discount_amount": o.get("total_discount_amount", o.get("discount_amount")),
        "total_amount": o.get("total_amount"),
        "line_count": len(items),
        "item_quantity": sum(i.get("quantity", 0) for i in items),
        "redeemable_ids": [e["related_object_id"] for e in (o.get("redemptions") or {}).values()],
        "redemption_id": _d(p, "redemption", "id"),
    }


TIER_CHANGE = {
    "customer.loyalty.tier.expiration.changed": "expiration_changed",
    "customer.loyalty.updated": "updated",
}


def tier(t: str, p: dict[str, Any]) -> tuple[str, Expected]:
    change = TIER_CHANGE.get(t, suffix(t))
    one = _d(p, "loyalty_tier")
    before = {"upgraded": _d(p, "loyalty_tier_from"), "downgraded": _d(p, "loyalty_tier_from"), "left": one}
    after = {"upgraded": _d(p, "loyalty_tier_to"), "downgraded": _d(p, "loyalty_tier_to"), "left": None}
    b, a = before.get(change), after.get(change, one)
    expiration = (a or {}).get("expiration") or {}
    return "loyalty-tiers", {
        "change": change,
        "customer_id": _d(p, "customer", "id"),
        "campaign_id": _d(p, "campaign", "id"),
        "tier_from_id": b["id"] if b else None,
        "tier_to_id": a["id"] if a else None,
        "tier_from_points": b["points"]["from"] if b else None,
        "tier_to_points": a["points"]["from"] if a else None,
        "start_date": expiration.get("start_date"),
        "expiration_date": _d(p, "expiration_date") or expiration.get("expiration_date"),
    }


def reward_redemption(t: str, p: dict[str, Any]) -> tuple[str, Expected]:
    rr = _d(p, "reward_redemption")
    return "reward-redemptions", {
        "status": suffix(t),
        "customer_id": _d(p, "customer", "id"),
        "reward_redemption_id": rr["id"],
        "reward_id": _d(p, "reward", "id"),
        "reward_type": _d(p, "reward", "type"),
        "assignment_id": _d(p, "reward_assignment", "id"),
        "campaign_id": _d(p, "campaign", "id"),
        "voucher_id": _d(p, "voucher", "id"),
        "reward_voucher_id": _d(p, "reward", "voucher", "id"),
        "product_id": _d(p, "reward", "product", "id"),
        "points": _d(p, "reward_assignment", "parameters", "loyalty", "points"),
        "amount": _d(p, "balance"),
        "source_redemption_id": _d(p, "source", "id"),
    }


def ids(items: list[dict[str, Any]] | None) -> list[str]:
    return [i["id"] for i in items or []]


def validation(t: str, p: dict[str, Any]) -> tuple[str, Expected]:
    v = _d(p, "validation")
    errors = [i["result"]["error"] for i in v["inapplicable_redeemables"] if "result" in i]
    return "validations", {
        "result": suffix(t),
        "customer_id": _d(p, "customer", "id"),
        "validation_id": v["id"],
        "session_id": v["session_id"],
        "status": v["status"],
        "redeemable_ids": ids(v["redeemables"]),
        "inapplicable_ids": ids(v["inapplicable_redeemables"]),
        "skipped_ids": ids(v["skipped_redeemables"]),
        "failure_code": errors[0]["key"] if errors else None,
        "failure_message": masked(errors[0]["message"]) if errors else None,
    }


def holder(t: str, p: dict[str, Any]) -> tuple[str, Expected]:
    h = _d(p, "holder")
    return "holders", {
        "change": suffix(t),
        "customer_id": h["customer_id"],
        "holder_id": h["id"],
        "holder_role": h["holder_role"],
        "redeemable_id": h["redeemable_id"],
        "redeemable_object": h["redeemable_object"],
        "voucher_code": _d(p, "voucher", "code"),
        "voucher_type": h["voucher_type"],
        "campaign_id": h["campaign_id"],
        "campaign_type": h["campaign_type"],
        "publication_id": h["publication_id"],
    }


def pending(t: str, p: dict[str, Any]) -> tuple[str, Expected]:
    pp = _d(p, "pending_points")
    return "loyalty", {
        "operation": f"pending_{suffix(t)}",
        "customer_id": _d(p, "customer", "id"),
        "campaign_id": _d(p, "campaign", "id"),
        "voucher_id": _d(p, "voucher", "id"),
        "voucher_code": _d(p, "voucher", "code"),
        "points": pp["points"],
        "pending_points_id": pp["id"],
        "pending_balance": _d(p, "voucher_pending_points_balance", "total"),
        "order_id": pp["order_id"],
        "activates_at": pp["activates_at"],
    }


def points_activated(t: str, p: dict[str, Any]) -> tuple[str, Expected]:
    return "loyalty", {
        "operation": "activated",
        "customer_id": _d(p, "customer", "id"),
        "campaign_id": _d(p, "campaign", "id"),
        "voucher_id": _d(p, "voucher", "id"),
        "points": _d(p, "balance", "points"),
        "balance": _d(p, "balance", "balance"),
        "transaction_id": _d(p, "transaction", "id"),
        "transaction_type": _d(p, "transaction", "type"),
        "order_id": _d(p, "order", "id"),
    }


def points_expired(t: str, p: dict[str, Any]) -> tuple[str, Expected]:
    return "loyalty", {
        "operation": "expired",
        "customer_id": _d(p, "customer", "id"),
        "campaign_id": _d(p, "campaign", "id"),
        "voucher_id": _d(p, "voucher", "id"),
        "points": _d(p, "points"),
        "balance": _d(p, "transaction", "details", "balance", "balance"),
        "transaction_id": _d(p, "transaction", "id"),
        "transaction_type": _d(p, "transaction", "type"),
    }


def voucher_deleted(t: str, p: dict[str, Any]) -> tuple[str, Expected]:
    return "lifecycle", {
        "change": "voucher_deleted",
        "customer_id": _d(p, "customer", "id"),
        "source_id": _d(p, "customer", "source_id"),
        "voucher_id": _d(p, "voucher", "id"),
        "voucher_code": _d(p, "voucher", "code"),
        "campaign_id": _d(p, "campaign", "id"),
    }


def expectation_for(t: str) -> Callable[[str, dict[str, Any]], tuple[str, Expected]]:
    parts = t.split(".")
    if parts[1] in NOTIFICATION_CHANNELS:
        return notification
    if t.startswith("customer.order."):
        return order
    if t.startswith("customer.loyalty."):
        return tier
    if t.startswith("customer.reward_redemptions."):
        return reward_redemption
    if t.startswith("customer.validation."):
        return validation
    if t.startswith("customer.holder.assignment."):
        return holder
    if ".pending_points." in t:
        return pending
    return {
        "customer.voucher.loyalty_card.points_activated": points_activated,
        "customer.voucher.loyalty_card.points_expired": points_expired,
        "customer.voucher.deleted": voucher_deleted,
    }[t]


# -- the tests ---------------------------------------------------------------------------
def test_catalogue_fixtures_are_the_current_types_without_any_other_payload() -> None:
    current = set(json.loads(OPENAPI.read_text())["CustomerActivity.type"])
    corpus = {p.stem for p in EXAMPLES.glob("*.json")}
    seed = {p.stem for p in (REPO / "tests" / "fixtures" / "seed").glob("*.json")}
    fixtures = {p.stem for p in CATALOGUE_FIXTURES.glob("*.json")}
    assert fixtures == current - corpus - seed
    assert len(fixtures) == 27
    assert set(NEWER) <= corpus | fixtures


@pytest.mark.parametrize("event_type", sorted(p.stem for p in CATALOGUE_FIXTURES.glob("*.json")))
def test_catalogue_fixture_round_trips_and_is_typed(event_type: str) -> None:
    p = payload(event_type)
    assert p["type"] == event_type
    value = CODEC.encode_json(p)
    assert CODEC.decode_json(value) == p
    branch = CODEC.branch_of(CODEC.decode(value))
    # the one type without a published data schema decodes as generic JSON
    generic = event_type == "customer.voucher.loyalty_card.points_activated"
    assert branch.endswith("GenericActivityData") == generic


@pytest.mark.parametrize("event_type", NEWER)
def test_newer_type_result_carries_the_payload_values(event_type: str) -> None:
    p = payload(event_type)
    activity = activity_of(p)
    results = HANDLERS[event_type](activity)
    assert len(results) == 1
    (result,) = results
    stream, expected = expectation_for(event_type)(event_type, p)
    assert result.stream == stream
    assert result.schema == STREAM_SCHEMAS[stream]
    assert result.key == result.value["customer_id"] == expected["customer_id"]
    assert expected["customer_id"], "every payload names its customer"
    assert result.value["activity_id"] == p["id"]
    assert result.value["activity_type"] == event_type
    assert result.value["occurred_at"] == activity.created_at_ms
    assert {k: result.value[k] for k in expected} == expected
    assert Router().route(activity) == results


def test_the_expectations_are_not_empty() -> None:
    """The values compared above are mostly present: a reader that found nothing would pass
    against a payload that lacks the field, so count the fields that carry a value."""
    present = 0
    total = 0
    for t in NEWER:
        _, expected = expectation_for(t)(t, payload(t))
        total += len(expected)
        present += sum(1 for v in expected.values() if v not in (None, [], ""))
    assert present / total > 0.8, (present, total)


def test_recovered_notifications_carry_no_failure_reason() -> None:
    for channel in NOTIFICATION_CHANNELS:
        t = f"customer.{channel}.recovered"
        p = payload(t)
        assert _d(p, "distribution", "previous_failure_reason"), "the fixture has text that could leak"
        (result,) = HANDLERS[t](activity_of(p))
        assert result.value["outcome"] == "recovered"
        assert result.value["failure_reason"] is None


def test_validation_failure_message_is_masked() -> None:
    p = payload("customer.validation.failed")
    raw = p["data"]["validation"]["inapplicable_redeemables"][0]["result"]["error"]["message"]
    assert "@" in raw
    (result,) = HANDLERS["customer.validation.failed"](activity_of(p))
    assert "@" not in result.value["failure_message"]
    assert result.value["failure_message"].startswith(raw.split(";")[0])


def test_validation_without_error_details_has_no_failure_code() -> None:
    p = payload("customer.validation.failed")
    for item in p["data"]["validation"]["inapplicable_redeemables"]:
        item.pop("result")
    (result,) = HANDLERS["customer.validation.failed"](activity_of(p))
    assert result.value["failure_code"] is None
    assert result.value["inapplicable_ids"] == ids(p["data"]["validation"]["inapplicable_redeemables"])


def test_points_activated_reads_its_untyped_json() -> None:
    p = payload("customer.voucher.loyalty_card.points_activated")
    activity = activity_of(p)
    assert set(activity.data) == {"json"}  # no published schema: the data is JSON text
    (result,) = HANDLERS[activity.canonical_type](activity)
    assert result.value["points"] == p["data"]["balance"]["points"] > 0


def test_order_with_item_level_discounts_only_reports_the_total() -> None:
    p = payload("customer.order.fulfilled")
    order = p["data"]["order"]
    order.pop("total_discount_amount")
    (result,) = HANDLERS["customer.order.fulfilled"](activity_of(p))
    assert result.value["discount_amount"] == order["discount_amount"]


def test_no_newer_type_is_forwarded() -> None:
    for t in NEWER:
        assert HANDLERS[t] is not fallback.forward, t
