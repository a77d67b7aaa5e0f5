"""One `Settings` object, built from CLI flags and the environment, validated up front.

Each setting is declared once, as a field of `Settings` with its `Spec`: the environment
variable, the flag, the help, the parser and the check. The CLI flags (`add_flags`), the
environment parsing (`from_env`) and the README's settings table (`markdown_table`) are all
generated from those declarations.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, TypeVar, overload

from consumer import contract
from consumer.errors import ConsumerError
from consumer.kafka_keys import CLASSIC_GROUP_ONLY, OWNED
from consumer.pii import REDACTED, is_secret, mask_url

if TYPE_CHECKING:
    import argparse

Guarantee = Literal["at-least-once", "exactly-once"]
GUARANTEES: tuple[Guarantee, ...] = ("at-least-once", "exactly-once")
LogFormat = Literal["auto", "json", "console"]
LOG_FORMATS: tuple[LogFormat, ...] = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
AvroEngine = Literal["auto", "fastavro", "cavro"]
AVRO_ENGINES: tuple[AvroEngine, ...] = ("auto", "fastavro", "cavro")
OutputFraming = Literal["single-object", "confluent"]
OUTPUT_FRAMINGS: tuple[OutputFraming, ...] = ("single-object", "confluent")
KAFKA_PREFIX = "KAFKA_"
# Retry sleep allowed per event and per batch: a third of the 30 s liveness window, so the
# loop turns (and polls, well inside max.poll.interval.ms) even when handlers keep failing.
RETRY_BUDGET_MS = 10_000.0


class ConfigError(ConsumerError, ValueError):
    """A bad setting; the message names it and says what is accepted."""


Check = Callable[[Any], str | None]  # the problem with a value, or None


@dataclass(frozen=True, slots=True)
class Spec:
    """How one setting is given and checked."""

    env: str
    help: str
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    check: Check | None = None
    metavar: str | None = None
    repeat: bool = False  # the flag may be given more than once; `parse` gives a tuple of items

    @property
    def kind(self) -> str:
        if self.parse is int:
            return "an integer"
        return "a number" if self.parse is float else "text"


def setting(default: Any, spec: Spec) -> Any:
    return field(default=default, metadata={"spec": spec})


def _between(lo: float, hi: float) -> Check:
    return lambda v: None if lo <= v <= hi else f"must be {lo}..{hi}"


def _positive(v: float | None) -> str | None:
    return None if v is None or v > 0 else "must be > 0"


def _not_blank(v: str | None) -> str | None:
    return None if v is None or v.strip() else "is empty"


def _engine_installed(engine: str) -> str | None:
    if engine == "cavro" and importlib.util.find_spec("cavro") is None:
        return "cavro is not installed (it has wheels for CPython < 3.13 only); use auto or fastavro"
    return None


def _topic_list(raw: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in raw.split(",") if t.strip())


def _topic_names(topics: tuple[str, ...]) -> str | None:
    bad = [t for t in topics if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", t)]
    return f"{', '.join(map(repr, bad))} is not a valid Kafka topic name" if bad else None


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


def specs_of(cls: type[Any]) -> dict[str, Spec]:
    """Field name -> its Spec, in declaration order, for any class of declared settings."""
    return {f.name: f.metadata["spec"] for f in fields(cls) if "spec" in f.metadata}


# The worker's settings (`activity-consumer run`).
SPECS: dict[str, Spec] = specs_of(Settings)


def shared(name: str) -> Any:
    """A worker setting that another command takes too: the same declaration, not a copy."""
    declared = Settings.__dataclass_fields__[name]
    return setting(declared.default, declared.metadata["spec"])


def field_problems(values: Any, earlier: Iterable[str] = ()) -> list[str]:
    """What each declared field's choices and check say of its value."""
    problems = list(earlier)
    for name, spec in specs_of(type(values)).items():
        value = getattr(values, name)
        if spec.choices is not None and value not in spec.choices:
            problems.append(f"{flag_of(name)} {value!r}: use one of {', '.join(spec.choices)}")
        elif spec.check is not None and value is not None and (problem := spec.check(value)):
            shown = "" if isinstance(value, tuple) else f" {value!r}"  # the problem names the bad items
            problems.append(f"{flag_of(name)}{shown}: {problem}")
    return problems


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None, cls: type[Any] = Settings) -> None:
    """One flag per setting of `cls` (all of them, or `names`); an absent flag leaves the value None."""
    specs = specs_of(cls)
    for name in specs if names is None else names:
        spec = specs[name]
        default = cls.__dataclass_fields__[name].default
        shown = f"; default {default!r}" if default not in (None, ()) else ""
        parser.add_argument(
            flag_of(name),
            dest=name,
            type=spec.parse,
            choices=spec.choices,
            metavar=spec.metavar,
            help=f"{spec.help} (env {spec.env}{shown})",
            **({"action": "extend"} if spec.repeat else {}),  # type: ignore[arg-type]
        )


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


