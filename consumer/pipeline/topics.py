"""Topic creation, shared by the sink (output topics), the demo and the tests."""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from consumer.pipeline.clients import client_config


def create_topics(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    *,
    replication_factor: int = 1,
    topic_config: Mapping[str, str] | None = None,
    kafka: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create ``{name: partitions}`` topics and wait until all their partitions have leaders.

    A topic that already exists is accepted as it is (its partition count is not checked).
    Any other failure raises ``KafkaException``; not becoming visible raises ``TimeoutError``.
    """
    if not topics:
        return
    admin = AdminClient(client_config("admin", bootstrap_servers, kafka or {}))
    new_topics = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=dict(topic_config or {}),
        )
        for name, partitions in topics.items()
    ]
    futures = admin.create_topics(new_topics, operation_timeout=timeout_s, request_timeout=timeout_s)
    for future in futures.values():
        # exception() rather than result(): a raised-and-caught error would tie this frame (and
        # so the AdminClient and its broker connection) into a cycle only the GC can free.
        exc = future.exception(timeout=timeout_s)
        if exc is None:
            continue
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            continue
        raise KafkaException(error) if isinstance(error, KafkaError) else exc
    del futures
    _wait_topics_visible(admin, topics, timeout_s)


def _wait_topics_visible(admin: AdminClient, topics: Mapping[str, int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(topics)
    while pending:
        metadata = admin.list_topics(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
        for name in list(pending):
            meta = metadata.topics.get(name)
            if (
                meta is not None
                and meta.error is None
                and meta.partitions
                and all(p.leader >= 0 for p in meta.partitions.values())
            ):
                pending.discard(name)
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topics not visible after {timeout_s:.0f}s: {sorted(pending)}")
        time.sleep(0.05)


def partition_counts(
    bootstrap_servers: str, topics: list[str], *, kafka: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Partitions per existing topic, from a metadata request on a client of its own.

    Never call this through the consumer inside a rebalance callback: a metadata request
    there upsets confluent-kafka's state for the surrounding `consume()`.
    """
    admin = AdminClient(client_config("admin", bootstrap_servers, kafka or {}))
    md = admin.list_topics(timeout=10)
    return {t: len(md.topics[t].partitions) for t in topics if t in md.topics and md.topics[t].error is None}
