"""SIGTERM with requests in flight, on the real command (`activity-consumer ingest` in a
subprocess): each request in flight is answered, the ones answered 2xx are on the topic, the
listener is closed to new ones, and the process exits 0 within the grace, queue empty."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import uuid
from pathlib import Path
from typing import Any

import pytest

from consumer.contract import H_ACTIVITY_ID
from consumer.devtools.embedded_broker import free_tcp_port
from tests.support.gateway import SECRET, Answer, body_of, corpus, delivery, get, post
from tests.support.mock_cluster import MockCluster
from tests.support.workers import read_all

pytestmark = pytest.mark.faults

GRACE_S = 10.0
IN_FLIGHT = 8


def _gauge(port: int, name: str) -> float:
    status, text = get(port, "/metrics")
    if status != 200:
        return -1.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1.0


def test_sigterm_answers_the_requests_in_flight_and_exits_0(tmp_path: Path) -> None:
    with MockCluster(1) as cluster:
        topic = f"gw-term.{uuid.uuid4().hex[:8]}"
        cluster.create_topic(topic, 1)
        port = free_tcp_port()
        log_path = tmp_path / "gateway.log"
        exe = Path(sys.executable).parent / "activity-consumer"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [
                    *(str(exe), "ingest", "--bootstrap-servers", cluster.bootstraps, "--topic", topic),
                    *("--host", "127.0.0.1", "--port", str(port), "--log-format", "json"),
                    *("--shutdown-grace-seconds", str(GRACE_S)),
                ],
                env={**os.environ, "VOUCHERIFY_WEBHOOK_SECRETS": SECRET},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if get(port, "/readyz")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "the gateway never became ready"
                time.sleep(0.1)

            cluster.broker_set_rtt(1, 2000)  # acks take 2 s: the requests are still in flight at SIGTERM
            docs = [delivery({**corpus()[i], "id": f"evcus_{uuid.uuid4().hex[:18]}"}) for i in range(IN_FLIGHT)]
            answers: dict[str, Answer | str] = {}

            def send(doc: dict[str, Any]) -> None:
                try:
                    answers[doc["event"]["id"]] = post(port, body_of(doc, pretty=False), timeout=30)
                except (urllib.error.URLError, ConnectionError) as exc:
                    answers[doc["event"]["id"]] = f"no answer: {exc}"

            threads = [threading.Thread(target=send, args=(d,)) for d in docs]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 10
            while _gauge(port, "activity_gateway_in_flight_requests") < IN_FLIGHT:
                assert time.monotonic() < deadline, "the requests never were in flight together"
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            term_at = time.monotonic()
            code = proc.wait(timeout=GRACE_S + 10)
            took = time.monotonic() - term_at
            for t in threads:
                t.join(timeout=10)
            cluster.broker_set_rtt(1, 0)
            late: str | int
            try:
                late = post(port, body_of(docs[0], pretty=False), timeout=5).status
            except (urllib.error.URLError, ConnectionError) as exc:
                late = f"refused: {type(exc).__name__}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        records = read_all(cluster.bootstraps, [topic])

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    stopped = [line for line in lines if line.get("event") == "gateway_stopped"]
    statuses = {k: (a.status if isinstance(a, Answer) else a) for k, a in answers.items()}
    print(json.dumps({"exit": code, "seconds_to_exit": round(took, 2), "answers": statuses, "late": late}))
    assert code == 0, log_path.read_text()[-3000:]
    assert took < GRACE_S
    assert len(statuses) == IN_FLIGHT and all(s in (200, 503) for s in statuses.values()), statuses
    acknowledged = {k for k, s in statuses.items() if s == 200}
    assert acknowledged, "no request in flight was acknowledged during the shutdown"
    on_topic = [r.headers[H_ACTIVITY_ID].decode() for r in records]
    assert acknowledged <= set(on_topic), "an acknowledged delivery is not on the topic"
    assert isinstance(late, str), "a request after SIGTERM was served"
    assert stopped and stopped[-1]["unacknowledged"] == 0
    assert SECRET not in log_path.read_text()
