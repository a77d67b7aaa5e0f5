"""Values the JSON<->Avro conversion must carry exactly: created_at as timestamp-millis
(with non-canonical texts kept), free-form objects, explicit null against absent, unknown
members (`_extra`), and the errors for activities that cannot be encoded."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumer.contract import GENERIC
from consumer.devtools.corpus import EXAMPLES
from consumer.pipeline.codec import AvroCodec, EncodeError, SchemaStore
from consumer.pipeline.codec.jsonavro import iso_to_ms, ms_to_iso
from tests.support.conformance import identical

REPO = Path(__file__).resolve().parents[4]
SEGMENT = json.loads((EXAMPLES / "customer.segment.entered.json").read_text())
REWARD_COMPLETED = json.loads((EXAMPLES / "customer.reward_redemptions.completed.json").read_text())


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec()


def roundtrip(codec: AvroCodec, activity: dict[str, Any]) -> dict[str, Any]:
    return codec.decode_json(codec.encode_json(activity))


# -- created_at ---------------------------------------------------------------------------
def test_created_at_is_timestamp_millis_in_the_schema() -> None:
    field = next(f for f in SchemaStore().envelope["fields"] if f["name"] == "created_at")
    assert field["type"] == {"type": "long", "logicalType": "timestamp-millis"}


def test_created_at_travels_as_milliseconds(codec: AvroCodec) -> None:
    record = codec.converter.to_avro(SEGMENT)
    expected = datetime(2024, 2, 29, 14, 4, 46, 506000, tzinfo=UTC)
    assert record["created_at"] == int(expected.timestamp() * 1000) == 1709215486506
    assert record["created_at_text"] is None  # canonical text: nothing extra on the wire
    decoded = codec.decode(codec.encode_json(SEGMENT))
    assert decoded["created_at"] == expected
    assert roundtrip(codec, SEGMENT)["created_at"] == "2024-02-29T14:04:46.506Z"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1970-01-01T00:00:00.000Z", 0),
        ("1970-01-01T00:00:00.001Z", 1),
        ("1969-12-31T23:59:59.999Z", -1),
        ("2024-05-13T10:24:01.084Z", 1715595841084),
        ("2038-01-19T03:14:07.999Z", 2147483647999),
        ("2099-12-31T23:59:59.999Z", 4102444799999),
    ],
)
def test_canonical_texts_round_trip_to_the_millisecond(codec: AvroCodec, text: str, ms: int) -> None:
    assert iso_to_ms(text) == ms
    assert ms_to_iso(ms) == text
    activity = {**SEGMENT, "created_at": text}
    record = codec.converter.to_avro(activity)
    assert record["created_at"] == ms
    assert record["created_at_text"] is None
    identical(roundtrip(codec, activity), activity)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2024-05-13T10: 24: 01.084Z", 1715595841084),  # as in Voucherify's own example
        ("2024-01-18T15:18:39.015000Z", 1705591119015),
        ("2024-05-13T12:24:01.084+02:00", 1715595841084),
        ("2024-05-13T10:24:01Z", 1715595841000),
        ("2024-05-13T10:24:01.0849Z", 1715595841085),
        ("2024-05-13T10:24:01.084", 1715595841084),
    ],
)
def test_non_canonical_texts_round_trip_exactly(codec: AvroCodec, text: str, ms: int) -> None:
    activity = {**SEGMENT, "created_at": text}
    record = codec.converter.to_avro(activity)
    assert record["created_at"] == ms
    assert record["created_at_text"] == ("string", text)
    identical(roundtrip(codec, activity), activity)


def test_the_corpus_non_canonical_text_round_trips(codec: AvroCodec) -> None:
    assert REWARD_COMPLETED["created_at"] == "2024-05-13T10: 24: 01.084Z"
    identical(roundtrip(codec, REWARD_COMPLETED), REWARD_COMPLETED)
    assert codec.decode(codec.encode_json(REWARD_COMPLETED))["created_at"] == datetime(
        2024, 5, 13, 10, 24, 1, 84000, tzinfo=UTC
    )


@pytest.mark.parametrize("bad", ["yesterday", "", "2024-13-01T00:00:00Z", "2024-05-13T25:00:00Z"])
def test_bad_created_at_is_an_encode_error(codec: AvroCodec, bad: str) -> None:
    with pytest.raises(EncodeError, match="created_at"):
        codec.encode_json({**SEGMENT, "created_at": bad})


# -- free-form objects ----------------------------------------------------------------------
NESTED_METADATA = {
    "tiers": [{"name": "gold", "levels": [1, 2, {"deep": {"deeper": [None, True, False]}}]}],
    "unicode": 'zażółć gęślą jaźń 🎟️ 中文 \u0000 \n\t"quoted"',
    "big": 2**200,
    "negative_big": -(2**100),
    "int64_edge": 2**63,
    "float": 0.1,
    "tiny": 5e-324,
    "huge_float": 1.7976931348623157e308,
    "neg_zero_free": -1.5,
    "whole_float": 2.0,
    "bool": True,
    "null": None,
    "empty_obj": {},
    "empty_list": [],
    "": "empty key",
    "list_of_lists": [[[]], [{}], [[1, "a"]]],
}


def test_nested_metadata_round_trips_exactly(codec: AvroCodec) -> None:
    activity = copy.deepcopy(SEGMENT)
    activity["data"]["customer"]["metadata"] = NESTED_METADATA
    activity["data"]["customer"]["system_metadata"] = {"a": [NESTED_METADATA]}
    identical(roundtrip(codec, activity), activity)


def test_metadata_of_a_generic_event_round_trips_exactly(codec: AvroCodec) -> None:
    activity = {**SEGMENT, "type": "customer.teleported", "data": {"metadata": NESTED_METADATA}}
    assert codec.branch_of(codec.decode(codec.encode_json(activity))) == GENERIC
    identical(roundtrip(codec, activity), activity)


def test_typed_numbers_keep_int_and_float_apart(codec: AvroCodec) -> None:
    activity = copy.deepcopy(SEGMENT)
    summary = activity["data"]["customer"]["summary"]["orders"]
    summary["total_amount"] = 2500
    summary["average_amount"] = 2500.0
    summary["total_count"] = True  # a boolean where a long is due: kept, as a boolean
    identical(roundtrip(codec, activity), activity)


def test_big_int_in_a_typed_field_round_trips_or_is_an_encode_error(codec: AvroCodec) -> None:
    """2**70 does not fit an Avro long. It must not escape as OverflowError (the CLI and the
    pipeline only expect EncodeError); keeping it (as `_extra` does for other misfits) is
    best."""
    activity = copy.deepcopy(SEGMENT)
    activity["data"]["customer"]["loyalty"]["points"] = 2**70
    try:
        payload = codec.encode_json(activity)
    except EncodeError:
        return
    identical(codec.decode_json(payload), activity)


def test_lone_surrogate_is_an_encode_error(codec: AvroCodec) -> None:
    """`"\\ud800"` is valid JSON text but not UTF-8: EncodeError, not UnicodeEncodeError."""
    activity = copy.deepcopy(SEGMENT)
    activity["data"]["customer"]["name"] = json.loads('"\\ud800"')
    with pytest.raises(EncodeError):
        codec.encode_json(activity)


# -- explicit null against absent -----------------------------------------------------------
def test_explicit_nulls_and_absent_fields_round_trip(codec: AvroCodec) -> None:
    activity = copy.deepcopy(SEGMENT)
    customer = activity["data"]["customer"]
    assert customer["address"]["city"] is None
    customer["email"] = None  # explicit null
    customer.pop("name")  # absent
    customer["metadata"] = None
    activity["data"]["segment"]["object"] = None
    got = roundtrip(codec, activity)
    identical(got, activity)
    assert "name" not in got["data"]["customer"]
    assert got["data"]["customer"]["email"] is None
    record = codec.decode(codec.encode_json(activity))
    assert set(record["data"]["customer"]["_json_nulls"]) == {"email", "metadata"}


def test_an_empty_record_stays_empty(codec: AvroCodec) -> None:
    activity = {**SEGMENT, "data": {}}
    identical(roundtrip(codec, activity), activity)
    activity = {**SEGMENT, "data": {"customer": {}, "segment": {}}}
    identical(roundtrip(codec, activity), activity)


@pytest.mark.parametrize("field", ["group_id", "event_source"])
def test_explicit_null_envelope_field_round_trips(codec: AvroCodec, field: str) -> None:
    activity = {**SEGMENT, field: None}
    identical(roundtrip(codec, activity), activity)


def test_absent_group_id_stays_absent(codec: AvroCodec) -> None:
    activity = {k: v for k, v in SEGMENT.items() if k != "group_id"}
    got = roundtrip(codec, activity)
    assert "group_id" not in got
    identical(got, activity)


# -- unknown members --------------------------------------------------------------------------
def test_unknown_members_round_trip_in_extra(codec: AvroCodec) -> None:
    activity = copy.deepcopy(SEGMENT)
    activity["data"]["added_tomorrow"] = {"nested": [1, {"x": None}], "s": "é"}
    activity["data"]["customer"]["loyalty_tier_v2"] = [1, 2.5, None]
    activity["data"]["customer"]["address"]["geo"] = {"lat": 52.2, "lng": 21.0}
    activity["data"]["segment"]["name"] = 42  # a known member of the wrong type
    record = codec.decode(codec.encode_json(activity))
    data = record["data"]
    assert json.loads(data["_extra"]) == {"added_tomorrow": activity["data"]["added_tomorrow"]}
    assert json.loads(data["customer"]["_extra"]) == {"loyalty_tier_v2": [1, 2.5, None]}
    assert json.loads(data["segment"]["_extra"]) == {"name": 42}
    identical(roundtrip(codec, activity), activity)


def test_no_extra_when_everything_is_known(codec: AvroCodec) -> None:
    data = codec.decode(codec.encode_json(SEGMENT))["data"]
    assert data["_extra"] is None
    assert data["segment"]["_extra"] is None


# -- encode errors --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "id"),
        ({"id": 5}, "id"),
        ({"type": None}, "type"),
        ({"created_at": 1715595841084}, "created_at"),
        ({"data": [1, 2]}, "data"),
        ({"data": "x"}, "data"),
        ({"group_id": 5}, "group_id"),
        ({"event_source": "api"}, "event_source"),
    ],
)
def test_bad_envelopes_are_encode_errors(codec: AvroCodec, change: dict[str, Any], message: str) -> None:
    activity = {**SEGMENT, **change}
    activity = {k: v for k, v in activity.items() if not (k in change and change[k] is None)}
    with pytest.raises(EncodeError, match=message):
        codec.encode_json(activity)


@pytest.mark.parametrize("activity", [[], "x", 5, None])
def test_non_object_activity_is_an_encode_error(codec: AvroCodec, activity: Any) -> None:
    with pytest.raises(EncodeError):
        codec.encode_json(activity)
