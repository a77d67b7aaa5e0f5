"""librdkafka property names the worker treats specially, declared once.

Pure data: the consumer (`pipeline/source`), the producer (`pipeline/sink`), the admin client
(`pipeline/topics`) and the settings check (`config`) all read these sets.
"""

from __future__ import annotations

from typing import Final

# Consumer properties that a KAFKA_* environment shared with the producer may carry.
CONSUMER_ONLY: Final = frozenset(
    {
        "group.id",
        "group.instance.id",
        "group.protocol",
        "group.remote.assignor",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "partition.assignment.strategy",
        "auto.offset.reset",
        "isolation.level",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "enable.partition.eof",
        "auto.commit.interval.ms",
        "fetch.wait.max.ms",
        "fetch.min.bytes",
        "fetch.max.bytes",
        "max.partition.fetch.bytes",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "fetch.queue.backoff.ms",
        "check.crcs",
    }
)

# Producer properties that a KAFKA_* environment shared with the consumer may carry.
PRODUCER_ONLY: Final = frozenset(
    {
        "acks",
        "linger.ms",
        "batch.size",
        "batch.num.messages",
        "compression.type",
        "enable.idempotence",
        "transactional.id",
        "transaction.timeout.ms",
        "message.timeout.ms",
        "queue.buffering.max.messages",
        "queue.buffering.max.kbytes",
        "retries",
    }
)

# Properties the delivery guarantee rests on: the worker sets them and refuses any override.
OWNED: Final[dict[str, str]] = {
    "enable.auto.commit": "only the checkpoint commits, after delivery",
    "enable.auto.offset.store": "only the checkpoint stores offsets, after delivery",
    "isolation.level": "the worker reads read_committed so aborted results never flow on",
    "enable.idempotence": "results must not be duplicated or reordered by producer retries",
    "acks": "a result counts as delivered only when all in-sync replicas have it",
    "transactional.id": "set by --transactional-id in exactly-once mode",
}

# Classic-protocol group properties: with KIP-848 (`group.protocol=consumer`) the broker owns
# them, and librdkafka refuses a consumer that sets one.
CLASSIC_GROUP_ONLY: Final[dict[str, str]] = {
    "session.timeout.ms": "the broker's group.consumer.session.timeout.ms",
    "heartbeat.interval.ms": "the broker's group.consumer.heartbeat.interval.ms",
    "partition.assignment.strategy": "group.remote.assignor (uniform or range), or the broker's default",
}
