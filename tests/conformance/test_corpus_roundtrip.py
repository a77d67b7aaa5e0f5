"""Every corpus payload and every seed fixture survives JSON -> Avro -> JSON exactly,
through both framings and through the line-based `codec encode | codec decode`."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from consumer.cli.codec_lines import decode_lines, encode_lines
from consumer.pipeline.codec import AvroCodec
from consumer.pipeline.codec.framing import SINGLE_OBJECT_MAGIC
from tests.support.conformance import corpus_files, identical, load, mock_registry, seed_fixture_files

CORPUS = corpus_files()
SEEDS = seed_fixture_files()
ALL = [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in [*CORPUS, *SEEDS]]


@pytest.fixture(scope="module")
def single() -> AvroCodec:
    return AvroCodec()


@pytest.fixture(scope="module")
def confluent() -> AvroCodec:
    return AvroCodec(framing="confluent", registry=mock_registry())


def test_the_corpus_is_all_there() -> None:
    assert len(CORPUS) == 32
    assert len(SEEDS) >= 17, f"expected the 17 seed fixtures, found {[p.name for p in SEEDS]}"


@pytest.mark.parametrize("path", ALL)
def test_single_object_round_trip(single: AvroCodec, path: Path) -> None:
    activity = load(path)
    payload = single.encode_json(activity)
    assert payload[:2] == SINGLE_OBJECT_MAGIC
    identical(single.decode_json(payload), activity)


@pytest.mark.parametrize("path", ALL)
def test_confluent_round_trip(confluent: AvroCodec, path: Path) -> None:
    activity = load(path)
    payload = confluent.encode_json(activity)
    assert payload[0] == 0
    identical(confluent.decode_json(payload), activity)


@pytest.mark.parametrize("path", ALL)
def test_typed_seed_and_current_types_are_not_generic(single: AvroCodec, path: Path) -> None:
    """A catalogue type with a typed shape travels as that record, not as JSON text."""
    activity = load(path)
    record = single.decode(single.encode_json(activity))
    expected = single.converter.shape_of.get(
        "customer.segment.entered" if activity["type"] == "customer.segment_entered" else activity["type"]
    )
    assert expected is not None, f"{activity['type']} is not in type_to_shape.json"
    assert single.branch_of(record) == expected
    assert record["type"] == activity["type"]


def _lines(paths: list[Path]) -> list[dict[str, Any]]:
    return [load(p) for p in paths]


@pytest.mark.parametrize("framing", ["single-object", "confluent"])
def test_lines_encode_then_decode_is_identity(framing: str) -> None:
    codec = AvroCodec(framing="confluent", registry=mock_registry()) if framing == "confluent" else AvroCodec()
    activities = _lines([*CORPUS, *SEEDS])
    text_in = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in activities)
    encoded, err = io.StringIO(), io.StringIO()
    assert encode_lines(codec, io.StringIO(text_in), encoded, err) == 0, err.getvalue()
    assert err.getvalue() == ""
    b64_lines = encoded.getvalue().splitlines()
    assert len(b64_lines) == len(activities)
    decoded, err = io.StringIO(), io.StringIO()
    assert decode_lines(codec, io.StringIO(encoded.getvalue()), decoded, err) == 0, err.getvalue()
    out = [json.loads(line) for line in decoded.getvalue().splitlines()]
    assert len(out) == len(activities)
    for got, want in zip(out, activities, strict=True):
        identical(got, want)


def _nested(activity: dict[str, Any], event_source: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI's form: the payload under `data.data`, `event_source` next to it."""
    nested = copy.deepcopy(activity)
    nested["data"] = {"data": nested["data"], "event_source": event_source}
    return nested


EVENT_SOURCE = {"channel": "API", "api_key": {"name": "Primary", "app_id": "12abc345"}}


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in CORPUS])
@pytest.mark.parametrize("framing", ["single-object", "confluent"])
def test_nested_openapi_form_decodes_flat(path: Path, framing: str) -> None:
    codec = AvroCodec(framing="confluent", registry=mock_registry()) if framing == "confluent" else AvroCodec()
    flat = load(path)
    got = codec.decode_json(codec.encode_json(_nested(flat, EVENT_SOURCE)))
    identical(got, {**flat, "event_source": EVENT_SOURCE})


def test_nested_form_without_event_source_equals_flat_form(single: AvroCodec) -> None:
    flat = load(CORPUS[0])
    nested = copy.deepcopy(flat)
    nested["data"] = {"data": nested["data"]}
    assert single.encode_json(nested) == single.encode_json(flat)


def test_flat_form_event_source_at_envelope_round_trips(single: AvroCodec) -> None:
    flat = {**load(CORPUS[0]), "event_source": {"channel": "USER_PORTAL", "user": {"id": "user_1"}}}
    identical(single.decode_json(single.encode_json(flat)), flat)
    record = single.decode(single.encode_json(flat))
    assert record["event_source"]["channel"] == "USER_PORTAL"
