"""Signed deliveries the mapping cannot read are kept, never refused: each is answered 202 once
the broker holds it in the gateway's dead-letter topic, as received, with its reason; nothing
reaches the input topic; a re-send is kept once; unsigned bodies stay 401 and are stored nowhere.
Over real HTTP, against the suite's broker."""

from __future__ import annotations

import copy
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from consumer.cli import dlq as dlq_cli
from consumer.cli.main import _parser
from consumer.contract import (
    H_DELIVERY_ID,
    H_DLQ_ERROR_CLASS,
    H_DLQ_FAILED_AT,
    H_DLQ_REASON,
    H_DLQ_REASON_CODE,
    H_DLQ_SIGNATURE,
    H_INGEST_SOURCE,
    H_PROJECT_ID,
)
from consumer.devtools.embedded_broker import create_topics
from tests.support.gateway import PROJECT, RunningGateway, body_of, corpus, delivery, post, running_gateway, settings
from tests.support.workers import Record, read_all

pytestmark = pytest.mark.integration

OWN_PROJECT, OWN_SECRET = "proj_0wn", "whsec-only-for-proj-0wn"


def _fresh(kind: str = "webhook") -> dict[str, Any]:
    activity = copy.deepcopy(corpus()[0])
    activity["id"] = f"evcus_{uuid.uuid4().hex[:18]}"
    return delivery(activity, kind)


def _without(key: str, kind: str = "webhook") -> bytes:
    return body_of({k: v for k, v in _fresh(kind).items() if k != key}, False)


def _future_format() -> bytes:
    doc = _fresh()
    return body_of(
        {"version": "2027-01-01", "id": doc["id"], "project_id": doc["project_id"], "payload": doc["data"]}, False
    )


def _wrong_type() -> bytes:
    doc = _fresh()
    doc["event"]["created_at"] = 1_700_000_000
    return body_of(doc, False)


# (what, body, reason code, project id header, delivery id header) -- the table first.
CASES: list[tuple[str, bytes, str, bool, bool]] = [
    ("hello", b"hello", "not_json", False, False),
    ("an array", b"[1,2,3]", "not_object", False, False),
    ("not a delivery", b'{"not":"a delivery"}', "not_delivery", False, False),
    ("a delivery without data", _without("data"), "missing_field", True, True),
    ("a future format", _future_format(), "unknown_format", True, True),
    ("100,000 nested arrays", b"[" * 100_000 + b"]" * 100_000, "too_deep", False, False),
    ("a field of the wrong type", _wrong_type(), "wrong_type", True, True),
    ("a reshaped distribution payload", _without("event", "distribution"), "reshaped_payload", True, True),
    ("invalid UTF-8", b'{"id": "\xff\xfe"}', "not_json", False, False),
]


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> dict[str, str]:
    main = f"gw-dlq.{uuid.uuid4().hex[:10]}"
    create_topics(kafka_bootstrap, {main: 2})
    return {"main": main, "dlq": f"{main}.gateway.dlq"}


@pytest.fixture(scope="module")
def gw(kafka_bootstrap: str, topics: dict[str, str]) -> Iterator[RunningGateway]:
    config = settings(kafka_bootstrap, topics["main"], project_secrets=(f"{OWN_PROJECT}:{OWN_SECRET}",))
    with running_gateway(config) as gateway:
        yield gateway


def _dead_letters(bootstrap: str, dlq: str, body: bytes) -> list[Record]:
    return [r for r in read_all(bootstrap, [dlq]) if r.value == body]


