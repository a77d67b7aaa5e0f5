"""The gateway's answers over real HTTP, on a real port, against Tansu: who gets 2xx, who
gets which 4xx, and that nothing refused, ignored or re-sent reaches the topic."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from consumer.contract import H_ACTIVITY_ID
from consumer.devtools.embedded_broker import create_topics
from consumer.ingest.signature import sign
from tests.support.gateway import (
    RunningGateway,
    body_of,
    corpus,
    delivery,
    get,
    post,
    running_gateway,
    settings,
)
from tests.support.workers import read_all

pytestmark = pytest.mark.integration

NEW, OLD = "whsec-new", "whsec-old"
OWN = "whsec-proj-own"


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> dict[str, str]:
    names = {"main": f"gw-http.{uuid.uuid4().hex[:10]}", "routed": f"gw-http-routed.{uuid.uuid4().hex[:10]}"}
    create_topics(kafka_bootstrap, {names["main"]: 2, names["routed"]: 1})
    return names


@pytest.fixture(scope="module")
def gw(kafka_bootstrap: str, topics: dict[str, str]) -> Iterator[RunningGateway]:
    config = settings(
        kafka_bootstrap,
        topics["main"],
        webhook_secrets=(NEW, OLD),
        project_secrets=(f"proj_own:{OWN}",),
        project_topics=(f"proj_routed:{topics['routed']}",),
        max_body_bytes=64 * 1024,
    )
    with running_gateway(config) as gateway:
        yield gateway


def _fresh(type_: str | None = None, **delivery_kw: Any) -> dict[str, Any]:
    activity = dict(corpus()[0])
    activity["id"] = f"evcus_{uuid.uuid4().hex[:18]}"
    if type_:
        activity["type"] = type_
    return delivery(activity, **delivery_kw)


def _compact(doc: Any) -> bytes:
    return body_of(doc, pretty=False)


def _ids_on(kafka_bootstrap: str, topic: str) -> list[str]:
    return [r.headers[H_ACTIVITY_ID].decode() for r in read_all(kafka_bootstrap, [topic])]


def test_a_signed_delivery_is_accepted_and_a_rotated_secret_too(
    gw: RunningGateway, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    new, old = _fresh(), _fresh()
    assert post(gw.port, _compact(new), secret=NEW).status == 200
    assert post(gw.port, _compact(old), secret=OLD).status == 200  # the secret being rotated out
    ids = _ids_on(kafka_bootstrap, topics["main"])
    assert ids.count(new["event"]["id"]) == 1 and ids.count(old["event"]["id"]) == 1


def test_missing_malformed_or_wrong_signatures_get_401_and_produce_nothing(
    gw: RunningGateway, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    before = gw.metric("activity_gateway_signature_failures_total")
    refused = []
    for how in ("missing", "malformed", "wrong secret", "other body", "garbage body unsigned"):
        doc = _fresh()
        body = _compact(doc)
        if how == "missing":
            answer = post(gw.port, body, secret=None)
        elif how == "malformed":
            answer = post(gw.port, body, signature="not-hex")
        elif how == "wrong secret":
            answer = post(gw.port, body, secret="guessed")
        elif how == "other body":
            answer = post(gw.port, body, signed=_compact(_fresh()))
        else:
            answer = post(gw.port, b"\x00not json", signature="ab" * 32)
        assert answer.status == 401, (how, answer)
        assert "x-voucherify-signature" in answer.body["reason"]
        refused.append(doc["event"]["id"])
    assert gw.metric("activity_gateway_signature_failures_total") - before == 5
    assert gw.metric("activity_gateway_requests_total", {"outcome": "unauthorized", "status": "401"}) >= 5
    assert not set(refused) & set(_ids_on(kafka_bootstrap, topics["main"]))


def test_per_project_secrets_and_topics(gw: RunningGateway, kafka_bootstrap: str, topics: dict[str, str]) -> None:
    own = _fresh(project="proj_own")
    assert post(gw.port, _compact(own), secret=OWN).status == 200
    forged = _fresh(project="proj_own")
    assert post(gw.port, _compact(forged), secret=NEW).status == 401  # the plain list cannot sign for it
    routed = _fresh(project="proj_routed")
    assert post(gw.port, _compact(routed), secret=NEW).status == 200
    main_ids = _ids_on(kafka_bootstrap, topics["main"])
    assert own["event"]["id"] in main_ids and forged["event"]["id"] not in main_ids
    assert _ids_on(kafka_bootstrap, topics["routed"]) == [routed["event"]["id"]]


def test_non_customer_events_are_answered_2xx_counted_and_not_produced(
    gw: RunningGateway, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    docs = [_fresh("voucher.updated"), _fresh("campaign.created", kind="distribution"), _fresh("mystery.thing")]
    for doc in docs:
        answer = post(gw.port, _compact(doc), secret=NEW)
        assert (answer.status, answer.body["status"]) == (200, "ignored")
    assert gw.metric("activity_gateway_ignored_total", {"event_family": "voucher"}) == 1
    assert gw.metric("activity_gateway_ignored_total", {"event_family": "campaign"}) == 1
    assert gw.metric("activity_gateway_ignored_total", {"event_family": "other"}) == 1
    assert not {d["event"]["id"] for d in docs} & set(_ids_on(kafka_bootstrap, topics["main"]))


def test_re_sent_deliveries_are_produced_once(gw: RunningGateway, kafka_bootstrap: str, topics: dict[str, str]) -> None:
    before = gw.metric("activity_gateway_duplicates_total")
    doc = _fresh()
    answers = [post(gw.port, _compact(doc), secret=NEW) for _ in range(3)]
    resent = {**doc, "id": f"whs_{uuid.uuid4().hex[:20]}"}  # a retry with another send-out id, same event
    answers.append(post(gw.port, body_of(resent, pretty=True), secret=NEW))
    assert [(a.status, a.body["status"]) for a in answers] == [(200, "accepted")] + [(200, "duplicate")] * 3
    assert gw.metric("activity_gateway_duplicates_total") - before == 3
    assert _ids_on(kafka_bootstrap, topics["main"]).count(doc["event"]["id"]) == 1


def test_each_kind_of_bad_request_gets_its_own_answer(
    gw: RunningGateway, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    doc = _fresh()
    body = _compact(doc)
    assert post(gw.port, body, secret=NEW, content_type="text/plain").status == 415
    assert post(gw.port, body, secret=NEW, content_type=None).status == 415
    assert post(gw.port, body, secret=NEW, content_type="application/json; charset=utf-8").status == 200
    big = _fresh()
    big["data"]["customer"]["metadata"] = {"blob": "x" * 70_000}
    answer = post(gw.port, _compact(big), secret=NEW)
    assert answer.status == 413 and "65536" in answer.body["reason"]
    assert post(gw.port, body, secret=NEW, path="/webhooks/other").status == 404
    wrong_method = post(gw.port, b"", secret=NEW, method="GET")
    assert wrong_method.status == 405 and "POST" in wrong_method.headers.get("Allow", "")

    def signed_unreadable(raw: bytes, words: str) -> None:  # kept, not refused: see test_gateway_dead_letters
        answer = post(gw.port, raw, secret=NEW)
        assert answer.status == 202 and answer.body["status"] == "dead_lettered", (raw[:60], answer)
        assert words in answer.body["reason"], answer.body

    signed_unreadable(b"{not json", "not JSON")
    signed_unreadable(b"[1, 2]", "not an array")
    signed_unreadable(_compact({k: v for k, v in _fresh().items() if k != "event"}), "'event'")
    signed_unreadable(_compact({**_fresh(), "source": {"object": "ftp"}}), "source.object")
    late = _fresh()
    late["event"]["created_at"] = "yesterday"
    signed_unreadable(_compact(late), "created_at")
    assert late["event"]["id"] not in _ids_on(kafka_bootstrap, topics["main"])


def test_probes_and_metrics(gw: RunningGateway) -> None:
    assert get(gw.port, "/healthz")[0] == 200
    assert get(gw.port, "/readyz") == (200, "broker reachable\n")
    status, text = get(gw.port, "/metrics")
    assert status == 200
    for name in (
        "activity_gateway_requests_total",
        "activity_gateway_signature_failures_total",
        "activity_gateway_duplicates_total",
        "activity_gateway_ignored_total",
        "activity_gateway_ack_seconds_bucket",
        "activity_gateway_in_flight_requests",
        "activity_gateway_producer_queue_messages",
    ):
        assert name in text, name
    assert NEW not in text and OLD not in text and OWN not in text
    assert gw.metric("activity_gateway_ack_seconds_count") >= 1


def test_secrets_never_reach_the_settings_log() -> None:
    config = settings("127.0.0.1:9", "t", webhook_secrets=(NEW, OLD), project_secrets=(f"proj_own:{OWN}",))
    shown = json.dumps(config.redacted(), default=str)
    assert NEW not in shown and OLD not in shown and OWN not in shown
    assert sign(NEW, b"") not in shown