class _Validated(Protocol):
    def validate(self, earlier: Iterable[str] = ...) -> Self: ...


_S = TypeVar("_S", bound=_Validated)


@overload
def build(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings: ...
@overload
def build(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, cls: type[_S]) -> _S: ...
def build(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, cls: type[Any] = Settings) -> Any:
    """A command's settings (the worker's by default): flags win over the environment, which wins
    over defaults; then `cls.validate` raises ConfigError naming every problem."""
    problems: list[str] = []
    values = _given(cli, environ, problems, cls)
    return cls(**values).validate(problems)


def gateway_mapping(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> GatewaySettings:
    """The gateway's settings for a tool that maps deliveries but serves none: as `build`, no secret needed."""
    problems: list[str] = []
    return GatewaySettings(**_given(cli, environ, problems, GatewaySettings)).checked(problems, serving=False)


def _given(cli: Mapping[str, Any], environ: Mapping[str, str] | None, problems: list[str], cls: type[Any]) -> Any:
    values = from_env(environ, problems, cls)
    specs = specs_of(cls)
    values.update({name: value for name, value in cli.items() if name in specs and value is not None})
    return {name: tuple(v) if isinstance(v, list) else v for name, v in values.items()}  # repeated flags


def markdown_table(cls: type[Any] = Settings) -> str:
    """A README settings table, generated from the declarations of `cls`."""
    flags = cls is not EnvironmentSettings
    rows = ["| flag | environment | default | what |", "|---|---|---|---|"]
    if not flags:
        rows = ["| environment | default | what |", "|---|---|---|"]
    for name, spec in specs_of(cls).items():
        default = cls.__dataclass_fields__[name].default
        shown = "" if default in (None, ()) else f"`{default}`"
        what = spec.help + (f": {', '.join(spec.choices)}" if spec.choices else "")
        flag = f"| `{flag_of(name)}` " if flags else ""
        rows.append(f"{flag}| `{spec.env}` | {shown} | {what} |")
    return "\n".join(rows)


def _pair_problems(entries: tuple[str, ...]) -> str | None:
    """PROJECT:VALUE entries; the problem names positions only (a value may be a secret)."""
    bad = [str(i) for i, e in enumerate(entries, 1) if not all(part.strip() for part in e.partition(":")[::2])]
    return f"entry {', '.join(bad)} is not PROJECT:VALUE" if bad else None


def _pairs(entries: Iterable[str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        project, _, value = entry.partition(":")
        out[project.strip()] = (*out.get(project.strip(), ()), value.strip())
    return out


def _file_entries(path: str | None) -> tuple[str, ...]:
    """Entries of a secrets file: one a line (or comma-separated); blank lines and # comments skipped."""
    if not path:
        return ()
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    return tuple(e for line in lines for e in _topic_list(line))


def _readable(path: str | None) -> str | None:
    return None if path is None or os.access(path, os.R_OK) else "cannot be read"


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """`activity-consumer ingest`: Voucherify's signed webhooks -> the input topic."""

    bootstrap_servers: str = shared("bootstrap_servers")
    topic: str | None = setting(
        None,
        Spec(
            "ACTIVITY_INGEST_TOPIC",
            "topic the deliveries' activities are written to",
            check=lambda t: _topic_names((t,)),
        ),
    )
    dlq_topic: str | None = setting(
        None,
        Spec(
            "ACTIVITY_INGEST_DLQ_TOPIC",
            "topic for signed deliveries that cannot be mapped, kept as received (default '<topic>.gateway.dlq')",
            check=lambda t: _topic_names((t,)),
        ),
    )
    project_topics: tuple[str, ...] = setting(
        (),
        Spec(
            "ACTIVITY_INGEST_PROJECT_TOPICS",
            "a topic per Voucherify project, PROJECT:TOPIC,... (others go to --topic)",
            _topic_list,
            check=_pair_problems,
        ),
    )
    host: str = setting(
        "0.0.0.0", Spec("ACTIVITY_INGEST_HOST", "interface the webhook server binds to", check=_not_blank)
    )
    port: int = setting(
        8080, Spec("ACTIVITY_INGEST_PORT", "webhook server port; 0 = any free one", int, check=_between(0, 65535))
    )
    webhook_secrets: tuple[str, ...] = setting(
        (),
        Spec(
            "VOUCHERIFY_WEBHOOK_SECRETS",
            "webhook secrets, comma-separated (several while rotating); serve any project without its own."
            " A flag shows in `ps`: prefer the variable or the file",
            _topic_list,
        ),
    )
    webhook_secrets_file: str | None = setting(
        None, Spec("VOUCHERIFY_WEBHOOK_SECRETS_FILE", "file of webhook secrets, one a line", check=_readable)
    )
    project_secrets: tuple[str, ...] = setting(
        (),
        Spec(
            "VOUCHERIFY_PROJECT_SECRETS",
            "per-project secrets, PROJECT:SECRET,...; such a project is verified with its own only",
            _topic_list,
            check=_pair_problems,
        ),
    )
    project_secrets_file: str | None = setting(
        None, Spec("VOUCHERIFY_PROJECT_SECRETS_FILE", "file of PROJECT:SECRET lines", check=_readable)
    )
    ack_timeout_seconds: float = setting(
        8.0,
        Spec(
            "ACTIVITY_INGEST_ACK_TIMEOUT_SECONDS",
            "longest wait for the broker's ack before answering 503 (Voucherify gives up at 10 s)",
            float,
            check=lambda v: None if 0 < v < 10 else "must be > 0 and under Voucherify's 10 s",
        ),
    )
    retry_after_seconds: int = setting(
        30, Spec("ACTIVITY_INGEST_RETRY_AFTER_SECONDS", "Retry-After of a 503", int, check=_between(1, 3600))
    )
    max_body_bytes: int = setting(
        1_048_576,
        Spec(
            "ACTIVITY_INGEST_MAX_BODY_BYTES", "largest body accepted (413 above)", int, check=_between(1024, 64 << 20)
        ),
    )
    max_in_flight: int = setting(
        1000,
        Spec(
            "ACTIVITY_INGEST_MAX_IN_FLIGHT",
            "webhook requests handled at once; beyond, 503 + Retry-After before the body is read (bounds memory)",
            int,
            check=_between(1, 100_000),
        ),
    )
    dedupe_window: int = setting(
        100_000,
        Spec(
            "ACTIVITY_INGEST_DEDUPE_WINDOW",
            "acknowledged event ids remembered to answer re-sends without producing; 0 = off",
            int,
            check=_between(0, 10_000_000),
        ),
    )
    framing: OutputFraming = setting(
        "single-object",
        Spec(
            "ACTIVITY_INGEST_FRAMING",
            "framing of the records written: single-object or confluent (needs --schema-registry-url)",
            choices=OUTPUT_FRAMINGS,
        ),
    )
    schema_registry_url: str | None = shared("schema_registry_url")
    shutdown_grace_seconds: float = shared("shutdown_grace_seconds")
    log_format: LogFormat = shared("log_format")
    log_level: str = shared("log_level")
    kafka: Mapping[str, str] = field(default_factory=dict)  # KAFKA_* pass-through, as the worker's

    def validate(self, earlier: Iterable[str] = ()) -> GatewaySettings:
        return self.checked(earlier, serving=True)

    def checked(self, earlier: Iterable[str] = (), *, serving: bool) -> GatewaySettings:
        """Every problem at once (ConfigError); a tool that maps deliveries but serves none
        (`dlq remap`) needs no webhook secret."""
        problems = field_problems(self, earlier)
        if not self.topic:
            problems.append("--topic (ACTIVITY_INGEST_TOPIC) is required")
        if self.framing == "confluent" and not self.schema_registry_url:
            problems.append("--framing confluent needs --schema-registry-url (SCHEMA_REGISTRY_URL)")
        bad_topics = _topic_names(tuple(v for vs in _pairs(self.project_topics).values() for v in vs))
        if bad_topics:
            problems.append(f"--project-topics: {bad_topics}")
        try:
            files_ok = _pair_problems(_file_entries(self.project_secrets_file)) is None
            if not files_ok:
                problems.append("--project-secrets-file: a line is not PROJECT:SECRET")
            elif serving and not self.secrets() and not self.project_secret_map():
                problems.append(
                    "no webhook secret: set VOUCHERIFY_WEBHOOK_SECRETS (or _FILE)"
                    " or VOUCHERIFY_PROJECT_SECRETS (or _FILE)"
                )
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"a secrets file cannot be read: {type(exc).__name__}")
        if problems:
            raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return self

    def secrets(self) -> tuple[str, ...]:
        """The plain secrets: the variable's, then the file's."""
        return (*self.webhook_secrets, *_file_entries(self.webhook_secrets_file))

    def project_secret_map(self) -> dict[str, tuple[str, ...]]:
        return _pairs((*self.project_secrets, *_file_entries(self.project_secrets_file)))

    def topic_for(self, project_id: str) -> str:
        mapped = _pairs(self.project_topics).get(project_id)
        return mapped[0] if mapped else str(self.topic)

    def dead_letter_topic(self) -> str:
        return self.dlq_topic or f"{self.topic}{contract.GATEWAY_DLQ_SUFFIX}"

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict fit for a log line: secrets counted, never shown."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["webhook_secrets"] = f"{len(self.webhook_secrets)} secret(s)"
        out["project_secrets"] = f"{len(self.project_secrets)} secret(s)"
        out["kafka"] = {k: (REDACTED if is_secret(k) else v) for k, v in self.kafka.items()}
        if self.schema_registry_url:
            out["schema_registry_url"] = mask_url(self.schema_registry_url)
        return out


def iso_instant(raw: str) -> datetime:
    """ISO 8601 text as an aware UTC datetime (UTC unless zoned); raises ValueError."""
    when = datetime.fromisoformat(raw.strip())
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _iso_problem(raw: str) -> str | None:
    try:
        iso_instant(raw)
    except ValueError:
        return "must be an ISO 8601 date or date-time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z"
    return None


def _http_url(url: str) -> str | None:
    return None if re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url) else "must be an http(s):// base URL"


def _ids(raw: str) -> tuple[str, ...]:
    return tuple(i.strip() for i in raw.split(",") if i.strip())


@dataclass(frozen=True, slots=True)
class BackfillSettings:
    """`activity-consumer backfill`: history from Voucherify's REST API onto the input topic.
    The credentials are no settings: VOUCHERIFY_APP_ID and VOUCHERIFY_APP_TOKEN, from the
    environment only (consumer/ingest/voucherify_api.py)."""

    bootstrap_servers: str = shared("bootstrap_servers")
    topic: str | None = setting(
        None,
        Spec(
            "ACTIVITY_BACKFILL_TOPIC", "input topic the activities are produced to", check=lambda t: _topic_names((t,))
        ),
    )
    api_url: str = setting(
        "https://api.voucherify.io",
        Spec(
            "VOUCHERIFY_API_URL",
            "Voucherify API base URL (EU; https://us1.api.voucherify.io, https://as1.api.voucherify.io)",
            check=_http_url,
        ),
    )
    since: str | None = setting(
        None, Spec("ACTIVITY_BACKFILL_SINCE", "activities at or after (ISO 8601, UTC unless zoned)", check=_iso_problem)
    )
    until: str | None = setting(
        None,
        Spec(
            "ACTIVITY_BACKFILL_UNTIL",
            "activities before (ISO 8601); the gateway's go-live keeps the overlap small",
            check=_iso_problem,
        ),
    )
    customer: tuple[str, ...] = setting(
        (),
        Spec(
            "ACTIVITY_BACKFILL_CUSTOMERS",
            "only these customers (id or source_id; repeat the flag or comma-separate); no customer listing",
            _ids,
            metavar="ID",
            repeat=True,
        ),
    )
    max_requests_per_minute: int = setting(
        90,
        Spec(
            "ACTIVITY_BACKFILL_MAX_REQUESTS_PER_MINUTE",
            "request budget, evenly paced (the smallest plan allows 100/min)",
            int,
            check=_between(1, 100_000),
        ),
    )
    request_timeout_seconds: float = setting(
        30.0, Spec("ACTIVITY_BACKFILL_REQUEST_TIMEOUT_SECONDS", "timeout of one API request", float, check=_positive)
    )
    max_attempts: int = setting(
        8,
        Spec(
            "ACTIVITY_BACKFILL_MAX_ATTEMPTS",
            "tries of one request on 5xx and network errors (backoff 1s doubling, capped at 60s) before exit 1",
            int,
            check=_between(1, 100),
        ),
    )
    progress_file: str = setting(
        "backfill-progress.json",
        Spec(
            "ACTIVITY_BACKFILL_PROGRESS_FILE",
            "the resumable position (put it on the Job's volume); the same command line resumes from it",
            check=_not_blank,
        ),
    )
    log_format: LogFormat = shared("log_format")
    log_level: str = shared("log_level")

    def validate(self, earlier: Iterable[str] = ()) -> BackfillSettings:
        problems = field_problems(self, earlier)
        if not self.topic:
            problems.append("--topic (ACTIVITY_BACKFILL_TOPIC) is required")
        window = (self.since, self.until)
        if (
            all(window)
            and not any(_iso_problem(str(w)) for w in window)
            and iso_instant(str(self.since)) >= iso_instant(str(self.until))
        ):
            problems.append(f"--since {self.since!r} is not before --until {self.until!r}")
        if problems:
            raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return self


def _checked(values: _S, earlier: Iterable[str]) -> _S:
    """`values` when every declared check passes; else ConfigError naming each problem."""
    problems = field_problems(values, earlier)
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return values


@dataclass(frozen=True, slots=True)
class ProduceSettings:
    """`activity-consumer produce`: JSON Lines activities on stdin -> input records on --topic."""

    bootstrap_servers: str = shared("bootstrap_servers")
    topic: str | None = setting(
        None, Spec("ACTIVITY_PRODUCE_TOPIC", "topic the activities are written to", check=lambda t: _topic_names((t,)))
    )
    framing: OutputFraming = setting(
        "single-object",
        Spec("ACTIVITY_PRODUCE_FRAMING", "framing of the records written", choices=OUTPUT_FRAMINGS),
    )
    schema_registry_url: str | None = shared("schema_registry_url")
    log_format: LogFormat = shared("log_format")
    log_level: str = shared("log_level")
    kafka: Mapping[str, str] = field(default_factory=dict)  # KAFKA_* pass-through, as the worker's

    def validate(self, earlier: Iterable[str] = ()) -> ProduceSettings:
        problems = list(earlier)
        if not self.topic:
            problems.append("--topic (ACTIVITY_PRODUCE_TOPIC) is required")
        if self.framing == "confluent" and not self.schema_registry_url:
            problems.append("--framing confluent needs --schema-registry-url (SCHEMA_REGISTRY_URL)")
        return _checked(self, problems)


@dataclass(frozen=True, slots=True)
class CodecSettings:
    """`activity-consumer codec encode|decode`: JSON Lines <-> base64 framed Avro, no Kafka."""

    framing: OutputFraming = setting(
        "single-object",
        Spec("ACTIVITY_CODEC_FRAMING", "framing `codec encode` writes (`decode` reads any)", choices=OUTPUT_FRAMINGS),
    )
    schema_registry_url: str | None = shared("schema_registry_url")

    def validate(self, earlier: Iterable[str] = ()) -> CodecSettings:
        problems = list(earlier)
        if self.framing == "confluent" and not self.schema_registry_url:
            problems.append("--framing confluent needs --schema-registry-url (SCHEMA_REGISTRY_URL)")
        return _checked(self, problems)


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """`activity-consumer demo` (`make run`): a local broker, the gateway, a Voucherify stand-in, the worker."""

    metrics_port: int = shared("metrics_port")
    rate: float = setting(200.0, Spec("ACTIVITY_DEMO_RATE", "demo events per second", float, check=_positive))
    duration: float | None = setting(
        None,
        Spec("ACTIVITY_DEMO_DURATION", "stop after this many seconds (default: until Ctrl-C)", float, check=_positive),
    )

    def validate(self, earlier: Iterable[str] = ()) -> DemoSettings:
        return _checked(self, earlier)


@dataclass(frozen=True, slots=True)
class EnvironmentSettings:
    """What any command reads from its environment only (there is no flag): where it finds files."""

    avro_dir: str | None = setting(
        None,
        Spec(
            "ACTIVITY_AVRO_DIR",
            "folder of the contract's .avsc files (default: the contract installed with the package)",
        ),
    )
    demo_corpus: str | None = setting(
        None,
        Spec(
            "ACTIVITY_DEMO_CORPUS",
            f"`activity-consumer demo`: folders of JSON activities, {os.pathsep!r}-separated"
            " (default: Voucherify's examples shipped in the package)",
        ),
    )
    prometheus_multiproc_dir: str | None = setting(
        None,
        Spec(
            "PROMETHEUS_MULTIPROC_DIR",
            "prometheus-client's multiprocess folder (its own variable); `--processes N` makes a fresh one when unset",
        ),
    )


def environment(environ: Mapping[str, str] | None = None) -> EnvironmentSettings:
    """The environment-only settings, read now (a process may set one for its children)."""
    return EnvironmentSettings(**from_env(environ, None, EnvironmentSettings))


# Each command's settings class, for `make readme` (a table per command between
# `<!-- settings:NAME:begin -->` markers; the worker's table keeps `<!-- settings:begin -->`).
COMMANDS: dict[str, type[Any]] = {
    "run": Settings,
    "ingest": GatewaySettings,
    "backfill": BackfillSettings,
    "produce": ProduceSettings,
    "codec": CodecSettings,
    "demo": DemoSettings,
    "environment": EnvironmentSettings,
}
