"""`activity-consumer backfill` against Tansu and the Voucherify API double: every activity
arrives as the gateway would write it, the worker's results match, the budget holds, and a
run stopped by SIGKILL or SIGTERM resumes losing nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from consumer.cli.main import main
from consumer.contract import H_ACTIVITY_ID, H_ACTIVITY_TYPE, H_INGEST_SOURCE
from consumer.ingest import voucherify_api
from consumer.ingest.records import customer_key, input_record
from consumer.pipeline.codec import AvroCodec
from consumer.telemetry.kafka_logs import routed
from tests.support.broker import TopicFactory
from tests.support.voucherify_api_double import (
    VoucherifyApiDouble,
    backfill_args,
    credentials_env,
    make_project,
)
from tests.support.workers import (
    REPO,
    Record,
    activity_ids,
    expected_results,
    output_topics,
    read_all,
    start_worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FAST = ("--max-requests-per-minute", "60000")


def _ids(records: list[Record]) -> Counter[str]:
    return Counter(activity_ids(records))


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **credentials_env()}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "consumer.cli", *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _summary(text: str, label: str) -> int:
    found = re.findall(rf"{label}: (\d+)", text)
    assert found, f"no {label!r} in:\n{text[-2000:]}"
    return int(found[-1])


def _as_gateway_would(bootstrap: str, topic: str, activities: list[dict[str, Any]]) -> None:
    """The same events as live webhooks bring them: the gateway's records (the one builder)."""
    codec = AvroCodec()
    producer = Producer(routed({"bootstrap.servers": bootstrap, "enable.idempotence": True}))
    for a in activities:
        r = input_record(codec, a, source="webhook", delivery_id=f"whs_{a['id']}")
        producer.produce(topic, r.value, r.key, headers=r.headers)
    assert producer.flush(30) == 0


