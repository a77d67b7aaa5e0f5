"""Handlers: every seed type's payload becomes the right result, with the payload's values,
in a record its Avro schema accepts, and with no personal data in it."""

from __future__ import annotations

import io
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from consumer.catalogue import KNOWN_TYPES, SEED_TYPES
from consumer.contract import STREAM_SCHEMAS
from consumer.devtools.corpus import EXAMPLES
from consumer.model import Activity, Result, activity_from_record
from consumer.pii import mask_text as redact
from consumer.pipeline.codec import AvroCodec
from consumer.pipeline.handlers import (
    consents,
    custom,
    distribution,
    fallback,
    lifecycle,
    loyalty,
    publications,
    redemptions,
    referrals,
    rewards,
    segments,
)
from consumer.pipeline.handlers._common import TEXT_LIMIT, bounded_text
from consumer.pipeline.router import HANDLERS

REPO = Path(__file__).resolve().parents[4]
SEED_FIXTURES = REPO / "tests" / "fixtures" / "seed"
CATALOGUE_FIXTURES = REPO / "tests" / "fixtures" / "catalogue"
RESULTS_DIR = REPO / "avro" / "results"


@cache
def codec() -> AvroCodec:
    return AvroCodec()


def payload_files() -> dict[str, Path]:
    """Event type -> its payload: the corpus, then the seed and catalogue fixtures for the rest."""
    files = {p.name.removesuffix(".json"): p for p in sorted(EXAMPLES.glob("*.json"))}
    for p in sorted(SEED_FIXTURES.glob("*.json")) + sorted(CATALOGUE_FIXTURES.glob("*.json")):
        files.setdefault(p.name.removesuffix(".json"), p)
    return files


