"""Wire framings of an Avro body, and which writer schema each one names.

- Confluent Schema Registry: `0x00` + a 4-byte big-endian schema id + the body.
- Avro single-object encoding: `C3 01` + the 8-byte little-endian CRC-64-AVRO
  fingerprint of the writer schema + the body, resolved from local schemas.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Final, Literal

from consumer.contract import ENVELOPE
from consumer.errors import ConsumerError
from consumer.pipeline.codec.registry import NotRegistered, Registry, RegistryUnavailable
from consumer.pipeline.codec.schemas import Schema, crc64_fingerprint, parsed

SINGLE_OBJECT_MAGIC: Final = b"\xc3\x01"
CONFLUENT_MAGIC: Final = 0
Framing = Literal["single-object", "confluent"]
FRAMINGS: Final[tuple[Framing, ...]] = ("single-object", "confluent")

# Bounded set of reasons, used as a metric label and a dead-letter header.
DecodeReason = Literal[
    "empty",
    "bad_magic",
    "truncated",
    "unknown_fingerprint",
    "unknown_schema_id",
    "malformed",
    "trailing_bytes",
    "incompatible_schema",
    "json_malformed",  # JSON input (json_input.py): not parseable JSON text
    "json_not_activity",  # JSON input: parsed, but neither an activity nor a customer delivery
]


class DecodeError(ConsumerError):
    """Bytes that are not a decodable Customer Activity. Never anything else escapes."""

    def __init__(self, reason: DecodeReason, detail: str, framing: str = "unknown") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DecodeReason = reason
        self.detail = detail
        self.framing = framing


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """A writer schema in both forms: JSON (for converters) and fastavro-parsed."""

    raw: Schema
    parsed: dict[str, Any]

    @classmethod
    def of(cls, raw: Schema) -> WriterSchema:
        return cls(raw, parsed(raw))


def detect(payload: bytes) -> Framing:
    """The framing named by the leading bytes (JSON text is told apart first: json_input.is_json)."""
    if not payload:
        raise DecodeError("empty", "empty message value")
    if payload[:2] == SINGLE_OBJECT_MAGIC:
        return "single-object"
    if payload == SINGLE_OBJECT_MAGIC[:1]:
        raise DecodeError("truncated", "one byte of a single-object header", "single-object")
    if payload[0] == CONFLUENT_MAGIC:
        return "confluent"
    raise DecodeError("bad_magic", f"unknown framing, leading byte 0x{payload[0]:02x}")


class SingleObject:
    """Single-object framing, with writer schemas known by fingerprint from local files."""

    name: Final = "single-object"

    def __init__(self, current: WriterSchema, known: tuple[WriterSchema, ...] = ()) -> None:
        self.header = SINGLE_OBJECT_MAGIC + crc64_fingerprint(current.parsed)
        self.by_fingerprint = {crc64_fingerprint(s.parsed): s for s in (current, *known)}

    def frame(self, body: bytes) -> bytes:
        return self.header + body

    def writer(self, payload: bytes) -> tuple[WriterSchema, int]:
        if len(payload) < 10:
            raise DecodeError("truncated", "single-object header is shorter than 10 bytes", self.name)
        schema = self.by_fingerprint.get(payload[2:10])
        if schema is None:
            raise DecodeError(
                "unknown_fingerprint",
                f"no local schema has fingerprint {payload[2:10].hex()}",
                self.name,
            )
        return schema, 10


class Confluent:
    """Confluent Schema Registry framing, with a cache in front of the registry."""

    name: Final = "confluent"

    def __init__(self, registry: Registry, subject: str, current: WriterSchema) -> None:
        self.registry = registry
        self.subject = subject
        self.current = current
        self._header: bytes | None = None
        self._by_id: dict[int, WriterSchema] = {}
        # After a failed lookup, fail fast until the caller asks to `retry()`: one batch must
        # not wait on one network timeout per event.
        self.down = False
        self.healthy = True  # the last lookup reached the registry

    def retry(self) -> None:
        self.down = False

    def _register(self) -> bytes:
        schema_id = self.registry.register(self.subject, self.current.raw, ENVELOPE)
        self._by_id[schema_id] = self.current
        return struct.pack(">bI", CONFLUENT_MAGIC, schema_id)

    def frame(self, body: bytes) -> bytes:
        if self._header is None:
            self._header = self._register()
        return self._header + body

    def writer(self, payload: bytes) -> tuple[WriterSchema, int]:
        if len(payload) < 5:
            raise DecodeError("truncated", "Confluent header is shorter than 5 bytes", self.name)
        (schema_id,) = struct.unpack_from(">I", payload, 1)
        schema = self._by_id.get(schema_id)
        if schema is None:
            schema = self._by_id[schema_id] = self._lookup(schema_id)
        return schema, 5

    def _lookup(self, schema_id: int) -> WriterSchema:
        if self.down:
            raise RegistryUnavailable(f"schema id {schema_id}: registry down, waiting to retry")
        try:
            text = self.registry.lookup(schema_id)
        except NotRegistered as exc:  # the registry answered: the id names no Avro schema
            self.healthy = True
            raise DecodeError("unknown_schema_id", str(exc), self.name) from None
        except RegistryUnavailable:
            self.down, self.healthy = True, False
            raise
        self.healthy = True
        try:
            return WriterSchema.of(json.loads(text))
        except Exception as exc:  # not JSON, or not a schema fastavro can read
            raise DecodeError(
                "incompatible_schema", f"schema id {schema_id} cannot be parsed: {exc}"[:200], self.name
            ) from None
