"""Confluent framing: the gateway registers the contract with a Schema Registry (a local
double on its real REST paths) and writes Confluent-framed records that a registry-backed
codec reads back as the activity sent."""

from __future__ import annotations

import uuid

import pytest

from consumer.pipeline.codec import DEFAULT_SUBJECT, AvroCodec
from consumer.pipeline.codec.registry import connect
from tests.support.conformance import identical
from tests.support.gateway import body_of, corpus, delivery, expected_activity, post, running_gateway, settings
from tests.support.registry_double import RegistryDouble
from tests.support.workers import read_all

pytestmark = pytest.mark.integration


def test_confluent_framed_records_with_the_registry(
    kafka_bootstrap: str, new_topic: str, registry_double: RegistryDouble
) -> None:
    config = settings(kafka_bootstrap, new_topic, framing="confluent", schema_registry_url=registry_double.url)
    activity = {**corpus()[2], "id": f"evcus_{uuid.uuid4().hex[:18]}"}
    with running_gateway(config) as gw:
        assert post(gw.port, body_of(delivery(activity, "distribution"), pretty=True)).status == 200
    schema_id, _ = registry_double.latest(DEFAULT_SUBJECT)
    [record] = read_all(kafka_bootstrap, [new_topic])
    assert record.value is not None and record.value[0] == 0
    assert int.from_bytes(record.value[1:5], "big") == schema_id
    reader = AvroCodec(framing="confluent", registry=connect(registry_double.url))
    identical(reader.decode_json(record.value), expected_activity(activity))


def test_a_registry_away_at_start_gets_503_then_the_records_flow(
    kafka_bootstrap: str, new_topic: str, registry_double: RegistryDouble
) -> None:
    registry_double.stop()
    config = settings(kafka_bootstrap, new_topic, framing="confluent", schema_registry_url=registry_double.url)
    activity = {**corpus()[3], "id": f"evcus_{uuid.uuid4().hex[:18]}"}
    body = body_of(delivery(activity), pretty=False)
    with running_gateway(config) as gw:
        away = post(gw.port, body)
        assert (away.status, away.body["reason"]) == (503, "schema registry unavailable")
        assert "Retry-After" in away.headers
        registry_double.start()
        assert post(gw.port, body).status == 200  # Voucherify's re-send
    [record] = read_all(kafka_bootstrap, [new_topic])
    reader = AvroCodec(framing="confluent", registry=connect(registry_double.url))
    identical(reader.decode_json(record.value or b""), expected_activity(activity))
