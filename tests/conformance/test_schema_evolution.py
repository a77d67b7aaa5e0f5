"""Schema evolution with a real older and a real newer writer schema, built from the
current envelope (see avro/history/README.md): events written with either decode with
the current codec, in both framings."""

from __future__ import annotations

import copy
import json

import pytest
from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from consumer.contract import GENERIC
from consumer.pipeline.codec import AvroCodec, DecodeError, SchemaStore
from tests.support.conformance import identical
from tests.support.schema_variants import (
    ACTIVITY,
    NS,
    SEGMENT_ENTERED,
    TELEPORTED,
    WITH_SOURCE,
    Variant,
    newer_envelope,
    older_envelope,
    single_object,
)

FRAMINGS = ["single-object", "confluent"]


def test_the_variants_really_differ() -> None:
    current = parse_schema(SchemaStore().envelope)
    for variant in (older_envelope(), newer_envelope()):
        assert to_parsing_canonical_form(parse_schema(variant)) != to_parsing_canonical_form(current)


# -- older writer ---------------------------------------------------------------------------
@pytest.mark.parametrize("framing", FRAMINGS)
def test_older_writer_decodes_with_defaults(framing: str) -> None:
    variant = Variant(older_envelope(), framing)
    record = variant.reader.converter.to_avro(WITH_SOURCE)
    record.pop("event_source")
    segment = record["data"][1]["segment"]  # a union value: (branch, record)
    assert segment[0] == f"{NS}.SimpleSegment"
    segment[1].pop("name")
    payload = variant.write(record)
    decoded = variant.reader.decode(payload)
    assert decoded["event_source"] is None  # the default
    assert variant.reader.branch_of(decoded) == SEGMENT_ENTERED
    assert decoded["data"]["segment"]["name"] is None  # the default
    expected = copy.deepcopy(ACTIVITY)
    del expected["data"]["segment"]["name"]
    identical(variant.reader.decode_json(payload), expected)


# -- newer writer -----------------------------------------------------------------------------
@pytest.mark.parametrize("framing", FRAMINGS)
def test_newer_writer_added_field_is_ignored(framing: str) -> None:
    variant = Variant(newer_envelope(), framing)
    record = variant.reader.converter.to_avro(WITH_SOURCE)
    record["data"][1]["priority"] = 7
    payload = variant.write(record)
    decoded = variant.reader.decode(payload)
    assert variant.reader.branch_of(decoded) == SEGMENT_ENTERED
    assert "priority" not in decoded["data"]
    identical(variant.reader.decode_json(payload), WITH_SOURCE)


TELEPORTED_JSON = {
    "planet": "Mars",
    "distance_km": 225000000,
    "vehicle": {"name": "beam", "seats": 1},
    "tags": ["fast", "zażółć"],
    "counts": {"hops": 3},
    "metadata": {"nested": [{"a": None}, 2**80, 1.5, True]},
    "customer": {"id": "cust_1", "metadata": {"vip": True}},
}


@pytest.mark.parametrize("framing", FRAMINGS)
def test_newer_writer_new_branch_decodes_as_generic(framing: str) -> None:
    variant = Variant(newer_envelope(), framing)
    data = {
        "planet": "Mars",
        "distance_km": ("long", 225000000),
        "vehicle": {"name": "beam", "seats": 1},
        "tags": ["fast", "zażółć"],
        "counts": {"hops": 3},
        "metadata": json.dumps(TELEPORTED_JSON["metadata"]),
        "customer": {"id": "cust_1", "metadata": '{"vip": true}'},
        "note": None,
    }
    record = {
        "id": "evcus_future",
        "type": "customer.teleported",
        "data": (TELEPORTED, data),
        "created_at": 1715595841084,
        "group_id": "v-1",
    }
    payload = variant.write(record)
    decoded = variant.reader.decode(payload)
    assert variant.reader.branch_of(decoded) == GENERIC
    assert json.loads(decoded["data"]["json"]) == TELEPORTED_JSON
    got = variant.reader.decode_json(payload)
    identical(
        got,
        {
            "id": "evcus_future",
            "type": "customer.teleported",
            "data": TELEPORTED_JSON,
            "created_at": "2024-05-13T10:24:01.084Z",
            "group_id": "v-1",
        },
    )
    # The same reader still reads the variant's events of known types as typed records.
    typed = variant.write(variant.reader.converter.to_avro(ACTIVITY))
    assert variant.reader.branch_of(variant.reader.decode(typed)) == SEGMENT_ENTERED
    identical(variant.reader.decode_json(typed), ACTIVITY)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_new_branch_with_an_enum_decodes_as_generic(framing: str) -> None:
    """Other producers' new records may use Avro enums; the fallback must still cope."""
    branch = {
        "type": "record",
        "name": TELEPORTED,
        "fields": [
            {
                "name": "mood",
                "type": {"type": "enum", "name": f"{NS}.Mood", "symbols": ["HAPPY", "SAD"]},
            },
            {"name": "planet", "type": ["null", "string"], "default": None},
        ],
    }
    variant = Variant(newer_envelope(branch), framing)
    record = {
        "id": "evcus_future",
        "type": "customer.teleported",
        "data": (TELEPORTED, {"mood": "HAPPY", "planet": "Mars"}),
        "created_at": 0,
    }
    payload = variant.write(record)
    decoded = variant.reader.decode(payload)
    assert variant.reader.branch_of(decoded) == GENERIC
    assert json.loads(decoded["data"]["json"]) == {"mood": "HAPPY", "planet": "Mars"}


def test_a_reader_without_the_variant_reports_unknown_fingerprint() -> None:
    payload = single_object(newer_envelope(), AvroCodec().converter.to_avro(ACTIVITY))
    with pytest.raises(DecodeError) as exc:
        AvroCodec().decode(payload)
    assert exc.value.reason == "unknown_fingerprint"
    assert AvroCodec(known_writers=(newer_envelope(),)).decode_json(payload) == ACTIVITY
