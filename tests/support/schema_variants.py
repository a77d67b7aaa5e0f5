"""Real older and newer writer schemas of the activity envelope, built from the current one
(see avro/history/README.md), and `Variant`: a writer schema with a current reader codec that can
find it, per framing. Used by tests/conformance (schema evolution, engine differential)."""

from __future__ import annotations

import copy
import io
import json
import struct
from collections.abc import Iterator
from typing import Any

from confluent_kafka.schema_registry import Schema as RegistrySchema
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from consumer.pipeline.codec import DEFAULT_SUBJECT, AvroCodec, SchemaStore
from tests.support.conformance import EXAMPLES, load, mock_registry

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
