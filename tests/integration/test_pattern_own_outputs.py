"""Under --pattern, a worker with a custom --output-prefix and --dlq-topic never reads its own
outputs, even though the pattern matches them (issue 10, item 5)."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from consumer.contract import H_DLQ_SOURCE_TOPIC, STREAMS
from consumer.devtools.embedded_broker import create_topics
from tests.support.workers import (
    activity_ids,
    expected_results,
    make_stream,
    produce,
    read_all,
    start_worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_custom_output_prefix_and_dlq_under_a_pattern_that_matches_them(kafka_bootstrap: str, tmp_path: Path) -> None:
    base = f"own-{uuid.uuid4().hex[:8]}"
    source, prefix, dlq = f"{base}.events", f"{base}.out-", f"{base}.dead"
    create_topics(kafka_bootstrap, {source: 2})
    stream = make_stream(80, poison=4, seed=3)
    produce(kafka_bootstrap, source, stream)
    log = tmp_path / "w.log"
    proc = start_worker(
        kafka_bootstrap,
        None,
        f"g-{base}",
        idle=6,  # long enough for the pattern to pick up the output topics the worker creates
        extra=["--pattern", f"^{re.escape(base)}\\..*", "--output-prefix", prefix, "--dlq-topic", dlq],
        env={"KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS": "1000"},
        log_path=log,
    )
    assert proc.wait(timeout=120) == 0, log.read_text()[-2000:]

    lister = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "lister"})
    try:
        topics = sorted(t for t in lister.list_topics(timeout=10).topics if t.startswith(base + "."))
    finally:
        lister.close()
    outputs = [f"{prefix}{s}" for s in STREAMS] + [dlq]
    assert sorted([source, *outputs]) == topics  # nothing derived from an output (no '<output>.lifecycle')
    # The pattern matched the outputs and the worker was assigned them, so skipping them was tested.
    assert '"partitions_assigned"' in log.read_text() and f"{prefix}lifecycle[" in log.read_text()

    records = read_all(kafka_bootstrap, outputs)
    dead = [r for r in records if r.topic == dlq]
    poison = {a for a, _, v in stream if v.startswith(b"\x00\x00\x00\x00\x07")}
    assert set(activity_ids(dead)) == poison  # dead letters of the input only, never of an output
    assert {r.headers[H_DLQ_SOURCE_TOPIC] for r in dead} == {source.encode()}
    assert Counter(activity_ids(records)) == Counter(expected_results(stream))
