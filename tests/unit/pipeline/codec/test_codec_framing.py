"""Wire framings: the single-object header (checked against an independent CRC-64-AVRO),
Confluent registration and lookup through a mock Schema Registry, and every malformed
input answered with a DecodeError of the right reason."""

from __future__ import annotations

import io
import json
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import to_parsing_canonical_form

from consumer.devtools.corpus import EXAMPLES
from consumer.pipeline.codec import AvroCodec, DecodeError, RegistryUnavailable, SchemaStore

REPO = Path(__file__).resolve().parents[4]
ACTIVITY = json.loads((EXAMPLES / "customer.segment.entered.json").read_text())


# -- CRC-64-AVRO, written from the Avro specification ("Schema Fingerprints") -------------
_EMPTY = 0xC15D213AA4D7A795


def _table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _table()


def crc64_avro(data: bytes) -> int:
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def test_crc64_avro_matches_the_spec_test_vector() -> None:
    # Avro's published fingerprint of the schema "null" (the Java and C test suites').
    assert crc64_avro(b'"null"') == 7195948357588979594


def mock_registry() -> Any:
    return SchemaRegistryClient.new_client({"url": f"mock://test-{uuid.uuid4()}"})


@pytest.fixture(scope="module")
def single() -> AvroCodec:
    return AvroCodec()


@pytest.fixture()
def registry() -> Any:
    return mock_registry()


# -- single-object ------------------------------------------------------------------------
def test_single_object_header_is_magic_and_le_fingerprint(single: AvroCodec) -> None:
    payload = single.encode_json(ACTIVITY)
    canonical = to_parsing_canonical_form(parse_schema(SchemaStore().envelope))
    assert payload[:2] == b"\xc3\x01"
    assert payload[2:10] == crc64_avro(canonical.encode()).to_bytes(8, "little")


def test_fingerprint_agrees_with_the_apache_library(single: AvroCodec) -> None:
    import avro.schema

    canonical = to_parsing_canonical_form(parse_schema(SchemaStore().envelope))
    apache = avro.schema.parse(canonical).fingerprint("CRC-64-AVRO")
    assert single.encode_json(ACTIVITY)[2:10] == bytes(apache)


def test_unknown_fingerprint(single: AvroCodec) -> None:
    payload = bytearray(single.encode_json(ACTIVITY))
    payload[5] ^= 0xFF
    with pytest.raises(DecodeError) as exc:
        single.decode(bytes(payload))
    assert exc.value.reason == "unknown_fingerprint"


@pytest.mark.parametrize("payload", [b"\x01\x02\x03", b"\xc3\x02" + b"\x00" * 20, b"[]", b"\xff"])
def test_wrong_magic(single: AvroCodec, payload: bytes) -> None:
    with pytest.raises(DecodeError) as exc:
        single.decode(payload)
    assert exc.value.reason == "bad_magic"


def test_empty(single: AvroCodec) -> None:
    with pytest.raises(DecodeError) as exc:
        single.decode(b"")
    assert exc.value.reason == "empty"


def _codecs() -> list[Any]:
    return [
        pytest.param(lambda: AvroCodec(), id="single-object"),
        pytest.param(lambda: AvroCodec(framing="confluent", registry=mock_registry()), id="confluent"),
    ]


@pytest.mark.parametrize("make", _codecs())
def test_trailing_bytes(make: Any) -> None:
    codec = make()
    payload = codec.encode_json(ACTIVITY)
    for garbage in (b"\x00", b"junk", b"\xc3\x01"):
        with pytest.raises(DecodeError) as exc:
            codec.decode(payload + garbage)
        assert exc.value.reason == "trailing_bytes"


@pytest.mark.parametrize("make", _codecs())
def test_every_prefix_is_truncated_or_malformed(make: Any) -> None:
    codec = make()
    payload = codec.encode_json(ACTIVITY)
    assert codec.decode_json(payload) == ACTIVITY
    for n in range(2, len(payload)):
        with pytest.raises(DecodeError) as exc:
            codec.decode_json(payload[:n])
        assert exc.value.reason in ("truncated", "malformed"), (n, exc.value)


