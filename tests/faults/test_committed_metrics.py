"""Metrics count committed work (issue 10, item 6): when exactly-once transactions abort and their
batches are read again, processed, results, dead letters and every business metric count what the
committed transactions carried, never the aborted ones; only the attempt counters see the re-reads."""

from __future__ import annotations

from collections import Counter

import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from consumer.model import activity_from_record
from consumer.pipeline.codec import AvroCodec, DecodeError
from consumer.pipeline.router import Router
from consumer.runtime.worker import Worker
from consumer.telemetry.business_metrics import BusinessMetrics
from consumer.telemetry.metrics import new_registry
from tests.support.mock_cluster import ApiKey, MockCluster
from tests.support.mock_workers import (
    COORDINATOR,
    TxnSpy,
    settings,
    start,
    unique,
)
from tests.support.workers import make_stream, produce

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]
PARTITIONS = 2


def samples(registry: CollectorRegistry, prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every non-zero counter/histogram sample whose name starts with `prefix`."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in registry.collect()
        for s in m.samples
        if s.name.startswith(prefix) and not s.name.endswith("_created") and s.value
    }


def test_aborted_transactions_are_not_counted(mock_cluster: MockCluster, names: tuple[str, str]) -> None:
    topic, group = names
    stream = make_stream(150, poison=3)
    produce(mock_cluster.bootstraps, topic, stream)
    # Two batches abort (a failed commit_transaction, a failed send_offsets) and are read again.
    mock_cluster.push_request_errors(ApiKey.END_TXN, [KafkaError.REQUEST_TIMED_OUT])
    mock_cluster.push_request_errors(
        ApiKey.ADD_OFFSETS_TO_TXN, [KafkaError.NO_ERROR, KafkaError.NO_ERROR, KafkaError.GROUP_AUTHORIZATION_FAILED]
    )
    txn_id = unique("txn")
    mock_cluster.coordinator_set("transaction", txn_id, COORDINATOR)
    spies: list[TxnSpy] = []

    def spy_on(worker: Worker) -> None:
        spies.append(TxnSpy(worker.sink.producer))
        worker.sink.producer = spies[0]  # type: ignore[assignment]

    s = settings(mock_cluster, topic, group, processing_guarantee="exactly-once", transactional_id=txn_id)
    running = start(s, spy_on)
    assert running.join(60) == 0
    spy = spies[0]

    # What the committed transactions carried, read from the transactions themselves. (The mock
    # does not store transactional offsets, so an abort rewinds to the start and some events are
    # committed twice: they are committed work twice, and count twice.)
    dlq = f"{topic}.dlq"
    committed = spy.committed_records()
    aborted: Counter[tuple[str, str]] = Counter()
    for txn in spy.txns:
        if txn.outcome == "aborted":
            aborted += txn.delivered
    assert spy.count("aborted") == 2 and sum(aborted.values()) > 0  # aborted work existed: the check can fail

    codec, router = AvroCodec(), Router()
    once = new_registry()
    business = BusinessMetrics(once)
    handled = 0
    for activity_id, _key, value in stream:
        try:
            out = router.route(activity_from_record(codec.decode(value)))
        except DecodeError:
            continue
        times = sum(n for (a, _t), n in committed.items() if a == activity_id) // max(len(out), 1)
        handled += times
        for _ in range(times):
            business.observe(out)

    reg = running.worker.registry
    produced = total(reg, "activity_consumer_results_produced_total")
    processed = total(reg, "activity_consumer_events_processed_total")
    dead = total(reg, "activity_consumer_dead_letters_total")
    assert produced == sum(n for (_a, t), n in committed.items() if t != dlq)
    assert dead == sum(n for (_a, t), n in committed.items() if t == dlq)
    assert processed == handled
    assert total(reg, "activity_consumer_events_consumed_total") > processed + dead  # attempts include aborts
    assert samples(reg, "voucherify_") == samples(once, "voucherify_")


def total(registry: CollectorRegistry, sample: str) -> float:
    return sum(s.value for m in registry.collect() for s in m.samples if s.name == sample)
