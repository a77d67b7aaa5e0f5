"""Producing when librdkafka's local queue is full: the one retry loop for `BufferError`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Producer

Headers = Sequence[tuple[str, str | bytes | None]]


def produce_waiting(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: str | bytes | None = None,
    headers: Headers | None = None,
    on_delivery: Callable[[Any, Any], None] | None = None,
    *,
    wait_s: float = 0.05,
    partition: int | None = None,
) -> None:
    """`producer.produce`, serving delivery reports while the local queue is full."""
    extra: dict[str, Any] = {} if partition is None else {"partition": partition}
    while True:
        try:
            # confluent-kafka takes a list (or a dict): a list passes as is, on the hot path too.
            given = headers if isinstance(headers, list) else list(headers or ())
            producer.produce(topic, value, key, headers=given, on_delivery=on_delivery, **extra)
            return
        except BufferError:
            producer.poll(wait_s)
