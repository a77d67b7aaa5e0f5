"""The gateway's dead letters after a fix: `dlq remap` runs each kept body through the current
mapping and writes what maps to the input topic exactly as a live delivery; what still does not
map stays, counted; a second run writes nothing. And while the broker is away an unreadable
delivery is answered 503, never 2xx, and kept once it is back."""

from __future__ import annotations

import copy
import io
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer

from consumer.cli import _clients
from consumer.cli import dlq as dlq_cli
from consumer.cli.dlq_read import Scan
from consumer.cli.dlq_remap import RemapTally, remap
from consumer.cli.main import _parser
from consumer.config import gateway_mapping
from consumer.devtools.embedded_broker import create_topics
from consumer.ingest.records import webhook_record
from consumer.pipeline.codec import AvroCodec
from consumer.pipeline.codec.delivery_json import Delivery, parse
from tests.support.gateway import body_of, corpus, delivery, post, running_gateway, settings
from tests.support.s3_broker import s3_broker
from tests.support.workers import read_all

pytestmark = pytest.mark.integration

NEXT_VERSION = "2027-01-01"


def _future(event_type: str | None = None) -> tuple[dict[str, Any], bytes]:
    """A v2024-01-01 delivery and the same delivery in a made-up next format."""
    activity = copy.deepcopy(corpus()[0])
    activity["id"] = f"evcus_{uuid.uuid4().hex[:18]}"
    if event_type:
        activity["type"] = event_type
    doc = delivery(activity)
    future = {k: v for k, v in doc.items() if k not in ("event", "data")}
    future.update(version=NEXT_VERSION, payload={"event": doc["event"], "data": doc["data"]})
    return doc, body_of(future, False)


def _learned(doc: Any) -> Delivery:
    """The mapping once it has learned the next format (what a fix would ship)."""
    if isinstance(doc, dict) and doc.get("version") == NEXT_VERSION and isinstance(doc.get("payload"), dict):
        rest = {k: v for k, v in doc.items() if k not in ("version", "payload")}
        return parse({**rest, "event": doc["payload"].get("event"), "data": doc["payload"].get("data")})
    return parse(doc)


def _remap(bootstrap: str, topic: str, group: str) -> RemapTally:
    config = gateway_mapping({"bootstrap_servers": bootstrap, "topic": topic}, environ={})
    consumer = Consumer(_clients.reader_config(bootstrap, group))
    try:
        scan = Scan(consumer, config.dead_letter_topic(), from_committed=True)
        return remap(
            scan,
            config,
            AvroCodec(),
            producer_config=_clients.writer_config(bootstrap),
            mapping=_learned,
            out=io.StringIO(),
        )
    finally:
        consumer.close()


def test_a_dead_letter_reaches_the_input_topic_once_the_mapping_learns_its_format(kafka_bootstrap: str) -> None:
    topic = f"gw-remap.{uuid.uuid4().hex[:10]}"
    create_topics(kafka_bootstrap, {topic: 2})
    customer, customer_body = _future()
    _, voucher_body = _future("voucher.updated")
    with running_gateway(settings(kafka_bootstrap, topic)) as gw:
        for body in (customer_body, voucher_body, b"hello"):
            answer = post(gw.port, body)
            assert answer.status == 202 and answer.body["status"] == "dead_lettered", answer
    assert read_all(kafka_bootstrap, [topic]) == []

    # Today's mapping, through the CLI: nothing maps yet, nothing is written, all three stay.
    args = _parser().parse_args(
        ["dlq", "remap", "--topic", topic, "--bootstrap-servers", kafka_bootstrap, "--group", f"g-{uuid.uuid4().hex}"]
    )
    err = io.StringIO()
    assert dlq_cli.run(args, out=io.StringIO(), err=err) == 0
    assert "remapped 0" in err.getvalue() and "unknown_format 2, not_json 1" in err.getvalue(), err.getvalue()
    assert read_all(kafka_bootstrap, [topic]) == []

    group = f"gw-remap-{uuid.uuid4().hex[:8]}"
    first = _remap(kafka_bootstrap, topic, group)
    assert (first.scanned, first.remapped, first.ignored, dict(first.unmapped)) == (3, 1, 1, {"not_json": 1})
    (record,) = read_all(kafka_bootstrap, [topic])
    live = webhook_record(AvroCodec(), parse(customer))  # what the gateway writes for the v2024 delivery
    assert record.value == live.value and record.key == (live.key or "").encode()
    assert record.headers == {k: v for k, v in live.headers}

    second = _remap(kafka_bootstrap, topic, group)
    assert (second.scanned, second.remapped) == (0, 0)
    assert len(read_all(kafka_bootstrap, [topic])) == 1
    dlq = read_all(kafka_bootstrap, [f"{topic}.gateway.dlq"])
    assert sorted(r.value or b"" for r in dlq) == sorted([customer_body, voucher_body, b"hello"])  # left in place


def test_an_unreadable_delivery_gets_503_while_the_broker_is_away_and_is_kept_once_it_is_back(
    tmp_path: Path,
) -> None:
    body = f"not json {uuid.uuid4().hex}".encode()
    with s3_broker(tmp_path / "broker") as broker:
        topic = f"gw-dlq-outage.{uuid.uuid4().hex[:10]}"
        create_topics(broker.bootstrap_servers, {topic: 1})
        config = settings(broker.bootstrap_servers, topic, ack_timeout_seconds=2.0, retry_after_seconds=1)
        with running_gateway(config) as gw:
            assert post(gw.port, b"warm-up").status == 202  # the dead-letter topic exists and takes writes
            restart = threading.Thread(target=broker.restart, kwargs={"down_s": 6.0})
            restart.start()
            while broker.running:
                time.sleep(0.01)
            while_down = [post(gw.port, body, timeout=30) for _ in range(2)]
            restart.join()
            answers = []
            deadline = time.monotonic() + 60
            while not answers or answers[-1].status != 202:  # Voucherify re-sends until it gets a 2xx
                assert time.monotonic() < deadline, answers[-3:]
                answers.append(post(gw.port, body, timeout=30))
                time.sleep(0.5)
        letters = [
            r for r in read_all(broker.bootstrap_servers, [f"{topic}.gateway.dlq"], timeout=60) if r.value == body
        ]
    assert [a.status for a in while_down] == [503, 503], while_down
    assert all(a.headers.get("Retry-After") == "1" for a in while_down)
    assert {a.status for a in answers} <= {202, 503}
    assert len(letters) == 1
