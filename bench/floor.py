"""The latency floor: a minimal forwarder that does what the broker and the client must do anyway.

    python -m bench.floor --bootstrap HOST:PORT --topic T [--wait-ms 25] [--idle 4]

It consumes, produces each value's raw bytes (no decode, no handler, no encode) to one of
the worker's output topics (`<topic>.<stream>`, chosen by the event's `activity-type` header,
so the fan-out matches the worker's: every stream topic and partition is written), and
commits asynchronously after each batch, without waiting for acknowledgements. The producer
and fetch settings are the worker's. It exits after `--idle` seconds without input and prints
one JSON line: {"forwarded": n}.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
import zlib
from typing import Any

from confluent_kafka import Consumer, Producer

from consumer.contract import H_ACTIVITY_TYPE, STREAMS
from consumer.kafka_io import produce_waiting
from consumer.telemetry.kafka_logs import routed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--wait-ms", type=int, default=25, help="batch wait, as the worker's --batch-max-wait-ms")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--idle", type=float, default=4.0)
    a = p.parse_args(argv)
    consumer = Consumer(
        routed(
            {
                "bootstrap.servers": a.bootstrap,
                "group.id": f"floor-{uuid.uuid4().hex[:8]}",
                "group.protocol": "classic",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": min(100, max(5, a.wait_ms)),
                "isolation.level": "read_committed",
            }
        )
    )
    # The worker's producer settings (consumer/pipeline/sink.py).
    producer = Producer(
        routed(
            {
                "bootstrap.servers": a.bootstrap,
                "linger.ms": 5,
                "compression.type": "lz4",
                "enable.idempotence": True,
                "acks": "all",
            }
        )
    )
    outputs = [f"{a.topic}.{s}" for s in STREAMS]
    by_type: dict[bytes, str] = {}
    forwarded = 0
    consumer.subscribe([a.topic])
    last_input = time.monotonic()
    seen_any = False
    try:
        while True:
            msgs = consumer.consume(a.batch_size, a.wait_ms / 1000)
            batch = [m for m in msgs if m.error() is None]
            if not batch:
                producer.poll(0)
                if seen_any and time.monotonic() - last_input > a.idle:
                    break
                continue
            seen_any, last_input = True, time.monotonic()
            for m in batch:
                headers: Any = m.headers() or []
                kind = next((v for k, v in headers if k == H_ACTIVITY_TYPE), b"") or b""
                out = by_type.get(kind)
                if out is None:
                    out = by_type[kind] = outputs[zlib.crc32(kind) % len(outputs)]
                produce_waiting(producer, out, m.value(), m.key(), headers)
            forwarded += len(batch)
            producer.poll(0)
            consumer.commit(asynchronous=True)
    finally:
        producer.flush(30)
        consumer.close()
    print(json.dumps({"forwarded": forwarded}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
