"""The registry double answers confluent-kafka's own client as a registry would, and keeps
its data across an outage."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.support.registry_double import RegistryDouble

RECORD = {"type": "record", "name": "R", "namespace": "t", "fields": [{"name": "a", "type": "string"}]}
OTHER = {**RECORD, "fields": [{"name": "b", "type": "long"}]}


def _client(url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url})


def test_register_lookup_and_fetch(registry_double: RegistryDouble) -> None:
    client = _client(registry_double.url)
    first = client.register_schema("t-value", Schema(json.dumps(RECORD), "AVRO"))
    # Another process, another client: same schema text in another layout, same id.
    again = _client(registry_double.url).register_schema("t-value", Schema(json.dumps(RECORD, indent=2), "AVRO"))
    assert again == first
    second = client.register_schema("t-value", Schema(json.dumps(OTHER), "AVRO"))
    assert second != first

    fresh = _client(registry_double.url)
    assert json.loads(fresh.get_schema(first).schema_str) == RECORD
    latest = fresh.get_latest_version("t-value")
    assert (latest.schema_id, latest.version) == (second, 2)
    assert fresh.get_version("t-value", 1).schema_id == first
    assert fresh.lookup_schema("t-value", Schema(json.dumps(RECORD), "AVRO")).version == 1
    assert fresh.get_subjects() == ["t-value"]
    assert registry_double.registrations("t-value") == 3


def test_unknown_things_are_404_with_registry_error_codes(registry_double: RegistryDouble) -> None:
    client = _client(registry_double.url)
    with pytest.raises(SchemaRegistryError) as missing_id:
        client.get_schema(99)
    assert (missing_id.value.http_status_code, missing_id.value.error_code) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as missing_subject:
        client.get_latest_version("nope-value")
    assert missing_subject.value.error_code == 40401


def test_stop_and_start_keep_port_and_data(registry_double: RegistryDouble) -> None:
    schema_id = _client(registry_double.url).register_schema("t-value", Schema(json.dumps(RECORD), "AVRO"))
    port = registry_double.port
    registry_double.stop()
    with pytest.raises(Exception, match="Connection refused"):
        _client(registry_double.url).get_schema(schema_id)
    registry_double.start()
    assert registry_double.port == port
    assert json.loads(_client(registry_double.url).get_schema(schema_id).schema_str) == RECORD