@pytest.mark.parametrize("make", _codecs())
def test_one_byte_prefix_is_truncated(make: Any) -> None:
    """`C3` alone is the start of a single-object header, `00` of a Confluent one."""
    codec = make()
    payload = codec.encode_json(ACTIVITY)
    with pytest.raises(DecodeError) as exc:
        codec.decode(payload[:1])
    assert exc.value.reason in ("truncated", "malformed")


def test_decode_returns_the_envelope_record(single: AvroCodec) -> None:
    record = single.decode(single.encode_json(ACTIVITY))
    assert record["id"] == ACTIVITY["id"]
    assert record["type"] == "customer.segment.entered"
    assert single.branch_of(record) == "voucherify.activity.EventCustomerSegmentEntered"
    assert record["data"]["segment"]["name"] == "New Customers"


# -- Confluent ----------------------------------------------------------------------------
def test_confluent_registers_and_frames_with_the_id(registry: Any) -> None:
    codec = AvroCodec(framing="confluent", registry=registry, subject="activity-value")
    payload = codec.encode_json(ACTIVITY)
    (magic, schema_id) = struct.unpack(">bI", payload[:5])
    assert magic == 0
    latest = registry.get_latest_version("activity-value")
    assert latest.schema_id == schema_id
    assert json.loads(latest.schema.schema_str) == SchemaStore().envelope
    assert codec.decode_json(payload) == ACTIVITY
    # Registration happens once: a second event reuses the header.
    assert codec.encode_json(ACTIVITY)[:5] == payload[:5]
    assert registry.get_versions("activity-value") == [1]


