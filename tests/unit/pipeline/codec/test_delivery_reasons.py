"""Why a body is not a delivery the mapping reads: each refusal carries its reason code (the
gateway's dead-letter header and metric label), and a message that names no value."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from consumer.pipeline.codec.delivery_json import REASON_CODES, DeliveryError, loads, parse

SECRET_VALUE = "jane@example.com"
VALID: dict[str, Any] = {
    "id": "whs_1",
    "project_id": "proj_1",
    "created_at": "2026-12-01T10:00:00Z",
    "type": "customer.created",
    "data": {"customer": {"id": "cust_1", "email": SECRET_VALUE}},
    "source": {"id": "wh_1", "object": "webhook", "target_url": "https://example.com/hook"},
    "event": {"id": "evcus_1", "type": "customer.created", "created_at": "2026-12-01T10:00:00Z"},
}


def _with(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    return doc


def _code(raw: bytes) -> str:
    with pytest.raises(DeliveryError) as caught:
        parse(loads(raw))
    assert SECRET_VALUE not in str(caught.value)
    return caught.value.code


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"hello", "not_json"),
        (b"\xff\xfe{}", "not_json"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b"[1,2,3]", "not_object"),
        (b'"a string"', "not_object"),
        (b'{"not":"a delivery"}', "not_delivery"),
        (json.dumps(_with(data=None)).encode(), "missing_field"),
        (json.dumps(_with(version="2027-01-01", payload={}, event=None, data=None)).encode(), "unknown_format"),
        (json.dumps(_with(event=None, source={"object": "distribution"})).encode(), "reshaped_payload"),
        (json.dumps(_with(data=[SECRET_VALUE])).encode(), "wrong_type"),
        (json.dumps(_with(source={"object": "ftp"})).encode(), "wrong_type"),
        (json.dumps(_with(project_id=7)).encode(), "wrong_type"),
    ],
)
def test_each_unreadable_body_has_its_reason_code(raw: bytes, code: str) -> None:
    assert code in REASON_CODES
    assert _code(raw) == code


def test_the_current_format_maps_with_or_without_its_version() -> None:
    assert parse(VALID).event_id == parse(_with(version="2024-01-01")).event_id == "evcus_1"
