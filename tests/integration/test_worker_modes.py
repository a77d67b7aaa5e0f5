"""Pattern subscription, handler failures and graceful shutdown, on a real broker (the demo: test_demo_signals)."""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from consumer.config import Settings
from consumer.contract import H_ACTIVITY_ID, H_ACTIVITY_TYPE, H_DLQ_ERROR_CLASS, H_DLQ_REASON
from consumer.devtools.embedded_broker import create_topics
from consumer.model import Activity, Result
from consumer.pipeline.router import Router
from consumer.runtime.worker import Worker
from tests.support.workers import (
    TANSU_GROUP,
    activity_ids,
    expected_results,
    make_stream,
    output_topics,
    produce,
    read_all,
    start_worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_pattern_subscription_covers_every_matching_topic_and_never_its_own_outputs(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"ca-{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}.events-a", f"{prefix}.events-b"]
    create_topics(kafka_bootstrap, {t: 2 for t in topics})
    streams = {t: make_stream(60, seed=i + 5) for i, t in enumerate(topics)}
    for t, s in streams.items():
        produce(kafka_bootstrap, t, s)
    log = tmp_path / "w.log"
    proc = start_worker(
        kafka_bootstrap, "unused", f"g-{prefix}", extra=["--pattern", f"^{re.escape(prefix)}\\.events-.*"], log_path=log
    )
    # --topics and --pattern together are refused.
    assert proc.wait(timeout=30) == 2
    assert "give exactly one of --topics or --pattern" in log.read_text()

    pattern = ["--pattern", f"^{re.escape(prefix)}\\.events-.*"]
    metadata = {"KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS": "1000"}  # see new output topics quickly
    proc = start_worker(kafka_bootstrap, None, f"g-{prefix}", idle=6, extra=pattern, env=metadata, log_path=log)
    assert proc.wait(timeout=120) == 0, log.read_text()[-2000:]
    for t, s in streams.items():
        outs = output_topics(kafka_bootstrap, t)
        assert f"{t}.lifecycle" in outs and f"{t}.dlq" in outs
        # No output of an output: the pattern matched our own topics, and they were skipped.
        assert not [o for o in outs if o.count(".") > t.count(".") + 1], outs
        seen = Counter(activity_ids(read_all(kafka_bootstrap, outs)))
        assert seen == Counter(expected_results(s))


class FailingRouter(Router):
    """Raises for one type, to exercise retries and the dead-letter path."""

    def __init__(self, failing_type: str) -> None:
        super().__init__()
        self.failing_type = failing_type
        self.calls: Counter[str] = Counter()

    def route(self, activity: Activity) -> list[Result]:
        self.calls[activity.id] += 1
        if activity.canonical_type == self.failing_type:
            raise RuntimeError("downstream lookup failed")
        return super().route(activity)


def _run_in_thread(worker: Worker) -> tuple[threading.Thread, list[int]]:
    code: list[int] = []
    t = threading.Thread(target=lambda: code.append(worker.run()), daemon=True)
    t.start()
    return t, code


def test_a_failing_handler_is_retried_with_backoff_then_dead_lettered(kafka_bootstrap: str, new_topic: str) -> None:
    stream = make_stream(120)
    produce(kafka_bootstrap, new_topic, stream)
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        topics=(new_topic,),
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        metrics_port=0,
        stop_when_idle=3,
        max_retries=2,
        retry_backoff_ms=10,
        kafka=dict(TANSU_GROUP),
    ).validate()
    router = FailingRouter("customer.created")
    worker = Worker(settings, router=router)
    thread, code = _run_in_thread(worker)
    thread.join(timeout=120)
    assert code == [0]

    records = read_all(kafka_bootstrap, output_topics(kafka_bootstrap, new_topic))
    dead = [r for r in records if r.topic.endswith(".dlq")]
    failed_ids = {r.headers[H_ACTIVITY_ID].decode() for r in dead}
    assert failed_ids and all(router.calls[a] == 3 for a in failed_ids)  # 1 try + 2 retries
    for r in dead:
        assert r.headers[H_DLQ_ERROR_CLASS] == b"HandlerError"
        assert r.headers[H_ACTIVITY_TYPE] == b"customer.created"
        assert b"downstream lookup failed" in r.headers[H_DLQ_REASON]
    assert set(activity_ids(records)) == {a for a, _, _ in stream}  # everything else went on
    reg = worker.registry
    assert reg.get_sample_value("activity_consumer_retries_total", {"family": "lifecycle"}) == 2 * len(failed_ids)
    assert reg.get_sample_value("activity_consumer_dead_letters_total", {"reason": "handler_error"}) == len(failed_ids)


def test_sigterm_drains_commits_and_exits_zero_so_a_restart_repeats_nothing(
    kafka_bootstrap: str, new_topic: str, tmp_path: Path
) -> None:
    stream = make_stream(4000)
    group = f"g-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "w.log"
    produce(kafka_bootstrap, new_topic, stream)
    proc = start_worker(kafka_bootstrap, new_topic, group, idle=None, log_path=log)
    time.sleep(6)  # join, then part-way through the stream
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, log.read_text()[-2000:]
    assert time.monotonic() - started < 10.5  # the default grace period
    second = start_worker(kafka_bootstrap, new_topic, group, log_path=log)
    assert second.wait(timeout=120) == 0
    seen = Counter(activity_ids(read_all(kafka_bootstrap, output_topics(kafka_bootstrap, new_topic))))
    assert seen == Counter(expected_results(stream))  # nothing lost, nothing twice
