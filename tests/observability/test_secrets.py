"""Credentials given through KAFKA_* variables never reach the output: not while the worker
runs, not in its `worker_started` settings line, not in /metrics, not when startup fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from consumer.telemetry.logs import REDACTED
from tests.support.broker import TopicFactory
from tests.support.observed_worker import REPO, WorkerProc, corpus_stream, produce_recording, wait_for
from tests.support.workers import TANSU_GROUP_ENV

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PASSWORD = "s3cr3t-value"
# Every sensitive librdkafka property a KAFKA_* variable can set, each with its own marker.
SECRETS = {
    "KAFKA_SASL_PASSWORD": ("sasl.password", PASSWORD),
    "KAFKA_SASL_OAUTHBEARER_CONFIG": ("sasl.oauthbearer.config", "principal=svc clientSecret=oauth-s3cr3t-1"),
    "KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET": ("sasl.oauthbearer.client.secret", "oauth-s3cr3t-2"),
    "KAFKA_SSL_KEY_PASSWORD": ("ssl.key.password", "keypass-s3cr3t-3"),
    "KAFKA_SSL_KEYSTORE_PASSWORD": ("ssl.keystore.password", "keystore-s3cr3t-4"),
}
CREDENTIALS = {"KAFKA_SASL_USERNAME": "svc-user", **{var: value for var, (_, value) in SECRETS.items()}}


def _markers() -> list[str]:
    return [PASSWORD, "s3cr3t"] + [value for _, value in SECRETS.values()]


def _assert_no_secret(text: str, where: str) -> None:
    found = [m for m in _markers() if m in text]
    assert not found, f"{where} shows {found}:\n{text[-3000:]}"


def _settings_line(stdout: str) -> dict[str, str]:
    for line in stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record["event"] == "worker_started":
                kafka: dict[str, str] = record["settings"]["kafka"]
                return kafka
    raise AssertionError(f"no worker_started line in\n{stdout[-3000:]}")


def test_a_worker_with_sasl_credentials_never_shows_them(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    # security.protocol stays plaintext (Tansu has no SASL here): librdkafka accepts the sasl.*
    # and ssl.* settings and warns that they do not apply, so the worker runs and consumes.
    topic = topic_factory(2)
    events = corpus_stream(60, unknown=1, poison=2)
    produce_recording(kafka_bootstrap, topic, events)
    worker = WorkerProc.start(
        kafka_bootstrap, topic, f"obs-secrets-{uuid.uuid4().hex[:8]}", tmp_path, env=CREDENTIALS, idle=120
    )
    try:
        worker.wait_http()

        def consumed_all() -> bool:
            return worker.scrape().total("activity_consumer_events_consumed_total") == len(events)

        wait_for(consumed_all, 60, "every event consumed")
        scrape = worker.scrape()
        code, _ = worker.terminate()
        assert code == 0, worker.tail()
    finally:
        worker.kill()

    kafka = _settings_line(worker.stdout())
    assert kafka["sasl.username"] == "svc-user"  # the variables did reach the worker
    for prop, _ in SECRETS.values():
        assert prop in kafka and kafka[prop] in ("***", REDACTED), (prop, kafka.get(prop))
    _assert_no_secret(worker.stdout(), "stdout")
    _assert_no_secret(worker.stderr(), "stderr")
    _assert_no_secret(scrape.text, "/metrics")


def _run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumer.cli", "run", "--bootstrap-servers", "127.0.0.1:1", "--topics", "t",
         "--metrics-port", "0", "--log-format", "json", *args],
        cwd=REPO,
        env={**os.environ, **TANSU_GROUP_ENV, **CREDENTIALS, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def test_a_settings_error_names_the_setting_not_the_secrets() -> None:
    proc = _run_cli({"ACTIVITY_BATCH_SIZE": "0"}, "--processing-guarantee", "at-least-once")
    assert proc.returncode == 2
    assert "--batch-size 0" in proc.stderr
    _assert_no_secret(proc.stdout + proc.stderr, "a settings error")


def test_a_setting_librdkafka_rejects_fails_startup_without_showing_secrets() -> None:
    proc = _run_cli({"KAFKA_SECURITY_PROTOCOL": "BOGUS"})
    assert proc.returncode != 0
    assert "security.protocol" in proc.stdout + proc.stderr  # the failure says what is wrong
    _assert_no_secret(proc.stdout + proc.stderr, "a rejected librdkafka setting")


def test_failing_sasl_authentication_does_not_show_the_password(kafka_bootstrap: str, tmp_path: Path) -> None:
    # SASL_PLAINTEXT against a broker that does not do SASL: every connection attempt fails
    env = {**CREDENTIALS, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN"}
    worker = WorkerProc.start(kafka_bootstrap, "t", f"obs-sasl-{uuid.uuid4().hex[:8]}", tmp_path, env=env)
    try:
        # Bad credentials do not heal by retrying: the worker stops by itself, exit 1.
        wait_for(lambda: '"event": "kafka_fatal_error"' in worker.stdout(), 30, "a kafka_fatal_error log line")
        code, _ = worker.terminate()
    finally:
        worker.kill()
    assert code == 1, worker.tail()
    assert '"authentication failed: ' in worker.stdout()
    kafka = _settings_line(worker.stdout())
    assert kafka["security.protocol"] == "SASL_PLAINTEXT" and kafka["sasl.username"] == "svc-user"
    _assert_no_secret(worker.output(), "the output of a worker failing to authenticate")
