"""The small commands' settings (produce, codec, demo) and the variable-only ones of any command."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from consumer.config.declare import (
    OUTPUT_FRAMINGS,
    LogFormat,
    OutputFraming,
    Spec,
    _checked,
    _positive,
    _topic_names,
    setting,
)
from consumer.config.worker import from_env, shared

if TYPE_CHECKING:
    pass


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

    FLAGS: ClassVar[bool] = False  # markdown_table: no flag column

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
