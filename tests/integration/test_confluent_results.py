"""Results for Confluent subscribers: with `--output-framing confluent`, a worker process
registers each result schema under `<topic>-value` once and frames results with its id; a
reader with only confluent-kafka's stock `AvroDeserializer` (no project code) reads them back
from a registry that outlives the worker. `tail` prints the same streams as JSON Lines."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from consumer.cli.main import main
from consumer.contract import H_ACTIVITY_ID, H_DLQ_REASON_CODE
from tests.support.registry_double import RegistryDouble
from tests.support.workers import make_stream, output_topics, produce, read_all, start_worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _read_with_stock_deserializer(bootstrap: str, topics: list[str], registry_url: str) -> list[dict[str, Any]]:
    """What a downstream team's Python consumer does: confluent-kafka and nothing else."""
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"subscriber-{uuid.uuid4().hex[:8]}",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        md = consumer.list_topics(timeout=10)
        tps = [TopicPartition(t, p, 0) for t in topics for p in md.topics[t].partitions]
        consumer.assign(tps)
        remaining = {(tp.topic, tp.partition) for tp in tps}
        out: list[dict[str, Any]] = []
        while remaining:
            for m in consumer.consume(500, 1.0):
                if m.error() is not None:
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    remaining.discard((m.topic(), m.partition()))
                    continue
                value = deserialize(m.value(), SerializationContext(m.topic(), MessageField.VALUE))
                out.append({"topic": m.topic(), "schema_id": int.from_bytes(m.value()[1:5], "big"), "value": value})
        return out
    finally:
        consumer.close()


def test_confluent_results_read_back_with_the_stock_deserializer(
    kafka_bootstrap: str,
    new_topic: str,
    registry_double: RegistryDouble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = make_stream(80, poison=2)
    produce(kafka_bootstrap, new_topic, stream)
    log = tmp_path / "worker.log"
    proc = start_worker(
        kafka_bootstrap,
        new_topic,
        f"g-{uuid.uuid4().hex[:8]}",
        extra=["--output-framing", "confluent", "--schema-registry-url", registry_double.url],
        log_path=log,
    )
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]

    dlq = f"{new_topic}.dlq"
    results_topics = [t for t in output_topics(kafka_bootstrap, new_topic) if t != dlq]
    records = _read_with_stock_deserializer(kafka_bootstrap, results_topics, registry_double.url)
    good = {a for a, _, v in stream if not v.startswith(b"\x00\x00\x00\x00\x07")}
    assert {r["value"]["activity_id"] for r in records} == good

    # One subject per results topic that got records, each registered once, with one version.
    used = {r["topic"] for r in records}
    assert {f"{t}-value" for t in used} <= set(registry_double.subjects())
    for t in used:
        assert registry_double.registrations(f"{t}-value") == 1
        schema_id, text = registry_double.latest(f"{t}-value")
        assert {r["schema_id"] for r in records if r["topic"] == t} == {schema_id}
        assert json.loads(text)["name"].startswith("voucherify.activity.results.")

    # tail: the Confluent-framed results, the single-object input and the dead letters
    one = sorted(used)[0]
    capsys.readouterr()
    assert (
        main(["tail", one, "--bootstrap-servers", kafka_bootstrap, "--schema-registry-url", registry_double.url]) == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = sorted(r["value"]["activity_id"] for r in records if r["topic"] == one)
    assert sorted(line["value"]["activity_id"] for line in lines) == expected
    assert all(line["schema"].startswith("voucherify.activity.results.") for line in lines)

    assert main(["tail", new_topic, "--bootstrap-servers", kafka_bootstrap, "--max-messages", "5"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(events) == 5 and all(e["schema"] == "voucherify.activity.CustomerActivity" for e in events)
    assert all(e["value"]["id"] == e["headers"][H_ACTIVITY_ID] for e in events)

    assert main(["tail", dlq, "--bootstrap-servers", kafka_bootstrap]) == 0
    dead = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(dead) == 2 and all("unknown_schema_id" in d["error"] and d["headers"][H_DLQ_REASON_CODE] for d in dead)


def test_a_registry_down_at_registration_holds_the_events_and_dead_letters_none(
    kafka_bootstrap: str, new_topic: str, registry_double: RegistryDouble, tmp_path: Path
) -> None:
    """Registering a result schema is infrastructure: while the registry is down the worker
    waits and retries, then forwards every event; nothing goes to the DLQ for it."""
    stream = make_stream(60)
    produce(kafka_bootstrap, new_topic, stream)
    registry_double.stop()
    log = tmp_path / "worker.log"
    proc = start_worker(
        kafka_bootstrap,
        new_topic,
        f"g-{uuid.uuid4().hex[:8]}",
        idle=6.0,
        extra=["--output-framing", "confluent", "--schema-registry-url", registry_double.url],
        log_path=log,
    )
    deadline = time.monotonic() + 60
    while "registry_unavailable" not in log.read_text() and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    assert "registry_unavailable" in log.read_text(), log.read_text()[-3000:]
    time.sleep(3.0)  # several retries while it is down
    registry_double.start()
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]

    dlq = f"{new_topic}.dlq"
    topics = output_topics(kafka_bootstrap, new_topic)
    records = _read_with_stock_deserializer(kafka_bootstrap, [t for t in topics if t != dlq], registry_double.url)
    assert sorted(r["value"]["activity_id"] for r in records) == sorted(a for a, _, _ in stream)
    assert dlq not in topics or not read_all(kafka_bootstrap, [dlq])
