"""Settings: flags over environment over defaults, KAFKA_* pass-through, every bad value
named in one ConfigError, and secrets kept out of `redacted()`."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from consumer.cli.main import _parser, main
from consumer.config import (
    COMMANDS,
    SPECS,
    ConfigError,
    Settings,
    build,
    flag_of,
    from_env,
    kafka_from_env,
    markdown_table,
)
from consumer.devtools.readme import markers
from consumer.kafka_keys import OWNED
from consumer.pii import REDACTED

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()

BASE = {"ACTIVITY_TOPICS": "customer-activity"}


def test_defaults() -> None:
    s = build({}, BASE)
    assert s.bootstrap_servers == "localhost:9092"
    assert s.topics == ("customer-activity",)
    assert s.processing_guarantee == "at-least-once"
    assert not s.exactly_once
    assert s.kafka == {}
    assert s.output_topic("customer-activity", "redemptions") == "customer-activity.redemptions"
    assert s.dead_letter_topic("customer-activity") == "customer-activity.dlq"


def test_environment_is_read_and_converted() -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "broker-1:9092,broker-2:9092",
        "ACTIVITY_TOPICS": "a, b ,c",
        "ACTIVITY_GROUP_ID": "g1",
        "ACTIVITY_PROCESSING_GUARANTEE": "exactly-once",
        "ACTIVITY_METRICS_PORT": "9500",
        "ACTIVITY_STOP_WHEN_IDLE": "2.5",
        "ACTIVITY_BATCH_SIZE": "100",
        "ACTIVITY_OUTPUT_PREFIX": "clean.",
        "ACTIVITY_DLQ_TOPIC": "dead",
    }
    s = build({}, env)
    assert s.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert s.topics == ("a", "b", "c")
    assert s.group_id == "g1"
    assert s.exactly_once
    assert s.metrics_port == 9500
    assert s.stop_when_idle == 2.5
    assert s.batch_size == 100
    assert s.output_topic("a", "orders") == "clean.orders"
    assert s.dead_letter_topic("a") == "dead"
    assert "bootstrap.servers" not in s.kafka  # KAFKA_BOOTSTRAP_SERVERS is a setting of its own


def test_flags_override_the_environment() -> None:
    env = {
        "ACTIVITY_TOPICS": "from-env",
        "ACTIVITY_GROUP_ID": "env-group",
        "ACTIVITY_METRICS_PORT": "9500",
        "KAFKA_BOOTSTRAP_SERVERS": "env:9092",
    }
    s = build(
        {
            "topics": ("from-flag",),
            "group_id": "flag-group",
            "metrics_port": 0,
            "bootstrap_servers": "flag:9092",
            "batch_size": None,  # a flag not given does not override
        },
        env,
    )
    assert s.topics == ("from-flag",)
    assert s.group_id == "flag-group"
    assert s.metrics_port == 0
    assert s.bootstrap_servers == "flag:9092"
    assert s.batch_size == Settings().batch_size


def test_kafka_pass_through() -> None:
    env = {
        **BASE,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "svc",
        "KAFKA_SASL_PASSWORD": "hunter2",
        "KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
        "NOT_KAFKA_THING": "x",
    }
    s = build({}, env)
    assert s.kafka == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "svc",
        "sasl.password": "hunter2",
        "ssl.ca.location": "/etc/ca.pem",
    }
    assert kafka_from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}) == {"security.protocol": "SASL_SSL"}


def test_pattern_instead_of_topics() -> None:
    s = build({"pattern": "^customer-activity\\..*"}, {})
    assert s.pattern == "^customer-activity\\..*"
    assert s.topics == ()


@pytest.mark.parametrize(
    ("cli", "env", "named"),
    [
        ({}, {}, ["--topics", "--pattern"]),
        ({"topics": ("a",), "pattern": "^b"}, {}, ["--topics", "--pattern"]),
        ({"pattern": "no-caret"}, {}, ["--pattern"]),
        ({"pattern": "^(unclosed"}, {}, ["--pattern"]),
        ({"topics": ("bad topic!",)}, {}, ["--topics", "bad topic!"]),
        ({"processing_guarantee": "maybe-once"}, BASE, ["--processing-guarantee", "maybe-once"]),
        ({"metrics_port": 70000}, BASE, ["--metrics-port"]),
        ({"batch_size": 0}, BASE, ["--batch-size"]),
        ({"max_retries": -1}, BASE, ["--max-retries"]),
        ({"retry_backoff_ms": -5}, BASE, ["--retry-backoff-ms"]),
        ({"retry_backoff_max_ms": 0}, BASE, ["--retry-backoff-max-ms"]),
        ({"retry_backoff_ms": 500, "retry_backoff_max_ms": 100}, BASE, ["--retry-backoff-max-ms", "below"]),
        ({"batch_max_wait_ms": -1}, BASE, ["--batch-max-wait-ms"]),
        ({"max_uncommitted_batches": 0}, BASE, ["--max-uncommitted-batches"]),
        # 100 retries of up to 1 s each would hold the loop far past the liveness window
        ({"max_retries": 100}, BASE, ["--max-retries 100", "under 10.0s"]),
        ({"max_retries": 20, "retry_backoff_max_ms": 600}, BASE, ["--max-retries 20", "under 10.0s"]),
        # a third of a shorter max.poll.interval.ms is the budget then
        ({"max_retries": 5}, {**BASE, "KAFKA_MAX_POLL_INTERVAL_MS": "3000"}, ["--max-retries 5", "under 1.0s"]),
        ({"stop_when_idle": 0.0}, BASE, ["--stop-when-idle"]),
        ({"shutdown_grace_seconds": 0.0}, BASE, ["--shutdown-grace-seconds"]),
        ({"log_format": "xml"}, BASE, ["--log-format"]),
        ({"bootstrap_servers": "  "}, BASE, ["--bootstrap-servers"]),
        ({"group_id": ""}, BASE, ["--group-id"]),
        ({}, {**BASE, "ACTIVITY_METRICS_PORT": "ninety"}, ["ACTIVITY_METRICS_PORT", "ninety"]),
        ({}, {**BASE, "ACTIVITY_STOP_WHEN_IDLE": "soon"}, ["ACTIVITY_STOP_WHEN_IDLE"]),
    ],
)
def test_a_bad_value_is_named(cli: dict[str, Any], env: dict[str, str], named: list[str]) -> None:
    with pytest.raises(ConfigError) as exc:
        build(cli, env)
    for text in named:
        assert text in str(exc.value)


def test_every_bad_flag_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as exc:
        build(
            {"metrics_port": -1, "batch_size": 0, "log_format": "xml", "topics": ("ok", "b@d")},
            {},
        )
    message = str(exc.value)
    for text in ("--metrics-port", "--batch-size", "--log-format", "b@d"):
        assert text in message
    assert "ok'" not in message


def test_every_bad_environment_value_is_named_at_once() -> None:
    env = {**BASE, "ACTIVITY_METRICS_PORT": "ninety", "ACTIVITY_BATCH_SIZE": "lots"}
    with pytest.raises(ConfigError) as exc:
        build({}, env)
    assert "ACTIVITY_METRICS_PORT" in str(exc.value)
    assert "ACTIVITY_BATCH_SIZE" in str(exc.value)


def test_bad_environment_and_bad_flag_are_named_together() -> None:
    with pytest.raises(ConfigError) as exc:
        build({"batch_size": 0}, {**BASE, "ACTIVITY_METRICS_PORT": "ninety"})
    assert "ACTIVITY_METRICS_PORT" in str(exc.value)
    assert "--batch-size" in str(exc.value)


def test_empty_environment_values_are_ignored() -> None:
    assert from_env({"ACTIVITY_METRICS_PORT": "", "ACTIVITY_GROUP_ID": ""}) == {}


def test_redacted_hides_secrets() -> None:
    env = {
        **BASE,
        "KAFKA_SASL_PASSWORD": "hunter2",
        "KAFKA_SASL_USERNAME": "svc",
        "KAFKA_SSL_KEY_PASSWORD": "keypass",
        "KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET": "oauth-secret",
        "SCHEMA_REGISTRY_URL": "https://reg-user:reg-pass@registry.example:8081/path",
    }
    s = build({}, env)
    assert s.kafka["sasl.password"] == "hunter2"  # the real value stays usable
    red = s.redacted()
    assert red["kafka"]["sasl.password"] == REDACTED
    assert red["kafka"]["ssl.key.password"] == REDACTED
    assert red["kafka"]["sasl.oauthbearer.client.secret"] == REDACTED
    assert red["kafka"]["sasl.username"] == "svc"
    assert red["schema_registry_url"] == f"https://{REDACTED}@registry.example:8081/path"
    text = json.dumps(red, default=str)
    for secret in ("hunter2", "keypass", "oauth-secret", "reg-pass", "reg-user"):
        assert secret not in text
    assert red["topics"] == ("customer-activity",)


def test_redacted_leaves_a_plain_registry_url_alone() -> None:
    s = build({}, {**BASE, "SCHEMA_REGISTRY_URL": "http://registry:8081"})
    assert s.redacted()["schema_registry_url"] == "http://registry:8081"


def test_transactional_id() -> None:
    assert build({"transactional_id": "tx-1"}, BASE).effective_transactional_id() == "tx-1"
    assert build({}, BASE).effective_transactional_id().startswith("customer-activity-consumer-")


# -- one declaration per setting ------------------------------------------------------------


def _run_parser() -> argparse.ArgumentParser:
    sub = _parser()._subparsers
    assert sub is not None
    action = next(a for a in sub._group_actions if isinstance(a, argparse._SubParsersAction))
    return action.choices["run"]


@pytest.mark.parametrize("name", list(SPECS))
def test_each_setting_has_its_flag_env_var_and_readme_row(name: str) -> None:
    """A field declared in Settings shows up as a `run` flag, an env var and a README row."""
    spec = SPECS[name]
    flag = flag_of(name)
    run = _run_parser()
    assert flag in run._option_string_actions, f"{flag} missing from `activity-consumer run`"
    assert run._option_string_actions[flag].dest == name
    assert f"| `{flag}` | `{spec.env}` |" in README, f"README settings table lacks {flag}; run `make readme`"
    # The env var is read: any value the declaration accepts round-trips.
    default = Settings.__dataclass_fields__[name].default
    sample = spec.choices[-1] if spec.choices else {int: "7", float: "7.5"}.get(spec.parse, "x-value")
    assert name in from_env({spec.env: sample}), spec.env
    assert default != from_env({spec.env: sample})[name] or spec.choices


@pytest.mark.parametrize("command", list(COMMANDS))
def test_readme_tables_are_the_generated_ones(command: str) -> None:
    """Every command's settings table is in the README, between its markers, as generated."""
    begin, end = markers(command)
    assert begin in README and end in README, f"README lacks the {command} settings table; add {begin} {end}"
    table = README.split(begin, 1)[1].split(end, 1)[0].strip()
    assert table == markdown_table(COMMANDS[command]), f"README {command} table drifted; run `make readme`"