def load_json(event_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(payload_files()[event_type].read_text())
    return data


def activity_of(payload: dict[str, Any]) -> Activity:
    c = codec()
    return activity_from_record(c.decode(c.encode_json(payload)))


def load_activity(event_type: str) -> Activity:
    return activity_of(load_json(event_type))


@cache
def result_schemas() -> dict[str, Any]:
    """Full name -> parsed schema, for every file in avro/results/."""
    out: dict[str, Any] = {}
    for path in sorted(RESULTS_DIR.glob("*.avsc")):
        raw = json.loads(path.read_text())
        out[f"{raw['namespace']}.{raw['name']}"] = parse_schema(raw)
    return out


def avro_roundtrip(result: Result) -> dict[str, Any]:
    schema = result_schemas()[result.schema]
    buf = io.BytesIO()
    schemaless_writer(buf, schema, result.value)
    buf.seek(0)
    back: dict[str, Any] = schemaless_reader(buf, schema, None)
    # timestamp-millis reads back as an aware datetime
    back["occurred_at"] = round(back["occurred_at"].timestamp() * 1000)
    return back


HANDLER_OF: dict[str, Any] = {
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

# Every catalogue type: the seed's above, the newer ones as routed (their values are checked
# in test_catalogue_handlers.py).
ALL_HANDLERS: dict[str, Any] = {**HANDLER_OF, **{t: HANDLERS[t] for t in KNOWN_TYPES - SEED_TYPES}}

JACK = "cust_IdgAFZxYwwHctOk9pPuMu308"
LENA = "cust_Lq7XwT2mN8bVc4RkZp1Hs9Ej"
OMAR = "cust_9bWd3KpQe6Yt1LmXz0RvNc5A"
PRIYA = "cust_T4hGz8sLw2Qn6VbYk3Jm0Xe7"
SPRING = "camp_Vb3sQ8nRk2Lw5Tz1Xc9Hm4Jd"
LOYALTY = "camp_AQZ1GLRlbGaC2dETd31VbJQ9"

# Seed type -> (stream, the values its one result must carry), read off the payloads.
EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "customer.created": (
        "lifecycle",
        {"change": "created", "customer_id": "cust_7LvqCsUB9c8WyFP8JaLXchtF", "source_id": "lionel-johnson"},
    ),
    "customer.updated": ("lifecycle", {"change": "updated", "customer_id": "cust_A9f32Khs91"}),
    "customer.deleted": (
        "lifecycle",
        {
            "change": "deleted",
            "customer_id": "cust_7LvqCsUB9c8WyFP8JaLXchtF",
            "source_id": "lionel-johnson_deleted2024-02-01T11:16:40.918Z",
            "unconfirmed_customer_id": None,
        },
    ),
    "customer.confirmed": (
        "lifecycle",
        {
            "change": "confirmed",
            "customer_id": "cust_Nw5Rt8Yk2Pb7Lx4Qm1Zv6Hc3",
            "source_id": "nina-kowalski-7731",
            "unconfirmed_customer_id": "ucust_5xQkM2r8VnT1bLw9YcZ4Hd7P",
        },
    ),
    "customer.redemption.succeeded": (
        "redemptions",
        {
            "result": "succeeded",
            "customer_id": JACK,
            "redemption_id": "r_0e6ff48b91cfa02e97",
            "rollback_id": None,
            "voucher_id": "v_eaxx9mNFwWZWZGBwkZf3JpN7yJZlU9Y7",
            "voucher_code": "SPRING-2024-hOg",
            "campaign_id": "camp_iRMdcq07g9W4dOSRXuTovupi",
            "order_id": "ord_p6B1A0y805yUQQaCw4bC6Fbk",
            "order_amount": 11499,
            "discount_amount": 1150,
            "total_amount": 10349,
            "failure_code": None,
            "failure_message": None,
        },
    ),
    "customer.redemption.failed": (
        "redemptions",
        {
            "result": "failed",
            "customer_id": OMAR,
            "redemption_id": "r_0e7f5a6b71c2d3e4f5",
            "voucher_code": "SPRNG-x7Lq2P",
            "campaign_id": SPRING,
            "order_id": "ord_Fq8Zr2Wd6Kx1Lm9Tb4Vn7Yc",
            "order_amount": 8999,
            "discount_amount": None,
            "total_amount": 8999,
            "channel_type": "API",
            "failure_code": "voucher_expired",
            "failure_message": "voucher expired",
        },
    ),
    "customer.redemption.rollback.succeeded": (
        "redemptions",
        {
            "result": "rollback_succeeded",
            "customer_id": JACK,
            "redemption_id": "r_0e6ff48b91cfa02e97",
            "rollback_id": "rr_0e70cac29fee95aa7b",
            "voucher_code": "SPRING-2024-hOg",
            # the rolled-back redemption's order: what was reversed
            "order_amount": 11499,
            "discount_amount": 1150,
            "total_amount": 10349,
            "failure_code": None,
        },
    ),
    "customer.redemption.rollback.failed": (
        "redemptions",
        {
            "result": "rollback_failed",
            "customer_id": LENA,
            "redemption_id": "r_0e7c8d9ea1b2c3d4e5",
            "rollback_id": "rr_0e805b6c71f2e3d4c5",
            "voucher_code": "SPRNG-b2Wn8R",
            "campaign_id": SPRING,
            "order_id": "ord_Pd3Lw8Zq1Xr6Kt9Vb2Nm5Yh",
            "order_amount": 8999,
            "discount_amount": 1500,
            "total_amount": 7499,
            "failure_code": "already_rolled_back",
            "failure_message": "redemption was rolled back before the current operation start time",
        },
    ),
    "customer.voucher.loyalty_card.points_added": (
        "loyalty",
        {
            "operation": "added",
            "customer_id": "cust_2p0TvCOvB25HWUrW9JFf4czJ",
            "campaign_id": LOYALTY,
            "voucher_id": "v_mFlEY0ZESRsEyfY12vTvz1VPfVDirAjc",
            "voucher_code": "NK5iReoi",
            "points": 40,
            "balance": 2641,
            "transaction_id": "vtx_0e6d44043e9e51d377",
            "transaction_type": "POINTS_ADDITION",
            "source_voucher_id": None,
        },
    ),
    "customer.voucher.loyalty_card.points_transferred": (
        "loyalty",
        {
            "operation": "transferred",
            "customer_id": PRIYA,
            "campaign_id": LOYALTY,
            "voucher_id": "v_Ht5Wq1Zx8Nc3Rb6Lk0Ym2Vp9Js4Dg7F",
            "points": 500,
            "balance": 3150,
            "source_voucher_id": "v_Pk3Lr9Tw5Xb1Zq7Nm4Hc8Vy2Gs6Jd0E",
            "destination_voucher_id": "v_Ht5Wq1Zx8Nc3Rb6Lk0Ym2Vp9Js4Dg7F",
            "transaction_id": "vtx_0e7d3e4f51a2b3c4d6",
            "transaction_type": "POINTS_TRANSFER_IN",
        },
    ),
    "customer.voucher.gift.balance_added": (
        "gift-credits",
        {
            "customer_id": JACK,
            "campaign_id": "camp_bfrwAVsP6Q1EM1ZjgHwheKYr",
            "voucher_id": "v_oNia4nTFDqYZOWYJiMpX8ocB6p6ZaEBm",
            "voucher_code": "Gift-for-you-0",
            "amount": 400,
            "balance": 15900,
            "transaction_id": "vtx_0e6feafe6952a94a54",
            "transaction_type": "CREDITS_ADDITION",
        },
    ),
    "customer.rewarded": (
        "rewards",
        {
            "grant": "reward",
            "customer_id": JACK,
            "reward_type": "CAMPAIGN",
            "reward_id": "rew_oOrlSAeYmfh6gYGOH7JMYVzv",
            "assignment_id": "rewa_XiIei2UpOYkLQxZ4J3U2pYlK",
            "campaign_id": LOYALTY,
            "voucher_id": "v_hjQhSsitD6lAATASbRV1Ef7dUCjpy0iw",
            "redemption_id": "r_0e2907cc52498573ee",
            "points": None,
        },
    ),
    "customer.rewarded.loyalty_points": (
        "rewards",
        {
            "grant": "loyalty_points",
            "customer_id": JACK,
            "campaign_id": LOYALTY,
            "voucher_id": "v_hjQhSsitD6lAATASbRV1Ef7dUCjpy0iw",
            "earning_rule_id": "ern_FQxftbKUq9E93k00Z3qkC0sX",
            "points": 900,
        },
    ),
    "customer.sms.sent": (
        "notifications",
        {
            "channel": "sms",
            "outcome": "sent",
            "customer_id": PRIYA,
            "distribution_id": "distr_Qm4Sx9Lw2Rt7Zb1N",
            "failure_reason": None,
        },
    ),
    "customer.sms.failed": (
        "notifications",
        {
            "channel": "sms",
            "outcome": "failed",
            "customer_id": OMAR,
            "failure_reason": "Twilio error 21614: 'To' number [phone] is not a valid mobile number",
        },
    ),
    "customer.email.sent": ("notifications", {"channel": "email", "outcome": "sent", "customer_id": PRIYA}),
    "customer.email.failed": (
        "notifications",
        {
            "channel": "email",
            "outcome": "failed",
            "customer_id": LENA,
            "distribution_id": "distr_Ew8Hn3Kd5Pq1Vy6C",
            "failure_reason": "550 5.1.1 <[email]>: Recipient address rejected: User unknown",
        },
    ),
    "customer.activecampaign.sent": (
        "notifications",
        {"channel": "activecampaign", "outcome": "sent", "customer_id": LENA},
    ),
    "customer.braze.sent": ("notifications", {"channel": "braze", "outcome": "sent", "customer_id": PRIYA}),
    "customer.mailchimp.sent": ("notifications", {"channel": "mailchimp", "outcome": "sent", "customer_id": OMAR}),
    "customer.intercom.sent": ("notifications", {"channel": "intercom", "outcome": "sent", "customer_id": LENA}),
    "customer.intercom.failed": (
        "notifications",
        {
            "channel": "intercom",
            "outcome": "failed",
            "customer_id": OMAR,
            "failure_reason": "Intercom API responded 404 not_found: User Not Found",
        },
    ),
    "customer.segment.entered": (
        "segments",
        {
            "change": "entered",
            "customer_id": "cust_5P5B8oy1pxM3sTOZ8qDpmkpG",
            "segment_id": "seg_n3vVcU5t0m3rs4rEPr3C1oU5",
            "segment_name": "New Customers",
        },
    ),
    "customer.segment.left": (
        "segments",
        {"change": "left", "segment_id": "seg_n3vVcU5t0m3rs4rEPr3C1oU5", "segment_name": "New Customers"},
    ),
    "customer.publication.succeeded": (
        "publications",
        {
            "result": "succeeded",
            "customer_id": JACK,
            "publication_id": "pub_DpHmhx5uTanbM0mnndFrODi1U3MEX6rF",
            "voucher_code": "SPRING-2024-tPz",
            "campaign_id": "camp_iRMdcq07g9W4dOSRXuTovupi",
            "channel": "voucherify-web-ui",
        },
    ),
    "customer.publication.failed": (
        "publications",
        {
            "result": "failed",
            "customer_id": LENA,
            "publication_id": "pub_Xn4Ks8Wq2Lm6Rt0Zb3Yc7Vh1Jp5Df9Ge",
            "voucher_code": "SPRNG-4kQ9zT",
            "campaign_id": SPRING,
            "channel": "API",
            "failure_code": None,
        },
    ),
    "customer.consents.given": (
        "consents",
        {
            "change": "given",
            "customer_id": PRIYA,
            "consent_ids": ["cnst_Nl6Wq2Zx8Rt4Lm1Yb7Vc3Hk9", "cnst_Sm3Xr9Kw5Tq1Zb8Ln2Vy6Hc4"],
            "unsubscribed": False,
        },
    ),
    "customer.consents.revoked": (
        "consents",
        {"change": "revoked", "customer_id": PRIYA, "consent_ids": ["cnst_Sm3Xr9Kw5Tq1Zb8Ln2Vy6Hc4"]},
    ),
    "customer.referred": (
        "referrals",
        {
            "customer_id": OMAR,
            "referrer_id": LENA,
            "campaign_id": "camp_R3fEr4LpR0gR4m2024xQw8Zk",
            "voucher_code": "REF-8fK2Qm",
            "conversion_event": "signed_up",
            "custom_event_id": "event_0e7b2c9d1c3a7f5e42",
            "redemption_id": None,
        },
    ),
    "customer.custom_event": (
        "custom-events",
        {
            "customer_id": "cust_154FDQKcbzygdo231M62r4CD",
            "event_name": "sign_up",
            "event_id": "event_0e70ee5acd8b2555ce",
            "event_schema_id": "ms_f1r5Tcu5T0m3v3nT5ch3ma",
        },
    ),
}


def test_every_seed_type_has_a_payload_and_an_expectation() -> None:
    assert set(EXPECTED) == SEED_TYPES == set(HANDLER_OF)
    assert set(payload_files()) >= SEED_TYPES


def test_seed_fixtures_are_the_seed_types_without_a_corpus_file() -> None:
    corpus = {p.name.removesuffix(".json") for p in EXAMPLES.glob("*.json")}
    fixtures = {p.name.removesuffix(".json") for p in SEED_FIXTURES.glob("*.json")}
    assert fixtures == SEED_TYPES - corpus
    assert len(fixtures) == 17


@pytest.mark.parametrize("event_type", sorted(SEED_TYPES))
def test_seed_fixture_round_trips(event_type: str) -> None:
    payload = load_json(event_type)
    c = codec()
    assert c.decode_json(c.encode_json(payload)) == payload


@pytest.mark.parametrize("event_type", sorted(EXPECTED))
def test_handler_result(event_type: str) -> None:
    activity = load_activity(event_type)
    results = HANDLER_OF[event_type](activity)
    assert len(results) == 1
    (result,) = results
    stream, expected = EXPECTED[event_type]
    assert result.stream == stream
    assert result.schema == STREAM_SCHEMAS[stream]
    assert result.key == result.value["customer_id"]
    assert result.value["activity_id"] == activity.id
    assert result.value["activity_type"] == event_type
    assert result.value["occurred_at"] == activity.created_at_ms
    assert {k: result.value[k] for k in expected} == expected


def all_payloads() -> list[str]:
    return sorted(payload_files())


@pytest.mark.parametrize("event_type", all_payloads())
def test_result_encodes_against_its_schema(event_type: str) -> None:
    activity = load_activity(event_type)
    handler = ALL_HANDLERS.get(event_type, fallback.forward)
    for result in handler(activity):
        assert avro_roundtrip(result) == result.value


def _personal_strings(payload: Any) -> set[str]:
    """Emails, phone numbers and people's names found anywhere in a payload."""
    text = json.dumps(payload, ensure_ascii=False)
    found = set(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", text))
    found |= set(re.findall(r"\+\d[\d ]{7,}\d", text))

    def walk(v: Any, person: bool) -> None:
        if isinstance(v, dict):
            person = person or v.get("object") == "customer"
            for k, x in v.items():
                if isinstance(x, str) and x and (k in ("phone", "email") or (k == "name" and person)):
                    found.add(x)
                else:
                    walk(x, k in ("customer", "holder", "referrer"))
        elif isinstance(v, list):
            for x in v:
                walk(x, False)

    walk(payload, False)
    return found


def _strings(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, dict):
        return [s for x in v.values() for s in _strings(x)]
    if isinstance(v, list):
        return [s for x in v for s in _strings(x)]
    return []


def test_payloads_do_carry_personal_data() -> None:
    """The check below means something: the inputs hold emails, phones and names."""
    every = set().union(*(_personal_strings(load_json(t)) for t in all_payloads()))
    assert "lena.fischer@example.com" in every
    assert "lionel-johnson@lion.io" in every
    assert "+44 7700 900123" in every
    assert "+44 7700 900456" in every
    assert "Jack Webhook" in every


@pytest.mark.parametrize("event_type", all_payloads())
def test_no_personal_data_in_results(event_type: str) -> None:
    payload = load_json(event_type)
    personal = _personal_strings(payload)
    handler = ALL_HANDLERS.get(event_type, fallback.forward)
    for result in handler(activity_of(payload)):
        for s in _strings(result.value):
            leaked = [p for p in personal if p in s]
            assert not leaked, f"{result.schema} carries {leaked}"
            assert "@" not in s


EMPTY_DATA: list[dict[str, Any]] = [
    {},
    {"json": "{}"},  # a seed event whose data did not fit its record
    {"customer": None, "order": "not an object", "balance": {"points": "many"}, "consents": "x"},
]


@pytest.mark.parametrize("event_type", sorted(ALL_HANDLERS))
@pytest.mark.parametrize("data", EMPTY_DATA, ids=["empty", "generic", "wrong-types"])
def test_handlers_survive_missing_fields(event_type: str, data: dict[str, Any]) -> None:
    activity = Activity(
        id="evcus_0",
        type=event_type,
        canonical_type=event_type,
        family="x",
        data=data,
        created_at_ms=0,
    )
    (result,) = ALL_HANDLERS[event_type](activity)
    assert result.value["customer_id"] is None
    assert result.key is None
    assert avro_roundtrip(result) == result.value


def test_failure_text_is_redacted_and_bounded() -> None:
    assert redact("mail to jane.doe+x@example.co.uk failed") == "mail to [email] failed"
    assert redact("call +1 (555) 010-9999 now") == "call [phone] now"
    assert redact("550 5.1.1 user unknown, error 21614") == "550 5.1.1 user unknown, error 21614"
    long_reason = "x" * 1000
    assert bounded_text(long_reason) == "x" * TEXT_LIMIT
    assert bounded_text("") is None
    assert bounded_text(42) is None


def test_failure_reason_from_an_error_object() -> None:
    payload = load_json("customer.email.failed")
    payload["data"]["distribution"] = {"id": "distr_1", "error": {"code": 550, "message": "Mailbox full"}}
    (result,) = distribution.notification(activity_of(payload))
    assert result.value["failure_reason"] == "Mailbox full"
    assert result.value["distribution_id"] == "distr_1"


def test_source_id_that_is_an_email_is_dropped() -> None:
    payload = load_json("customer.created")
    payload["data"]["customer"]["source_id"] = "lionel@example.com"
    (result,) = lifecycle.customer_created(activity_of(payload))
    assert result.value["source_id"] is None
    assert result.value["customer_id"] == "cust_7LvqCsUB9c8WyFP8JaLXchtF"


def test_rewarded_with_a_balance_reports_points() -> None:
    payload = load_json("customer.rewarded")
    payload["data"]["balance"] = {"points": 250, "amount": None}
    (result,) = rewards.rewarded(activity_of(payload))
    assert result.value["points"] == 250
    assert result.value["amount"] is None


# -- fallback ------------------------------------------------------------------------------
def test_fallback_forwards_a_newer_type_as_json_without_personal_data() -> None:
    payload = load_json("customer.order.paid")
    activity = activity_of(payload)
    (result,) = fallback.forward(activity)
    assert result.stream == "other"
    assert result.schema == "voucherify.activity.results.ForwardedActivity"
    assert result.value["known"] is True
    assert result.value["activity_type"] == "customer.order.paid"
    assert result.value["customer_id"] == payload["data"]["customer"]["id"]
    data = json.loads(result.value["data_json"])
    assert data["order"]["id"] == payload["data"]["order"]["id"]
    assert data["order"]["amount"] == payload["data"]["order"]["amount"]
    assert "name" not in data["customer"] and "email" not in data["customer"]
    assert avro_roundtrip(result) == result.value


def test_fallback_merges_members_the_record_does_not_know() -> None:
    payload = load_json("customer.redemption.succeeded")  # order.created_at lands in _extra
    (result,) = fallback.forward(activity_of(payload))
    data = json.loads(result.value["data_json"])
    assert data["order"]["created_at"] == payload["data"]["order"]["created_at"]
    assert "_extra" not in result.value["data_json"]
    assert "_json_nulls" not in result.value["data_json"]


def test_fallback_forwards_an_unknown_type() -> None:
    payload = {
        "id": "evcus_0e99aa00bb11cc22dd",
        "type": "customer.hologram.beamed",
        "data": {
            "customer": {"id": "cust_X", "name": "Ann Example", "email": "ann@example.com", "object": "customer"},
            "hologram": {"id": "holo_1", "note": "sent to ann@example.com, +44 7700 900999"},
        },
        "created_at": "2024-06-01T10:00:00.000Z",
    }
    activity = activity_of(payload)
    assert activity.canonical_type not in KNOWN_TYPES
    (result,) = fallback.forward(activity)
    assert result.value["known"] is False
    assert result.value["customer_id"] == "cust_X"
    assert result.key == "cust_X"
    data = json.loads(result.value["data_json"])
    assert data == {
        "customer": {"id": "cust_X", "object": "customer"},
        "hologram": {"id": "holo_1", "note": "sent to [email], [phone]"},
    }
    assert avro_roundtrip(result) == result.value
