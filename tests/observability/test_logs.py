"""Logs: JSON lines, dead letters located exactly, and no personal data, ever.

The end-to-end half reads what the shared worker run (the whole corpus and the seed fixtures
four times over, unknown types and poison of every kind, at debug level) wrote on stdout and
stderr. The unit half drives `redact_personal_data` directly and through `logs.configure`.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from consumer.catalogue import FAMILIES, KNOWN_TYPES, NOTIFICATION_CHANNELS
from consumer.contract import STREAMS
from consumer.telemetry import logs
from consumer.telemetry.logs import REDACTED, redact_personal_data
from tests.support.observed_worker import ObservedRun, personal_values, walk
from tests.support.workers import templates

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE = re.compile(r"\+\d{1,3}[\s.-]?\d{3,4}[\s.-]?\d{3,}")
# Words the pipeline itself writes (types, families, streams, channels): a metadata value equal to
# one of them ("distribution") cannot be told apart from the worker's own vocabulary.
_VOCABULARY = "\n".join(sorted(KNOWN_TYPES | FAMILIES | set(STREAMS) | set(NOTIFICATION_CHANNELS)))


def _searchable(value: str) -> bool:
    """Long and specific enough that finding it in the output means it leaked."""
    return len(value) >= 6 and value not in _VOCABULARY


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


# --------------------------------------------------------------------------------------------
# the worker's own output


def test_every_stdout_line_is_a_json_log_record(observed_run: ObservedRun) -> None:
    lines = [line for line in observed_run.stdout.splitlines() if line.strip()]
    assert len(lines) >= 8
    records = []
    for line in lines:
        assert line.startswith("{"), f"not a JSON log line: {line[:200]}"
        record = json.loads(line)
        assert isinstance(record, dict) and {"event", "level", "timestamp"} <= record.keys(), line[:200]
        records.append(record)
    levels = {r["level"] for r in records}
    assert "debug" in levels, "ACTIVITY_LOG_LEVEL=debug did not reach the worker"
    events = {r["event"] for r in records}
    assert {"worker_started", "partitions_assigned", "dead_letter", "committed", "worker_stopped"} <= events
    # stderr holds librdkafka's own lines; anything there that looks like JSON must be JSON too
    _json_lines(observed_run.stderr)


def test_dead_letter_lines_carry_topic_partition_offset(observed_run: ObservedRun) -> None:
    logged = {
        (r["topic"], r["partition"], r["offset"], r["reason"])
        for r in _json_lines(observed_run.stdout)
        if r["event"] == "dead_letter"
    }
    expected = {
        (observed_run.topic, e.partition, e.offset, e.poison[0]) for e in observed_run.events if e.poison is not None
    }
    assert len(expected) == 7
    assert logged == expected
    for r in _json_lines(observed_run.stdout):
        if r["event"] == "dead_letter":
            assert r["level"] == "warning"


def _corpus_payloads() -> list[dict[str, Any]]:
    return templates()


def test_no_personal_data_in_the_worker_output(observed_run: ObservedRun) -> None:
    output = observed_run.stdout + observed_run.stderr
    payloads = [e.payload for e in observed_run.events if e.payload is not None]
    assert {p["type"] for p in payloads} >= {t["type"] for t in _corpus_payloads()}, "not the whole corpus"
    secrets = {v for v in personal_values(payloads) if _searchable(v)}
    emails = {v for v in secrets if "@" in v}
    assert len(emails) >= 5 and len(secrets) >= 20, sorted(secrets)  # the search is not vacuous
    leaked = sorted(v for v in secrets if v in output)
    assert not leaked, leaked
    assert not EMAIL.findall(output)
    assert not PHONE.findall(output)


# --------------------------------------------------------------------------------------------
# redact_personal_data, directly


def _redact(**event: Any) -> dict[str, Any]:
    return dict(redact_personal_data(None, "info", dict(event)))


def test_nested_personal_keys_are_masked_at_any_depth() -> None:
    out = _redact(
        event="handler_failed",
        context={
            "activity": {"customer": {"id": "cust_1", "email": "a@b.io"}, "kind": "x"},
            "order": {"metadata": {"store": "web"}, "amount": 100, "items": [{"name": "Lena Fischer"}]},
            "who": {"first_name": "Lena", "last_name": "Fischer", "phone": "+44 7700 900123"},
        },
    )
    ctx = out["context"]
    assert ctx["activity"]["customer"] == REDACTED
    assert ctx["activity"]["kind"] == "x"
    assert ctx["order"]["metadata"] == REDACTED
    assert ctx["order"]["amount"] == 100
    assert ctx["order"]["items"] == [{"name": REDACTED}]
    assert ctx["who"] == {"first_name": REDACTED, "last_name": REDACTED, "phone": REDACTED}


def test_emails_and_phones_inside_free_text_are_masked() -> None:
    out = _redact(
        event="bounce for lena.fischer@example.com",
        error="SMTP 550: <omar.haddad@example.com> unknown; call +44 7700 900789 or (555) 123-4567",
        reasons=["to ariana.patel@example.org", ("+1 415 555 0100",)],
    )
    assert out["event"] == f"bounce for {REDACTED}"
    assert out["error"] == f"SMTP 550: <{REDACTED}> unknown; call {REDACTED} or {REDACTED}"
    assert out["reasons"] == [f"to {REDACTED}", [REDACTED]]


def test_pipeline_fields_stay_exact() -> None:
    out = _redact(
        event="dead_letter",
        topic="customer-activity",
        partition=3,
        offset=1234567,
        activity_type="customer.redemption.succeeded",
        timestamp="2026-01-02T03:04:05.678901Z",
        reason="truncated",
        count=12,
    )
    assert out == {
        "event": "dead_letter",
        "topic": "customer-activity",
        "partition": 3,
        "offset": 1234567,
        "activity_type": "customer.redemption.succeeded",
        "timestamp": "2026-01-02T03:04:05.678901Z",
        "reason": "truncated",
        "count": 12,
    }


# Every librdkafka property marked sensitive (_RK_SENSITIVE) that a KAFKA_* variable can set.
LIBRDKAFKA_SECRETS = (
    "sasl.password",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "sasl.jaas.config",
)


@pytest.mark.parametrize("key", LIBRDKAFKA_SECRETS)
def test_secret_settings_are_masked_wherever_they_are_nested(key: str) -> None:
    kafka = {key: "s3cr3t-value", "sasl.username": "svc-user", "bootstrap.servers": "kafka:9092"}
    out = _redact(event="worker_started", settings={"kafka": kafka}, **{key: "s3cr3t-value"})
    assert out[key] == REDACTED
    assert out["settings"]["kafka"] == {key: REDACTED, "sasl.username": "svc-user", "bootstrap.servers": "kafka:9092"}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    stream = io.StringIO()
    logs.configure("json", "debug", stream=stream)
    try:
        yield stream
    finally:
        structlog.configure(**saved)


def test_a_whole_corpus_payload_logged_by_mistake_leaks_nothing(json_log: io.StringIO) -> None:
    """The last line of defence: a careless `log.debug(..., activity=payload)` still redacts."""
    log = logs.get("test")
    payloads = _corpus_payloads()
    for p in payloads:
        log.debug("oops", activity=p, detail=p["data"])
    text = json_log.getvalue()
    records = _json_lines(text)
    assert len(records) == len(payloads) and all(r["event"] == "oops" for r in records)
    leaked = sorted(v for v in personal_values(payloads) if _searchable(v) and v in text)
    assert not leaked, leaked
    assert not EMAIL.findall(text)
    # and it is still a useful line: the ids and the type are there
    assert all(
        r["activity"]["id"] == p["id"] and r["activity"]["type"] == p["type"]
        for r, p in zip(records, payloads, strict=True)
    )


def test_personal_values_finds_what_the_corpus_holds() -> None:
    values = personal_values(_corpus_payloads())
    assert {"lena.fischer@example.com", "+44 7700 900123", "Lionel Johnson", "landing-page"} <= values
    # campaign and product names are not personal
    assert "Spring Sale 2024" not in values
    assert any(path[-1] == "metadata" or "metadata" in path for p in _corpus_payloads() for path, _ in walk(p))
