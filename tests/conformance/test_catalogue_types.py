"""The contract covers the seed's 30 types with typed records, decodes today's 46 others,
folds the segment alias, and keeps unknown future types as GenericActivityData."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from consumer import catalogue
from consumer.contract import GENERIC
from consumer.devtools.corpus import EXAMPLES, OPENAPI
from consumer.model import activity_from_record
from consumer.pipeline.codec import AvroCodec, SchemaStore
from tests.support.conformance import identical, load

SEED_SPELLINGS = [
    "customer.confirmed", "customer.created", "customer.updated", "customer.deleted",
    "customer.referred", "customer.custom_event", "customer.segment_entered",
    "customer.segment.left", "customer.sms.sent", "customer.sms.failed", "customer.email.sent",
    "customer.email.failed", "customer.activecampaign.sent", "customer.braze.sent",
    "customer.mailchimp.sent", "customer.intercom.sent", "customer.intercom.failed",
    "customer.rewarded", "customer.rewarded.loyalty_points",
    "customer.voucher.gift.balance_added", "customer.voucher.loyalty_card.points_added",
    "customer.voucher.loyalty_card.points_transferred", "customer.publication.succeeded",
    "customer.publication.failed", "customer.redemption.succeeded", "customer.redemption.failed",
    "customer.redemption.rollback.succeeded", "customer.redemption.rollback.failed",
    "customer.consents.given", "customer.consents.revoked",
]  # fmt: skip
CURRENT = json.loads(OPENAPI.read_text())["CustomerActivity.type"]
OTHER_CURRENT = sorted(set(CURRENT) - {catalogue.canonical(t) for t in SEED_SPELLINGS})

TYPE_TO_SHAPE = SchemaStore().type_to_shape()


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec()


def _activity(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "evcus_0123456789abcdef01",
        "type": event_type,
        "data": data,
        "created_at": "2024-05-13T10:24:01.084Z",
        "group_id": "v-0123456789abcdef01",
    }


def _sample_data(event_type: str) -> dict[str, Any]:
    """The corpus payload of the type when there is one, else a customer-shaped payload."""
    path = EXAMPLES / f"{catalogue.canonical(event_type)}.json"
    if path.exists():
        return dict(load(path)["data"])
    return {
        "customer": {"id": "cust_1", "object": "customer", "metadata": {"tier": ["a", {"b": 1}]}},
        "note": None,
        "brand_new_member": {"x": [1, 2.5, True, None, "é"]},
    }


def test_catalogue_sizes() -> None:
    assert len(set(SEED_SPELLINGS)) == 30
    assert len(CURRENT) == 74
    assert len(OTHER_CURRENT) == 46


@pytest.mark.parametrize("event_type", SEED_SPELLINGS)
def test_seed_type_has_a_typed_record(event_type: str, codec: AvroCodec) -> None:
    shape = TYPE_TO_SHAPE.get(catalogue.canonical(event_type))
    assert shape is not None, f"{event_type} missing from type_to_shape.json"
    assert shape != "GenericActivityData"
    assert f"voucherify.activity.{shape}" in SchemaStore().files
    activity = _activity(event_type, _sample_data(event_type))
    record = codec.decode(codec.encode_json(activity))
    assert codec.branch_of(record) == f"voucherify.activity.{shape}"
    assert record["type"] == event_type
    identical(codec.decode_json(codec.encode_json(activity)), activity)
    assert catalogue.family_of(catalogue.canonical(event_type)) != "unknown"


@pytest.mark.parametrize("event_type", OTHER_CURRENT)
def test_other_current_type_round_trips(event_type: str, codec: AvroCodec) -> None:
    assert event_type in TYPE_TO_SHAPE
    activity = _activity(event_type, _sample_data(event_type))
    payload = codec.encode_json(activity)
    identical(codec.decode_json(payload), activity)
    assert codec.branch_of(codec.decode(payload)) == f"voucherify.activity.{TYPE_TO_SHAPE[event_type]}"
    assert catalogue.family_of(catalogue.canonical(event_type)) != "unknown"


def test_both_segment_spellings_share_a_shape_and_keep_their_text(codec: AvroCodec) -> None:
    data = load(EXAMPLES / "customer.segment.entered.json")["data"]
    records = {}
    for spelling in ("customer.segment_entered", "customer.segment.entered"):
        activity = _activity(spelling, copy.deepcopy(data))
        payload = codec.encode_json(activity)
        records[spelling] = codec.decode(payload)
        decoded = codec.decode_json(payload)
        assert decoded["type"] == spelling
        identical(decoded, activity)
        event = activity_from_record(records[spelling])
        assert event.type == spelling
        assert event.canonical_type == "customer.segment.entered"
        assert event.family == "segments"
    old, new = records["customer.segment_entered"], records["customer.segment.entered"]
    assert codec.branch_of(old) == codec.branch_of(new) == "voucherify.activity.EventCustomerSegmentEntered"
    assert old["data"] == new["data"]


def test_unknown_future_type_is_generic_and_labelled_unknown(codec: AvroCodec) -> None:
    data = {"planet": "Mars", "customer": {"id": "cust_1"}, "metadata": {"n": [1, {"x": None}]}}
    activity = _activity("customer.teleported", data)
    payload = codec.encode_json(activity)
    record = codec.decode(payload)
    assert codec.branch_of(record) == GENERIC
    assert json.loads(record["data"]["json"]) == data
    identical(codec.decode_json(payload), activity)
    assert catalogue.family_of(catalogue.canonical("customer.teleported")) == "unknown"
    assert catalogue.label_of("customer.teleported") == "other"
    assert activity_from_record(record).family == "unknown"


def test_known_type_with_a_top_level_member_of_the_wrong_type_still_round_trips(
    codec: AvroCodec,
) -> None:
    activity = _activity("customer.segment.left", {"customer": "not-an-object", "segment": 7})
    identical(codec.decode_json(codec.encode_json(activity)), activity)
