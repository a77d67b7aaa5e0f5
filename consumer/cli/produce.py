"""`activity-consumer produce`: JSON Lines activities -> Avro events on a topic."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import IO

from confluent_kafka import KafkaError, Message, Producer

from consumer.config import ProduceSettings
from consumer.ingest.records import input_record
from consumer.kafka_io import produce_waiting
from consumer.pipeline.clients import client_config
from consumer.pipeline.codec import AvroCodec, EncodeError
from consumer.pipeline.codec.registry import Registry


def produce_lines(
    settings: ProduceSettings, lines: Iterable[str], *, registry: Registry | None = None, err: IO[str] | None = None
) -> int:
    err = err or sys.stderr
    topic = str(settings.topic)
    codec = AvroCodec(framing=settings.framing, registry=registry)
    producer = Producer(
        client_config("producer", settings.bootstrap_servers, settings.kafka, own={"enable.idempotence": True})
    )
    failures: list[str] = []

    def delivered(e: KafkaError | None, _m: Message) -> None:
        if e is not None:
            failures.append(str(e))

    bad = sent = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = input_record(codec, json.loads(line), source="produce")
        except (json.JSONDecodeError, EncodeError) as exc:
            bad += 1
            err.write(f"line {number}: {exc}\n")
            continue
        produce_waiting(producer, topic, record.value, record.key, record.headers, delivered)
        sent += 1
        producer.poll(0)
    left = producer.flush(30)
    if left or failures:
        err.write(f"{left + len(failures)} of {sent} event(s) were not delivered: {failures[:3]}\n")
        return 1
    err.write(f"produced {sent} event(s) to {topic}" + (f"; {bad} bad line(s) skipped\n" if bad else "\n"))
    return 1 if bad else 0
