"""The one librdkafka config builder, for every client the package makes.

A client's config is, from weakest to strongest: its defaults (tuning a user may change), the
KAFKA_* pass-through less the keys of the other role (a consumer-only key on a producer is a
librdkafka warning, or worse), then the properties its guarantee rests on, which nothing
overrides (Settings.validate refuses KAFKA_* attempts at them too). librdkafka's own log lines
go through structlog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from consumer.kafka_keys import CONSUMER_ONLY, PRODUCER_ONLY
from consumer.telemetry.kafka_logs import routed

Role = Literal["consumer", "producer", "admin"]
_NOT_FOR: Final[dict[Role, frozenset[str]]] = {
    "consumer": PRODUCER_ONLY,
    "producer": CONSUMER_ONLY,
    "admin": PRODUCER_ONLY | CONSUMER_ONLY,
}


def client_config(
    role: Role,
    bootstrap_servers: str,
    kafka: Mapping[str, str],
    *,
    defaults: Mapping[str, Any] | None = None,
    own: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A `role` client's config: `defaults`, then `kafka` (the pass-through) without the other
    role's keys, then `own` and `bootstrap_servers`."""
    passed = {k: v for k, v in kafka.items() if k not in _NOT_FOR[role]}
    return routed({**(defaults or {}), **passed, **(own or {}), "bootstrap.servers": bootstrap_servers})
