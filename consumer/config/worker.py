"""`activity-consumer run`: the worker's `Settings`, and the environment they are read from."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from consumer import contract
from consumer.config.declare import (
    AVRO_ENGINES,
    GUARANTEES,
    KAFKA_PREFIX,
    LOG_FORMATS,
    LOG_LEVELS,
    OUTPUT_FRAMINGS,
    AvroEngine,
    ConfigError,
    Guarantee,
    LogFormat,
    OutputFraming,
    Spec,
    _between,
    _engine_installed,
    _not_blank,
    _positive,
    _topic_list,
    _topic_names,
    field_problems,
    setting,
    specs_of,
)
from consumer.kafka_keys import CLASSIC_GROUP_ONLY, OWNED
from consumer.pii import REDACTED, is_secret, mask_url

if TYPE_CHECKING:
    pass

# Retry sleep allowed per event and per batch: a third of the 30 s liveness window, so the
# loop turns (and polls, well inside max.poll.interval.ms) even when handlers keep failing.
RETRY_BUDGET_MS = 10_000.0


@dataclass(frozen=True, slots=True)
class Settings:
    bootstrap_servers: str = setting(
        "localhost:9092", Spec("KAFKA_BOOTSTRAP_SERVERS", "Kafka bootstrap servers", check=_not_blank)
    )
    topics: tuple[str, ...] = setting(
        (), Spec("ACTIVITY_TOPICS", "comma-separated input topics", _topic_list, check=_topic_names)
    )
    pattern: str | None = setting(None, Spec("ACTIVITY_PATTERN", "input topic regex, e.g. '^customer-activity\\..*'"))
    group_id: str = setting("customer-activity-consumer", Spec("ACTIVITY_GROUP_ID", "consumer group", check=_not_blank))
    processing_guarantee: Guarantee = setting(
        "at-least-once", Spec("ACTIVITY_PROCESSING_GUARANTEE", "delivery guarantee", choices=GUARANTEES)
    )
    output_prefix: str | None = setting(
        None, Spec("ACTIVITY_OUTPUT_PREFIX", "downstream topic prefix (default '<input topic>.')")
    )
    dlq_topic: str | None = setting(
        None, Spec("ACTIVITY_DLQ_TOPIC", "dead-letter topic (default '<input topic>.dlq')", check=_not_blank)
    )
    metrics_host: str = setting(
        "0.0.0.0", Spec("ACTIVITY_METRICS_HOST", "interface the metrics and probe server binds to", check=_not_blank)
    )
    metrics_port: int = setting(
        9400,
        Spec("ACTIVITY_METRICS_PORT", "HTTP port of /metrics /healthz /readyz; 0 = off", int, check=_between(0, 65535)),
    )
    stop_when_idle: float | None = setting(
        None, Spec("ACTIVITY_STOP_WHEN_IDLE", "exit after this long idle", float, check=_positive, metavar="SECONDS")
    )
    shutdown_grace_seconds: float = setting(
        10.0, Spec("ACTIVITY_SHUTDOWN_GRACE_SECONDS", "drain deadline on SIGTERM", float, check=_positive)
    )
    batch_size: int = setting(500, Spec("ACTIVITY_BATCH_SIZE", "messages per poll", int, check=_between(1, 100_000)))
    max_retries: int = setting(
        3, Spec("ACTIVITY_MAX_RETRIES", "handler retries before dead-lettering", int, check=_between(0, 100))
    )
    retry_backoff_ms: int = setting(
        50,
        Spec(
            "ACTIVITY_RETRY_BACKOFF_MS", "first handler retry delay, doubled each try", int, check=_between(0, 60_000)
        ),
    )
    retry_backoff_max_ms: int = setting(
        1000,
        Spec(
            "ACTIVITY_RETRY_BACKOFF_MAX_MS",
            "cap on one retry delay (handler retries, Schema Registry retries)",
            int,
            check=_between(1, 60_000),
        ),
    )
    batch_max_wait_ms: int = setting(
        10,
        Spec(
            "ACTIVITY_BATCH_MAX_WAIT_MS",
            "longest a poll waits for a batch to fill when nothing is queued (latency bound)",
            int,
            check=_between(0, 5_000),
        ),
    )
    max_uncommitted_batches: int = setting(
        8,
        Spec(
            "ACTIVITY_MAX_UNCOMMITTED_BATCHES",
            "batches a partition may be read past its last commit; bounds re-delivery after a crash",
            int,
            check=_between(1, 100),
        ),
    )
    schema_registry_url: str | None = setting(
        None, Spec("SCHEMA_REGISTRY_URL", "Schema Registry URL; needed for Confluent framing")
    )
    transactional_id: str | None = setting(
        None,
        Spec(
            "ACTIVITY_TRANSACTIONAL_ID",
            "exactly-once producer id (default <group>-<host>; -1, -2, ... for more workers of the group on one host)",
        ),
    )
    log_format: LogFormat = setting("auto", Spec("ACTIVITY_LOG_FORMAT", "log rendering", choices=LOG_FORMATS))
    log_level: str = setting("info", Spec("ACTIVITY_LOG_LEVEL", "log level", choices=LOG_LEVELS))
    processes: int = setting(
        1,
        Spec("ACTIVITY_PROCESSES", "worker processes (one core each), metrics aggregated", int, check=_between(1, 256)),
    )
    avro_engine: AvroEngine = setting(
        "auto",
        Spec(
            "ACTIVITY_AVRO_ENGINE",
            "Avro engine for events and results; auto = cavro where installed, else fastavro",
            choices=AVRO_ENGINES,
            check=_engine_installed,
        ),
    )
    output_framing: OutputFraming = setting(
        "single-object",
        Spec(
            "ACTIVITY_OUTPUT_FRAMING",
            "results' framing: single-object (schemas from avro/) or confluent (ids from the Schema Registry,"
            " registered under <topic>-value)",
            choices=OUTPUT_FRAMINGS,
        ),
    )
    # librdkafka pass-through: every other KAFKA_* variable (not a flag: see kafka_from_env).
    kafka: Mapping[str, str] = field(default_factory=dict)

    def validate(self, earlier: Iterable[str] = ()) -> Settings:
        problems = field_problems(self, earlier)
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
        problems += self._retry_problems()
        if self.output_framing == "confluent" and not self.schema_registry_url:
            problems.append("--output-framing confluent needs --schema-registry-url (SCHEMA_REGISTRY_URL)")
        for key in sorted(OWNED.keys() & self.kafka.keys()):
            env = KAFKA_PREFIX + key.upper().replace(".", "_")
            problems.append(f"{env}: {key} is owned by the worker and cannot be overridden ({OWNED[key]})")
        if self.kafka.get("group.protocol") == "consumer":
            for key in sorted(CLASSIC_GROUP_ONLY.keys() & self.kafka.keys()):
                env = KAFKA_PREFIX + key.upper().replace(".", "_")
                problems.append(f"{env}: not with group.protocol=consumer (KIP-848); set {CLASSIC_GROUP_ONLY[key]}")
        if problems:
            raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return self

    def retry_delay_ms(self, attempt: int) -> float:
        """Delay before retry `attempt` (0-based): doubled each time, capped."""
        return float(min(self.retry_backoff_ms * 2 ** min(attempt, 30), self.retry_backoff_max_ms))

    def retry_budget_ms(self) -> float:
        """The longest one event's handler retries may sleep; also the per-batch cap on retry sleep."""
        limit = RETRY_BUDGET_MS
        poll_interval = self.kafka.get("max.poll.interval.ms")
        if poll_interval is not None and poll_interval.isdigit():
            limit = min(limit, int(poll_interval) / 3)
        return limit

    def _retry_problems(self) -> list[str]:
        if self.retry_backoff_max_ms < self.retry_backoff_ms:
            cap, first = self.retry_backoff_max_ms, self.retry_backoff_ms
            return [f"--retry-backoff-max-ms {cap} is below --retry-backoff-ms {first}"]
        total = sum(self.retry_delay_ms(a) for a in range(self.max_retries))
        budget = self.retry_budget_ms()
        if total > budget:
            return [
                f"--max-retries {self.max_retries} with --retry-backoff-ms {self.retry_backoff_ms} and "
                f"--retry-backoff-max-ms {self.retry_backoff_max_ms} sleeps {total / 1000:.1f}s per event; keep it "
                f"under {budget / 1000:.1f}s (a third of max.poll.interval.ms and of the 30s liveness window)"
            ]
        return []

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly-once"

    def output_topic(self, source_topic: str, stream: str) -> str:
        return contract.output_topic(source_topic, stream, self.output_prefix)

    def dead_letter_topic(self, source_topic: str) -> str:
        return contract.dead_letter_topic(source_topic, self.dlq_topic)

    def effective_transactional_id(self) -> str:
        return self.transactional_id or f"{self.group_id}-{socket.gethostname()}"

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict fit for a log line: secrets masked."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["kafka"] = {k: (REDACTED if is_secret(k) else v) for k, v in self.kafka.items()}
        if self.schema_registry_url:
            out["schema_registry_url"] = mask_url(self.schema_registry_url)
        return out


