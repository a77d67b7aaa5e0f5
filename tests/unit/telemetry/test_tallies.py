"""Tallies: attempts reach the metrics once per batch, work done only once it is committed."""

from __future__ import annotations

from consumer.contract import STREAM_SCHEMAS
from consumer.model import Result
from consumer.telemetry.business_metrics import BusinessMetrics
from consumer.telemetry.metrics import PipelineMetrics, new_registry
from consumer.telemetry.tallies import BatchTally, Committed, Tallies

TYPE = "customer.segment.entered"
RESULT = Result(stream="segments", schema=STREAM_SCHEMAS["segments"], key="k", value={"change": "entered"})
SEGMENTS = "voucherify_segment_changes_total"


def test_batch_counts_and_committed_work_are_added_when_applied_and_not_before() -> None:
    registry = new_registry()
    tallies = Tallies(PipelineMetrics(registry), BusinessMetrics(registry))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    batch = BatchTally()
    batch.consumed[TYPE] += 2
    batch.decode_errors["single-object"] += 1
    batch.ages += [1.5, 2.5]
    work = Committed()
    tallies.forwarded(work, TYPE, [RESULT, RESULT])
    tallies.forwarded(work, TYPE, [])
    work.dead_letters["malformed"] += 1

    tallies.batch(batch)
    assert value("activity_consumer_events_consumed_total", type=TYPE) == 2
    assert value("activity_consumer_decode_errors_total", framing="single-object") == 1
    assert value("activity_consumer_event_age_seconds_count") == 2
    assert value("activity_consumer_event_age_seconds_sum") == 4.0
    assert value("activity_consumer_events_processed_total", type=TYPE) == 0  # not committed yet
    assert value(SEGMENTS, change="entered") == 0  # the business metrics neither

    tallies.committed(None)  # a slice with nothing of ours (say, only our own output) counts nothing
    tallies.committed(work)
    assert value("activity_consumer_events_processed_total", type=TYPE) == 2
    assert value("activity_consumer_results_produced_total", stream="segments") == 2
    assert value("activity_consumer_dead_letters_total", reason="malformed") == 1
    assert value(SEGMENTS, change="entered") == 2


def test_rebalances_and_the_engine_in_use() -> None:
    registry = new_registry()
    tallies = Tallies(PipelineMetrics(registry), BusinessMetrics(registry))
    tallies.rebalance("assign")
    tallies.rebalance("assign")
    tallies.engine("fastavro", "1.2.3")
    assert registry.get_sample_value("activity_consumer_rebalances_total", {"kind": "assign"}) == 2
    assert registry.get_sample_value("activity_consumer_rebalances_total", {"kind": "lost"}) == 0
    assert (
        registry.get_sample_value("activity_consumer_avro_engine_info", {"engine": "fastavro", "version": "1.2.3"}) == 1
    )