def test_every_activity_arrives_as_the_gateway_writes_it_and_the_worker_agrees(
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in credentials_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(voucherify_api, "BACKOFF_FIRST_S", 0.05)
    topic = topic_factory(4)
    counts = [(1, 2, 3, 0, 4)[i % 5] for i in range(300)]
    counts[5] = counts[200] = 130  # two pages of activity
    project = make_project(counts, deleted=(7, 111), ties_every=4, seed="a")
    expected = {a["id"]: a for a in project.all_activities()}
    overlap = list(expected.values())[:12]  # also delivered live, by webhook, before the backfill
    _as_gateway_would(kafka_bootstrap, topic, overlap)
    progress = tmp_path / "progress.json"
    # The double allows 60 requests a second: the run is throttled (429s) now and then; and
    # the first two answers are server errors.
    with VoucherifyApiDouble(project, limit=60, window_s=1.0) as api:
        api.fail_next(503, 500)
        assert main(backfill_args(api, progress, topic, "--bootstrap-servers", kafka_bootstrap, *FAST)) == 0
        err = capsys.readouterr().err
        throttled = api.count(429)
        assert api.max_in_window(60.0) <= 60_000 and throttled > 0
        assert _summary(err, "429s waited") == throttled and _summary(err, r"retried \(5xx/network\)") == 2
        requests = api.count()
        # The same command again: complete, nothing sent, no request.
        assert main(backfill_args(api, progress, topic, "--bootstrap-servers", kafka_bootstrap, *FAST)) == 0
        assert api.count() == requests and "activities sent (acknowledged): 0" in capsys.readouterr().err
    assert _summary(err, r"activities sent \(acknowledged\)") == len(expected)
    assert "300 done this run" in err and "2 deleted (404, skipped)" in err
    # 4 listing pages (each after the first re-asks for the customers tied at its boundary), a page
    # of activity per customer, 2 second pages, 2 x 404.
    assert _summary(err, "requests") == requests == 4 + 298 + 2 + 2 + throttled + 2
    assert json.loads(progress.read_text())["complete"] is True

    records = read_all(kafka_bootstrap, [topic])
    backfilled = [r for r in records if r.headers[H_INGEST_SOURCE] == b"backfill"]
    assert _ids(backfilled) == Counter(expected.keys())  # every activity, once
    codec = AvroCodec()
    for r in backfilled:
        activity = expected[r.headers[H_ACTIVITY_ID].decode()]
        assert r.value is not None and codec.decode_json(r.value) == activity
        assert r.key == (customer_key(activity) or "").encode() or (r.key is None and customer_key(activity) is None)
        assert r.headers[H_ACTIVITY_TYPE] == activity["type"].encode()
    # Keyed by customer: one customer's activities share a partition, in their created_at order.
    by_customer: dict[bytes, list[Record]] = {}
    for r in backfilled:
        if r.key:
            by_customer.setdefault(r.key, []).append(r)
    for rs in by_customer.values():
        assert len({r.partition for r in rs}) == 1
        assert [expected[r.headers[H_ACTIVITY_ID].decode()]["created_at"] for r in rs] == sorted(
            expected[r.headers[H_ACTIVITY_ID].decode()]["created_at"] for r in rs
        )

    # The worker's results: what each event yields, for both copies of an overlapping event,
    # each result carrying the activity id that downstream dedupes by.
    proc = start_worker(kafka_bootstrap, topic, f"backfill-{uuid.uuid4().hex[:8]}", log_path=tmp_path / "w.log")
    assert proc.wait(timeout=120) == 0, (tmp_path / "w.log").read_text()[-3000:]
    results = read_all(kafka_bootstrap, output_topics(kafka_bootstrap, topic))
    once = expected_results([(r.headers[H_ACTIVITY_ID].decode(), None, r.value or b"") for r in backfilled])
    twice = {a["id"] for a in overlap}
    assert _ids(results) == Counter({i: n * (2 if i in twice else 1) for i, n in once.items()})
    for activity_id in twice:
        copies = [(r.topic, r.value) for r in results if r.headers[H_ACTIVITY_ID].decode() == activity_id]
        assert len(set(copies)) == len(copies) // 2, "both copies of an event yield the same results"


def _kill_test_project() -> Any:
    counts = [(150, 3, 40, 0, 220)[i % 5] for i in range(40)]
    return make_project(counts, deleted=(3,), seed="k")


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


IN_FLIGHT = '"inflight": {'  # the progress file while a page is produced and not yet acknowledged


def _run_and_kill(args: list[str], log: Path, progress: Path, api: VoucherifyApiDouble) -> None:
    """Start the command, let it send 8 pages, then SIGKILL it as soon as a page is in flight."""
    proc = _start(args, log)
    pages = api.count(200, "/activity")
    _wait_for(lambda: api.count(200, "/activity") >= pages + 8 or proc.poll() is not None, 60, "8 pages")
    _wait_for(lambda: IN_FLIGHT in _text(progress) or proc.poll() is not None, 60, "a page in flight")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def test_sigkill_mid_run_then_the_same_command_loses_nothing(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    topic = topic_factory(4)
    project = _kill_test_project()
    expected = Counter(a["id"] for a in project.all_activities())
    log = tmp_path / "backfill.log"
    progress = tmp_path / "p.json"
    kills: list[int] = []  # records on the topic at each kill
    with VoucherifyApiDouble(project) as api:
        args = backfill_args(api, progress, topic, "--bootstrap-servers", kafka_bootstrap, *FAST)
        # Kill while a page is in flight (sent, not yet acknowledged and saved); that window is
        # short, so a kill that lands between pages is followed by another run and another kill.
        while len(kills) < 5 and IN_FLIGHT not in _text(progress):
            _run_and_kill(args, log, progress, api)
            kills.append(sum(_ids(read_all(kafka_bootstrap, [topic])).values()))
        assert IN_FLIGHT in _text(progress), f"no kill landed on a page in flight in {len(kills)} tries"
        assert kills[-1] < sum(expected.values()), "the kill did not land mid-run"
        last = _start(args, log)
        assert last.wait(timeout=120) == 0, log.read_text()[-3000:]
    after = _ids(read_all(kafka_bootstrap, [topic]))
    assert set(after) == set(expected), "lost activities"
    duplicates = sum(after.values()) - len(after)
    resent = [int(n) for n in re.findall(r"re-sent from an interrupted page: (\d+)", log.read_text())]
    # One summary: the last run's (every earlier run was killed before writing one). Only the last
    # kill landed on a page in flight, so only that page is re-sent.
    assert len(resent) == 1, resent
    assert 0 < resent[0] <= 100  # the page in flight, and only it
    assert duplicates <= resent[0], (duplicates, resent)
    print(
        f"\nSIGKILL x{len(kills)} (records on the topic: {kills}); reruns re-sent {resent}; {duplicates} duplicate(s)"
    )


def test_sigterm_finishes_the_page_saves_and_exits_0_then_resumes(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    topic = topic_factory(4)
    project = _kill_test_project()
    expected = Counter(a["id"] for a in project.all_activities())
    log = tmp_path / "backfill.log"
    progress = tmp_path / "p.json"
    with VoucherifyApiDouble(project) as api:
        args = backfill_args(api, progress, topic, "--bootstrap-servers", kafka_bootstrap, *FAST)
        first = _start(args, log)
        _wait_for(lambda: api.count(200, "/activity") >= 25 or first.poll() is not None, 60, "25 activity pages")
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
        saved = json.loads(progress.read_text())
        assert saved["complete"] is False and saved["inflight"] is None  # the page in hand was finished
        sent_first = _ids(read_all(kafka_bootstrap, [topic]))
        assert saved["activities_sent"] == sum(sent_first.values()) < sum(expected.values())
        assert "stopped; run the same command again to resume" in log.read_text()
        second = _start(args, log)
        assert second.wait(timeout=120) == 0, log.read_text()[-3000:]
    after = _ids(read_all(kafka_bootstrap, [topic]))
    assert after == expected  # everything, and nothing twice
    assert _summary(log.read_text(), "re-sent from an interrupted page") == 0
