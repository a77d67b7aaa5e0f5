"""Every `.avsc` under avro/ parses with fastavro and with the Apache reference library,
as the self-contained expansion SchemaStore builds for it, and the envelope too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import avro.schema
import pytest
from fastavro import parse_schema

from consumer.pipeline.codec import SchemaStore

REPO = Path(__file__).resolve().parents[4]
AVRO = REPO / "avro"
STORE = SchemaStore(AVRO)
NAMES = sorted(STORE.files)


def test_every_file_is_in_the_store() -> None:
    files = sorted(AVRO.rglob("*.avsc"))
    assert len(files) == len(STORE.files) >= 80
    for path in files:
        top = json.loads(path.read_text())
        name = top["name"] if "." in top["name"] else f"{top.get('namespace')}.{top['name']}"
        assert name in STORE.files, path
        assert path.stem == top["name"].rsplit(".", 1)[-1], f"{path} holds {top['name']}"


@pytest.mark.parametrize("name", NAMES)
def test_expansion_parses_with_fastavro(name: str) -> None:
    expanded = STORE.expand(name)
    parsed = parse_schema(expanded)
    assert parsed["name"] == name


@pytest.mark.parametrize("name", NAMES)
def test_expansion_parses_with_apache_avro(name: str) -> None:
    schema = avro.schema.parse(json.dumps(STORE.expand(name)))
    assert schema.fullname == name


def _walk(schema: Any) -> Any:
    if isinstance(schema, list):
        for b in schema:
            yield from _walk(b)
    elif isinstance(schema, dict):
        yield schema
        for key in ("fields", "items", "values", "type"):
            v = schema.get(key)
            if isinstance(v, (list, dict)):
                yield from _walk(v)


@pytest.mark.parametrize("name", NAMES)
def test_every_field_default_is_valid(name: str) -> None:
    """A default must match the first union branch, or old readers cannot resolve."""
    for node in _walk(STORE.expand(name)):
        if "default" in node and "name" in node and "type" in node and "fields" not in node:
            t = node["type"]
            first = t[0] if isinstance(t, list) else t
            if node["default"] is None:
                assert first == "null", f"{name}.{node['name']}: null default, first branch {first}"


def test_envelope_parses_with_both_libraries() -> None:
    envelope = STORE.envelope
    assert parse_schema(envelope)["name"] == "voucherify.activity.CustomerActivity"
    apache = avro.schema.parse(json.dumps(envelope))
    assert apache.fullname == "voucherify.activity.CustomerActivity"
    data = next(f for f in apache.fields if f.name == "data")
    branches = [s.fullname for s in data.type.schemas]
    shapes = set(STORE.type_to_shape().values())
    assert {f"voucherify.activity.{s}" for s in shapes} <= set(branches)
    assert branches[-1] == "voucherify.activity.GenericActivityData"


def test_type_to_shape_names_existing_data_records() -> None:
    mapping = STORE.type_to_shape()
    assert len(mapping) == 76  # today's 74 and the two consent types
    for event_type, shape in mapping.items():
        assert f"voucherify.activity.{shape}" in STORE.files, event_type
        assert (AVRO / "data" / f"{shape}.avsc").exists(), event_type
