"""Faults the gateway must answer 503 to, on librdkafka's mock cluster: an ack slower than the
bound (and the late ack that then absorbs the re-send), and a full producer queue."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from consumer.contract import H_ACTIVITY_ID
from consumer.devtools.embedded_broker import free_tcp_port
from tests.support.gateway import body_of, corpus, delivery, get, post, running_gateway, settings
from tests.support.mock_cluster import MockCluster
from tests.support.workers import read_all

pytestmark = pytest.mark.faults


@pytest.fixture
def cluster() -> Iterator[MockCluster]:
    with MockCluster(1) as mock:
        yield mock


def _doc() -> dict[str, Any]:
    return delivery({**corpus()[1], "id": f"evcus_{uuid.uuid4().hex[:18]}"})


def _wait(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_a_slow_ack_gets_503_and_its_late_ack_absorbs_the_re_send(cluster: MockCluster) -> None:
    topic = f"gw-slow.{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, 1)
    config = settings(cluster.bootstraps, topic, ack_timeout_seconds=1.0, retry_after_seconds=3)
    with running_gateway(config) as gw:
        doc = _doc()
        body = body_of(doc, pretty=False)
        cluster.broker_set_rtt(1, 2500)
        slow = post(gw.port, body)
        assert (slow.status, slow.body["status"], slow.headers.get("Retry-After")) == (503, "timeout", "3")
        cluster.broker_set_rtt(1, 0)
        _wait(lambda: gw.metric("activity_gateway_ack_seconds_count") == 1)  # the late ack came
        resent = post(gw.port, body)
        assert (resent.status, resent.body["status"]) == (200, "duplicate")
        assert gw.metric("activity_gateway_requests_total", {"outcome": "timeout", "status": "503"}) == 1
    records = read_all(cluster.bootstraps, [topic])
    assert [r.headers[H_ACTIVITY_ID].decode() for r in records] == [doc["event"]["id"]]


def test_a_full_producer_queue_gets_503_at_once(cluster: MockCluster) -> None:
    topic = f"gw-full.{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, 1)
    config = dataclasses.replace(
        settings(cluster.bootstraps, topic, ack_timeout_seconds=8.0),
        kafka={"queue.buffering.max.messages": "1", "linger.ms": "0"},
    )
    with running_gateway(config) as gw:
        cluster.broker_set_rtt(1, 1500)
        first_doc, second_doc = _doc(), _doc()
        first: list[Any] = []
        waiting = threading.Thread(target=lambda: first.append(post(gw.port, body_of(first_doc, pretty=False))))
        waiting.start()
        _wait(lambda: gw.metric("activity_gateway_producer_queue_messages") == 1)
        assert get(gw.port, "/readyz")[0] == 200  # the broker is reachable: the queue is what is full
        started = time.monotonic()
        full = post(gw.port, body_of(second_doc, pretty=False))
        assert (full.status, full.body["status"]) == (503, "unavailable") and "Retry-After" in full.headers
        assert time.monotonic() - started < 1.0  # answered at once, the loop never blocked
        cluster.broker_set_rtt(1, 0)
        waiting.join(timeout=20)
        assert first and first[0].status == 200
    records = read_all(cluster.bootstraps, [topic])
    assert [r.headers[H_ACTIVITY_ID].decode() for r in records] == [first_doc["event"]["id"]]


def test_no_broker_at_start_is_not_ready_and_answers_503() -> None:
    nowhere = f"127.0.0.1:{free_tcp_port()}"
    with running_gateway(settings(nowhere, "t"), ready=False) as gw:
        _wait(lambda: gw.server.gateway is not None and not gw.server.gateway.publisher.broker.wake.is_set())
        assert get(gw.port, "/readyz") == (503, "broker unreachable\n")
        assert get(gw.port, "/healthz")[0] == 200  # alive: waiting for the broker is not a reason to restart
        answer = post(gw.port, body_of(_doc(), pretty=False))
        assert (answer.status, answer.body["status"]) == (503, "unavailable") and "Retry-After" in answer.headers
        assert gw.metric("activity_gateway_requests_total", {"outcome": "unavailable", "status": "503"}) == 1


def test_beyond_its_in_flight_bound_the_gateway_answers_503_before_reading_the_body(cluster: MockCluster) -> None:
    """Overload: slow acks hold two requests; a third is refused at once (nothing produced for
    it), and once the two are answered the gateway takes deliveries again."""
    topic = f"gw-busy.{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, 1)
    config = settings(cluster.bootstraps, topic, ack_timeout_seconds=8.0, max_in_flight=2)
    with running_gateway(config) as gw:
        cluster.broker_set_rtt(1, 1500)
        held = [_doc(), _doc()]
        answers: list[Any] = []
        posters = [
            threading.Thread(target=lambda d=d: answers.append(post(gw.port, body_of(d, pretty=False)))) for d in held
        ]
        for t in posters:
            t.start()
        _wait(lambda: gw.metric("activity_gateway_in_flight_requests") == 2)
        refused_doc = _doc()
        started = time.monotonic()
        refused = post(gw.port, body_of(refused_doc, pretty=False))
        assert (refused.status, refused.body["status"]) == (503, "overloaded") and "Retry-After" in refused.headers
        assert time.monotonic() - started < 1.0
        assert get(gw.port, "/readyz")[0] == 200  # probes are never refused
        cluster.broker_set_rtt(1, 0)
        for t in posters:
            t.join(timeout=30)
        assert sorted(a.status for a in answers) == [200, 200]
        later = post(gw.port, body_of(refused_doc, pretty=False))  # Voucherify's retry
        assert later.status == 200
    ids = sorted(r.headers[H_ACTIVITY_ID].decode() for r in read_all(cluster.bootstraps, [topic]))
    assert ids == sorted(d["event"]["id"] for d in [*held, refused_doc])
