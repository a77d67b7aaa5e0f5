"""Router: each catalogue type reaches its typed handler, aliases route like their canonical
name, and only types the catalogue does not know are forwarded to `other`, never an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from consumer.catalogue import ALIASES, KNOWN_TYPES, SEED_TYPES
from consumer.contract import RESULT_SCHEMAS, STREAM_SCHEMAS, STREAMS
from consumer.devtools.corpus import EXAMPLES, OPENAPI
from consumer.model import Activity, Result, activity_from_record
from consumer.pipeline.codec import AvroCodec
from consumer.pipeline.handlers import distribution, fallback, segments
from consumer.pipeline.router import HANDLERS, Router

REPO = Path(__file__).resolve().parents[3]
SEED_FIXTURES = REPO / "tests" / "fixtures" / "seed"
CATALOGUE_FIXTURES = REPO / "tests" / "fixtures" / "catalogue"
RESULTS_DIR = REPO / "avro" / "results"
CODEC = AvroCodec()
NEWER_TYPES = sorted(KNOWN_TYPES - SEED_TYPES)

# The result kind each seed type produces.
STREAM_OF_SEED_TYPE: dict[str, str] = {
    **dict.fromkeys(
        ["customer.created", "customer.updated", "customer.deleted", "customer.confirmed"],
        "lifecycle",
    ),
    **dict.fromkeys([t for t in SEED_TYPES if t.startswith("customer.redemption.")], "redemptions"),
    "customer.voucher.loyalty_card.points_added": "loyalty",
    "customer.voucher.loyalty_card.points_transferred": "loyalty",
    "customer.voucher.gift.balance_added": "gift-credits",
    "customer.rewarded": "rewards",
    "customer.rewarded.loyalty_points": "rewards",
    **dict.fromkeys(
        [
            "customer.sms.sent",
            "customer.sms.failed",
            "customer.email.sent",
            "customer.email.failed",
            "customer.activecampaign.sent",
            "customer.braze.sent",
            "customer.mailchimp.sent",
            "customer.intercom.sent",
            "customer.intercom.failed",
        ],
        "notifications",
    ),
    "customer.segment.entered": "segments",
    "customer.segment.left": "segments",
    "customer.publication.succeeded": "publications",
    "customer.publication.failed": "publications",
    "customer.consents.given": "consents",
    "customer.consents.revoked": "consents",
    "customer.referred": "referrals",
    "customer.custom_event": "custom-events",
}


def payload(event_type: str) -> dict[str, Any]:
    for folder in (EXAMPLES, SEED_FIXTURES, CATALOGUE_FIXTURES):
        path = folder / f"{event_type}.json"
        if path.exists():
            data: dict[str, Any] = json.loads(path.read_text())
            return data
    raise FileNotFoundError(event_type)


def activity_of(obj: dict[str, Any]) -> Activity:
    return activity_from_record(CODEC.decode(CODEC.encode_json(obj)))


def corpus_and_fixtures() -> list[Path]:
    return (
        sorted(EXAMPLES.glob("*.json"))
        + sorted(SEED_FIXTURES.glob("*.json"))
        + sorted(CATALOGUE_FIXTURES.glob("*.json"))
    )


def test_streams_and_schemas() -> None:
    assert STREAMS == (
        "lifecycle",
        "redemptions",
        "loyalty",
        "gift-credits",
        "notifications",
        "segments",
        "publications",
        "consents",
        "referrals",
        "custom-events",
        "rewards",
        "orders",
        "loyalty-tiers",
        "reward-redemptions",
        "validations",
        "holders",
        "other",
    )
    assert tuple(STREAM_SCHEMAS) == STREAMS
    assert tuple(STREAM_SCHEMAS[s] for s in STREAMS) == RESULT_SCHEMAS
    assert all(s.startswith("voucherify.activity.results.") for s in RESULT_SCHEMAS)


def test_every_result_schema_has_a_self_contained_file_with_the_common_fields() -> None:
    files = {}
    for path in RESULTS_DIR.glob("*.avsc"):
        raw = json.loads(path.read_text())
        files[f"{raw['namespace']}.{raw['name']}"] = raw
        assert path.stem == raw["name"]
    assert set(files) == set(RESULT_SCHEMAS)
    for raw in files.values():
        fields = {f["name"]: f["type"] for f in raw["fields"]}
        assert fields["activity_id"] == "string"
        assert fields["activity_type"] == "string"
        assert fields["occurred_at"] == {"type": "long", "logicalType": "timestamp-millis"}
        assert fields["customer_id"] == ["null", "string"]
        # self-contained: only primitives, arrays of them, and nullable unions of them
        for t in fields.values():
            for branch in t if isinstance(t, list) else [t]:
                assert branch in ("null", "string", "long", "boolean") or branch.get("type") in ("long", "array")


def test_handlers_cover_the_catalogue() -> None:
    assert set(HANDLERS) == KNOWN_TYPES
    assert fallback.forward not in HANDLERS.values()


@pytest.mark.parametrize("event_type", sorted(SEED_TYPES))
def test_each_seed_type_routes_to_its_handler(event_type: str) -> None:
    activity = activity_of(payload(event_type))
    results = Router().route(activity)
    assert [r.stream for r in results] == [STREAM_OF_SEED_TYPE[event_type]]
    assert results == HANDLERS[event_type](activity)
    assert results[0].value["activity_id"] == activity.id


def test_distribution_types_share_one_handler() -> None:
    assert HANDLERS["customer.braze.sent"] is distribution.notification
    assert HANDLERS["customer.sms.failed"] is distribution.notification


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_alias_routes_like_its_canonical_name(alias: str) -> None:
    router = Router()
    target = ALIASES[alias]
    wire = payload(target)
    wire["type"] = alias
    aliased = activity_of(wire)
    assert aliased.type == alias
    assert router.route(aliased) == router.route(activity_of(payload(target)))


def test_seed_spelling_of_segment_entered() -> None:
    router = Router()
    # the table holds the alias too, so even an Activity built without folding routes right
    activity = activity_of(payload("customer.segment.entered"))
    raw = Activity(
        id=activity.id,
        type="customer.segment_entered",
        canonical_type="customer.segment_entered",
        family="segments",
        data=activity.data,
        created_at_ms=activity.created_at_ms,
    )
    (result,) = router.route(raw)
    assert result.stream == "segments"
    assert result.value["change"] == "entered"


CURRENT_TYPES = json.loads(OPENAPI.read_text())["CustomerActivity.type"]


def test_the_catalogue_is_todays_api_plus_the_seed() -> None:
    assert len(CURRENT_TYPES) == 74
    assert set(CURRENT_TYPES) | SEED_TYPES == KNOWN_TYPES
    assert len(NEWER_TYPES) == 46


@pytest.mark.parametrize("event_type", CURRENT_TYPES)
def test_no_catalogue_type_routes_to_the_fallback(event_type: str) -> None:
    """Every type of today's API, sent as its payload, lands on a typed stream."""
    router = Router()
    activity = activity_of(payload(event_type))
    results = router.route(activity)
    assert results, event_type
    for r in results:
        assert r.stream != "other"
        assert r.schema == STREAM_SCHEMAS[r.stream]
        assert r.value["activity_type"] == event_type


