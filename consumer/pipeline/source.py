"""The Kafka consumer: subscribe by list or pattern, batch polls, rebalance callbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from consumer.config import Settings
from consumer.pipeline.clients import client_config

RebalanceCb = Callable[[Consumer, list[TopicPartition]], None]
PREFETCH_KBYTES = 16384  # the consumer's prefetch queue bound (librdkafka's default: 65536)


def consumer_config(settings: Settings, **callbacks: Any) -> dict[str, Any]:
    own = {
        "group.id": settings.group_id,
        "enable.auto.commit": False,  # only the checkpoint commits
        "enable.auto.offset.store": False,
        # Never hand uncommitted (aborted) transactional results to anyone downstream of us.
        "isolation.level": "read_committed",
        **{k: v for k, v in callbacks.items() if v is not None},
    }
    defaults = {
        "auto.offset.reset": "earliest",
        "statistics.interval.ms": 5000,
        # The broker's long poll is part of an event's latency (Tansu answers only when it ends):
        # keep it near the batch wait. KAFKA_FETCH_WAIT_MAX_MS still overrides it.
        "fetch.wait.max.ms": min(100, max(5, settings.batch_max_wait_ms)),
        # librdkafka prefetches up to 64 MB by default, held in this process while a backlog
        # waits: that alone took the worker past its 150 MB bound under overload. 16 MB is over
        # a second of input at the worker's top rate. KAFKA_QUEUED_MAX_MESSAGES_KBYTES overrides.
        "queued.max.messages.kbytes": PREFETCH_KBYTES,
        # Once that queue is full librdkafka waits this long before fetching again (default 1 s,
        # which cut the rate of draining a backlog to a third): about one batch wait.
        "fetch.queue.backoff.ms": max(10, settings.batch_max_wait_ms),
    }
    return client_config("consumer", settings.bootstrap_servers, settings.kafka, defaults=defaults, own=own)


class Source:
    def __init__(
        self,
        settings: Settings,
        *,
        on_assign: RebalanceCb,
        on_revoke: RebalanceCb,
        on_lost: RebalanceCb,
        stats_cb: Callable[[str], None] | None = None,
        error_cb: Callable[[Any], None] | None = None,
        on_commit: Callable[[Any, list[TopicPartition]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.consumer = Consumer(consumer_config(settings, stats_cb=stats_cb, error_cb=error_cb, on_commit=on_commit))
        self._callbacks = (on_assign, on_revoke, on_lost)

    def subscribe(self) -> None:
        """Subscribe; works with either group protocol, eager or incremental (cooperative-sticky,
        KIP-848): the callbacks get the partitions added or taken, and confluent-kafka applies
        them (assign or incremental_assign) once the callback returns."""
        on_assign, on_revoke, on_lost = self._callbacks

        def assigned(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            on_assign(consumer, partitions)
            # librdkafka keeps a partition's pause flag across a revoke and a re-assignment (seen
            # with incremental rebalancing), while the worker forgets a released partition's pause:
            # a partition given to this member starts fetching.
            consumer.resume(partitions)

        topics = list(self.settings.topics) if self.settings.topics else [str(self.settings.pattern)]
        self.consumer.subscribe(topics, on_assign=assigned, on_revoke=on_revoke, on_lost=on_lost)

    def poll_batch(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to `max_messages`: what is fetched already, at once; only when nothing is, wait up
        to `timeout` for a batch to fill. (A busy loop takes what arrived while it processed the
        last batch without waiting a batch's time on top.)"""
        msgs = self.consumer.consume(max_messages, 0)
        if msgs or timeout <= 0:
            return msgs
        return self.consumer.consume(max_messages, timeout)

    def pause(self, partitions: list[tuple[str, int]]) -> None:
        """Stop fetching these partitions; what was fetched for them is dropped and read again."""
        self.consumer.pause([TopicPartition(t, p) for t, p in partitions])

    def resume(self, partitions: list[tuple[str, int]]) -> None:
        self.consumer.resume([TopicPartition(t, p) for t, p in partitions])

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self.consumer.seek(TopicPartition(topic, partition, offset))

    # The checkpoint's calls (`checkpoint.Offsets`).
    def commit(self, offsets: list[TopicPartition], *, asynchronous: bool) -> None:
        if asynchronous:  # the outcome comes back through on_commit, during a later poll
            self.consumer.commit(offsets=offsets, asynchronous=True)
        else:
            self.consumer.commit(offsets=offsets, asynchronous=False)

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return self.consumer.committed(partitions, timeout=timeout)

    def group_metadata(self) -> Any:
        return self.consumer.consumer_group_metadata()

    def close(self) -> None:
        self.consumer.close()
