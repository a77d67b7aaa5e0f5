"""JSON input through the worker on a real broker (Tansu): every corpus activity as JSON (bare,
and both kinds of webhook delivery, flat and nested, pretty and compact) yields results
byte-identical to its Avro twin's; JSON that is not an activity is dead-lettered, unchanged,
with headers naming the reason."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from consumer.contract import (
    H_ACTIVITY_ID,
    H_AVRO_SCHEMA,
    H_DLQ_ERROR_CLASS,
    H_DLQ_REASON,
    H_DLQ_REASON_CODE,
    dead_letter_topic,
)
from consumer.ingest.records import customer_key
from consumer.pipeline.codec import AvroCodec
from tests.support.broker import TopicFactory
from tests.support.deliveries import KINDS, corpus, text, wrap
from tests.support.workers import (
    Record,
    expected_results,
    output_topics,
    produce,
    read_all,
    start_worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _json_forms(activity: dict[str, Any]) -> list[bytes]:
    docs: list[Any] = [activity]
    for kind in KINDS:
        docs += [wrap(activity, kind), wrap(activity, kind, nested=True)]
    return [text(doc, pretty=p) for doc in docs for p in (True, False)]


def _bad_json(webhook: dict[str, Any]) -> dict[str, tuple[bytes, bytes, str]]:
    """id -> (value, reason code, a phrase of the reason)."""
    voucher_event = {**webhook["event"], "type": "voucher.updated"}
    return {
        "evbad_json_trunc01": (json.dumps(webhook).encode()[:70], b"json_malformed", "not JSON"),
        "evbad_json_bytes01": (b'{"id": "\xff"}', b"json_malformed", "UTF-8"),
        "evbad_json_person1": (json.dumps(webhook["data"]).encode(), b"json_not_activity", "unknown envelope field"),
        "evbad_json_nosrc01": (
            json.dumps({k: v for k, v in webhook.items() if k != "source"}).encode(),
            b"json_not_activity",
            "missing 'source'",
        ),
        "evbad_json_vouch01": (
            json.dumps({**webhook, "type": "voucher.updated", "event": voucher_event}).encode(),
            b"json_not_activity",
            "not a customer event",
        ),
    }


def _results_by_event(records: list[Record], input_topic: str) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    """(stream, activity id, n-th result of it on that stream) -> what the result is."""
    out: dict[tuple[str, str, int], tuple[Any, ...]] = {}
    for r in records:
        stream = r.topic.removeprefix(input_topic + ".")
        activity_id = r.headers[H_ACTIVITY_ID].decode()
        n = sum(1 for s, a, _ in out if (s, a) == (stream, activity_id))
        out[(stream, activity_id, n)] = (r.key, r.value, r.headers.get(H_AVRO_SCHEMA))
    return out


def test_json_values_give_the_results_of_their_avro_twins_and_bad_json_is_dead_lettered(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    codec = AvroCodec()
    avro_topic, json_topic = topic_factory(2, prefix="json-input-avro"), topic_factory(2, prefix="json-input-json")
    avro_stream: list[tuple[str, str | None, bytes]] = []
    json_stream: list[tuple[str, str | None, bytes]] = []
    for activity in corpus():
        for i in range(len(_json_forms(activity))):
            twin = {**activity, "id": f"{activity['id']}_{i:02d}"}
            json_value = _json_forms(twin)[i]
            key = customer_key(twin)
            avro_stream.append((twin["id"], key, codec.encode_json(twin)))
            json_stream.append((twin["id"], key, json_value))
    bad = _bad_json(wrap(corpus()[0], "webhook"))
    json_stream += [(activity_id, "cust_bad", value) for activity_id, (value, _, _) in bad.items()]
    produce(kafka_bootstrap, avro_topic, avro_stream)
    produce(kafka_bootstrap, json_topic, json_stream)

    log = tmp_path / "worker.log"
    proc = start_worker(
        kafka_bootstrap, f"{avro_topic},{json_topic}", f"json-input-{uuid.uuid4().hex[:8]}", log_path=log
    )
    try:
        assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise

    avro_out = read_all(kafka_bootstrap, output_topics(kafka_bootstrap, avro_topic))
    json_out = read_all(kafka_bootstrap, output_topics(kafka_bootstrap, json_topic))
    dlq = dead_letter_topic(json_topic)
    assert not [r for r in avro_out if r.topic == dead_letter_topic(avro_topic)]
    avro_results = _results_by_event(avro_out, avro_topic)
    json_results = _results_by_event([r for r in json_out if r.topic != dlq], json_topic)
    assert len(avro_results) == sum(expected_results(avro_stream).values()) >= len(avro_stream) == 320
    assert json_results == avro_results  # same streams, keys, bytes and record names, event by event

    dead = {r.headers[H_ACTIVITY_ID].decode(): r for r in json_out if r.topic == dlq}
    assert set(dead) == set(bad)
    for activity_id, (value, reason_code, phrase) in bad.items():
        r = dead[activity_id]
        assert r.value == value  # the original bytes, unchanged
        assert r.headers[H_DLQ_ERROR_CLASS] == b"DecodeError"
        assert r.headers[H_DLQ_REASON_CODE] == reason_code, (activity_id, r.headers)
        assert phrase in r.headers[H_DLQ_REASON].decode(), (activity_id, r.headers[H_DLQ_REASON])
    print(f"\nJSON input: {len(json_stream)} JSON values -> {len(json_results)} results, {len(dead)} dead letters")
