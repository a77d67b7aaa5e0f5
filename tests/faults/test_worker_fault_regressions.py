"""Regression tests for worker bugs the fault tests found, each reproduced on the mock cluster.

None of them lost an event or committed past an undelivered one; they crashed, stalled or
re-delivered. Each test names the behaviour that holds now and checks it: a clean exit code,
the committed offsets, and the outputs.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from confluent_kafka import KafkaError

from tests.support.mock_cluster import ApiKey, MockCluster
from tests.support.mock_workers import (
    COORDINATOR,
    OUTPUT_LEADER,
    Running,
    actual_records,
    committed,
    create_topics,
    end_offsets,
    expected_records,
    missing,
    read_outputs,
    settings,
    start,
    unique,
    wait_committed,
)
from tests.support.workers import REPO, make_stream, produce

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]


# Runs a real worker in a child process with only CreateTopics stubbed out (the mock does not serve
# it), slowed to 0.5 s as a real controller may be, and statistics every 100 ms.
_CALLBACK_SCRIPT = """
import sys, time
import consumer.pipeline.sink
consumer.pipeline.sink.create_topics = lambda *a, **k: time.sleep(0.5)
from consumer.runtime.worker import Worker
from consumer.config import Settings
s = Settings(bootstrap_servers=sys.argv[1], topics=(sys.argv[2],), group_id=sys.argv[3], metrics_port=0,
             stop_when_idle=1.0, log_format="console", kafka={"statistics.interval.ms": "100"})
sys.exit(Worker(s).run())
"""


def test_a_slow_assignment_does_not_abort_the_process(mock_cluster: MockCluster) -> None:
    topic, group = unique("activities"), unique("group")
    create_topics(mock_cluster, topic, 1, group)
    produce(mock_cluster.bootstraps, topic, make_stream(5))
    proc = subprocess.run(
        [sys.executable, "-c", _CALLBACK_SCRIPT, mock_cluster.bootstraps, topic, group],
        cwd=REPO,
        capture_output=True,
        timeout=45,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-500:]


def test_a_delivery_failure_makes_run_return_1(mock_cluster: MockCluster, names: tuple[str, str]) -> None:
    topic, group = names
    mock_cluster.broker_set_down(OUTPUT_LEADER)
    produce(mock_cluster.bootstraps, topic, make_stream(10))
    running = start(settings(mock_cluster, topic, group, kafka={"message.timeout.ms": "1000"}))
    assert running.outcome(30) == 1
    assert committed(mock_cluster, group, topic, 1) == {0: -1001}


def test_a_failed_commit_is_committed_before_a_clean_exit(mock_cluster: MockCluster, names: tuple[str, str]) -> None:
    topic, group = names
    produce(mock_cluster.bootstraps, topic, make_stream(30, seed=1))
    running = start(settings(mock_cluster, topic, group, batch_size=100))
    wait_committed(mock_cluster, group, topic, 1, 30)
    # The last batch's commit fails for good (librdkafka tries an OffsetCommit 3 times).
    mock_cluster.push_request_errors(ApiKey.OFFSET_COMMIT, [KafkaError.REQUEST_TIMED_OUT] * 3)
    produce(mock_cluster.bootstraps, topic, make_stream(10, seed=2))
    assert running.join(30) == 0
    assert running.metric("activity_consumer_commit_failures_total") == 1
    assert committed(mock_cluster, group, topic, 1) == end_offsets(mock_cluster, topic, 1)


def test_an_oversized_poison_message_does_not_stall_its_partition(
    mock_cluster: MockCluster, names: tuple[str, str]
) -> None:
    topic, group = names
    stream = [
        *make_stream(3, seed=1),
        ("evcus_oversized", "cust_big", b"\x00\x00\x00\x00\x07" + b"x" * 999_900),
        *make_stream(3, seed=2),
    ]
    produce(mock_cluster.bootstraps, topic, stream)
    running = start(settings(mock_cluster, topic, group))
    assert running.outcome(30) == 0
    assert committed(mock_cluster, group, topic, 1) == end_offsets(mock_cluster, topic, 1)


def _exactly_once(mock_cluster: MockCluster, topic: str, group: str, batch_size: int) -> Running:
    txn_id = unique("txn")
    mock_cluster.coordinator_set("transaction", txn_id, COORDINATOR)
    return start(
        settings(
            mock_cluster,
            topic,
            group,
            processing_guarantee="exactly-once",
            transactional_id=txn_id,
            batch_size=batch_size,
        )
    )


def test_exactly_once_aborts_when_a_produce_fails_mid_batch(mock_cluster: MockCluster, names: tuple[str, str]) -> None:
    topic, group = names
    stream = make_stream(100)
    produce(mock_cluster.bootstraps, topic, stream)
    mock_cluster.push_request_errors(ApiKey.PRODUCE, [KafkaError.MSG_SIZE_TOO_LARGE])  # once: abortable
    running = _exactly_once(mock_cluster, topic, group, batch_size=100)
    assert running.outcome(30) == 0
    assert missing(expected_records(stream, topic), actual_records(read_outputs(mock_cluster, topic))) == {}


def test_exactly_once_retries_an_abort_that_failed_abortably(mock_cluster: MockCluster, names: tuple[str, str]) -> None:
    topic, group = names
    stream = make_stream(50)
    produce(mock_cluster.bootstraps, topic, stream)
    mock_cluster.push_request_errors(ApiKey.ADD_OFFSETS_TO_TXN, [KafkaError.GROUP_AUTHORIZATION_FAILED])
    mock_cluster.push_request_errors(ApiKey.END_TXN, [KafkaError.REQUEST_TIMED_OUT])  # hits the abort
    running = _exactly_once(mock_cluster, topic, group, batch_size=25)
    assert running.outcome(30) == 0
    assert missing(expected_records(stream, topic), actual_records(read_outputs(mock_cluster, topic))) == {}
