"""One `Settings` object, built from CLI flags and the environment, validated up front."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Guarantee = Literal["at-least-once", "exactly-once"]
GUARANTEES: tuple[Guarantee, ...] = ("at-least-once", "exactly-once")
LogFormat = Literal["auto", "json", "console"]

# Environment names of the settings that are not librdkafka keys.
ENV = {
    "topics": "ACTIVITY_TOPICS",
    "pattern": "ACTIVITY_PATTERN",
    "group_id": "ACTIVITY_GROUP_ID",
    "processing_guarantee": "ACTIVITY_PROCESSING_GUARANTEE",
    "output_prefix": "ACTIVITY_OUTPUT_PREFIX",
    "dlq_topic": "ACTIVITY_DLQ_TOPIC",
    "metrics_port": "ACTIVITY_METRICS_PORT",
    "stop_when_idle": "ACTIVITY_STOP_WHEN_IDLE",
    "shutdown_grace_seconds": "ACTIVITY_SHUTDOWN_GRACE_SECONDS",
    "batch_size": "ACTIVITY_BATCH_SIZE",
    "max_retries": "ACTIVITY_MAX_RETRIES",
    "retry_backoff_ms": "ACTIVITY_RETRY_BACKOFF_MS",
    "schema_registry_url": "SCHEMA_REGISTRY_URL",
    "transactional_id": "ACTIVITY_TRANSACTIONAL_ID",
    "log_format": "ACTIVITY_LOG_FORMAT",
    "log_level": "ACTIVITY_LOG_LEVEL",
    "processes": "ACTIVITY_PROCESSES",
}
# Covers every property librdkafka marks sensitive, e.g. sasl.oauthbearer.config and ssl.key.pem.
SECRET_KEY = re.compile(
    r"password|passphrase|secret|token|credential|jaas|api[_.-]?key|oauthbearer\.config|key\.pem|private",
    re.IGNORECASE,
)


class ConfigError(ValueError):
    """A bad setting; the message names it and says what is accepted."""


@dataclass(frozen=True, slots=True)
class Settings:
    bootstrap_servers: str = "localhost:9092"
    topics: tuple[str, ...] = ()
    pattern: str | None = None
    group_id: str = "customer-activity-consumer"
    processing_guarantee: Guarantee = "at-least-once"
    output_prefix: str | None = None  # None: "<input topic>."
    dlq_topic: str | None = None  # None: "<input topic>.dlq"
    metrics_port: int = 9400  # 0 turns the HTTP endpoint off
    stop_when_idle: float | None = None
    shutdown_grace_seconds: float = 10.0
    batch_size: int = 500
    max_retries: int = 3
    retry_backoff_ms: int = 50
    schema_registry_url: str | None = None
    transactional_id: str | None = None
    log_format: LogFormat = "auto"
    log_level: str = "info"
    processes: int = 1  # worker processes in this pod, one core each
    kafka: Mapping[str, str] = field(default_factory=dict)  # librdkafka pass-through

    def validate(self, earlier: list[str] | None = None) -> Settings:
        problems: list[str] = list(earlier or [])
        if bool(self.topics) == bool(self.pattern):
            problems.append("give exactly one of --topics or --pattern (ACTIVITY_TOPICS / ACTIVITY_PATTERN)")
        if self.pattern:
            if not self.pattern.startswith("^"):
                problems.append(
                    f"--pattern {self.pattern!r} must start with '^' (librdkafka treats only those as regexes)"
                )
            try:
                re.compile(self.pattern)
            except re.error as exc:
                problems.append(f"--pattern {self.pattern!r} is not a valid regex: {exc}")
        for t in self.topics:
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", t):
                problems.append(f"--topics: {t!r} is not a valid Kafka topic name")
        if self.processing_guarantee not in GUARANTEES:
            problems.append(f"--processing-guarantee {self.processing_guarantee!r}: use one of {', '.join(GUARANTEES)}")
        if not self.bootstrap_servers.strip():
            problems.append("--bootstrap-servers is empty")
        if not self.group_id.strip():
            problems.append("--group-id is empty")
        if not 0 <= self.metrics_port <= 65535:
            problems.append(f"--metrics-port {self.metrics_port}: must be 0..65535")
        if self.stop_when_idle is not None and self.stop_when_idle <= 0:
            problems.append(f"--stop-when-idle {self.stop_when_idle}: must be > 0 seconds")
        if self.shutdown_grace_seconds <= 0:
            problems.append(f"--shutdown-grace-seconds {self.shutdown_grace_seconds}: must be > 0")
        if not 1 <= self.batch_size <= 100_000:
            problems.append(f"--batch-size {self.batch_size}: must be 1..100000")
        if not 0 <= self.max_retries <= 100:
            problems.append(f"--max-retries {self.max_retries}: must be 0..100")
        if self.retry_backoff_ms < 0:
            problems.append(f"--retry-backoff-ms {self.retry_backoff_ms}: must be >= 0")
        if not 1 <= self.processes <= 256:
            problems.append(f"--processes {self.processes}: must be 1..256")
        if self.log_format not in ("auto", "json", "console"):
            problems.append(f"--log-format {self.log_format!r}: use auto, json or console")
        if self.dlq_topic is not None and not self.dlq_topic:
            problems.append("--dlq-topic is empty")
        if problems:
            raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return self

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly-once"

    def output_topic(self, source_topic: str, stream: str) -> str:
        prefix = self.output_prefix if self.output_prefix is not None else f"{source_topic}."
        return f"{prefix}{stream}"

    def dead_letter_topic(self, source_topic: str) -> str:
        return self.dlq_topic or f"{source_topic}.dlq"

    def effective_transactional_id(self) -> str:
        return self.transactional_id or f"{self.group_id}-{socket.gethostname()}"

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict fit for a log line: secrets masked."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "kafka":
                value = {k: ("***" if SECRET_KEY.search(k) else v) for k, v in value.items()}
            elif name == "schema_registry_url" and value:
                value = re.sub(r"//[^@/]+@", "//***@", value)
            out[name] = value
        return out

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def kafka_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`KAFKA_SECURITY_PROTOCOL=SASL_SSL` -> `security.protocol: SASL_SSL` (all `KAFKA_*`)."""
    out: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("KAFKA_") and key != "KAFKA_BOOTSTRAP_SERVERS":
            out[key[len("KAFKA_") :].lower().replace("_", ".")] = value
    return out


