"""The result encoder's Confluent framing: one registration per topic, under `<topic>-value`,
the id in every header; a registry that cannot be reached is a `RegistrationFailed` naming
the subject."""

from __future__ import annotations

import json
import struct

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from consumer.devtools.corpus import EXAMPLES
from consumer.model import Result, activity_from_record
from consumer.pipeline.codec import AvroCodec
from consumer.pipeline.codec.registry import RegistrationFailed
from consumer.pipeline.codec.results import ResultEncoder
from consumer.pipeline.codec.schemas import SchemaStore
from consumer.pipeline.router import Router
from tests.support.registry_double import RegistryDouble


def _result() -> Result:
    """A real result: what the router makes of the corpus' customer.created."""
    codec = AvroCodec()
    event = json.loads((EXAMPLES / "customer.created.json").read_text())
    (result,) = Router().route(activity_from_record(codec.decode(codec.encode_json(event))))
    return result


RESULT = _result()
SCHEMA = RESULT.schema


def _value() -> dict[str, object]:
    return dict(RESULT.value)


def test_registered_once_per_topic_and_framed_with_its_id(registry_double: RegistryDouble) -> None:
    encoder = ResultEncoder(
        SchemaStore(),
        engine="fastavro",
        framing="confluent",
        registry=SchemaRegistryClient({"url": registry_double.url}),
    )
    first = [encoder.encode(SCHEMA, _value(), "a.lifecycle") for _ in range(3)]
    other_topic = encoder.encode(SCHEMA, _value(), "b.lifecycle")
    assert registry_double.subjects() == ["a.lifecycle-value", "b.lifecycle-value"]
    assert registry_double.registrations("a.lifecycle-value") == 1
    schema_id, _ = registry_double.latest("a.lifecycle-value")
    assert {v[:5] for v in first} == {struct.pack(">bI", 0, schema_id)}
    assert other_topic[:5] == first[0][:5]  # the same schema keeps its id across subjects


def test_unreachable_registry_names_the_subject(registry_double: RegistryDouble) -> None:
    encoder = ResultEncoder(
        SchemaStore(),
        engine="fastavro",
        framing="confluent",
        registry=SchemaRegistryClient({"url": registry_double.url}),
    )
    registry_double.stop()
    with pytest.raises(RegistrationFailed, match=r"a\.lifecycle-value"):
        encoder.encode(SCHEMA, _value(), "a.lifecycle")


def test_confluent_framing_needs_a_registry_and_a_topic(registry_double: RegistryDouble) -> None:
    with pytest.raises(ValueError, match="registry"):
        ResultEncoder(SchemaStore(), framing="confluent")
    encoder = ResultEncoder(
        SchemaStore(),
        engine="fastavro",
        framing="confluent",
        registry=SchemaRegistryClient({"url": registry_double.url}),
    )
    with pytest.raises(ValueError, match="topic"):
        encoder.encode(SCHEMA, _value())
