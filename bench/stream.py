"""Input for the benchmarks: framed Avro events cycling through the corpus mix.

The mix is the one `tests/support/workers.py` (`make_stream`) builds (`consumer/devtools/corpus.py`:
every corpus example plus the fixtures, in rotation). Each template is encoded once with fastavro
and only the `id` (the envelope's first field, a plain Avro string) is spliced in per
event, so building 50k events takes well under a second instead of ~15 s of encoding.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from consumer.contract import H_ACTIVITY_ID
from consumer.devtools.corpus import templates
from consumer.ingest.records import customer_key
from consumer.kafka_io import produce_waiting
from consumer.pipeline.codec import AvroCodec
from consumer.telemetry.kafka_logs import routed

Event = tuple[str, str | None, bytes]  # (activity id, key, framed value)
HEADER = 10  # single-object framing: C3 01 + 8-byte fingerprint


def _avro_string(s: str) -> bytes:
    raw = s.encode()
    n = len(raw)
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out) + raw


def build_stream(n: int, seed: int = 1) -> list[Event]:
    codec = AvroCodec()
    parts: list[tuple[str | None, bytes, bytes]] = []
    for template in templates():
        event: dict[str, Any] = dict(template)
        event["id"] = "x"
        framed = codec.encode_json(event)
        assert framed[HEADER : HEADER + 2] == b"\x02x", "the envelope's first field must be the id string"
        parts.append((customer_key(event), framed[:HEADER], framed[HEADER + 2 :]))
    out: list[Event] = []
    for i in range(n):
        key, header, rest = parts[i % len(parts)]
        activity_id = f"evcus_{seed:02d}{i:08d}{uuid.uuid4().hex[:6]}"
        out.append((activity_id, key, header + _avro_string(activity_id) + rest))
    # the splice must be exact: spot-check a full cycle against the real decoder
    for activity_id, _key, value in out[: len(parts)]:
        assert codec.decode(value)["id"] == activity_id
    return out


def produce(bootstrap: str, topic: str, stream: list[Event]) -> float:
    """Write the stream (with an `activity-id` header, like the tests); returns seconds taken."""
    producer = Producer(routed({"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True}))
    errors: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    started = time.perf_counter()
    for activity_id, key, value in stream:
        produce_waiting(producer, topic, value, key, [(H_ACTIVITY_ID, activity_id.encode())], report)
        producer.poll(0)
    left = producer.flush(60)
    if left or errors:
        raise RuntimeError(f"producing the input failed: {left} unflushed, errors {errors[:3]}")
    return time.perf_counter() - started


def prefetch(bootstrap: str, topic: str, n: int, timeout: float = 60.0) -> list[Message]:
    """Read the first n records of `topic` (all partitions) into memory, real Message objects."""
    consumer = Consumer(
        routed(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-prefetch-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
            }
        )
    )
    out: list[Message] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            for m in consumer.consume(min(1000, n - len(out)), 0.5):
                err = m.error()
                if err is None:
                    out.append(m)
                elif err.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(str(err))
    finally:
        consumer.close()
    if len(out) < n:
        raise RuntimeError(f"prefetched only {len(out)} of {n} records")
    return out
