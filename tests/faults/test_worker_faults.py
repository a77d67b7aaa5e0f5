"""The worker under injected faults (librdkafka's mock cluster): no event is lost, and no offset is
committed before every result of every event below it has been delivered.

Topology (see `tests.support.mock_workers.create_topics`): input partitions on broker 2, every output and
dead-letter partition on broker 1, group and transaction coordinators on broker 3.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError

from consumer.runtime.worker import Worker
from tests.support.mock_cluster import ApiKey, MockCluster
from tests.support.mock_workers import (
    COORDINATOR,
    OUTPUT_LEADER,
    Running,
    Stream,
    TxnSpy,
    actual_records,
    committed,
    end_offsets,
    expected_records,
    input_records,
    missing,
    read_outputs,
    settings,
    start,
    undelivered_below,
    unique,
    wait_committed,
    wait_until,
)
from tests.support.workers import make_stream, produce

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]

PARTITIONS = 2
COMMITS = "activity_consumer_commits_total"
COMMIT_FAILURES = "activity_consumer_commit_failures_total"


def test_output_leader_outage_mid_stream_loses_nothing_and_commits_nothing_undelivered(
    mock_cluster: MockCluster, names: tuple[str, str]
) -> None:
    topic, group = names
    # Enough during the outage that each partition reaches the backpressure bound (keys spread unevenly).
    before, during = make_stream(100, poison=2, seed=1), make_stream(300, unknown=3, seed=2)
    produce(mock_cluster.bootstraps, topic, before)
    # A bound of 2 x 25 per partition, which the 300 events during the outage pass on both partitions.
    running = start(settings(mock_cluster, topic, group, max_uncommitted_batches=2))
    delivered_end = wait_committed(mock_cluster, group, topic, PARTITIONS, 30)

    mock_cluster.broker_set_down(OUTPUT_LEADER)
    produce(mock_cluster.bootstraps, topic, during)
    # Backpressure: each partition is read one batch past its last commit, then paused.
    registry = running.worker.registry
    paused = ("activity_consumer_paused_partitions", {"reason": "backpressure"})
    wait_until(lambda: registry.get_sample_value(*paused) == PARTITIONS, 30, "both partitions paused")
    time.sleep(1.5)  # several loop turns: each commits what is delivered, and nothing is
    # Consumed and handed to the producer, but nothing could be delivered: nothing new committed.
    assert committed(mock_cluster, group, topic, PARTITIONS) == delivered_end
    assert running.worker.checkpoint.in_flight()
    mock_cluster.broker_set_up(OUTPUT_LEADER)

    assert running.join(60) == 0
    stream = before + during
    expected, actual = expected_records(stream, topic), actual_records(read_outputs(mock_cluster, topic))
    assert missing(expected, actual) == {}
    assert actual == expected  # idempotent producer: the outage added no duplicates either
    assert {a for a, _ in actual} == {a for a, _, _ in stream}
    assert committed(mock_cluster, group, topic, PARTITIONS) == end_offsets(mock_cluster, topic, PARTITIONS)
    assert running.worker.processed == len(stream) - 2  # nothing re-processed; poison is dead-lettered


def test_retriable_produce_errors_are_retried_without_loss_or_duplicates(
    mock_cluster: MockCluster, names: tuple[str, str]
) -> None:
    topic, group = names
    stream = make_stream(200, unknown=4, poison=2)
    produce(mock_cluster.bootstraps, topic, stream)
    errors = [
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.LEADER_NOT_AVAILABLE,
    ] * 6
    # Not _TRANSPORT (a dropped connection): then a request's outcome is unknown, and the
    # idempotent producer may write it again (about 1 run in 5 here); at-least-once allows that.
    mock_cluster.start_request_tracking()
    mock_cluster.push_request_errors(ApiKey.PRODUCE, errors)

    running = start(settings(mock_cluster, topic, group))
    assert running.join(60) == 0

    # Every injected error was served (they go to the first Produce requests), then more succeeded.
    assert mock_cluster.count_requests(ApiKey.PRODUCE) > len(errors)
    expected, actual = expected_records(stream, topic), actual_records(read_outputs(mock_cluster, topic))
    assert missing(expected, actual) == {}
    assert actual == expected  # exactly once each: retries of a failed request are not duplicated
    assert committed(mock_cluster, group, topic, PARTITIONS) == end_offsets(mock_cluster, topic, PARTITIONS)
    assert running.metric(COMMIT_FAILURES) == 0


def test_undeliverable_results_stop_the_worker_before_their_offsets_are_committed(
    mock_cluster: MockCluster, names: tuple[str, str]
) -> None:
    topic, group = names
    delivered, doomed = make_stream(80, poison=1, seed=1), make_stream(80, seed=2)
    produce(mock_cluster.bootstraps, topic, delivered)
    # The producer gives up on a record 1.5 s after producing it (settings.kafka reaches the producer).
    first = start(settings(mock_cluster, topic, group, stop_when_idle=60.0, kafka={"message.timeout.ms": "1500"}))
    delivered_end = wait_committed(mock_cluster, group, topic, PARTITIONS, 30)

    mock_cluster.broker_set_down(OUTPUT_LEADER)
    produce(mock_cluster.bootstraps, topic, doomed)
    outcome = first.outcome(30)
    # A lost delivery ends the worker: run() returns 1, nothing escapes it.
    assert outcome == 1, outcome
    # Nothing consumed during the outage was delivered, so nothing past the first part is committed.
    assert committed(mock_cluster, group, topic, PARTITIONS) == delivered_end

    mock_cluster.broker_set_up(OUTPUT_LEADER)
    stream = delivered + doomed
    expected = expected_records(stream, topic)
    inputs = input_records(mock_cluster, topic)
    after_failure = actual_records(read_outputs(mock_cluster, topic))
    at_failure = committed(mock_cluster, group, topic, PARTITIONS)
    # The commit never passed an event whose results were not delivered ...
    assert undelivered_below(inputs, after_failure, expected, at_failure) == []
    # ... and some were not: the fault really cost deliveries.
    assert missing(expected, after_failure)

    restarted = start(settings(mock_cluster, topic, group))
    assert restarted.join(60) == 0
    assert restarted.worker.processed >= len(doomed)  # re-processed from the last delivered offset
    actual = actual_records(read_outputs(mock_cluster, topic))
    assert missing(expected, actual) == {}
    assert {a for a, _ in actual} == {a for a, _, _ in stream}
    assert committed(mock_cluster, group, topic, PARTITIONS) == end_offsets(mock_cluster, topic, PARTITIONS)


def test_offset_commit_errors_are_retried_or_counted_and_lose_nothing(
    mock_cluster: MockCluster, names: tuple[str, str]
) -> None:
    topic, group = names
    stream = make_stream(100, poison=1)
    produce(mock_cluster.bootstraps, topic, stream)
    mock_cluster.start_request_tracking()
    # librdkafka tries an OffsetCommit 3 times: the first commit fails for good (counted), the
    # second succeeds on its retry (transparent).
    timeout = KafkaError.REQUEST_TIMED_OUT
    mock_cluster.push_request_errors(ApiKey.OFFSET_COMMIT, [timeout] * 4)

    running = start(settings(mock_cluster, topic, group))
    assert running.join(60) == 0

    assert running.metric(COMMIT_FAILURES) == 1
    commits = running.metric(COMMITS)
    assert commits >= 1  # the second, at least (how many follow depends on how the batches fall)
    assert mock_cluster.count_requests(ApiKey.OFFSET_COMMIT) >= commits + 4
    expected, actual = expected_records(stream, topic), actual_records(read_outputs(mock_cluster, topic))
    assert missing(expected, actual) == {}
    assert actual == expected
    # Later commits cover what the failed one would have committed.
    assert committed(mock_cluster, group, topic, PARTITIONS) == end_offsets(mock_cluster, topic, PARTITIONS)


def _start_exactly_once(mock_cluster: MockCluster, topic: str, group: str, **kafka: str) -> tuple[Running, TxnSpy]:
    txn_id = unique("txn")
    mock_cluster.coordinator_set("transaction", txn_id, COORDINATOR)
    s = settings(mock_cluster, topic, group, processing_guarantee="exactly-once", transactional_id=txn_id, kafka=kafka)
    spies: list[TxnSpy] = []

    def spy_on(worker: Worker) -> None:
        spies.append(TxnSpy(worker.sink.producer))
        worker.sink.producer = spies[0]  # type: ignore[assignment]

    return start(s, spy_on), spies[0]


def _assert_transactions_committed_only_delivered_work(
    mock_cluster: MockCluster, topic: str, stream: Stream, spy: TxnSpy
) -> None:
    """What the committed transactions carry: when each one committed, every result of every event
    below the offsets committed so far was in a committed transaction; in the end the offsets reach
    the end of the input. (The mock neither stores transactional offsets nor hides aborted records,
    so this is read from the transactions themselves.)"""
    expected = expected_records(stream, topic)
    inputs = input_records(mock_cluster, topic)
    steps = 0
    for offsets, records in spy.history(topic):
        assert undelivered_below(inputs, records, expected, offsets) == [], f"after committed transaction {steps}"
        steps += 1
    assert steps >= 2
    assert spy.committed_offsets(topic) == end_offsets(mock_cluster, topic, PARTITIONS)
    assert missing(expected, spy.committed_records()) == {}
    # Downstream (aborted duplicates included, see above): every event's results are there.
    actual = actual_records(read_outputs(mock_cluster, topic))
    assert missing(expected, actual) == {}
    assert {a for a, _ in actual} == {a for a, _, _ in stream}


def test_exactly_once_aborts_rewinds_and_reprocesses_on_abortable_errors(
    mock_cluster: MockCluster, names: tuple[str, str]
) -> None:
    topic, group = names
    stream = make_stream(150, poison=2)
    produce(mock_cluster.bootstraps, topic, stream)
    # The first commit_transaction fails (abortable; the abort's own EndTxn then succeeds), and
    # the third send_offsets_to_transaction does (abortable). NO_ERROR entries let requests through.
    mock_cluster.push_request_errors(ApiKey.END_TXN, [KafkaError.REQUEST_TIMED_OUT])
    mock_cluster.push_request_errors(
        ApiKey.ADD_OFFSETS_TO_TXN, [KafkaError.NO_ERROR, KafkaError.NO_ERROR, KafkaError.GROUP_AUTHORIZATION_FAILED]
    )
    running, spy = _start_exactly_once(mock_cluster, topic, group)
    assert running.join(60) == 0

    assert running.metric(COMMIT_FAILURES) == 2
    assert spy.count("aborted") == 2
    assert running.metric(COMMITS) == spy.count("committed") >= 2
    assert running.worker.processed > len(stream) - 2  # the aborted batches were read again
    _assert_transactions_committed_only_delivered_work(mock_cluster, topic, stream, spy)


def test_exactly_once_survives_an_output_outage_longer_than_the_message_timeout(
    mock_cluster: MockCluster, names: tuple[str, str]
) -> None:
    topic, group = names
    before, during = make_stream(60, seed=1), make_stream(60, poison=1, seed=2)
    produce(mock_cluster.bootstraps, topic, before)
    running, spy = _start_exactly_once(mock_cluster, topic, group, **{"message.timeout.ms": "1500"})
    wait_until(lambda: running.worker.processed >= 60 and spy.count("committed") >= 1, 30, "first part")

    mock_cluster.broker_set_down(OUTPUT_LEADER)
    produce(mock_cluster.bootstraps, topic, during)
    wait_until(lambda: spy.count("aborted") >= 1, 30, "a transaction aborted by the outage")
    time.sleep(1.0)
    mock_cluster.broker_set_up(OUTPUT_LEADER)

    assert running.join(60) == 0
    assert running.metric(COMMIT_FAILURES) == spy.count("aborted") >= 1
    _assert_transactions_committed_only_delivered_work(mock_cluster, topic, before + during, spy)
