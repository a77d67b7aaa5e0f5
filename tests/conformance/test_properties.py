"""Property tests: generated activities round-trip exactly, and no byte string makes the
decoder raise anything but DecodeError."""

from __future__ import annotations

import copy
import json
import string
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st

from consumer.contract import GENERIC
from consumer.devtools.corpus import OPENAPI
from consumer.pipeline.codec import AvroCodec, DecodeError, EncodeError

from ._support import corpus_files, identical, load, mock_registry

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CODEC = AvroCodec()
REGISTRY = mock_registry()
CONFLUENT = AvroCodec(framing="confluent", registry=REGISTRY)
CORPUS = [load(p) for p in corpus_files()]
CORPUS_DATA = [a["data"] for a in CORPUS]
KNOWN_TYPES = sorted(
    {*json.loads(OPENAPI.read_text())["CustomerActivity.type"], "customer.segment_entered"}
    | {"customer.consents.given", "customer.consents.revoked"}
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_MS = int((datetime(1000, 1, 1, tzinfo=UTC) - EPOCH) / timedelta(milliseconds=1))
MAX_MS = int((datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - EPOCH) / timedelta(milliseconds=1))

# -- strategies ---------------------------------------------------------------------------
keys = st.text(max_size=10)
leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
# Free-form objects may hold anything JSON can: integers of any size included.
free_leaf = leaf | st.integers() | st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
free_form = st.dictionaries(
    keys,
    st.recursive(
        free_leaf,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=15,
    ),
    max_size=5,
)


def _containers(value: Any) -> list[tuple[Any, Any]]:
    """(container, key) for every member of every dict and list inside `value`."""
    out: list[tuple[Any, Any]] = []
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            out.append((node, k))
            if isinstance(v, dict | list):
                stack.append(v)
    return out


@st.composite
def corpus_shaped(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(draw(st.sampled_from(CORPUS_DATA)))
    members = _containers(data)
    for _ in range(draw(st.integers(0, 4))):
        container, key = draw(st.sampled_from(members))
        container[key] = draw(json_values)
    dicts = [data] + [c[k] for c, k in members if isinstance(c[k], dict)]
    for _ in range(draw(st.integers(0, 2))):
        target = draw(st.sampled_from(dicts))
        target[draw(keys)] = draw(json_values)
    for _ in range(draw(st.integers(0, 2))):
        draw(st.sampled_from(dicts))["metadata"] = draw(free_form)
    return data


@st.composite
def created_at(draw: st.DrawFn) -> tuple[str, int]:
    ms = draw(st.integers(MIN_MS, MAX_MS))
    dt = EPOCH + timedelta(milliseconds=ms)
    base = f"{dt.year:04d}-{dt:%m-%dT%H:%M:%S}"
    form = draw(st.sampled_from(["canonical", "micro", "offset", "spaced"]))
    if form == "canonical":
        return f"{base}.{dt.microsecond // 1000:03d}Z", ms
    if form == "micro":
        return f"{base}.{dt.microsecond:06d}Z", ms
    if form == "spaced":
        return f"{base}.{dt.microsecond // 1000:03d}Z".replace(":", ": "), ms
    offset = draw(st.integers(-12 * 60, 14 * 60))
    try:
        local = dt + timedelta(minutes=offset)
    except OverflowError:  # past 9999-12-31 in local time
        reject()
    assume(local.year >= 1000)
    sign, off = ("+", offset) if offset >= 0 else ("-", -offset)
    text = f"{local.year:04d}-{local:%m-%dT%H:%M:%S}.{local.microsecond // 1000:03d}"
    return f"{text}{sign}{off // 60:02d}:{off % 60:02d}", ms


event_types = st.sampled_from(KNOWN_TYPES) | st.builds(
    lambda s: f"customer.{s}", st.text(alphabet=string.ascii_lowercase + "._", min_size=1)
)


@st.composite
def activities(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    text, ms = draw(created_at())
    data = draw(corpus_shaped() | free_form | st.dictionaries(keys, json_values, max_size=5))
    # `{"data": {...}}` alone is the OpenAPI's nested form, by design not a flat payload.
    assume(not (data.keys() <= {"data", "event_source"} and "data" in data))
    activity: dict[str, Any] = {
        "id": draw(st.text(min_size=1, max_size=30)),
        "type": draw(event_types),
        "data": data,
        "created_at": text,
    }
    if draw(st.booleans()):
        activity["group_id"] = draw(st.text(max_size=30))
    if draw(st.booleans()):
        activity["event_source"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "channel": st.sampled_from(["API", "USER_PORTAL", "INTERNAL"]),
                    "user": st.fixed_dictionaries({"id": st.text(max_size=10)}),
                    "api_key": st.fixed_dictionaries({"name": st.text(max_size=10)}),
                },
            )
        )
    return activity, ms


# -- (a) round trips ------------------------------------------------------------------------
@SETTINGS
@given(activities())
def test_generated_activities_round_trip_exactly(case: tuple[dict[str, Any], int]) -> None:
    activity, ms = case
    for codec in (CODEC, CONFLUENT):
        payload = codec.encode_json(activity)
        record = codec.decode(payload)
        assert record["created_at"] == EPOCH + timedelta(milliseconds=ms)
        assert record["type"] == activity["type"]
        shape = codec.converter.shape_of.get(
            "customer.segment.entered" if activity["type"] == "customer.segment_entered" else activity["type"]
        )
        if shape is None:
            assert codec.branch_of(record) == GENERIC
        identical(codec.decode_json(payload), activity)


@SETTINGS
@given(free_form, st.sampled_from(CORPUS))
def test_metadata_round_trips_exactly(metadata: dict[str, Any], base: dict[str, Any]) -> None:
    activity = copy.deepcopy(base)
    customer = activity["data"].get("customer")
    target = customer if isinstance(customer, dict) else activity["data"]
    target["metadata"] = metadata
    identical(CODEC.decode_json(CODEC.encode_json(activity)), activity)


# -- (b) decoding garbage ---------------------------------------------------------------------
def _decodes_or_decode_error(codec: AvroCodec, payload: bytes) -> None:
    try:
        record = codec.decode(payload)
    except DecodeError:
        return
    assert "data" in record


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(payload: bytes) -> None:
    _decodes_or_decode_error(CODEC, payload)
    _decodes_or_decode_error(CONFLUENT, payload)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_after_a_valid_fingerprint(rest: bytes) -> None:
    _decodes_or_decode_error(CODEC, CODEC.single_object.header + rest)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_after_a_valid_schema_id(rest: bytes) -> None:
    header = CONFLUENT.encode_json(CORPUS[0])[:5]
    assert struct.unpack(">bI", header)[1] > 0
    _decodes_or_decode_error(CONFLUENT, header + rest)


JSON_PUNCTUATION = frozenset(b'{}[]":,')


@SETTINGS
@given(st.sampled_from(CORPUS), st.data())
def test_corrupted_valid_events_decode_or_give_decode_error(base: dict[str, Any], data: st.DataObject) -> None:
    """Flip, drop or insert bytes in a real event's body, anywhere or where the JSON text of
    a free-form field is; `decode_json` (what the CLI and the pipeline call) must answer
    with an activity or a DecodeError, nothing else."""
    payload = bytearray(CODEC.encode_json(base))
    for _ in range(data.draw(st.integers(1, 3))):
        anywhere = list(range(10, len(payload)))
        in_json = [i for i in anywhere if payload[i] in JSON_PUNCTUATION] or anywhere
        i = data.draw(st.sampled_from(in_json) | st.sampled_from(anywhere))
        op = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        if op == "flip":
            payload[i] ^= data.draw(st.integers(1, 255))
        elif op == "drop":
            del payload[i]
        else:
            payload.insert(i, data.draw(st.integers(0, 255)))
    try:
        out = CODEC.decode_json(bytes(payload))
    except DecodeError:
        return
    assert isinstance(out, dict)
    assert isinstance(out["data"], dict)


@SETTINGS
@given(json_values)
def test_any_json_encodes_exactly_or_is_an_encode_error(value: Any) -> None:
    for activity in (value, {**CORPUS[0], "data": value}):
        try:
            payload = CODEC.encode_json(activity)
        except EncodeError:
            continue
        data = activity["data"]
        if data.keys() <= {"data", "event_source"} and "data" in data:
            continue  # the nested OpenAPI form: decodes flat, by design
        identical(CODEC.decode_json(payload), activity)
