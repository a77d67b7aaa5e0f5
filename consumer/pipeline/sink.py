"""The one place that produces: results to downstream topics, bad input to the dead-letter
topic, and delivery tracking through `Ticket`s that the checkpoint reads."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from consumer import contract
from consumer.config import Settings
from consumer.contract import (
    DLQ_TOO_LARGE,
    H_ACTIVITY_ID,
    H_ACTIVITY_TYPE,
    H_AVRO_SCHEMA,
    H_DLQ_ERROR_CLASS,
    H_DLQ_FAILED_AT,
    H_DLQ_REASON,
    H_DLQ_REASON_CODE,
    H_DLQ_SOURCE_OFFSET,
    H_DLQ_SOURCE_PARTITION,
    H_DLQ_SOURCE_TOPIC,
    H_DLQ_VALUE_OMITTED,
    H_DLQ_VALUE_SIZE,
)
from consumer.kafka_io import produce_waiting
from consumer.model import Activity, Result
from consumer.pipeline.clients import client_config
from consumer.pipeline.codec.results import ResultEncoder
from consumer.pipeline.tickets import DeliveryAudit, DeliveryFailed, Ticket
from consumer.pipeline.topics import create_topics, partition_counts
from consumer.telemetry.logs import get as get_logger

log = get_logger("consumer.pipeline.sink")

Headers = list[tuple[str, str | bytes | None]]


class Sink:
    def __init__(
        self,
        settings: Settings,
        encoder: ResultEncoder,
        streams: Iterable[str],
        *,
        transactional: bool = False,
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.streams = tuple(streams)
        own: dict[str, Any] = {"enable.idempotence": True, "acks": "all", "error_cb": self._on_error}
        if transactional:
            own["transactional.id"] = settings.effective_transactional_id()
        self.fatal: KafkaError | None = None  # a producer error no retry can fix: nothing more goes out
        self.audit = DeliveryAudit()  # which delivery reports carry a real offset (the tickets ask it)
        self.producer = Producer(
            client_config(
                "producer",
                settings.bootstrap_servers,
                settings.kafka,
                defaults={"linger.ms": 5, "compression.type": "lz4", "queue.buffering.max.messages": 500_000},
                own=own,
            )
        )
        self._topics: dict[tuple[str, str], str] = {}
        self._ensured: set[str] = set()

    # -- topics ---------------------------------------------------------------------------
    def topic_for(self, source_topic: str, stream: str) -> str:
        key = (source_topic, stream)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = self.settings.output_topic(source_topic, stream)
        return topic

    def is_own_output(self, topic: str) -> bool:
        """True for a topic this worker writes to (a pattern may match its own outputs)."""
        return contract.is_own_output(topic, self.streams, self.settings.output_prefix, self.settings.dlq_topic)

    def ensure_topics(self, source_topics: Iterable[str]) -> None:
        """Create the output and dead-letter topics of new source topics (idempotent),
        with as many partitions as their source."""
        new = [t for t in source_topics if t not in self._ensured]
        if not new:
            return
        try:
            partitions = partition_counts(self.settings.bootstrap_servers, new, kafka=self.settings.kafka)
        except KafkaException as exc:
            log.warning("topic_metadata_failed", error=str(exc.args[0]))
            partitions = {}
        wanted: dict[str, int] = {}
        for source in new:
            if source in self._ensured:
                continue
            n = max(partitions.get(source, 1), 1)
            for stream in self.streams:
                wanted[self.topic_for(source, stream)] = n
            wanted[self.settings.dead_letter_topic(source)] = n
            self._ensured.add(source)
        if not wanted:
            return
        try:
            create_topics(self.settings.bootstrap_servers, wanted, kafka=self.settings.kafka)
        except (KafkaException, TimeoutError) as exc:
            # Not fatal: the topics may exist already or be created by the platform team.
            log.warning("topic_create_failed", topics=sorted(wanted), error=str(exc))

    # -- producing ------------------------------------------------------------------------
    def forward(self, source_topic: str, activity: Activity, results: list[Result], ticket: Ticket) -> None:
        headers: Headers = [
            (H_ACTIVITY_ID, activity.id.encode()),
            (H_ACTIVITY_TYPE, activity.type.encode()),
        ]
        # Encode every result before producing any: a schema registration that fails
        # (RegistrationFailed) then leaves nothing of this event half-sent.
        encoded = []
        for r in results:
            topic = self.topic_for(source_topic, r.stream)
            encoded.append((topic, r, self.encoder.encode(r.schema, r.value, topic)))
        for topic, r, value in encoded:
            ticket.pending += 1
            self._produce(topic, r.key, value, [*headers, (H_AVRO_SCHEMA, r.schema.encode())], ticket)

    def dead_letter(
        self,
        msg: Message,
        source_topic: str,
        error_class: str,
        reason_code: str,
        reason: str,
        ticket: Ticket,
        activity: Activity | None = None,
    ) -> None:
        """The original bytes, unchanged, with headers saying what was wrong and where from."""
        original = list(msg.headers() or [])
        present = {k for k, _ in original}
        headers: Headers = [(str(h[0]), h[1]) for h in original]
        if activity is not None:
            if H_ACTIVITY_ID not in present:
                headers.append((H_ACTIVITY_ID, activity.id.encode()))
            if H_ACTIVITY_TYPE not in present:
                headers.append((H_ACTIVITY_TYPE, activity.type.encode()))
        headers += [
            (H_DLQ_ERROR_CLASS, error_class.encode()),
            (H_DLQ_REASON_CODE, reason_code.encode()),
            (H_DLQ_REASON, reason.encode()[:1000]),
            (H_DLQ_SOURCE_TOPIC, source_topic.encode()),
            (H_DLQ_SOURCE_PARTITION, str(msg.partition()).encode()),
            (H_DLQ_SOURCE_OFFSET, str(msg.offset()).encode()),
            (H_DLQ_FAILED_AT, str(int(time.time() * 1000)).encode()),
        ]
        topic = self.settings.dead_letter_topic(source_topic)
        ticket.pending += 1
        try:
            self._produce(topic, msg.key(), msg.value(), headers, ticket)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                raise
            # The original plus our headers exceeds the producer's limit: send the headers
            # alone; the bytes stay in the source topic at the offset the headers give.
            size = str(len(msg.value() or b"")).encode()
            headers += [(H_DLQ_VALUE_OMITTED, DLQ_TOO_LARGE.encode()), (H_DLQ_VALUE_SIZE, size)]
            self._produce(topic, msg.key(), None, headers, ticket)

    def _produce(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Headers,
        ticket: Ticket,
    ) -> None:
        try:
            produce_waiting(self.producer, topic, value, key, headers, ticket.ack)
        except KafkaException as exc:
            self._on_error(exc.args[0])
            raise

    # -- transactions (exactly-once: checkpoint.Transactions, whose docstrings give the contract)
    def init_transactions(self, timeout_s: float) -> None:
        self.producer.init_transactions(timeout_s)

    def begin_transaction(self) -> None:
        self.producer.begin_transaction()

    def send_offsets(self, offsets: list[TopicPartition], group_metadata: Any, timeout_s: float) -> None:
        self.producer.send_offsets_to_transaction(offsets, group_metadata, timeout_s)

    def commit_transaction(self, timeout_s: float) -> None:
        self.producer.commit_transaction(timeout_s)

    def abort_transaction(self, timeout_s: float) -> None:
        self.producer.abort_transaction(timeout_s)

    def _on_error(self, err: KafkaError) -> None:
        if (err.fatal() or err.code() == KafkaError._FATAL) and self.fatal is None:
            self.fatal = err

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports; raises DeliveryFailed once the producer has failed for good."""
        if self.fatal is None:
            try:
                served = int(self.producer.poll(timeout))
            except KafkaException as exc:
                self._on_error(exc.args[0])
                if self.fatal is None:
                    raise
            else:
                if self.fatal is None:
                    return served
        raise DeliveryFailed(f"fatal producer error: {self.fatal.str()}")

    def drain(self, timeout: float) -> int:
        """Serve delivery reports until none is owed or `timeout` passes; returns how many are
        still in flight. Raises DeliveryFailed once the producer has failed for good (where
        `flush()` after a fatal error was seen to raise SystemError from a delivery callback)."""
        deadline = time.monotonic() + timeout
        while (left := len(self.producer)) and (remaining := deadline - time.monotonic()) > 0:
            self.poll(min(0.1, remaining))
        return left

    def flush(self, timeout: float) -> int:
        """Wait for outstanding deliveries; returns how many are still in flight."""
        if self.fatal is not None:  # nothing queued can be delivered any more
            return len(self.producer)
        return int(self.producer.flush(timeout))

    def queue_length(self) -> int:
        return len(self.producer)
