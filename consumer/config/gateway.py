"""`activity-consumer ingest`: the webhook gateway's settings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from consumer import contract
from consumer.config.declare import (
    OUTPUT_FRAMINGS,
    ConfigError,
    LogFormat,
    OutputFraming,
    Spec,
    _between,
    _file_entries,
    _not_blank,
    _pair_problems,
    _pairs,
    _readable,
    _topic_list,
    _topic_names,
    field_problems,
    setting,
)
from consumer.config.worker import shared
from consumer.pii import REDACTED, is_secret, mask_url

if TYPE_CHECKING:
    pass


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
