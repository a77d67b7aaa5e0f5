"""Fuzzed bad input through the worker's decode -> route -> encode path, at unit speed.

The worker dead-letters an event only when the decoder raises `DecodeError`; anything else that
escapes decoding, routing or result encoding would stop the partition (or the process). So for
every input: either a `DecodeError` with one of the bounded reasons (its dead-letter reason
header), or an activity the router handles and whose results encode.
"""

from __future__ import annotations

import json
import struct
import typing
from collections import Counter

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from consumer.model import activity_from_record
from consumer.pipeline.codec import AvroCodec, DecodeError, SchemaStore
from consumer.pipeline.codec.framing import DecodeReason
from consumer.pipeline.codec.results import ResultEncoder
from consumer.pipeline.router import Router
from tests.support.fuzz_inputs import (
    FOREIGN_SCHEMA,
    BadInput,
    classic_bad_inputs,
    corpus_events,
    foreign_avro,
    mutations,
)

MUTATIONS = 10_000
SEED = 20261127
REASONS = set(typing.get_args(DecodeReason))


class EventPath:
    """The worker's per-event path, without Kafka: codec, router and result encoder."""

    def __init__(self, registry: object | None = None) -> None:
        store = SchemaStore()
        self.codec = AvroCodec(store, registry=registry)
        self.router = Router()
        self.encoder = ResultEncoder(store, engine=self.codec.engine)

    def run(self, value: bytes | None) -> str:
        """'forwarded', or the dead-letter reason code."""
        try:
            activity = activity_from_record(self.codec.decode(value or b""))
        except DecodeError as exc:
            return exc.reason
        for r in self.router.route(activity):
            self.encoder.encode(r.schema, r.value, f"activities.{r.stream}")
        return "forwarded"


def _outcomes(path: EventPath, inputs: list[BadInput]) -> Counter[str]:
    out: Counter[str] = Counter()
    for i, bad in enumerate(inputs):
        try:
            out[path.run(bad.value)] += 1
        except Exception as exc:  # the finding: report which input, how
            value = bad.value or b""
            pytest.fail(f"input {i} ({bad.kind}, {len(value)} bytes {value[:40].hex()}...) raised {exc!r}")
    return out


def test_ten_thousand_seeded_mutations_of_real_events_are_dead_lettered_or_forwarded() -> None:
    events = corpus_events()
    inputs = mutations(events, MUTATIONS, SEED)
    assert len(inputs) >= 10_000 and len({b.value for b in inputs}) > 9_000  # really distinct inputs
    outcomes = _outcomes(EventPath(), inputs)
    assert sum(outcomes.values()) == len(inputs)
    assert set(outcomes) - {"forwarded"} <= REASONS, outcomes
    dead = sum(n for k, n in outcomes.items() if k != "forwarded")
    # The mutations reach both branches and several decoder checks (not one early exit).
    assert outcomes["forwarded"] > 0 and dead > len(inputs) // 2, outcomes
    assert len(set(outcomes) - {"forwarded"}) >= 4, outcomes
    print(f"\nFUZZ unit: {len(inputs)} mutations -> {dict(outcomes.most_common())}")


def test_the_real_events_themselves_are_forwarded() -> None:
    """The control: unmutated, every corpus event goes through."""
    events = corpus_events()
    outcomes = _outcomes(EventPath(), [BadInput("real", e) for e in events])
    assert outcomes == Counter({"forwarded": len(events)})


EXPECTED_REASON = {
    "wrong magic": "bad_magic",
    "wrong magic (JSON text)": "json_not_activity",  # JSON input: no created_at
    "wrong magic (second byte)": "bad_magic",
    "unknown fingerprint": "unknown_fingerprint",
    "unknown fingerprint (flipped)": "unknown_fingerprint",
    "another schema's Avro, its own fingerprint": "unknown_fingerprint",
    "empty": "empty",
    "null": "empty",
    "one byte": "truncated",
    "header only": "truncated",
    "non-UTF-8 key, bad value": "bad_magic",
    "non-UTF-8 key, null value": "empty",
}


def test_classic_bad_inputs_are_dead_lettered_with_their_reason() -> None:
    events = corpus_events()
    path = EventPath()
    got = {bad.kind: path.run(bad.value) for bad in classic_bad_inputs(events)}
    for kind, reason in EXPECTED_REASON.items():
        assert got[kind] == reason, (kind, got[kind])
    # Without a registry a Confluent-framed event cannot be resolved: the event says so itself.
    assert got["unknown schema id"] == "unknown_schema_id"
    assert got["another schema's Avro, Confluent id"] == "unknown_schema_id"
    assert got["another schema's Avro, our fingerprint"] in {"malformed", "truncated", "trailing_bytes"}
    assert got["oversized"] in {"malformed", "truncated", "trailing_bytes"}
    assert "forwarded" not in got.values()


def test_confluent_bad_inputs_with_a_registry() -> None:
    """With a (mock) registry: an id it does not hold is unknown; another schema's id is refused."""
    registry = SchemaRegistryClient.new_client({"url": f"mock://fuzz-{SEED}"})
    foreign_id = registry.register_schema("other-value", Schema(json.dumps(FOREIGN_SCHEMA), "AVRO"))
    path = EventPath(registry)
    body = corpus_events()[0][10:]
    assert path.run(b"\x00" + struct.pack(">I", foreign_id + 1000) + body) == "unknown_schema_id"
    assert path.run(b"\x00" + struct.pack(">I", foreign_id) + foreign_avro()) in {
        "incompatible_schema",
        "malformed",
    }
    assert path.run(b"\x00\x00\x00") == "truncated"
