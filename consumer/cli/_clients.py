"""Kafka client configs for the operator tools (dlq, tail): the same KAFKA_* pass-through as
the worker, so TLS and SASL need no extra flags, minus the keys that belong to another role;
librdkafka's own log lines go through structlog (`routed`)."""

from __future__ import annotations

import os
import uuid
from typing import Any

from consumer.config import kafka_from_env
from consumer.kafka_keys import CONSUMER_ONLY, PRODUCER_ONLY
from consumer.telemetry.kafka_logs import routed


def reader_config(bootstrap_servers: str, group_id: str | None = None) -> dict[str, Any]:
    """A consumer that reads by assignment and commits only when told to."""
    shared = {k: v for k, v in kafka_from_env(os.environ).items() if k not in PRODUCER_ONLY}
    return routed(
        {
            **shared,
            "bootstrap.servers": bootstrap_servers,
            # A throwaway group when the tool keeps no position (inspect, tail): nothing is committed.
            "group.id": group_id or f"activity-consumer-tool-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )


def writer_config(bootstrap_servers: str) -> dict[str, Any]:
    shared = {k: v for k, v in kafka_from_env(os.environ).items() if k not in CONSUMER_ONLY}
    return routed(
        {
            "linger.ms": 5,
            **shared,
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
        }
    )
