"""Issue 10's fault matrix, on librdkafka's mock cluster (real brokers over TCP, faults injected).

Each scenario streams a known id set, injects its fault while events are in flight, and ends
with the conservation check: forwarded + dead-lettered == sent, lost == 0, and the group's
commits reach the end of the input without ever passing an undelivered event. Rows go to the
run's fault-matrix table (`tests.support.fault_matrix`).

All run under at-least-once: the mock neither stores transactional offsets nor hides aborted
records from read_committed readers (see `tests.support.mock_workers.TxnSpy`), so exactly-once duplicates
are counted on Tansu (tests/integration/test_fault_matrix_tansu.py).

Topology (see `tests.support.mock_workers.create_topics`): input partitions on broker 2, outputs on
broker 1, group and transaction coordinators on broker 3.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from tests.support.fault_matrix import MatrixRecorder, MissingBehaviour, Tally, expectations, tally
from tests.support.mock_cluster import ApiKey, MockCluster
from tests.support.mock_workers import (
    INPUT_LEADER,
    OUTPUT_LEADER,
    Running,
    Stream,
    actual_records,
    committed,
    create_topics,
    end_offsets,
    expected_records,
    input_records,
    read_outputs,
    settings,
    start,
    undelivered_below,
    unique,
    wait_committed,
    wait_until,
)
from tests.support.tansu_faults import Trickle
from tests.support.workers import REPO, make_stream, produce

pytestmark = [pytest.mark.faults, pytest.mark.timeout(150)]

PARTITIONS = 2
GUARANTEE = "at-least-once"


def _finish_and_check(
    mock_cluster: MockCluster, topic: str, group: str, stream: Stream, running: Running, timeout: float = 60
) -> Tally:
    """Wait until everything is committed, stop the worker, and check conservation and commits."""
    wait_committed(mock_cluster, group, topic, PARTITIONS, timeout)
    running.worker.stop()
    assert running.join(30) == 0
    t = tally(expectations(stream), read_outputs(mock_cluster, topic, isolation="read_uncommitted"))
    assert t.lost == 0 and t.misrouted == 0, (t.lost_ids, t.misrouted_ids)
    assert t.forwarded + t.dead_lettered == t.sent
    assert committed(mock_cluster, group, topic, PARTITIONS) == end_offsets(mock_cluster, topic, PARTITIONS)
    return t


def test_input_partition_leader_down_10s(
    mock_cluster: MockCluster, names: tuple[str, str], fault_matrix: MatrixRecorder
) -> None:
    topic, group = names
    stream = make_stream(400, unknown=4, poison=4, seed=11)
    running = start(settings(mock_cluster, topic, group, stop_when_idle=None))
    trickle = Trickle(mock_cluster.bootstraps, topic, stream, rate=40)  # about 10 s of events
    wait_until(lambda: running.worker.processed >= 40, 30, "events processed before the outage")
    mock_cluster.broker_set_down(INPUT_LEADER)
    time.sleep(10)
    mock_cluster.broker_set_up(INPUT_LEADER)
    trickle.finish()
    t = _finish_and_check(mock_cluster, topic, group, stream, running)
    fault_matrix.record("mock: input partition leader down 10 s", GUARANTEE, t)


def test_all_brokers_down_30s_with_events_in_flight(
    mock_cluster: MockCluster, names: tuple[str, str], fault_matrix: MatrixRecorder
) -> None:
    topic, group = names
    stream = make_stream(300, poison=3, seed=12)
    running = start(settings(mock_cluster, topic, group, stop_when_idle=None))
    trickle = Trickle(mock_cluster.bootstraps, topic, stream, rate=60)
    wait_until(lambda: running.worker.processed >= 50, 30, "events processed before the outage")
    for broker in range(1, mock_cluster.num_brokers + 1):
        mock_cluster.broker_set_down(broker)
    in_flight_at_outage = running.worker.checkpoint.in_flight() or trickle.sent < len(stream)
    time.sleep(30)
    for broker in range(1, mock_cluster.num_brokers + 1):
        mock_cluster.broker_set_up(broker)
    trickle.finish()
    assert in_flight_at_outage
    t = _finish_and_check(mock_cluster, topic, group, stream, running, timeout=90)
    fault_matrix.record("mock: all brokers down 30 s, events in flight", GUARANTEE, t)


def test_group_coordinator_moved_mid_stream(
    mock_cluster: MockCluster, names: tuple[str, str], fault_matrix: MatrixRecorder
) -> None:
    topic, group = names
    stream = make_stream(300, poison=2, seed=13)
    mock_cluster.start_request_tracking()
    running = start(settings(mock_cluster, topic, group, stop_when_idle=None))
    trickle = Trickle(mock_cluster.bootstraps, topic, stream, rate=100)
    wait_until(lambda: running.worker.processed >= 60, 30, "events processed before the move")
    mock_cluster.coordinator_set("group", group, OUTPUT_LEADER)  # from broker 3 to broker 1
    mock_cluster.clear_requests()
    trickle.finish()
    t = _finish_and_check(mock_cluster, topic, group, stream, running)
    # The commits after the move went to the new coordinator.
    moved = [r for r in mock_cluster.get_requests() if r.api_key == ApiKey.OFFSET_COMMIT]
    assert any(r.broker_id == OUTPUT_LEADER for r in moved), moved
    fault_matrix.record("mock: group coordinator moved mid-stream", GUARANTEE, t)


RETRIABLE: dict[str, tuple[ApiKey, list[int]]] = {
    "Fetch": (
        ApiKey.FETCH,
        [KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.REQUEST_TIMED_OUT, KafkaError.UNKNOWN_TOPIC_OR_PART] * 2,
    ),
    "JoinGroup": (ApiKey.JOIN_GROUP, [KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE]),
    "SyncGroup": (ApiKey.SYNC_GROUP, [KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.REBALANCE_IN_PROGRESS]),
    "Heartbeat": (ApiKey.HEARTBEAT, [KafkaError.NOT_COORDINATOR, KafkaError.REBALANCE_IN_PROGRESS]),
    "OffsetCommit": (
        ApiKey.OFFSET_COMMIT,
        [KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.NOT_COORDINATOR, KafkaError.REQUEST_TIMED_OUT],
    ),
}


@pytest.mark.parametrize("request_type", list(RETRIABLE))
def test_retriable_request_errors(
    mock_cluster: MockCluster, names: tuple[str, str], fault_matrix: MatrixRecorder, request_type: str
) -> None:
    topic, group = names
    api_key, errors = RETRIABLE[request_type]
    stream = make_stream(200, poison=2, seed=14)
    mock_cluster.start_request_tracking()
    if api_key in (ApiKey.JOIN_GROUP, ApiKey.SYNC_GROUP):
        mock_cluster.push_request_errors(api_key, errors)  # they happen at the first join
    running = start(settings(mock_cluster, topic, group, stop_when_idle=None))
    trickle = Trickle(mock_cluster.bootstraps, topic, stream, rate=100)
    if api_key not in (ApiKey.JOIN_GROUP, ApiKey.SYNC_GROUP):
        wait_until(lambda: running.worker.processed >= 30, 30, "events processed before the errors")
        mock_cluster.push_request_errors(api_key, errors)
    trickle.finish()
    t = _finish_and_check(mock_cluster, topic, group, stream, running)
    # Every injected error was served, and requests of that type then succeeded.
    assert mock_cluster.count_requests(api_key) > len(errors)
    fault_matrix.record(f"mock: retriable errors on {request_type}", GUARANTEE, t, injected=len(errors))


def test_added_rtt_500ms(mock_cluster: MockCluster, names: tuple[str, str], fault_matrix: MatrixRecorder) -> None:
    topic, group = names
    stream = make_stream(150, poison=2, seed=15)
    produce(mock_cluster.bootstraps, topic, stream[:50])
    for broker in range(1, mock_cluster.num_brokers + 1):
        mock_cluster.broker_set_rtt(broker, 500)
    running = start(settings(mock_cluster, topic, group, stop_when_idle=None))
    trickle = Trickle(mock_cluster.bootstraps, topic, stream[50:], rate=20)
    trickle.finish()
    t = _finish_and_check(mock_cluster, topic, group, stream, running, timeout=90)
    fault_matrix.record("mock: added RTT 500 ms", GUARANTEE, t)


# -- fatal errors: the worker, as a process, against the mock -------------------------------------

# `activity-consumer run` with only the mock's gaps stubbed (no CreateTopics, no topic sizing).
_RUN_SCRIPT = """
import sys
import consumer.pipeline.sink as sink
sink.create_topics = lambda *a, **k: None
sink.partition_counts = lambda *a, **k: {}
from consumer.cli.main import main
sys.exit(main(sys.argv[1:]))
"""

FATAL: dict[str, tuple[ApiKey, int]] = {
    # The idempotent producer cannot get a producer id: nothing can be produced, ever.
    "InitProducerId": (ApiKey.INIT_PRODUCER_ID, KafkaError.CLUSTER_AUTHORIZATION_FAILED),
    # A sequence gap the idempotent producer cannot repair: librdkafka raises a fatal error.
    "Produce": (ApiKey.PRODUCE, KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER),
}


@pytest.mark.parametrize("request_type", list(FATAL))
def test_fatal_error_exits_non_zero_with_a_clear_log_line_and_commits_nothing_undelivered(
    mock_cluster: MockCluster, fault_matrix: MatrixRecorder, request_type: str, tmp_path: Path
) -> None:
    topic, group = unique("activities"), unique("group")
    create_topics(mock_cluster, topic, PARTITIONS, group)
    api_key, error = FATAL[request_type]
    first, rest = make_stream(60, poison=1, seed=16), make_stream(60, seed=17)
    stream = first + rest
    produce(mock_cluster.bootstraps, topic, first)
    log = tmp_path / "worker.log"
    args = [
        "run",
        "--bootstrap-servers",
        mock_cluster.bootstraps,
        "--topics",
        topic,
        "--group-id",
        group,
        "--metrics-port",
        "0",
        "--batch-size",
        "25",
        "--log-format",
        "json",
    ]
    env = {**os.environ, "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "500"}
    if api_key == ApiKey.INIT_PRODUCER_ID:
        produce(mock_cluster.bootstraps, topic, rest)
        mock_cluster.push_request_errors(api_key, [error])  # the next producer to start: the worker's
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _RUN_SCRIPT, *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        if api_key == ApiKey.PRODUCE:
            wait_committed(mock_cluster, group, topic, PARTITIONS, 30)  # the first part went through
            # Only the worker writes to the output leader (the test produces to the input's).
            mock_cluster.broker_push_request_errors(OUTPUT_LEADER, api_key, [error])  # once is fatal
            produce(mock_cluster.bootstraps, topic, rest)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text(errors="replace")
    assert code not in (0, None), text[-2000:]
    # An error (or librdkafka's critical) line that names the fatal error.
    fatal_lines = [
        line
        for line in text.splitlines()
        if ('"level": "error"' in line or '"level": "critical"' in line) and "fatal" in line.lower()
    ]
    assert fatal_lines, text[-2000:]

    # Nothing committed past an event whose results were not all delivered.
    expected = expected_records(stream, topic)
    delivered = actual_records(read_outputs(mock_cluster, topic, isolation="read_uncommitted"))
    offsets = committed(mock_cluster, group, topic, PARTITIONS)
    assert undelivered_below(input_records(mock_cluster, topic), delivered, expected, offsets) == []

    # A restart with the fault gone delivers the rest: nothing was lost.
    patch_free = subprocess.run(
        [sys.executable, "-c", _RUN_SCRIPT, *args, "--stop-when-idle", "3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert patch_free.returncode == 0, patch_free.stdout.decode()[-2000:]
    t = tally(expectations(stream), read_outputs(mock_cluster, topic, isolation="read_uncommitted"))
    assert t.lost == 0 and t.misrouted == 0 and t.forwarded + t.dead_lettered == t.sent, t
    fault_matrix.record(
        f"mock: fatal {request_type} error, then restart",
        GUARANTEE,
        t,
        exit_code=code,
        committed=sum(max(o, 0) for o in offsets.values()),
    )
    if "Traceback" in text:  # exited non-zero, but by a crash rather than the clean exit 1
        crash = text[text.index("Traceback") :]
        raise MissingBehaviour(f"exit {code} with a traceback, not a clean exit: {crash[-300:]}")
