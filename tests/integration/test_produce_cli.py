"""`activity-consumer produce`: JSON Lines in, Avro events on a real topic, keyed by customer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from consumer.contract import H_ACTIVITY_TYPE
from consumer.devtools.corpus import EXAMPLES, REPO, SEED_FIXTURES
from consumer.ingest.records import customer_key
from consumer.pipeline.codec import AvroCodec
from tests.support.workers import read_all

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_produce_writes_every_good_line_keyed_by_customer_and_reports_the_bad_ones(
    kafka_bootstrap: str, new_topic: str
) -> None:
    events = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json")) + sorted(SEED_FIXTURES.glob("*.json"))]
    lines = [json.dumps(e) for e in events]
    lines.insert(3, "{not json")
    lines.insert(7, json.dumps({"id": "evcus_x", "type": "customer.created", "data": {}}))  # no created_at
    done = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "produce", "--bootstrap-servers", kafka_bootstrap, "--topic", new_topic],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=90,
    )
    assert done.returncode == 1  # bad lines make the run fail, after the good ones went out
    assert "line 4:" in done.stderr and "line 8:" in done.stderr and "created_at" in done.stderr

    records = read_all(kafka_bootstrap, [new_topic])
    codec = AvroCodec()
    got = {}
    for r in records:
        activity = codec.decode_json(r.value or b"")
        got[activity["id"]] = (activity, r.key, r.headers)
    assert set(got) == {e["id"] for e in events}
    for e in events:
        activity, key, headers = got[e["id"]]
        assert activity == e
        expected_key = customer_key(e)
        assert (key.decode() if key else None) == expected_key
        assert headers[H_ACTIVITY_TYPE] == e["type"].encode()
    assert sum(1 for e in events if customer_key(e)) >= len(events) - 2  # nearly every event names its customer