def test_only_unknown_types_reach_other() -> None:
    router = Router()
    for path in corpus_and_fixtures():
        for r in router.route(activity_of(json.loads(path.read_text()))):
            assert r.stream != "other", path.name


@pytest.mark.parametrize("event_type", ["customer.hologram.beamed", "nonsense", ""])
def test_unknown_types_go_to_other(event_type: str) -> None:
    obj = {
        "id": "evcus_0e99aa00bb11cc22dd",
        "type": event_type,
        "data": {"customer": {"id": "cust_U"}, "whatever": [1, 2, 3]},
        "created_at": "2024-06-01T10:00:00.000Z",
        "group_id": "v-0e99aa00bb11cc22ee",
    }
    (result,) = Router().route(activity_of(obj))
    assert result.stream == "other"
    assert result.schema == "voucherify.activity.results.ForwardedActivity"
    assert result.key == "cust_U"
    assert result.value["known"] is False
    assert result.value["activity_type"] == event_type
    assert json.loads(result.value["data_json"]) == {"customer": {"id": "cust_U"}, "whatever": [1, 2, 3]}


def test_the_corpus_and_fixtures_reach_every_typed_stream() -> None:
    router = Router()
    results = [r for p in corpus_and_fixtures() for r in router.route(activity_of(json.loads(p.read_text())))]
    assert len(results) == len(corpus_and_fixtures())  # one result per event
    streams = {r.stream for r in results}
    assert streams == set(STREAMS) - {"other"}  # the corpus and fixtures reach every typed stream


def test_custom_tables_and_fallback() -> None:
    seen: list[str] = []

    def spy(activity: Activity) -> list[Result]:
        seen.append(activity.type)
        return []

    router = Router({"customer.segment.entered": segments.segment_entered}, fallback=spy)
    (entered,) = router.route(activity_of(payload("customer.segment.entered")))
    assert entered.stream == "segments"
    assert router.route(activity_of(payload("customer.created"))) == []
    assert seen == ["customer.created"]


def test_an_alias_key_is_refused() -> None:
    with pytest.raises(ValueError, match="alias"):
        Router({"customer.segment_entered": segments.segment_entered})
