"""Every corpus payload, in both kinds of delivery, pretty-printed and compact, POSTed signed
over real HTTP to the gateway: each is answered 200 only once on the topic, the record there
decodes to the same activity, with the key and headers of the contract, and the worker turns
each into the results (and only those) it makes of the same activity produced directly."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest

from consumer.contract import H_ACTIVITY_ID, H_ACTIVITY_TYPE, H_DELIVERY_ID, H_INGEST_SOURCE, H_PROJECT_ID
from consumer.ingest.records import customer_key
from consumer.pipeline.codec import AvroCodec
from tests.support.conformance import identical
from tests.support.gateway import PROJECT, body_of, corpus, delivery, expected_activity, post, running_gateway, settings
from tests.support.workers import activity_ids, expected_results, output_topics, read_all, start_worker

pytestmark = pytest.mark.integration


def test_every_corpus_payload_in_both_kinds_and_layouts_reaches_the_topic_unchanged(
    kafka_bootstrap: str, new_topic: str, tmp_path: Path
) -> None:
    sent: dict[str, tuple[dict, str]] = {}  # event id -> (expected activity, delivery id)
    with running_gateway(settings(kafka_bootstrap, new_topic)) as gw:
        for n, activity in enumerate(corpus()):
            for kind in ("webhook", "distribution"):
                for pretty in (True, False):
                    one = {**activity, "id": f"{activity['id']}-{kind[0]}{int(pretty)}-{n}"}
                    doc = delivery(one, kind)
                    # Pretty bodies are signed as Voucherify signs: the compact form (whitespace stripped).
                    answer = post(gw.port, body_of(doc, pretty), signed=body_of(doc, False))
                    assert (answer.status, answer.body["status"]) == (200, "accepted"), answer
                    sent[one["id"]] = (expected_activity(one), doc["id"])
        assert gw.metric("activity_gateway_requests_total", {"outcome": "accepted", "status": "200"}) == len(sent)
    assert len(sent) == 32 * 4
    codec = AvroCodec()
    records = read_all(kafka_bootstrap, [new_topic])
    assert len(records) == len(sent)
    for record in records:
        activity_id = record.headers[H_ACTIVITY_ID].decode()
        expected, delivery_id = sent[activity_id]
        identical(codec.decode_json(record.value or b""), expected)
        assert record.key == (customer_key(expected) or "").encode()
        assert record.headers[H_ACTIVITY_TYPE].decode() == expected["type"]
        assert record.headers[H_DELIVERY_ID].decode() == delivery_id
        assert record.headers[H_PROJECT_ID].decode() == PROJECT
        assert record.headers[H_INGEST_SOURCE] == b"webhook"

    # Downstream: the worker over the gateway's topic makes every result, none dead-lettered.
    log = tmp_path / "worker.log"
    worker = start_worker(kafka_bootstrap, new_topic, f"gw-corpus-{uuid.uuid4().hex[:8]}", idle=3.0, log_path=log)
    assert worker.wait(timeout=120) == 0, log.read_text()[-3000:]
    outputs = output_topics(kafka_bootstrap, new_topic)
    results = read_all(kafka_bootstrap, outputs)
    assert not [r for r in results if r.topic.endswith(".dlq")]
    stream = [(r.headers[H_ACTIVITY_ID].decode(), None, r.value or b"") for r in records]
    assert Counter(activity_ids(results)) == Counter(expected_results(stream))
