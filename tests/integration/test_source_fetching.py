"""How the worker's source fetches, on a real broker.

A backlog is fetched from the broker once, not again after each backpressure pause. Pausing a
partition makes librdkafka throw away what it prefetched for it and fetch it again on resume.
With the old default bound (2 batches of 500 past the last commit) a worker draining a backlog
on Tansu paused 31 times for 30,000 events and fetched 91,613 records: the broker served the
topic three times over, on the cores the worker needed. The bound's default leaves room for the
batches in flight, so a backlog drained at full speed is not paused at all. librdkafka's own
statistics (`rxmsgs`: records received from brokers) count what was fetched.

Records already fetched are taken at once: a poll waits for its batch to fill only when nothing is
queued, so a busy loop does not add a batch wait to what arrived while it processed.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from consumer.config import Settings
from consumer.devtools.embedded_broker import create_topics
from consumer.pipeline.source import Source
from consumer.runtime.member import Member
from consumer.runtime.worker import Worker
from tests.support.tansu_faults import fast_stream
from tests.support.workers import TANSU_GROUP, produce

pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(120)]

EVENTS = 12_000
PARTITIONS = 4


def test_a_backlog_is_fetched_once_by_default(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    topic = f"backlog-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: PARTITIONS})
    produce(kafka_bootstrap, topic, fast_stream(EVENTS, 71))

    fetched: list[int] = []
    seen = Member.on_stats

    def on_stats(self: Member, stats_json: str) -> None:
        fetched.append(int(json.loads(stats_json).get("rxmsgs", 0)))
        seen(self, stats_json)

    monkeypatch.setattr(Member, "on_stats", on_stats)
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        topics=(topic,),
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        output_prefix=f"{topic}.",
        dlq_topic=f"{topic}.dlq",
        metrics_port=0,
        stop_when_idle=3,
        kafka={**TANSU_GROUP, "statistics.interval.ms": "100"},
    ).validate()
    worker = Worker(settings)
    assert worker.run() == 0
    assert worker.processed == EVENTS
    assert fetched, "librdkafka reported no statistics"
    # A little slack for a record fetched twice around the group's first assignment.
    assert max(fetched) <= EVENTS * 1.05, f"fetched {max(fetched)} records to process {EVENTS}"


def test_records_already_fetched_are_taken_without_the_batch_wait(kafka_bootstrap: str) -> None:
    topic = f"queued-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, {topic: 1})
    produce(kafka_bootstrap, topic, fast_stream(20, 72))
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        topics=(topic,),
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        kafka=TANSU_GROUP,
    ).validate()
    noop = lambda *_: None  # noqa: E731
    source = Source(settings, on_assign=noop, on_revoke=noop, on_lost=noop)
    try:
        source.subscribe()
        first: list[object] = []
        deadline = time.monotonic() + 30
        while not first and time.monotonic() < deadline:  # the group join, then one fetch of all 20
            first = [m for m in source.poll_batch(1, 1.0) if m.error() is None]
        assert first, "nothing consumed"
        started = time.monotonic()
        rest = [m for m in source.poll_batch(500, 5.0) if m.error() is None]
        took = time.monotonic() - started
    finally:
        source.close()
    assert len(rest) == 19, len(rest)
    # Waiting for 500 would take the whole 5 s: only 19 exist.
    assert took < 1.0, f"the queued records waited {took:.2f} s for a batch to fill"