# The worker's settings (`activity-consumer run`).
SPECS: dict[str, Spec] = specs_of(Settings)


def shared(name: str) -> Any:
    """A worker setting that another command takes too: the same declaration, not a copy."""
    declared = Settings.__dataclass_fields__[name]
    return setting(declared.default, declared.metadata["spec"])


def kafka_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`KAFKA_SECURITY_PROTOCOL=SASL_SSL` -> `security.protocol: SASL_SSL` (every KAFKA_* but the settings')."""
    ours = {spec.env for spec in SPECS.values()}
    return {
        key[len(KAFKA_PREFIX) :].lower().replace("_", "."): value
        for key, value in environ.items()
        if key.startswith(KAFKA_PREFIX) and key not in ours
    }


def from_env(
    environ: Mapping[str, str] | None = None, problems: list[str] | None = None, cls: type[Any] = Settings
) -> dict[str, Any]:
    """Settings values found in the environment, converted, keyed by field name.

    Values that do not convert are described in `problems` (when given) and left out.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, spec in specs_of(cls).items():
        raw = env.get(spec.env)
        if not raw:
            continue
        try:
            values[name] = spec.parse(raw)
        except ValueError:
            problem = f"{spec.env}={raw!r}: must be {spec.kind}"
            if problems is None:
                raise ConfigError(problem) from None
            problems.append(problem)
    kafka = kafka_from_env(env)
    if kafka and "kafka" in cls.__dataclass_fields__:
        values["kafka"] = kafka
    return values


def resolved(name: str, given: Any = None, environ: Mapping[str, str] | None = None) -> Any:
    """One setting for a tool that needs no whole Settings: the flag, else the env var, else the default."""
    if given is not None:
        return given
    value = from_env(environ, problems=[]).get(name)
    return value if value is not None else Settings.__dataclass_fields__[name].default
