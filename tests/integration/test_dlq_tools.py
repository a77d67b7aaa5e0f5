"""`dlq inspect` and `dlq replay` on a real broker: dead letters from a failing handler are
replayed after the fix and reach their downstream topics; a second replay and a dry run
write nothing; filters, --to and --max-replays hold."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import Producer

from consumer.cli.main import main
from consumer.config import Settings
from consumer.contract import (
    DLQ_PREFIX,
    H_ACTIVITY_ID,
    H_ACTIVITY_TYPE,
    H_DLQ_ERROR_CLASS,
    H_DLQ_FAILED_AT,
    H_DLQ_REASON,
    H_DLQ_REASON_CODE,
    H_DLQ_REPLAY_COUNT,
    H_DLQ_SOURCE_OFFSET,
    H_DLQ_SOURCE_PARTITION,
    H_DLQ_SOURCE_TOPIC,
)
from consumer.model import Activity, Result
from consumer.pipeline.router import Router
from consumer.runtime.worker import Worker
from tests.support.broker import TopicFactory
from tests.support.workers import (
    TANSU_GROUP,
    activity_ids,
    make_stream,
    output_topics,
    produce,
    read_all,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
FAILING_TYPE = "customer.created"


class FailingRouter(Router):
    """The bug: every customer.created event makes its handler raise."""

    def route(self, activity: Activity) -> list[Result]:
        if activity.canonical_type == FAILING_TYPE:
            raise RuntimeError("downstream lookup failed")
        return super().route(activity)


def _run_worker(bootstrap: str, topic: str, group: str, router: Router) -> None:
    settings = Settings(
        bootstrap_servers=bootstrap,
        topics=(topic,),
        group_id=group,
        metrics_port=0,
        stop_when_idle=3,
        max_retries=0,
        kafka=dict(TANSU_GROUP),
    ).validate()
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(Worker(settings, router=router).run()), daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert code == [0]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what the worker logged before
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _count(bootstrap: str, topic: str) -> int:
    """Records in a topic, read to the end (Tansu's high watermarks undercount)."""
    return len(read_all(bootstrap, [topic]))


def test_dead_letters_of_a_failing_handler_are_replayed_after_the_fix(
    kafka_bootstrap: str, topic_factory: TopicFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = topic_factory(2)
    dlq = f"{topic}.dlq"
    stream = make_stream(150)
    produce(kafka_bootstrap, topic, stream)
    group = f"g-{uuid.uuid4().hex[:8]}"
    _run_worker(kafka_bootstrap, topic, group, FailingRouter())

    dead = read_all(kafka_bootstrap, [dlq])
    failed = set(activity_ids(dead))
    assert failed and len(failed) == len(dead)

    # inspect: counts and a sample that holds no personal data
    code, out, _ = _cli(
        capsys, "dlq", "inspect", "--bootstrap-servers", kafka_bootstrap, "--topic", dlq, "--format", "json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["matched"] == len(dead)
    assert report["by_reason"] == {"handler_error": len(dead)}
    assert report["by_type"] == {FAILING_TYPE: len(dead)}
    assert report["by_source_topic"] == {topic: len(dead)}
    assert sum(report["by_hour"].values()) == len(dead)
    sample = report["sample"][0]
    assert sample["summary"]["decodes"] and sample["summary"]["type"] == FAILING_TYPE
    assert sample["headers"][H_DLQ_REASON_CODE] == "handler_error"
    personal = _personal_values(stream, failed)
    assert personal, "the corpus events carry emails/names: the check below must have something to find"
    code, table, _ = _cli(capsys, "dlq", "inspect", "--bootstrap-servers", kafka_bootstrap, "--topic", dlq)
    assert code == 0 and "handler_error" in table and FAILING_TYPE in table
    for text in (out, table):
        leaked = [p for p in personal if p in text]
        assert not leaked, leaked[:3]

    # --dry-run lists them and writes nothing, commits nothing
    before = _count(kafka_bootstrap, topic)
    args = ("dlq", "replay", "--bootstrap-servers", kafka_bootstrap, "--topic", dlq)
    code, out, err = _cli(capsys, *args, "--dry-run")
    assert code == 0, err
    assert len(out.splitlines()) == len(dead) and f"-> {topic}" in out
    assert f"would replay {len(dead)}," in err
    assert _count(kafka_bootstrap, topic) == before

    # the replay: original bytes and key, back to the source topic, with a progress bar
    code, _, err = _cli(capsys, *args)
    assert code == 0, err
    assert "replay [" in err and f"replayed {len(dead)}," in err
    assert _count(kafka_bootstrap, topic) == before + len(dead)
    replayed = [r for r in read_all(kafka_bootstrap, [topic]) if r.headers.get(H_DLQ_REPLAY_COUNT) == b"1"]
    originals = {r.headers[H_ACTIVITY_ID]: r for r in dead}
    assert len(replayed) == len(dead)
    for r in replayed:
        o = originals[r.headers[H_ACTIVITY_ID]]
        assert (r.key, r.value) == (o.key, o.value)
        assert not any(k.startswith(DLQ_PREFIX) and k != H_DLQ_REPLAY_COUNT for k in r.headers)

    # a second run finds nothing new
    code, _, err = _cli(capsys, *args)
    assert code == 0 and "replayed 0, passed over 0 (filters), refused 0 of 0 scanned" in err
    assert _count(kafka_bootstrap, topic) == before + len(dead)

    # the fixed worker picks the replayed events up: their results reach the downstream topics
    _run_worker(kafka_bootstrap, topic, group, Router())
    downstream = [t for t in output_topics(kafka_bootstrap, topic) if t != dlq]
    forwarded = Counter(activity_ids(read_all(kafka_bootstrap, downstream)))
    assert failed <= set(forwarded)
    assert len(read_all(kafka_bootstrap, [dlq])) == len(dead)  # nothing dead-lettered again


def _personal_values(stream: list[tuple[str, str | None, bytes]], ids: set[str]) -> set[str]:
    """Emails and names inside the failed events, as the corpus JSON has them."""
    from consumer.pipeline.codec import AvroCodec

    codec = AvroCodec()
    found: set[str] = set()

    def walk(v: Any, key: str = "") -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, k)
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif isinstance(v, str) and key in ("email", "name", "phone") and len(v) > 3:
            found.add(v)

    for activity_id, _, value in stream:
        if activity_id in ids:
            walk(codec.decode_json(value))
    return found


def _dead_letter(
    producer: Producer, dlq: str, source: str, reason: str, activity_type: str, failed_at_ms: int, replays: int = 0
) -> None:
    headers = [
        (H_ACTIVITY_ID, f"evcus_{uuid.uuid4().hex[:10]}".encode()),
        (H_ACTIVITY_TYPE, activity_type.encode()),
        (H_DLQ_ERROR_CLASS, b"DecodeError" if reason != "handler_error" else b"HandlerError"),
        (H_DLQ_REASON_CODE, reason.encode()),
        (H_DLQ_REASON, b"test"),
        (H_DLQ_SOURCE_TOPIC, source.encode()),
        (H_DLQ_SOURCE_PARTITION, b"0"),
        (H_DLQ_SOURCE_OFFSET, b"0"),
        (H_DLQ_FAILED_AT, str(failed_at_ms).encode()),
    ]
    if replays:
        headers.append((H_DLQ_REPLAY_COUNT, str(replays).encode()))
    producer.produce(dlq, b"\x00\x00\x00\x00\x07garbage", b"cust_1", headers=headers)


def test_filters_to_and_max_replays(
    kafka_bootstrap: str, topic_factory: TopicFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    source, dlq, elsewhere = topic_factory(1), topic_factory(1), topic_factory(1)
    now = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    _dead_letter(producer, dlq, source, "handler_error", "customer.created", now - 3 * 3600_000)  # too old
    _dead_letter(producer, dlq, source, "handler_error", "customer.created", now - 600_000)  # replayed
    _dead_letter(producer, dlq, source, "malformed", "customer.created", now - 500_000)  # other reason
    _dead_letter(producer, dlq, source, "handler_error", "customer.updated", now - 400_000)  # other type
    _dead_letter(producer, dlq, source, "handler_error", "customer.created", now - 300_000, replays=2)  # refused
    _dead_letter(producer, dlq, source, "handler_error", "customer.created", now + 3600_000)  # after --until
    assert producer.flush(10) == 0

    group = f"replay-{uuid.uuid4().hex[:8]}"
    args = ["dlq", "replay", "--bootstrap-servers", kafka_bootstrap, "--topic", dlq, "--group", group]
    filters = ["--reason", "handler_error", "--type", "customer.created", "--since", "1h", "--until", "0m"]
    code, _, err = _cli(capsys, *args, *filters, "--max-replays", "2", "--to", elsewhere)
    assert code == 0, err
    assert "replayed 1, passed over 3 (filters), refused 1 of 5 scanned" in err, err
    assert "already replayed 2 time(s)" in err
    assert _count(kafka_bootstrap, elsewhere) == 1 and _count(kafka_bootstrap, source) == 0

    # the record after --until was held back, uncommitted: a run without filters picks it up
    code, _, err = _cli(capsys, *args, "--to", elsewhere)
    assert code == 0 and "replayed 1, passed over 0 (filters), refused 0 of 1 scanned" in err, err
    assert _count(kafka_bootstrap, elsewhere) == 2


def test_bad_input_is_named_with_a_non_zero_exit(kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["dlq", "replay", "--bootstrap-servers", kafka_bootstrap]
    code, _, err = _cli(capsys, *base, "--topic", "x", "--since", "yesterday")
    assert code == 2 and "--since 'yesterday'" in err
    code, _, err = _cli(capsys, *base, "--topic", f"no-such-{uuid.uuid4().hex[:6]}")
    assert code == 1 and "cannot read topic" in err and "Traceback" not in err
