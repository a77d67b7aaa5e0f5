"""Hypothesis strategies for activities: generated ones (corpus-shaped, free-form and
arbitrary JSON data, every created_at form) and free-form metadata, with the settings the
property tests run them under. Used by tests/conformance (properties, engine differential)."""

from __future__ import annotations

import copy
import json
import string
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, assume, reject, settings
from hypothesis import strategies as st

from consumer.devtools.corpus import OPENAPI
from tests.support.conformance import corpus_files, load

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

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
