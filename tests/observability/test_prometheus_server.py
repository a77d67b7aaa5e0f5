"""A real Prometheus server scrapes the worker of `activity-consumer demo` every second, loads
deploy/prometheus/alerts.yml, and answers PromQL over what it scraped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.devtools.embedded_broker import free_tcp_port
from tests.support.observed_worker import ALERTS, REPO, try_get, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

JOB = "customer-activity-consumer"  # alerts.yml selects this job


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise


class PromAPI:
    def __init__(self, port: int) -> None:
        self.port = port

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        reply = try_get(self.port, f"{path}{query}")
        if reply is None or reply.status != 200:
            return None
        doc = json.loads(reply.body)
        assert doc["status"] == "success", doc
        return doc["data"]

    def scalar(self, promql: str) -> float | None:
        """The value of a one-element instant vector, None while there is none."""
        data = self.get("/api/v1/query", query=promql)
        if not data or not data["result"]:
            return None
        assert data["resultType"] == "vector" and len(data["result"]) == 1, data
        return float(data["result"][0]["value"][1])

    def positive(self, promql: str) -> float | None:
        value = self.scalar(promql)
        return value if value is not None and value > 0 else None


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    port = free_tcp_port()
    log = tmp_path / "demo.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "consumer.cli",
            "demo",
            "--metrics-port",
            str(port),
            "--rate",
            "300",
            "--duration",
            "90",
        ],
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield port, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def prometheus(
    prometheus_binary: str, demo: tuple[int, subprocess.Popen[bytes], Path], tmp_path: Path
) -> Iterator[PromAPI]:
    metrics_port = demo[0]
    port = free_tcp_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(ALERTS)],
                "scrape_configs": [
                    {"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]},
                ],
            }
        )
    )
    log = tmp_path / "prometheus.log"
    proc = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        cwd=tmp_path,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    api = PromAPI(port)
    try:
        wait_for(lambda: try_get(port, "/-/ready") is not None and proc.poll() is None, 30, "Prometheus ready")
        yield api
        assert _stop(proc) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_prometheus_scrapes_the_demo_and_loads_the_alerts(
    demo: tuple[int, subprocess.Popen[bytes], Path], prometheus: PromAPI
) -> None:
    started = time.monotonic()
    _, demo_proc, demo_log = demo
    try:
        # the target is up ...
        def target_up() -> bool:
            data = prometheus.get("/api/v1/targets")
            targets = data["activeTargets"] if data else []
            return any(t["labels"]["job"] == JOB and t["health"] == "up" for t in targets)

        wait_for(target_up, 40, "the worker target to be up")
        # ... business metrics arrive once the demo stream flows through the worker ...
        redemptions = wait_for(lambda: prometheus.positive("sum(voucherify_redemptions_total)"), 40, "redemptions")
        assert redemptions >= 1
        # ... pipeline rates need two scrapes with traffic in between
        rate = wait_for(
            lambda: prometheus.positive("sum(rate(activity_consumer_events_consumed_total[30s]))"),
            20,
            "a consumed rate",
        )
        assert 10 < rate < 3000  # the demo produces ~300/s
        assert wait_for(lambda: prometheus.positive(f'sum(up{{job="{JOB}"}})'), 5, "up") == 1
        assert wait_for(lambda: prometheus.positive("sum(voucherify_loyalty_points_total)"), 20, "loyalty points")
        assert wait_for(
            lambda: prometheus.positive('sum(voucherify_notifications_total{outcome="sent"})'), 20, "notifications"
        )
        assert wait_for(
            lambda: prometheus.positive(
                "histogram_quantile(0.99, sum by (le) (rate(activity_consumer_handler_duration_seconds_bucket[30s])))"
            ),
            20,
            "a handler duration quantile",
        )

        # every alert of alerts.yml is loaded and evaluates without error against real series
        expected = {
            r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if "alert" in r
        }
        assert len(expected) >= 10

        def rules_evaluated() -> list[dict[str, Any]] | None:
            data = prometheus.get("/api/v1/rules", type="alert")
            rules = [r for g in (data or {}).get("groups", []) for r in g["rules"]]
            return rules if rules and all(r["health"] != "unknown" for r in rules) else None

        rules = wait_for(rules_evaluated, 20, "every alert rule evaluated")
        assert {r["name"] for r in rules} == expected
        broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
        assert not broken, broken

        # and they see the worker's real series: the demo dead-letters 0.5% garbage on purpose, so
        # the decode-errors alert goes pending (its `for: 15m` keeps it from firing here)
        def decode_alert_pending() -> bool:
            data = prometheus.get("/api/v1/rules", type="alert")
            states = {r["name"]: r["state"] for g in (data or {}).get("groups", []) for r in g["rules"]}
            return states.get("CustomerActivityConsumerDecodeErrors") == "pending"

        wait_for(decode_alert_pending, 20, "CustomerActivityConsumerDecodeErrors pending")
        assert time.monotonic() - started < 60
    finally:
        code = _stop(demo_proc)
    assert code == 0, demo_log.read_text()[-3000:]
    assert "0 records left in producer queues" in demo_log.read_text()
