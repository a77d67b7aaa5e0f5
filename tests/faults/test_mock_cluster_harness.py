"""The mock-cluster harness really injects faults, and clients recover from them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from consumer.telemetry.kafka_logs import routed
from tests.support.mock_cluster import ApiKey, MockCluster, MockClusterError

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]


def _text(msg: Message) -> str:
    value = msg.value()
    assert value is not None
    return value.decode()


class DeliveryLog:
    """Delivery reports: values delivered, and errors, as the producer reports them."""

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.errors: list[KafkaError] = []

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(err)
        else:
            self.delivered.append(_text(msg))


def _producer(cluster: MockCluster, **extra: Any) -> Producer:
    return Producer(
        routed(
            {
                "bootstrap.servers": cluster.bootstraps,
                "enable.idempotence": True,
                "linger.ms": 5,
                "retry.backoff.ms": 50,
                "reconnect.backoff.max.ms": 500,
                "message.timeout.ms": 30000,
                **extra,
            }
        )
    )


def _read_all(cluster: MockCluster, topic: str, partitions: int, count: int) -> list[str]:
    """Read ``count`` values from the start of every partition, without a consumer group."""
    consumer = Consumer(
        routed({"bootstrap.servers": cluster.bootstraps, "group.id": "reader", "enable.auto.commit": False})
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    values: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(values) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            values.append(_text(msg))
        assert consumer.poll(0.3) is None, "more messages than were produced"
    finally:
        consumer.close()
    return values


def test_produce_survives_a_broker_outage(mock_cluster: MockCluster) -> None:
    topic = "outage"
    mock_cluster.create_topic(topic, partitions=4, replication=3)
    for partition in range(4):  # every partition depends on broker 1
        mock_cluster.partition_set_leader(topic, partition, 1)
    producer = _producer(mock_cluster)
    log = DeliveryLog()

    for i in range(100):
        producer.produce(topic, key=str(i), value=str(i), on_delivery=log)
    assert producer.flush(10) == 0
    assert len(log.delivered) == 100

    mock_cluster.broker_set_down(1)
    for i in range(100, 300):
        producer.produce(topic, key=str(i), value=str(i), on_delivery=log)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        producer.poll(0.1)
    # The outage is real: nothing new got through while the leader was down.
    assert len(log.delivered) == 100
    assert log.errors == []

    mock_cluster.broker_set_up(1)
    assert producer.flush(30) == 0
    assert log.errors == []
    assert sorted(log.delivered, key=int) == [str(i) for i in range(300)]

    consumed = _read_all(mock_cluster, topic, 4, 300)
    assert sorted(consumed, key=int) == [str(i) for i in range(300)]


def test_injected_retriable_produce_errors_are_retried(mock_cluster: MockCluster) -> None:
    topic = "retried"
    mock_cluster.create_topic(topic, partitions=1, replication=1)
    producer = _producer(mock_cluster)
    log = DeliveryLog()
    producer.produce(topic, value="warm-up", on_delivery=log)  # metadata, producer id
    assert producer.flush(10) == 0

    mock_cluster.start_request_tracking()
    mock_cluster.push_request_errors(
        ApiKey.PRODUCE,
        [
            KafkaError.NOT_LEADER_FOR_PARTITION,
            KafkaError.NOT_ENOUGH_REPLICAS,
            KafkaError.REQUEST_TIMED_OUT,
        ],
    )
    producer.produce(topic, value="payload", on_delivery=log)
    assert producer.flush(20) == 0

    assert log.errors == []
    assert log.delivered == ["warm-up", "payload"]
    # Three injected failures, then the attempt that succeeded.
    assert mock_cluster.count_requests(ApiKey.PRODUCE) == 4
    # Idempotence: retries did not duplicate the message.
    assert _read_all(mock_cluster, topic, 1, 2) == ["warm-up", "payload"]


def test_injected_fatal_produce_error_reaches_the_delivery_callback(
    mock_cluster: MockCluster,
) -> None:
    topic = "rejected"
    mock_cluster.create_topic(topic, partitions=1, replication=1)
    producer = _producer(mock_cluster, **{"enable.idempotence": False})
    log = DeliveryLog()
    producer.produce(topic, value="warm-up", on_delivery=log)
    assert producer.flush(10) == 0

    mock_cluster.push_request_errors(ApiKey.PRODUCE, [KafkaError.MSG_SIZE_TOO_LARGE])
    producer.produce(topic, value="rejected", on_delivery=log)
    assert producer.flush(10) == 0
    assert [e.code() for e in log.errors] == [KafkaError.MSG_SIZE_TOO_LARGE]

    producer.produce(topic, value="accepted", on_delivery=log)  # the error was one-shot
    assert producer.flush(10) == 0
    assert log.delivered == ["warm-up", "accepted"]


def test_commit_errors_surface_or_are_retried(mock_cluster: MockCluster) -> None:
    topic = "commits"
    mock_cluster.create_topic(topic, partitions=2, replication=1)
    mock_cluster.coordinator_set("group", "committer", 2)
    producer = _producer(mock_cluster)
    for i in range(10):
        producer.produce(topic, value=str(i))
    assert producer.flush(10) == 0

    mock_cluster.start_request_tracking()
    consumer = Consumer(
        routed(
            {
                "bootstrap.servers": mock_cluster.bootstraps,
                "group.id": "committer",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
            }
        )
    )
    try:
        consumer.subscribe([topic])
        msg = None
        deadline = time.monotonic() + 20
        while (msg is None or msg.error() is not None) and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
        assert msg is not None and msg.error() is None
        # coordinator_set took effect: the group was served by broker 2.
        joins = [r for r in mock_cluster.get_requests() if r.api_key == ApiKey.JOIN_GROUP]
        assert joins and {r.broker_id for r in joins} == {2}

        mock_cluster.clear_requests()
        mock_cluster.push_request_errors(ApiKey.OFFSET_COMMIT, [KafkaError.REQUEST_TIMED_OUT])
        consumer.commit(message=msg, asynchronous=False)  # retried transparently
        assert mock_cluster.count_requests(ApiKey.OFFSET_COMMIT) == 2

        mock_cluster.push_request_errors(ApiKey.OFFSET_COMMIT, [KafkaError.GROUP_AUTHORIZATION_FAILED])
        with pytest.raises(KafkaException) as info:
            consumer.commit(message=msg, asynchronous=False)
        assert info.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED

        committed = consumer.commit(message=msg, asynchronous=False)
        assert committed is not None
        offset = msg.offset()
        assert offset is not None
        assert [tp.offset for tp in committed] == [offset + 1]
    finally:
        consumer.close()


def test_broker_rtt_delays_responses(mock_cluster: MockCluster) -> None:
    topic = "slow"
    mock_cluster.create_topic(topic, partitions=1, replication=1)
    producer = _producer(mock_cluster)
    producer.produce(topic, value="warm-up")
    assert producer.flush(10) == 0

    mock_cluster.broker_set_rtt(-1, 400)
    started = time.monotonic()
    producer.produce(topic, value="slow")
    assert producer.flush(10) == 0
    assert time.monotonic() - started >= 0.35

    mock_cluster.broker_set_rtt(-1, 0)
    started = time.monotonic()
    producer.produce(topic, value="fast")
    assert producer.flush(10) == 0
    assert time.monotonic() - started < 0.35


def test_wrapper_reports_errors_and_lifecycle() -> None:
    cluster = MockCluster(2)
    try:
        assert len(cluster.bootstraps.split(",")) == 2
        with pytest.raises(MockClusterError, match="BROKER_NOT_AVAILABLE"):
            cluster.partition_set_leader("t", 0, 99)  # no broker 99
        with pytest.raises(ValueError):
            cluster.coordinator_set("cluster", "x", 1)
    finally:
        cluster.destroy()
    assert cluster.destroyed
    cluster.destroy()  # idempotent
    with pytest.raises(MockClusterError, match="destroyed"):
        cluster.broker_set_down(1)
