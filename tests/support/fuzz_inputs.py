"""Bad input for the fault matrix: seeded mutations of real events, and the classic bad values.

Real events are Voucherify's corpus (``consumer.devtools.corpus.EXAMPLES``) encoded with the
worker's own codec (single-object framing). Mutations flip bits, overwrite, insert, delete,
duplicate and truncate bytes, and splice two events; most land in the Avro body (after the
10-byte header), some in the header. Every generator is deterministic for a given seed.
"""

from __future__ import annotations

import io
import json
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from fastavro import parse_schema, schemaless_writer

from consumer.devtools.corpus import EXAMPLES
from consumer.pipeline.codec import AvroCodec

HEADER = 10  # single-object: C3 01 + 8-byte fingerprint


@dataclass(frozen=True)
class BadInput:
    """One input value, the key it travels with, and what made it."""

    kind: str
    value: bytes | None
    key: bytes | None = None


def corpus_events(codec: AvroCodec | None = None) -> list[bytes]:
    codec = codec or AvroCodec()
    return [codec.encode_json(json.loads(p.read_text())) for p in sorted(EXAMPLES.glob("*.json"))]


def _flip(rng: random.Random, b: bytearray) -> None:
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(HEADER, len(b))
        b[i] ^= 1 << rng.randrange(8)


def _overwrite(rng: random.Random, b: bytearray) -> None:
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(HEADER, len(b))] = rng.randrange(256)


def _insert(rng: random.Random, b: bytearray) -> None:
    i = rng.randrange(HEADER, len(b) + 1)
    b[i:i] = rng.randbytes(rng.randint(1, 16))


def _delete(rng: random.Random, b: bytearray) -> None:
    i = rng.randrange(HEADER, len(b))
    del b[i : i + rng.randint(1, 16)]


def _duplicate(rng: random.Random, b: bytearray) -> None:
    i = rng.randrange(HEADER, len(b))
    piece = b[i : i + rng.randint(1, 32)]
    j = rng.randrange(HEADER, len(b) + 1)
    b[j:j] = piece


def _truncate(rng: random.Random, b: bytearray) -> None:
    del b[rng.randrange(0, len(b)) :]


def _header(rng: random.Random, b: bytearray) -> None:
    b[rng.randrange(0, HEADER)] = rng.randrange(256)


def _huge_varint(rng: random.Random, b: bytearray) -> None:
    """A length or count that claims gigabytes (zig-zag varint of up to 2**62)."""
    i = rng.randrange(HEADER, len(b))
    n = rng.choice([2**31, 2**40, 2**62 - 1, -(2**31)])
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            break
    b[i : i + 1] = out


MUTATORS: list[Callable[[random.Random, bytearray], None]] = [
    _flip,
    _flip,
    _overwrite,
    _insert,
    _delete,
    _duplicate,
    _truncate,
    _header,
    _huge_varint,
]


def mutations(events: list[bytes], n: int, seed: int) -> list[BadInput]:
    """`n` seeded mutations of `events` (one to three mutators each; some splice two events)."""
    rng = random.Random(seed)
    out: list[BadInput] = []
    for _ in range(n):
        b = bytearray(rng.choice(events))
        if rng.random() < 0.1:
            other = rng.choice(events)
            cut = rng.randrange(HEADER, min(len(b), len(other)))
            b = b[:cut] + bytearray(other[cut:])
            kind = "splice"
        else:
            kind = "mutation"
        for _ in range(rng.randint(1, 3)):
            if len(b) <= HEADER:
                break
            rng.choice(MUTATORS)(rng, b)
        out.append(BadInput(kind, bytes(b)))
    return out


FOREIGN_SCHEMA: dict[str, object] = {
    "type": "record",
    "name": "Foreign",
    "namespace": "com.example.other",
    "fields": [{"name": "id", "type": "long"}, {"name": "note", "type": "string"}],
}


def foreign_avro() -> bytes:
    """A valid Avro body of a schema that is not a Customer Activity."""
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(FOREIGN_SCHEMA), {"id": 42, "note": "not an activity"})
    return buf.getvalue()


def classic_bad_inputs(events: list[bytes], oversized: int = 1_500_000) -> list[BadInput]:
    """Wrong magic, unknown fingerprint and schema id, another schema's valid Avro, empty, null,
    oversized, and non-UTF-8 keys."""
    body = events[0][HEADER:]
    fingerprint = events[0][2:HEADER]
    foreign = foreign_avro()
    return [
        BadInput("wrong magic", b"\x01" + events[0][1:]),
        BadInput("wrong magic (JSON text)", b'{"id": "evcus_1", "type": "customer.created"}'),
        BadInput("wrong magic (second byte)", b"\xc3\x02" + events[0][2:]),
        BadInput("unknown fingerprint", b"\xc3\x01" + bytes(8) + body),
        BadInput("unknown fingerprint (flipped)", b"\xc3\x01" + bytes(x ^ 0xFF for x in fingerprint) + body),
        BadInput("unknown schema id", b"\x00" + struct.pack(">I", 987_654) + body),
        BadInput("another schema's Avro, our fingerprint", b"\xc3\x01" + fingerprint + foreign),
        BadInput("another schema's Avro, its own fingerprint", b"\xc3\x01" + b"\x5a" * 8 + foreign),
        BadInput("another schema's Avro, Confluent id", b"\x00" + struct.pack(">I", 7) + foreign),
        BadInput("empty", b""),
        BadInput("null", None),
        BadInput("one byte", b"\xc3"),
        BadInput("header only", events[0][:HEADER]),
        BadInput("oversized", b"\xc3\x01" + fingerprint + b"\x07" * oversized),
        BadInput("non-UTF-8 key, bad value", b"\x01garbage", key=b"\xff\xfe\x80\x81"),
        BadInput("non-UTF-8 key, null value", None, key=b"\xc0\xaf"),
    ]