class _Counting:
    """A registry client that counts schema lookups by id."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lookups = 0

    def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Any:
        self.lookups += 1
        return self.inner.get_schema(schema_id, *args, **kwargs)

    def register_schema(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.register_schema(*args, **kwargs)


def test_a_fresh_codec_resolves_the_id_through_the_registry(registry: Any) -> None:
    writer = AvroCodec(framing="confluent", registry=registry)
    payload = writer.encode_json(ACTIVITY)
    counting = _Counting(registry)
    reader = AvroCodec(framing="confluent", registry=counting)  # empty cache, same registry
    assert reader.decode_json(payload) == ACTIVITY
    assert counting.lookups == 1
    assert reader.decode_json(payload) == ACTIVITY
    assert counting.lookups == 1  # cached


def test_a_single_object_codec_with_a_registry_reads_confluent_events(registry: Any) -> None:
    payload = AvroCodec(framing="confluent", registry=registry).encode_json(ACTIVITY)
    assert AvroCodec(registry=registry).decode_json(payload) == ACTIVITY


def test_unknown_schema_id(registry: Any) -> None:
    codec = AvroCodec(framing="confluent", registry=registry)
    payload = codec.encode_json(ACTIVITY)
    bogus = struct.pack(">bI", 0, 987654) + payload[5:]
    with pytest.raises(DecodeError) as exc:
        codec.decode(bogus)
    assert exc.value.reason == "unknown_schema_id"


def test_confluent_event_without_a_registry_is_unknown_schema_id(registry: Any) -> None:
    payload = AvroCodec(framing="confluent", registry=registry).encode_json(ACTIVITY)
    with pytest.raises(DecodeError) as exc:
        AvroCodec().decode(payload)
    assert exc.value.reason == "unknown_schema_id"


def test_registry_down_is_not_a_decode_error_and_fails_fast_until_retried(registry: Any) -> None:
    payload = AvroCodec(framing="confluent", registry=registry).encode_json(ACTIVITY)

    class Flaky:
        calls = 0
        up = False

        def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if not self.up:
                raise ConnectionError("connection refused")
            return registry.get_schema(schema_id)

    client = Flaky()
    codec = AvroCodec(framing="confluent", registry=client)
    with pytest.raises(RegistryUnavailable):  # the event is not at fault: not a DecodeError
        codec.decode(payload)
    assert not codec.registry_healthy
    with pytest.raises(RegistryUnavailable):
        codec.decode(payload)
    assert client.calls == 1  # failed fast: one batch does not wait on one timeout per event
    client.up = True
    codec.retry_registry()
    assert codec.decode(payload)["id"] == ACTIVITY["id"]
    assert codec.registry_healthy and client.calls == 2


@pytest.mark.parametrize("status", [500, 503, 401, 429])
def test_registry_errors_other_than_404_are_unavailable(registry: Any, status: int) -> None:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    payload = AvroCodec(framing="confluent", registry=registry).encode_json(ACTIVITY)

    class Failing:
        def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Any:
            raise SchemaRegistryError(status, status * 100, "no")

    with pytest.raises(RegistryUnavailable):
        AvroCodec(framing="confluent", registry=Failing()).decode(payload)


def test_confluent_needs_a_registry() -> None:
    with pytest.raises(ValueError):
        AvroCodec(framing="confluent")


# -- foreign writers: decoding raises DecodeError and nothing else ------------------------
def _confluent_event(registry: Any, schema: Any, value: Any) -> bytes:
    schema_id = registry.register_schema("other-value", RegistrySchema(json.dumps(schema), "AVRO"))
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(schema), value)
    return struct.pack(">bI", 0, schema_id) + buf.getvalue()


FOREIGN = [
    pytest.param("string", "abc", id="a-string"),
    pytest.param(
        {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "long"}]},
        {"x": 1},
        id="record-without-data",
    ),
    pytest.param(
        {"type": "record", "name": "Other", "fields": [{"name": "data", "type": "string"}]},
        {"data": "abcd"},
        id="record-with-string-data",
    ),
    pytest.param(
        {
            "type": "record",
            "name": "voucherify.activity.CustomerActivity",
            "fields": [{"name": "data", "type": "string"}],
        },
        {"data": "ab"},
        id="same-name-other-fields",
    ),
]


@pytest.mark.parametrize(("schema", "value"), FOREIGN)
def test_an_event_of_a_foreign_schema_is_a_decode_error(registry: Any, schema: Any, value: Any) -> None:
    payload = _confluent_event(registry, schema, value)
    codec = AvroCodec(framing="confluent", registry=registry)
    for decode in (codec.decode, codec.decode_json):
        with pytest.raises(DecodeError) as exc:
            decode(payload)
        assert exc.value.reason in ("incompatible_schema", "malformed")


def test_a_registered_schema_fastavro_cannot_parse_is_a_decode_error(registry: Any) -> None:
    schema_id = registry.register_schema("other-value", RegistrySchema('{"type": "bogus"}', "AVRO"))
    codec = AvroCodec(framing="confluent", registry=registry)
    with pytest.raises(DecodeError) as exc:
        codec.decode(struct.pack(">bI", 0, schema_id) + b"\x00")
    assert exc.value.reason in ("incompatible_schema", "malformed")


GENERIC = "voucherify.activity.GenericActivityData"
SEGMENT = "voucherify.activity.EventCustomerSegmentEntered"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param((GENERIC, {"json": "not json"}), id="generic-json-not-json"),
        pytest.param((GENERIC, {"json": "[1, 2]"}), id="generic-json-not-an-object"),
        pytest.param((SEGMENT, {"_extra": "{bad"}), id="extra-not-json"),
        pytest.param((SEGMENT, {"_extra": "[1]"}), id="extra-not-an-object"),
        pytest.param((SEGMENT, {"customer": {"metadata": "{oops"}}), id="free-form-field-not-json"),
    ],
)
def test_well_framed_record_with_bad_json_text_is_a_decode_error(single: AvroCodec, data: Any) -> None:
    """Another producer may write the contract with broken JSON text in an `x-json` field:
    that event is malformed, and `decode_json` (which the CLI and the pipeline call) must
    say so with a DecodeError rather than leak a JSONDecodeError or TypeError."""
    record = {
        "id": "evcus_1",
        "type": "customer.teleported",
        "data": data,
        "created_at": 0,
    }
    buf = io.BytesIO()
    schemaless_writer(buf, single.current.parsed, record)
    payload = single.single_object.frame(buf.getvalue())
    with pytest.raises(DecodeError) as exc:
        single.decode_json(payload)
    assert exc.value.reason == "malformed"
