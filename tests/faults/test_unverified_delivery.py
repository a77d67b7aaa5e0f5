"""A delivery report librdkafka made up must not be taken as stored (issue 15).

A Produce answered DUPLICATE_SEQUENCE_NUMBER is marked delivered by librdkafka ("previous send
succeeded but was not acknowledged") with offsets -1, 0, 1, ... Tansu 0.6 on S3 storage answers so
for a batch it never stored when it was stopped mid-request (tests/integration/test_broker_restarts.py).
Here the mock cluster answers so to the worker's first Produce request and stores nothing: the
worker must not commit past those events, and in the end every result is downstream.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from tests.support.mock_cluster import ApiKey, MockCluster
from tests.support.mock_workers import (
    COORDINATOR,
    OUTPUT_LEADER,
    actual_records,
    committed,
    end_offsets,
    expected_records,
    missing,
    read_outputs,
    settings,
    start,
    unique,
)
from tests.support.workers import make_stream, produce

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_made_up_acknowledgement_is_processed_again_not_committed_past(
    mock_cluster: MockCluster, names: tuple[str, str], guarantee: str
) -> None:
    topic, group = names
    stream = make_stream(60)
    produce(mock_cluster.bootstraps, topic, stream)
    # The outputs' leader answers the worker's first Produce with DUPSEQ, storing nothing.
    mock_cluster.broker_push_request_errors(OUTPUT_LEADER, ApiKey.PRODUCE, [KafkaError.DUPLICATE_SEQUENCE_NUMBER])
    changes: dict[str, object] = {"batch_size": 20}
    if guarantee == "exactly-once":
        txn_id = unique("txn")
        mock_cluster.coordinator_set("transaction", txn_id, COORDINATOR)
        changes.update(processing_guarantee="exactly-once", transactional_id=txn_id)
    runs = [start(settings(mock_cluster, topic, group, **changes))]  # type: ignore[arg-type]
    # A fatal sequence error after it (the mock's sequence no longer matches) exits 1 without
    # committing past; the orchestrator's restart then reads the rest again.
    while runs[-1].outcome(40) == 1 and len(runs) < 3:
        runs.append(start(settings(mock_cluster, topic, group, **changes)))  # type: ignore[arg-type]
    assert runs[-1].outcome(40) == 0
    assert missing(expected_records(stream, topic), actual_records(read_outputs(mock_cluster, topic))) == {}
    if guarantee == "at-least-once":  # the mock does not apply transactional offset commits to committed()
        assert committed(mock_cluster, group, topic, 1) == end_offsets(mock_cluster, topic, 1)
