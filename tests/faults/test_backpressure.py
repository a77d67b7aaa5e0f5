"""Bounded re-delivery (issue 10, item 3): while the output leader is down, the worker stops
fetching a partition before it is read more than `--max-uncommitted-batches` x `--batch-size`
events past its last commit, so a crash then re-delivers at most that many events per partition.
Measured against the group's committed offsets on librdkafka's mock cluster and the worker
consumer's own position, then proven by a crash."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry

from tests.support.mock_cluster import MockCluster
from tests.support.mock_workers import (
    OUTPUT_LEADER,
    actual_records,
    committed,
    end_offsets,
    expected_records,
    missing,
    read_outputs,
    settings,
    start,
    wait_committed,
)
from tests.support.workers import make_stream, produce

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

PARTITIONS = 2
BATCH = 25
OUTAGE_S = 10.0


def total(registry: CollectorRegistry, sample: str) -> float:
    """A counter summed over its labels."""
    return sum(s.value for m in registry.collect() for s in m.samples if s.name == sample)


@pytest.mark.parametrize("batches", [1, 2])
def test_output_leader_down_10s_then_a_crash_re_delivers_at_most_the_bound_per_partition(
    mock_cluster: MockCluster, names: tuple[str, str], batches: int
) -> None:
    """The bound is --max-uncommitted-batches x --batch-size events per partition."""
    topic, group = names
    bound = batches * BATCH
    before, during = make_stream(60, seed=1), make_stream(300, seed=2)
    produce(mock_cluster.bootstraps, topic, before)
    s = settings(mock_cluster, topic, group, batch_size=BATCH, max_uncommitted_batches=batches, stop_when_idle=None)
    first = start(s)
    wait_committed(mock_cluster, group, topic, PARTITIONS, 30)

    mock_cluster.broker_set_down(OUTPUT_LEADER)
    produce(mock_cluster.bootstraps, topic, during)  # 150 a partition: three times the largest bound
    consumer = first.worker.source.consumer
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    worst = dict.fromkeys(range(PARTITIONS), 0)
    deadline = time.monotonic() + OUTAGE_S
    time.sleep(1.0)  # commit answers from before the outage are in
    acked_before = total(first.worker.registry, "activity_consumer_results_produced_total")
    while time.monotonic() < deadline:
        # The commit first, then the position: a later position can only overstate the gap.
        done = committed(mock_cluster, group, topic, PARTITIONS)
        for tp in consumer.position(tps):
            worst[tp.partition] = max(worst[tp.partition], tp.offset - done[tp.partition])
        time.sleep(0.2)
    # Results handled during the outage were never acknowledged: results_produced did not count them.
    assert total(first.worker.registry, "activity_consumer_results_produced_total") == acked_before > 0
    paused = first.worker.registry.get_sample_value("activity_consumer_paused_partitions", {"reason": "backpressure"})

    # Crash, with the leader still down: no drain, no commit; what the group holds is what stands.
    first.worker.checkpoint.failed = True  # type: ignore[attr-defined]
    read_to = {tp.partition: tp.offset for tp in consumer.position(tps)}
    first.worker.stop()
    first.thread.join(30)
    at_crash = committed(mock_cluster, group, topic, PARTITIONS)
    re_delivered = {p: read_to[p] - at_crash[p] for p in range(PARTITIONS)}
    print(f"worst read-past-commit during the outage {worst}; re-delivered by the crash {re_delivered}")

    assert paused == PARTITIONS  # fetching stopped on both partitions ...
    assert all(bound / 2 < n <= bound for n in worst.values()), worst  # ... near the bound, never past it
    assert all(bound / 2 < n <= bound for n in re_delivered.values()), re_delivered

    mock_cluster.broker_set_up(OUTPUT_LEADER)
    second = start(settings(mock_cluster, topic, group, batch_size=BATCH))
    assert second.join(60) == 0
    ends = end_offsets(mock_cluster, topic, PARTITIONS)
    # The restart read exactly from the crash's commit: the re-delivered events, then the unread rest.
    assert second.worker.processed == sum(ends[p] - at_crash[p] for p in range(PARTITIONS))
    stream = before + during
    expected, actual = expected_records(stream, topic), actual_records(read_outputs(mock_cluster, topic))
    assert missing(expected, actual) == {}
    assert committed(mock_cluster, group, topic, PARTITIONS) == ends