def test_every_dataclass_field_but_the_pass_through_is_declared() -> None:
    names = {f.name for f in fields(Settings)}
    assert names - set(SPECS) == {"kafka"}


@pytest.mark.parametrize("key", sorted(OWNED))
def test_guarantee_critical_kafka_keys_cannot_be_overridden(key: str) -> None:
    env_name = "KAFKA_" + key.upper().replace(".", "_")
    with pytest.raises(ConfigError) as exc:
        build({}, {**BASE, env_name: "true"})
    assert env_name in str(exc.value) and key in str(exc.value) and "owned by the worker" in str(exc.value)


def test_an_owned_key_is_refused_before_connecting_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 answers nothing: exit 2 with the key named proves the check ran before any client.
    env = {"KAFKA_ENABLE_AUTO_COMMIT": "true", "KAFKA_ACKS": "1"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        code = main(["run", "--bootstrap-servers", "127.0.0.1:1", "--topics", "t"])
    err = capsys.readouterr().err
    assert code == 2
    assert "KAFKA_ENABLE_AUTO_COMMIT" in err and "KAFKA_ACKS" in err


def test_retry_delays_double_and_are_capped() -> None:
    s = build({"retry_backoff_ms": 100, "retry_backoff_max_ms": 700, "max_retries": 6}, BASE)
    assert [s.retry_delay_ms(a) for a in range(6)] == [100, 200, 400, 700, 700, 700]
    assert s.retry_delay_ms(10_000) == 700  # no overflow for any attempt number


def test_retries_within_the_budget_are_accepted() -> None:
    s = build({"max_retries": 12, "retry_backoff_ms": 50, "retry_backoff_max_ms": 800}, BASE)
    assert sum(s.retry_delay_ms(a) for a in range(s.max_retries)) <= s.retry_budget_ms() == 10_000
