"""Schema evolution with a real older and a real newer writer schema, built from the
current envelope (see avro/history/README.md): events written with either decode with
the current codec, in both framings."""

from __future__ import annotations

import copy
import io
import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema as RegistrySchema
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from consumer.contract import GENERIC
from consumer.pipeline.codec import DEFAULT_SUBJECT, AvroCodec, DecodeError, SchemaStore

from ._support import EXAMPLES, identical, load, mock_registry

NS = "voucherify.activity"
SEGMENT_ENTERED = f"{NS}.EventCustomerSegmentEntered"
TELEPORTED = f"{NS}.EventCustomerTeleported"
ACTIVITY = load(EXAMPLES / "customer.segment.entered.json")
WITH_SOURCE = {**ACTIVITY, "event_source": {"channel": "API", "user": {"id": "user_1"}}}


def records(schema: Any) -> Iterator[dict[str, Any]]:
    """Every record defined in an expanded schema."""
    if isinstance(schema, list):
        for b in schema:
            yield from records(b)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            yield schema
            for f in schema["fields"]:
                yield from records(f["type"])
        elif schema.get("type") == "array":
            yield from records(schema["items"])
        elif schema.get("type") == "map":
            yield from records(schema["values"])


def record_named(schema: Any, name: str) -> dict[str, Any]:
    return next(r for r in records(schema) if r["name"] == name)


def field_named(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in record["fields"] if f["name"] == name)


def older_envelope() -> dict[str, Any]:
    """Current minus two fields that have defaults: the envelope's `event_source`, and
    `name` of the segment record inside the segment events' data."""
    env = copy.deepcopy(SchemaStore().envelope)
    env["fields"] = [f for f in env["fields"] if f["name"] != "event_source"]
    segment = record_named(env, f"{NS}.SimpleSegment")
    assert field_named(segment, "name")["default"] is None
    segment["fields"] = [f for f in segment["fields"] if f["name"] != "name"]
    return env


TELEPORTED_RECORD = {
    "type": "record",
    "name": TELEPORTED,
    "doc": "A data shape this reader has never seen.",
    "fields": [
        {"name": "planet", "type": ["null", "string"], "default": None},
        {"name": "distance_km", "type": ["null", "long", "double"], "default": None},
        {
            "name": "vehicle",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": f"{NS}.TeleportVehicle",
                    "fields": [
                        {"name": "name", "type": "string"},
                        {"name": "seats", "type": ["null", "long"], "default": None},
                    ],
                },
            ],
            "default": None,
        },
        {"name": "tags", "type": ["null", {"type": "array", "items": "string"}], "default": None},
        {"name": "counts", "type": ["null", {"type": "map", "values": "long"}], "default": None},
        {"name": "metadata", "type": ["null", {"type": "string", "x-json": True}], "default": None},
        {"name": "customer", "type": ["null", f"{NS}.SimpleCustomer"], "default": None},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}


def newer_envelope(branch: dict[str, Any] = TELEPORTED_RECORD) -> dict[str, Any]:
    """Current plus (1) `priority` (default null) in the segment-entered data record and
    (2) a new record type in the `data` union."""
    env = copy.deepcopy(SchemaStore().envelope)
    seg = record_named(env, SEGMENT_ENTERED)
    seg["fields"].insert(2, {"name": "priority", "type": ["null", "long"], "default": None})
    data = field_named(env, "data")
    data["type"].insert(len(data["type"]) - 1, copy.deepcopy(branch))
    return env


def body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(schema), record)
    return buf.getvalue()


def single_object(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    fp = fingerprint(to_parsing_canonical_form(parse_schema(schema)), "CRC-64-AVRO")
    return b"\xc3\x01" + bytes.fromhex(fp) + body(schema, record)


class Variant:
    """A writer schema, and a reading codec (current schema) that can find it, per framing."""

    def __init__(self, schema: dict[str, Any], framing: str) -> None:
        self.schema = schema
        self.framing = framing
        if framing == "single-object":
            self.reader = AvroCodec(known_writers=(schema,))
        else:
            registry = mock_registry()
            AvroCodec(framing="confluent", registry=registry).encode_json(ACTIVITY)  # current: v1
            self.schema_id = registry.register_schema(DEFAULT_SUBJECT, RegistrySchema(json.dumps(schema), "AVRO"))
            assert sorted(registry.get_versions(DEFAULT_SUBJECT)) == [1, 2]
            self.reader = AvroCodec(framing="confluent", registry=registry)

    def write(self, record: dict[str, Any]) -> bytes:
        if self.framing == "single-object":
            return single_object(self.schema, record)
        return struct.pack(">bI", 0, self.schema_id) + body(self.schema, record)


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
