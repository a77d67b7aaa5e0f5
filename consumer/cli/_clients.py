"""Kafka client configs for the operator tools (dlq, tail): the same KAFKA_* pass-through as
the worker, so TLS and SASL need no extra flags, minus the keys that belong to another role;
built by the one builder (pipeline/clients.py)."""

from __future__ import annotations

import os
import uuid
from typing import Any

from consumer.config import kafka_from_env
from consumer.pipeline.clients import client_config


def reader_config(bootstrap_servers: str, group_id: str | None = None) -> dict[str, Any]:
    """A consumer that reads by assignment and commits only when told to."""
    return client_config(
        "consumer",
        bootstrap_servers,
        kafka_from_env(os.environ),
        own={
            # A throwaway group when the tool keeps no position (inspect, tail): nothing is committed.
            "group.id": group_id or f"activity-consumer-tool-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        },
    )


def writer_config(bootstrap_servers: str) -> dict[str, Any]:
    return client_config(
        "producer",
        bootstrap_servers,
        kafka_from_env(os.environ),
        defaults={"linger.ms": 5},
        own={"enable.idempotence": True, "acks": "all"},
    )
