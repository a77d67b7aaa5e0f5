"""The Schema Registry adaptor maps what the registry says: no such schema is the event's
fault (`NotRegistered`), anything that stops it answering is an outage (`RegistryUnavailable`),
and a failed registration is a `RegistrationFailed` naming the record and the subject."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from consumer.pipeline.codec.registry import NotRegistered, RegistrationFailed, Registry, RegistryUnavailable, connect

RECORD = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}


class Failing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def get_schema(self, schema_id: int) -> Any:
        raise self.exc

    def register_schema(self, subject: str, schema: Any) -> int:
        raise self.exc


def test_register_then_lookup_round_trips() -> None:
    registry = connect(f"mock://adaptor-{uuid.uuid4()}")
    assert registry is not None
    schema_id = registry.register("t-value", RECORD, "R")
    assert '"name": "R"' in registry.lookup(schema_id)
    assert registry.register("t-value", RECORD, "R") == schema_id


def test_no_url_no_registry() -> None:
    assert connect(None) is None and connect("") is None


def test_an_unknown_or_non_avro_id_is_not_registered() -> None:
    client = SchemaRegistryClient.new_client({"url": f"mock://adaptor-{uuid.uuid4()}"})
    registry = Registry(client)
    with pytest.raises(NotRegistered, match="schema id 999 is not registered"):
        registry.lookup(999)
    json_id = client.register_schema("j-value", RegistrySchema('{"type": "object"}', "JSON"))
    with pytest.raises(NotRegistered, match="is JSON"):
        registry.lookup(json_id)


@pytest.mark.parametrize(
    "exc", [SchemaRegistryError(503, 50301, "down"), SchemaRegistryError(401, 40101, "no"), ConnectionError("refused")]
)
def test_an_outage_is_unavailable_and_registration_failed(exc: Exception) -> None:
    registry = Registry.of(Failing(exc))
    with pytest.raises(RegistryUnavailable, match="schema id 7") as lookup:
        registry.lookup(7)
    assert not isinstance(lookup.value, RegistrationFailed)
    with pytest.raises(RegistrationFailed, match="registering R under t-value"):
        registry.register("t-value", RECORD, "R")


def test_a_registry_is_not_wrapped_twice() -> None:
    registry = Registry(Failing(ConnectionError()))
    assert Registry.of(registry) is registry