def from_env(environ: Mapping[str, str] | None = None, problems: list[str] | None = None) -> dict[str, Any]:
    """Settings values found in the environment, converted, keyed by field name.

    Values that do not convert are described in `problems` (when given) and left out.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        values["bootstrap_servers"] = env["KAFKA_BOOTSTRAP_SERVERS"]
    for name, var in ENV.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        try:
            values[name] = _convert(name, var, raw)
        except ConfigError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
    kafka = kafka_from_env(env)
    if kafka:
        values["kafka"] = kafka
    return values


_INTS = {"metrics_port", "batch_size", "max_retries", "retry_backoff_ms", "processes"}
_FLOATS = {"stop_when_idle", "shutdown_grace_seconds"}


def _convert(name: str, source: str, raw: str) -> Any:
    try:
        if name in _INTS:
            return int(raw)
        if name in _FLOATS:
            return float(raw)
    except ValueError:
        kind = "an integer" if name in _INTS else "a number"
        raise ConfigError(f"{source}={raw!r}: must be {kind}") from None
    if name == "topics":
        return tuple(t.strip() for t in raw.split(",") if t.strip())
    return raw


def build(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Flags win over the environment, which wins over defaults; then validate."""
    problems: list[str] = []
    values = from_env(environ, problems)
    for name, value in cli.items():
        if value is not None:
            values[name] = value
    return Settings(**values).validate(problems)
