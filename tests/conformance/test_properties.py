"""Property tests: generated activities round-trip exactly, and no byte string makes the
decoder raise anything but DecodeError."""

from __future__ import annotations

import copy
import struct
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from consumer.contract import GENERIC
from consumer.pipeline.codec import AvroCodec, DecodeError, EncodeError
from tests.support.activity_strategies import CORPUS, EPOCH, SETTINGS, activities, free_form, json_values
from tests.support.conformance import identical, mock_registry

CODEC = AvroCodec()
REGISTRY = mock_registry()
CONFLUENT = AvroCodec(framing="confluent", registry=REGISTRY)


# -- (a) round trips ------------------------------------------------------------------------
@SETTINGS
@given(activities())
def test_generated_activities_round_trip_exactly(case: tuple[dict[str, Any], int]) -> None:
    activity, ms = case
    for codec in (CODEC, CONFLUENT):
        payload = codec.encode_json(activity)
        record = codec.decode(payload)
        assert record["created_at"] == EPOCH + timedelta(milliseconds=ms)
        assert record["type"] == activity["type"]
        shape = codec.converter.shape_of.get(
            "customer.segment.entered" if activity["type"] == "customer.segment_entered" else activity["type"]
        )
        if shape is None:
            assert codec.branch_of(record) == GENERIC
        identical(codec.decode_json(payload), activity)


@SETTINGS
@given(free_form, st.sampled_from(CORPUS))
def test_metadata_round_trips_exactly(metadata: dict[str, Any], base: dict[str, Any]) -> None:
    activity = copy.deepcopy(base)
    customer = activity["data"].get("customer")
    target = customer if isinstance(customer, dict) else activity["data"]
    target["metadata"] = metadata
    identical(CODEC.decode_json(CODEC.encode_json(activity)), activity)


# -- (b) decoding garbage ---------------------------------------------------------------------
def _decodes_or_decode_error(codec: AvroCodec, payload: bytes) -> None:
    try:
        record = codec.decode(payload)
    except DecodeError:
        return
    assert "data" in record


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(payload: bytes) -> None:
    _decodes_or_decode_error(CODEC, payload)
    _decodes_or_decode_error(CONFLUENT, payload)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_after_a_valid_fingerprint(rest: bytes) -> None:
    _decodes_or_decode_error(CODEC, CODEC.single_object.header + rest)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_after_a_valid_schema_id(rest: bytes) -> None:
    header = CONFLUENT.encode_json(CORPUS[0])[:5]
    assert struct.unpack(">bI", header)[1] > 0
    _decodes_or_decode_error(CONFLUENT, header + rest)


JSON_PUNCTUATION = frozenset(b'{}[]":,')


@SETTINGS
@given(st.sampled_from(CORPUS), st.data())
def test_corrupted_valid_events_decode_or_give_decode_error(base: dict[str, Any], data: st.DataObject) -> None:
    """Flip, drop or insert bytes in a real event's body, anywhere or where the JSON text of
    a free-form field is; `decode_json` (what the CLI and the pipeline call) must answer
    with an activity or a DecodeError, nothing else."""
    payload = bytearray(CODEC.encode_json(base))
    for _ in range(data.draw(st.integers(1, 3))):
        anywhere = list(range(10, len(payload)))
        in_json = [i for i in anywhere if payload[i] in JSON_PUNCTUATION] or anywhere
        i = data.draw(st.sampled_from(in_json) | st.sampled_from(anywhere))
        op = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        if op == "flip":
            payload[i] ^= data.draw(st.integers(1, 255))
        elif op == "drop":
            del payload[i]
        else:
            payload.insert(i, data.draw(st.integers(0, 255)))
    try:
        out = CODEC.decode_json(bytes(payload))
    except DecodeError:
        return
    assert isinstance(out, dict)
    assert isinstance(out["data"], dict)


@SETTINGS
@given(json_values)
def test_any_json_encodes_exactly_or_is_an_encode_error(value: Any) -> None:
    for activity in (value, {**CORPUS[0], "data": value}):
        try:
            payload = CODEC.encode_json(activity)
        except EncodeError:
            continue
        data = activity["data"]
        if data.keys() <= {"data", "event_source"} and "data" in data:
            continue  # the nested OpenAPI form: decodes flat, by design
        identical(CODEC.decode_json(payload), activity)
