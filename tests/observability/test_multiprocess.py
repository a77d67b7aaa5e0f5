"""`run --processes 2`: two worker processes in one group behind one /metrics, aggregated with
prometheus-client's multiprocess mode: the scrape counts every event exactly once."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest

from consumer.catalogue import OTHER, label_of
from consumer.devtools.embedded_broker import create_topics
from tests.support.observed_worker import Scrape, WorkerProc, corpus_stream, produce_recording, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

PARTITIONS = 4


def _split_between_two(stdout: str) -> bool:
    """The last two non-empty assignments logged are disjoint and cover every partition."""
    assigned = [
        set(r["partitions"])
        for r in (json.loads(line) for line in stdout.splitlines() if line.startswith("{"))
        if r["event"] == "partitions_assigned" and r["partitions"]
    ]
    if len(assigned) < 2:
        return False
    a, b = assigned[-2:]
    return not a & b and len(a | b) == PARTITIONS


def test_two_processes_count_every_event_once(kafka_bootstrap: str, tmp_path: Path, promtool: str) -> None:
    topic = f"obs-mp.{uuid.uuid4().hex[:12]}"
    create_topics(kafka_bootstrap, {topic: PARTITIONS})
    events = corpus_stream(300, unknown=5, poison=3, extra_poison=False)
    multiproc_dir = tmp_path / "prometheus-multiproc"
    multiproc_dir.mkdir()
    worker = WorkerProc.start(
        kafka_bootstrap,
        topic,
        f"obs-mp-{uuid.uuid4().hex[:8]}",
        tmp_path,
        extra=["--processes", "2"],
        env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)},
        idle=120,
    )
    try:
        worker.wait_http(30)
        # produce only once both processes hold partitions, so that both get work
        wait_for(lambda: _split_between_two(worker.stdout()), 30, "the partitions split between two processes")
        produce_recording(kafka_bootstrap, topic, events)
        n = len(events)

        def all_consumed() -> Scrape | None:
            s = worker.scrape()
            return s if s.total("activity_consumer_events_consumed_total") >= n else None

        wait_for(all_consumed, 60, f"{n} events consumed")
        # all four partitions owned between the two processes
        ready = wait_for(lambda: (r := worker.get("/readyz")) is not None and r.status == 200 and r, 30, "/readyz 200")
        assert ready.body.startswith("2 process(es)") and f"{PARTITIONS} partition(s) assigned" in ready.body
        # processed counts committed work: wait for the last commits to land
        done = n - sum(1 for e in events if e.poison)
        s = wait_for(
            lambda: (x := worker.scrape()).total("activity_consumer_events_processed_total") >= done and x,
            30,
            "every event's commit",
        )
        code, took = worker.terminate()
    finally:
        worker.kill()
    assert code == 0 and took < 10, worker.tail()

    # exactly once, not twice (both processes' files) and not half (one process' file)
    assert s.total("activity_consumer_events_consumed_total") == n
    sent = Counter(label_of(e.payload["type"]) for e in events if e.payload is not None)
    poison = sum(1 for e in events if e.poison)
    consumed = {k: v for k, v in s.by("activity_consumer_events_consumed_total", "type").items()}
    assert consumed == {k: float(v) for k, v in (sent + Counter({OTHER: poison})).items()}
    assert s.by("activity_consumer_events_processed_total", "type") == {k: float(v) for k, v in sent.items()}
    assert s.by("activity_consumer_dead_letters_total", "reason") == {"unknown_schema_id": float(poison)}
    assert s.value("activity_consumer_event_age_seconds_count") == sum(sent.values())
    assert (
        s.total("voucherify_redemptions_total")
        == sent["customer.redemption.succeeded"] + sent["customer.redemption.failed"]
    )
    assert s.value("activity_consumer_rebalances_total", kind="assign") >= 2  # one per process at least

    proc = subprocess.run([promtool, "check", "metrics"], input=s.text, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout + proc.stderr

    # both processes did part of the work, on disjoint partitions
    records = [json.loads(line) for line in worker.stdout().splitlines() if line.startswith("{")]
    assert sum(r["event"] == "worker_started" for r in records) == 2
    stopped = [r["processed"] for r in records if r["event"] == "worker_stopped"]
    assert len(stopped) == 2 and all(p > 0 for p in stopped), stopped
    assert sum(stopped) == sum(sent.values())


def test_one_process_with_a_multiproc_dir_as_deployed(kafka_bootstrap: str, tmp_path: Path, promtool: str) -> None:
    """deploy/k8s/base sets PROMETHEUS_MULTIPROC_DIR for every pod, also with the default single
    process: the metrics then live in mmap files and must still scrape right."""
    topic = f"obs-mp1.{uuid.uuid4().hex[:12]}"
    create_topics(kafka_bootstrap, {topic: 2})
    events = corpus_stream(100, unknown=2, poison=2, extra_poison=False)
    produce_recording(kafka_bootstrap, topic, events)
    multiproc_dir = tmp_path / "prometheus-multiproc"
    multiproc_dir.mkdir()
    worker = WorkerProc.start(
        kafka_bootstrap,
        topic,
        f"obs-mp1-{uuid.uuid4().hex[:8]}",
        tmp_path,
        env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)},
        idle=120,
    )
    n = len(events)
    try:
        worker.wait_http(30)
        s = wait_for(
            lambda: (
                (x := worker.scrape()).total("activity_consumer_events_consumed_total") >= n
                # processed counts committed work: every event's commit has landed
                and x.total("activity_consumer_events_processed_total") >= n - sum(1 for e in events if e.poison)
                and x
            ),
            60,
            f"{n} events consumed and committed",
        )
        code, _ = worker.terminate()
    finally:
        worker.kill()
    assert code == 0, worker.tail()
    assert list(multiproc_dir.iterdir()), "the metrics did not go through the multiproc dir"
    sent = Counter(label_of(e.payload["type"]) for e in events if e.payload is not None)
    assert s.by("activity_consumer_events_processed_total", "type") == {k: float(v) for k, v in sent.items()}
    assert s.total("activity_consumer_events_consumed_total") == n
    assert s.value("activity_consumer_dead_letters_total", reason="unknown_schema_id") == 2
    assert s.value("voucherify_loyalty_points_total", operation="added") == sum(
        e.payload["data"]["balance"]["points"]
        for e in events
        if e.payload is not None and e.payload["type"] == "customer.voucher.loyalty_card.points_added"
    )
    proc = subprocess.run([promtool, "check", "metrics"], input=s.text, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout + proc.stderr