@pytest.mark.parametrize(("what", "body", "code", "has_project", "has_delivery"), CASES, ids=[c[0] for c in CASES])
def test_a_signed_unreadable_delivery_is_dead_lettered_as_received_then_acknowledged(
    gw: RunningGateway,
    kafka_bootstrap: str,
    topics: dict[str, str],
    what: str,
    body: bytes,
    code: str,
    has_project: bool,
    has_delivery: bool,
) -> None:
    before = gw.metric("activity_gateway_dead_letters_total", {"reason": code})
    answer = post(gw.port, body)
    assert answer.status == 202, (what, answer)
    assert answer.body["status"] == "dead_lettered" and topics["dlq"] in answer.body["reason"], answer.body
    assert gw.metric("activity_gateway_dead_letters_total", {"reason": code}) == before + 1

    again = post(gw.port, body)  # Voucherify's re-send of the same body: answered, not kept twice
    assert again.status == 202 and again.body["reason"].startswith("already dead-lettered"), again

    letters = _dead_letters(kafka_bootstrap, topics["dlq"], body)
    assert len(letters) == 1, (what, len(letters))
    headers = letters[0].headers
    assert headers[H_DLQ_REASON_CODE] == code.encode(), (what, headers)
    assert headers[H_DLQ_REASON] and headers[H_DLQ_ERROR_CLASS] == b"DeliveryError"
    assert headers[H_DLQ_SIGNATURE] == b"verified" and headers[H_INGEST_SOURCE] == b"webhook"
    assert int(headers[H_DLQ_FAILED_AT]) > 1_700_000_000_000
    assert (H_PROJECT_ID in headers) is has_project and (H_DELIVERY_ID in headers) is has_delivery, headers
    if has_project:
        assert headers[H_PROJECT_ID] == PROJECT.encode() and letters[0].key == PROJECT.encode()
    assert read_all(kafka_bootstrap, [topics["main"]]) == []


def test_a_body_signed_with_a_projects_own_secret_is_kept_under_that_project(
    gw: RunningGateway, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    body = f"not json, {uuid.uuid4().hex}".encode()
    answer = post(gw.port, body, secret=OWN_SECRET)
    assert answer.status == 202, answer
    (letter,) = _dead_letters(kafka_bootstrap, topics["dlq"], body)
    assert letter.key == OWN_PROJECT.encode() and letter.headers[H_PROJECT_ID] == OWN_PROJECT.encode()


def test_unsigned_and_wrongly_signed_bodies_stay_401_and_are_stored_nowhere(
    gw: RunningGateway, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    bodies = [f"hello {uuid.uuid4().hex}".encode(), body_of({"not": uuid.uuid4().hex}, False)]
    for body in bodies:
        assert post(gw.port, body, secret=None).status == 401
        assert post(gw.port, body, signature="ab" * 32).status == 401
        assert post(gw.port, body, secret="whsec-someone-else").status == 401
        assert post(gw.port, body, signed=body + b"!").status == 401
    stored = {r.value for r in read_all(kafka_bootstrap, [topics["dlq"], topics["main"]])}
    assert not stored & set(bodies)


def test_dlq_inspect_counts_the_gateways_dead_letters_by_reason(
    gw: RunningGateway, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    for _ in range(2):
        assert post(gw.port, f"garbage {uuid.uuid4().hex}".encode()).status == 202
    args = _parser().parse_args(
        ["dlq", "inspect", "--topic", topics["dlq"], "--bootstrap-servers", kafka_bootstrap, "--format", "json"]
    )
    out = io.StringIO()
    assert dlq_cli.run(args, out=out, err=io.StringIO()) == 0
    report = json.loads(out.getvalue())
    assert report["by_reason"]["not_json"] >= 2, report["by_reason"]
    assert report["matched"] == sum(report["by_reason"].values())
    assert "garbage" not in out.getvalue()  # a summary, never the body


def test_an_ignored_event_and_a_valid_one_are_unchanged(
    gw: RunningGateway, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    voucher = _fresh()
    voucher["event"]["type"] = voucher["type"] = "voucher.updated"
    assert post(gw.port, body_of(voucher, False)).status == 200
    good = _fresh()
    assert post(gw.port, body_of(good, False)).status == 200
    dlq = read_all(kafka_bootstrap, [topics["dlq"]])
    assert not any(good["event"]["id"].encode() in (r.value or b"") for r in dlq)


def test_an_unreadable_body_just_under_the_body_limit_is_kept_whole(
    gw: RunningGateway, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    body = b"x" * (gw.server.settings.max_body_bytes - 10)  # over librdkafka's default 1,000,000-byte record
    answer = post(gw.port, body)
    assert answer.status == 202, answer
    assert len(_dead_letters(kafka_bootstrap, topics["dlq"], body)) == 1
